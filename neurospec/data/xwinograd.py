"""XWinograd items: Winograd schemas with ``_`` for the pronoun and two candidates, in six languages.

    from neurospec.data.xwinograd import load_xwinograd, xwinograd_languages, underscore_sentence
    items = load_xwinograd("jp")          # MCItems; question = the sentence with "_" for the pronoun
    xwinograd_languages()                 # ['eng_Latn', 'fra_Latn', 'jpn_Jpan', 'rus_Cyrl', 'zho_Hans', 'por_Latn']

Data: the original release's ``dataset.tsv`` (the shared copy; 7 columns, no header: language,
source, English schema, sentence, NLTK tokens, pronoun ``[raw, [start, end], tokens]``, two candidates
``[raw, [start, end], tokens, is_correct]``) or a JSONL/JSON/CSV file with the Hugging Face
``Muennighoff/xwinograd`` fields (``sentence`` with ``_``, ``option1``, ``option2``, ``answer`` "1"/"2";
a ``lang`` or ``language`` field, where present, selects the language).

Building ``_`` from the TSV: the tokens are matched to the sentence in order (NLTK writes a double
quote as two backquotes or two apostrophes), the pronoun's token span becomes ``_``, and punctuation
tokens at either edge of that span are left in the sentence: ten Russian schemas mark ``его.`` (the
pronoun and the full stop) as the pronoun, which would leave nothing after ``_`` to score. Trailing
whitespace of a sentence is dropped. Upstream's 16 Chinese rows include two schema pairs whose
"pronoun" is ``为`` of 因为 ("because"); they are kept as released. How the items are scored is
:mod:`neurospec.evaluate.tasks.xwinograd`.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path
from typing import Sequence

from neurospec.data.items import MCItem
from neurospec.data.languages import resolve
from neurospec.data.records import data_location, field, missing_language, read_records
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = ["TSV_NAME", "load_xwinograd", "underscore_sentence", "xwinograd_languages"]

TSV_NAME = "dataset.tsv"
_QUOTES = ("``", "''")
_QUOTE_FORMS = ('"', "“", "”", "„", "«", "»", "``", "''")
_WHAT = "XWinograd"


def _token_spans(sentence: str, tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Character span of each token in ``sentence``, matched left to right (only spaces may lie between)."""
    spans, cursor = [], 0
    for number, token in enumerate(tokens):
        forms = _QUOTE_FORMS if token in _QUOTES else (token,)
        found = [(sentence.find(form, cursor), len(form)) for form in forms]
        found = [hit for hit in found if hit[0] >= 0 and not sentence[cursor:hit[0]].strip()]
        if not found:
            raise ValueError(f"token {number} ({token!r}) not found after character {cursor}")
        start, length = min(found)
        spans.append((start, start + length))
        cursor = start + length
    return spans


def _is_punctuation(token: str) -> bool:
    return bool(token) and all(unicodedata.category(ch).startswith("P") for ch in token)


def underscore_sentence(sentence: str, tokens: Sequence[str], pronoun_span: Sequence[int]) -> str:
    """``sentence`` with the pronoun's tokens ``[start, end)`` replaced by ``_`` (edge punctuation kept)."""
    start, end = int(pronoun_span[0]), int(pronoun_span[1])
    if not 0 <= start < end <= len(tokens):
        raise ValueError(f"pronoun span [{start}, {end}] is outside the {len(tokens)} tokens")
    while end - start > 1 and _is_punctuation(tokens[end - 1]):
        end -= 1
    while end - start > 1 and _is_punctuation(tokens[start]):
        start += 1
    spans = _token_spans(sentence, tokens)
    return sentence[:spans[start][0]] + "_" + sentence[spans[end - 1][1]:]


def _tsv_rows(path: Path) -> list[tuple[int, list[str]]]:
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise FileFormatError(f"{path} is empty: it holds no XWinograd rows")
    rows = []
    for number, row in enumerate(csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE), 1):
        if not row:
            continue
        if len(row) != 7:
            raise FileFormatError(f"{path} line {number}: expected 7 tab-separated columns (the XWinograd release "
                                  f"format), found {len(row)}")
        rows.append((number, row))
    return rows


def _tsv_item(path: Path, line: int, row: list[str], key: str) -> MCItem:
    code, _, _, sentence, tokens, pronoun, candidates = row
    try:
        tokens, pronoun, candidates = json.loads(tokens), json.loads(pronoun), json.loads(candidates)
        text = underscore_sentence(sentence, tokens, pronoun[1]).rstrip()
        options = tuple(candidate[0] for candidate in candidates)
        golds = [i for i, candidate in enumerate(candidates) if candidate[3] is True]
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise FileFormatError(f"{path} line {line}: cannot read the XWinograd row ({err})") from None
    if len(golds) != 1:
        raise FileFormatError(f"{path} line {line}: expected exactly one correct candidate, found {len(golds)}")
    return MCItem(text, options, golds[0], group=key, id=f"xwinograd-{code}-{line}",
                  metadata={"source": row[1], "pronoun": pronoun[0]})


def _record_language(record: dict) -> str | None:
    value = record.get("lang", record.get("language"))
    return str(value) if value not in (None, "") else None


def _hf_items(path: Path, key: str) -> list[MCItem]:
    needed = "sentence, option1, option2, answer"
    items = []
    for line, record in read_records(path):
        code = _record_language(record)
        if code is not None and resolve(code).key != key:
            continue
        answer = str(field(record, "answer", path, line, needed=needed)).strip()
        if answer not in ("1", "2"):
            raise FileFormatError(f"{path} line {line}: answer must be 1 or 2, not {answer!r}")
        sentence = str(field(record, "sentence", path, line, needed=needed)).rstrip()
        if sentence.count("_") != 1:
            raise FileFormatError(f"{path} line {line}: the sentence must hold exactly one '_' (the blank)")
        options = (str(field(record, "option1", path, line, needed=needed)),
                   str(field(record, "option2", path, line, needed=needed)))
        items.append(MCItem(sentence, options, int(answer) - 1, group=key,
                            id=f"xwinograd-{code or resolve(key).xwinograd or key}-{line}"))
    return items


def _tsv_path(location: Path) -> Path | None:
    """The release TSV at ``location`` (a file, or a folder holding ``dataset.tsv``), or None."""
    if location.is_dir():
        path = location / TSV_NAME
        return path if path.is_file() else None
    if location.suffix.lower() != ".tsv":
        return None
    with open(location, encoding="utf-8") as f:
        first = f.readline()
    return location if first.count("\t") == 6 and "sentence" not in first.split("\t")[3] else None


def _missing(key: str, source: Path, data_dir: str | Path | None) -> NeurospecError:
    return missing_language("xwinograd", key, source, lambda: xwinograd_languages(data_dir))


def _folder_file(location: Path, key: str) -> Path:
    code = resolve(key).xwinograd or resolve(key).iso639_1 or key
    for name in (f"{code}.jsonl", f"{code}/test.jsonl", f"{key}.jsonl"):
        if (location / name).is_file():
            return location / name
    raise _missing(key, location, location)


def load_xwinograd(language: str, data_dir: str | Path | None = None) -> list[MCItem]:
    """XWinograd items of ``language`` (``en fr jp pt ru zh``); question = the sentence with ``_``."""
    key = resolve(language).key
    location = data_location(data_dir, "xwinograd", _WHAT)
    tsv = _tsv_path(location)
    if tsv is None:
        path = _folder_file(location, key) if location.is_dir() else location
        items = _hf_items(path, key)
        if not items:
            raise _missing(key, path, data_dir)
        return items
    items = [_tsv_item(tsv, line, row, key) for line, row in _tsv_rows(tsv) if _same(row[0], key)]
    if not items:
        raise _missing(key, tsv, data_dir)
    return items


def _same(code: str, key: str) -> bool:
    try:
        return resolve(code).key == key
    except NeurospecError:
        return False


def xwinograd_languages(data_dir: str | Path | None = None) -> list[str]:
    """Canonical keys of the languages at ``data_dir`` (default: the ``xwinograd`` data set), in data order."""
    location = data_location(data_dir, "xwinograd", _WHAT)
    tsv = _tsv_path(location)
    codes: list[str] = []
    if tsv is not None:
        codes = [row[0] for _, row in _tsv_rows(tsv)]
    elif location.is_dir():
        codes = [p.stem if p.is_file() else p.name for p in location.iterdir()]
    else:
        codes = [c for c in (_record_language(r) for _, r in read_records(location)) if c]
    keys: dict[str, None] = {}
    for code in codes:
        try:
            keys.setdefault(resolve(code).key, None)
        except NeurospecError:
            continue
    return list(keys)
