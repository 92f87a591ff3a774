"""INCLUDE: regional-knowledge exam questions in 44 languages, four options, answered by letter.

    from neurospec.evaluate.tasks.include import Include, load_include
    items = load_include("et", "include_base_44.jsonl")      # rows whose language is Estonian
    Include().evaluate(model, tok, "Estonian", data_dir="include_base_44.jsonl", limit=200)

Prompt (METHODS section 2, the reference's): ``question\\nA) ..\\nB) ..\\nC) ..\\nD) ..\\nAnswer:``
(:func:`neurospec.evaluate.scoring.lettered_prompt`, question stripped); the chosen option is the letter
with the highest next-token probability (:func:`neurospec.evaluate.scoring.choose_by_letter`). The letters are
the reference's bare tokens "A".."D" right after ``Answer:`` (``form="bare"``, the default);
``form="space"`` scores " A".." D" instead (a different id on Gemma-3 tokenizers), ``form="auto"``
lets :func:`neurospec.evaluate.scoring.letter_token_ids` choose. ``details["form"]`` records the form used
(``auto`` as the form it resolved to).

Data: ``neurospec data fetch include`` (``CohereForAI/include-base-44`` at a pinned revision, parquet
files per language), or your own export: JSONL, JSON, CSV, TSV or parquet files with the Hugging Face fields ``question``,
``option_a`` .. ``option_d`` (or a ``choices`` list of four), ``answer`` (0-3), ``language`` (an English
name such as ``Estonian``, or any code :func:`neurospec.data.languages.resolve` knows); ``subject``,
``domain``, ``country``, ``level`` and ``regional_feature`` are kept in ``metadata`` where present.
``data_dir`` is one file or a folder of such files (all below it are read, in path order); without it,
the fetched ``include`` data set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from neurospec.data.items import MCItem
from neurospec.util.errors import FileFormatError, NeurospecError
from neurospec.data.languages import resolve
from neurospec.data.prompts import PLAIN, encode
from neurospec.evaluate.scoring import choose_by_letter, letter_token_ids, lettered_prompt
from neurospec.evaluate.tasks.base import MCTask, TaskResult, data_location
from neurospec.evaluate.tasks.records import RECORD_SUFFIXES, field, read_records

__all__ = ["FORMS", "Include", "include_prompt", "load_include", "resolved_form"]

LETTERS = "ABCD"
NEEDED = "question, option_a..option_d (or choices), answer, language"
METADATA_FIELDS = ("subject", "domain", "country", "level", "regional_feature")

# INCLUDE language names that neurospec.data.languages does not resolve
LANGUAGE_NAMES = {"north macedonian": "mkd_Cyrl"}


def include_prompt(item: MCItem) -> str:
    """``question\\nA) ..\\nB) ..\\nC) ..\\nD) ..\\nAnswer:``."""
    return lettered_prompt(item, LETTERS)


def _language_key(name: str, path: Path, line: int) -> str:
    alias = LANGUAGE_NAMES.get(name.strip().lower())
    if alias:
        return alias
    try:
        return resolve(name.strip()).key
    except NeurospecError as err:
        raise FileFormatError(f"{path} line {line}: language {name!r} is not known ({err})") from None


def _options(record: dict, path: Path, line: int) -> tuple[str, ...]:
    if "choices" in record and "option_a" not in record:
        choices = record["choices"]
        if isinstance(choices, str):  # a CSV export writes the list as JSON text
            try:
                choices = json.loads(choices)
            except json.JSONDecodeError:
                raise FileFormatError(f"{path} line {line}: field 'choices' is not a list") from None
        if not isinstance(choices, list) or len(choices) != 4:
            raise FileFormatError(f"{path} line {line}: field 'choices' must be a list of 4 options")
        return tuple(str(choice) for choice in choices)
    return tuple(str(field(record, f"option_{letter}", path, line, needed=NEEDED)) for letter in "abcd")


def _answer(record: dict, path: Path, line: int) -> int:
    value = str(field(record, "answer", path, line, needed=NEEDED)).strip()
    if value.upper() in tuple(LETTERS):
        return LETTERS.index(value.upper())
    if value in ("0", "1", "2", "3"):
        return int(value)
    raise FileFormatError(f"{path} line {line}: answer must be 0-3 (or A-D), not {value!r}")


SUFFIXES = RECORD_SUFFIXES + (".parquet",)


def _files(location: Path) -> list[Path]:
    """``location`` itself, or every record file below it in path order (the hub's layout is
    ``<Language>/test-00000-of-00001.parquet``; hidden folders such as the hub client's ``.cache`` are skipped)."""
    if location.is_file():
        return [location]
    files = sorted(p for p in location.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(location).parts))
    if not files:
        raise NeurospecError(f"INCLUDE folder {location} holds no {', '.join(SUFFIXES)} files")
    return files


def _rows(location: Path):
    from neurospec.data.culturalbench import read_rows

    for path in _files(location):
        if path.suffix.lower() == ".parquet":
            for number, (_, record) in enumerate(read_rows(path, "INCLUDE"), 1):
                yield path, number, record
            continue
        for line, record in read_records(path):
            yield path, line, record


def load_include(language: str, data_dir: str | Path | None = None) -> list[MCItem]:
    """INCLUDE items whose ``language`` is ``language``, in file order; every row is checked."""
    key = resolve(language).key
    location = data_location(data_dir, "include", "INCLUDE")
    items = []
    for path, line, record in _rows(location):
        options = _options(record, path, line)
        answer = _answer(record, path, line)
        question = str(field(record, "question", path, line, needed=NEEDED)).strip()
        row_key = _language_key(str(field(record, "language", path, line, needed=NEEDED)), path, line)
        if row_key != key:
            continue
        metadata = {name: record[name] for name in METADATA_FIELDS if record.get(name) not in (None, "")}
        items.append(MCItem(question, options, answer, group=key, id=f"include-{key}-{path.stem}-{line}",
                            metadata=metadata))
    if not items:
        raise Include().missing_language(key, location, data_dir)
    return items


class Include(MCTask):
    """INCLUDE (from your export): accuracy of the likeliest answer letter."""

    name = "include"
    data_folder = "include"
    splits = ("test",)
    option_defaults = {"keep_outputs": False, "form": "bare", "fmt": None}
    scoring = "letter: argmax over the next-token probability of A/B/C/D after 'question\\nA) ..\\nD) ..\\nAnswer:'"

    def languages(self, data_dir: str | Path | None = None) -> list[str]:
        location = data_location(data_dir, self.data_folder, "INCLUDE")
        keys: dict[str, None] = {}
        for path, line, record in _rows(location):
            keys.setdefault(_language_key(str(field(record, "language", path, line, needed=NEEDED)), path, line))
        return list(keys)

    def load(self, language, *, data_dir=None, split=None) -> list[MCItem]:
        self.split_name(split)
        return load_include(language, data_dir)

    def evaluate(self, model, tokenizer, language: str, **options) -> TaskResult:
        """As :meth:`MCTask.evaluate`; ``form="auto"`` is resolved first, so ``details["form"]`` is bare or space."""
        if "form" in options:
            options["form"] = resolved_form(tokenizer, options["form"], options.get("fmt"))
        return super().evaluate(model, tokenizer, language, **options)

    def predict(self, model, tokenizer, items: Sequence[MCItem], *, intervention=None, batch_size: int = 8,
                form: str = "bare", fmt=None) -> list:
        check_form(form)
        return choose_by_letter(model, tokenizer, items, fmt=fmt or PLAIN, prompt=include_prompt, letters=LETTERS,
                                form=form, batch_size=batch_size, intervention=intervention)

    def describe(self, options) -> dict:
        return {"scoring": self.scoring, "form": options["form"]}


FORMS = ("bare", "space", "auto")
_PROBE = MCItem("?", ("a", "b", "c", "d"), 0)  # every INCLUDE prompt ends alike: "...\nD) ..\nAnswer:"


def check_form(form: str) -> None:
    """``check_form("bare")``: a letter form :func:`neurospec.evaluate.scoring.letter_token_ids` takes, else a one-line error."""
    if form not in FORMS:
        raise NeurospecError(f"include: unknown form {form!r}; use bare (the reference's 'A'), space (' A') or auto")


def resolved_form(tokenizer, form: str, fmt=None) -> str:
    """``resolved_form(tok, "auto")``: the form ("bare" or "space") INCLUDE's letters take; bare and space as given."""
    check_form(form)
    if form != "auto":
        return form
    tail = encode(tokenizer, include_prompt(_PROBE), fmt or PLAIN).text[-24:]
    chosen = letter_token_ids(tokenizer, tail, LETTERS, "auto")
    try:
        return "space" if letter_token_ids(tokenizer, tail, LETTERS, "space") == chosen else "bare"
    except NeurospecError:  # " A" is not one token there: auto chose the bare letters
        return "bare"
