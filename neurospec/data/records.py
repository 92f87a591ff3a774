"""Reading benchmark records from JSONL, JSON, CSV and TSV files, and where a benchmark's data lies.

    from neurospec.data.records import read_records, field, data_location, missing_language, checked_split
    for line, record in read_records("include_estonian.jsonl"):
        question = field(record, "question", path, line)
    folder = data_location(None, "xcopa", "XCOPA")        # the registered data set, or the data_dir given
    checked_split("xcopa", "dev", ("test", "val"), {"dev": "val"})          # -> "val"

Hugging Face datasets exported with ``Dataset.to_json`` (JSON lines), ``to_csv`` or as a JSON array all
read the same. Every error names the file and line; an empty file is an error.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from neurospec.data.languages import resolve
from neurospec.data.locate import locate
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = ["RECORD_SUFFIXES", "checked_split", "data_location", "field", "missing_language", "read_records",
           "require"]

RECORD_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise FileFormatError(f"{path} is not UTF-8 text (byte {err.start}); re-encode it as UTF-8") from None


def read_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each record of a ``.jsonl``/``.json``/``.csv``/``.tsv`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        raise FileFormatError(f"{path}: unknown record format {suffix or '(no extension)'!r}; "
                              f"use one of {', '.join(RECORD_SUFFIXES)}")
    text = _read_text(path)
    if not text.strip():
        raise FileFormatError(f"{path} is empty: it holds no records")
    if suffix == ".json" and text.lstrip().startswith("["):
        yield from _json_array(path, text)
    elif suffix in (".jsonl", ".json"):
        yield from _json_lines(path, text)
    else:
        yield from _delimited(path, text, "\t" if suffix == ".tsv" else ",")


def _json_lines(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise FileFormatError(f"{path} line {number}: not valid JSON ({err.msg}); "
                                  "each line must hold one JSON object") from None
        if not isinstance(record, dict):
            raise FileFormatError(f"{path} line {number}: expected a JSON object, found {type(record).__name__}")
        yield number, record


def _json_array(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as err:
        raise FileFormatError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise FileFormatError(f"{path} record {number}: expected a JSON object, found {type(record).__name__}")
        yield number, record


def _delimited(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines(keepends=True), delimiter=delimiter)
    if not reader.fieldnames:
        raise FileFormatError(f"{path}: no header row")
    for record in reader:
        if None in record:
            raise FileFormatError(f"{path} line {reader.line_num}: more cells than header columns")
        yield reader.line_num, record


def field(record: dict, name: str, path: str | Path, line: int, *, needed: str = "") -> Any:
    """``record[name]``; a missing or empty field is an error naming the field, file and line."""
    return require(record, name, f"{path} line {line}", needed)


def require(record: Mapping[str, Any], name: str, where: str, needed: str = "") -> Any:
    """``record[name]``; missing, None or an empty string is an error naming the field and ``where``."""
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        what = "missing" if name not in record else "empty"
        extra = f" (records need: {needed})" if needed else ""
        raise FileFormatError(f"{where}: field {name!r} is {what}{extra}")
    return value


# ---- where a benchmark's data lies, and the errors about what it holds


def data_location(data_dir: str | Path | None, dataset_name: str, what: str) -> Path:
    """``data_dir`` when given (it must exist), else the registered data set ``dataset_name``
    (:func:`neurospec.data.locate.locate`)."""
    if data_dir is not None and not Path(data_dir).exists():
        raise NeurospecError(f"{what} data not found at {data_dir}; pass data_dir= (a file or folder in the "
                             f"formats docs/tasks.md lists), or leave it out to use the registered data set")
    return locate(dataset_name, data_dir)


def missing_language(benchmark: str, language: str, source: Path | str,
                     held_languages: Callable[[], Sequence[str]]) -> NeurospecError:
    """``raise missing_language("xcopa", "de", folder, lambda: xcopa_languages(data_dir))``: the error for a
    language the data lacks, naming the languages it holds (``unknown`` when listing them fails too)."""
    lang = resolve(language)
    try:
        held = ", ".join(held_languages()) or "none"
    except NeurospecError:
        held = "unknown"
    return NeurospecError(f"{benchmark} data at {source} has no {lang.name} ({lang.key}); it has: {held}")


def checked_split(benchmark: str, split: str | None, splits: Sequence[str],
                  aliases: Mapping[str, str] | None = None) -> str:
    """``checked_split("xcopa", "dev", ("test", "val"), {"dev": "val"})`` -> ``"val"``: the split by its
    canonical name, None being the default (the first of ``splits``); an unknown split is a one-line error."""
    aliases = aliases or {}
    if split is None:
        return splits[0]
    name = aliases.get(split, split)
    if name not in splits:
        known = ", ".join(list(splits) + sorted(aliases))
        raise NeurospecError(f"{benchmark} has no split {split!r}: use one of {known}")
    return name
