"""Reading benchmark records from JSONL, JSON, CSV and TSV files, with line numbers for error messages.

    from neurospec.evaluate.tasks.records import read_records, field
    for line, record in read_records("include_estonian.jsonl"):
        question = field(record, "question", path, line)

Hugging Face datasets exported with ``Dataset.to_json`` (JSON lines), ``to_csv`` or as a JSON array all
read the same. Every error names the file and line; an empty file is an error.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from neurospec.util.errors import FileFormatError

__all__ = ["RECORD_SUFFIXES", "field", "read_records", "require"]

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
