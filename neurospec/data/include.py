"""INCLUDE items: regional-knowledge exam questions in 44 languages, four options each.

    from neurospec.data.include import load_include, include_languages
    items = load_include("et", "include_base_44.jsonl")      # rows whose language is Estonian
    include_languages("include_base_44.jsonl")               # the languages of its rows, in file order

Data: ``neurospec data fetch include`` (``CohereForAI/include-base-44`` at a pinned revision, parquet
files per language), or your own export: JSONL, JSON, CSV, TSV or parquet files with the Hugging Face fields ``question``,
``option_a`` .. ``option_d`` (or a ``choices`` list of four), ``answer`` (0-3), ``language`` (an English
name such as ``Estonian``, or any code :func:`neurospec.data.languages.resolve` knows); ``subject``,
``domain``, ``country``, ``level`` and ``regional_feature`` are kept in ``metadata`` where present.
``data_dir`` is one file or a folder of such files (all below it are read, in path order); without it,
the fetched ``include`` data set. How the items are prompted and scored is
:mod:`neurospec.evaluate.tasks.include`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from neurospec.data.culturalbench import read_rows
from neurospec.data.items import MCItem
from neurospec.data.languages import resolve
from neurospec.data.records import RECORD_SUFFIXES, data_location, field, missing_language, read_records
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = ["LANGUAGE_NAMES", "LETTERS", "METADATA_FIELDS", "NEEDED", "SUFFIXES", "include_languages",
           "load_include"]

LETTERS = "ABCD"
NEEDED = "question, option_a..option_d (or choices), answer, language"
METADATA_FIELDS = ("subject", "domain", "country", "level", "regional_feature")
SUFFIXES = RECORD_SUFFIXES + (".parquet",)

# INCLUDE language names that neurospec.data.languages does not resolve
LANGUAGE_NAMES = {"north macedonian": "mkd_Cyrl"}
_WHAT = "INCLUDE"


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


def _rows(location: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
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
    location = data_location(data_dir, "include", _WHAT)
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
        raise missing_language("include", key, location, lambda: include_languages(data_dir))
    return items


def include_languages(data_dir: str | Path | None = None) -> list[str]:
    """Canonical keys of the languages of the rows at ``data_dir`` (default: the ``include`` data set), in file order."""
    location = data_location(data_dir, "include", _WHAT)
    keys: dict[str, None] = {}
    for path, line, record in _rows(location):
        keys.setdefault(_language_key(str(field(record, "language", path, line, needed=NEEDED)), path, line))
    return list(keys)
