"""Reading a result file's JSON with errors that name the file, the field and the fix.

    from neurospec.results.fields import Doc
    doc = Doc(data, where="runs/x/ppl/ppl.json", fix="regenerate it with `neurospec ppl`")
    doc["cells"]["none"]["eng_Latn"]["nll"].number()       # 438.18...
    doc.get("summary")                                      # None when absent or null
    doc["ci95"].interval()                                  # (low, high) or None

A missing field, a wrong type or a malformed interval raises :class:`ResultError` saying
``<file>: field cells.none.eng_Latn.nll is missing; <fix>``. Every result type reads its file only through
this class (:meth:`from_json`), so a truncated or hand-edited file never turns into a half-built result.
:func:`check_rewrites` closes each read: the rebuilt result must write the document back exactly, so a
field that is unknown, or that disagrees with the fields it is computed from, is named too.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

from neurospec.util.errors import FileFormatError


class ResultError(FileFormatError):
    """A result file cannot be read as its result type; the message names the file, the field and the fix."""


class Doc:
    """A JSON value inside one result file, with its dotted path for error messages."""

    __slots__ = ("raw", "where", "fix", "path")

    def __init__(self, raw: Any, where: str, fix: str = "regenerate it", path: tuple[str, ...] = ()):
        self.raw = raw
        self.where = where
        self.fix = fix
        self.path = path

    # ---- errors

    def name(self, key: Any = None) -> str:
        """The dotted path of this value (or of its ``key``): ``cells.none.eng_Latn``."""
        parts = list(self.path) + ([str(key)] if key is not None else [])
        return ".".join(parts) if parts else "(top level)"

    def error(self, problem: str, key: Any = None) -> ResultError:
        """A :class:`ResultError` about this value (or its ``key``)."""
        return ResultError(f"{self.where}: field {self.name(key)} {problem}; {self.fix}")

    # ---- navigation

    def child(self, raw: Any, key: Any) -> "Doc":
        return Doc(raw, self.where, self.fix, self.path + (str(key),))

    def __getitem__(self, key: str | int) -> "Doc":
        if isinstance(key, int):
            if not isinstance(self.raw, list):
                raise self.error(f"should be a list, not {kind_of(self.raw)}")
            if not -len(self.raw) <= key < len(self.raw):
                raise self.error(f"has no element {key} (it holds {len(self.raw)})")
            return self.child(self.raw[key], key)
        if not isinstance(self.raw, dict):
            raise self.error(f"should be an object, not {kind_of(self.raw)}")
        if key not in self.raw:
            raise self.error("is missing", key)
        return self.child(self.raw[key], key)

    def get(self, key: str) -> "Doc | None":
        """The field ``key``, or None when it is absent or null (the value must be an object)."""
        if not isinstance(self.raw, dict):
            raise self.error(f"should be an object, not {kind_of(self.raw)}")
        value = self.raw.get(key)
        return None if value is None else self.child(value, key)

    def __contains__(self, key: str) -> bool:
        return isinstance(self.raw, dict) and key in self.raw

    @property
    def is_null(self) -> bool:
        return self.raw is None

    # ---- typed reads

    def number(self) -> int | float:
        """An int or float (not a boolean, not null)."""
        if isinstance(self.raw, bool) or not isinstance(self.raw, (int, float)):
            raise self.error(f"should be a number, not {kind_of(self.raw)}")
        return self.raw

    def opt_number(self) -> int | float | None:
        """A number or None (null)."""
        return None if self.raw is None else self.number()

    def integer(self) -> int:
        value = self.number()
        if not isinstance(value, int):
            raise self.error(f"should be a whole number, not {value!r}")
        return value

    def opt_integer(self) -> int | None:
        return None if self.raw is None else self.integer()

    def text(self) -> str:
        if not isinstance(self.raw, str):
            raise self.error(f"should be a string, not {kind_of(self.raw)}")
        return self.raw

    def opt_text(self) -> str | None:
        return None if self.raw is None else self.text()

    def boolean(self) -> bool:
        if not isinstance(self.raw, bool):
            raise self.error(f"should be true or false, not {kind_of(self.raw)}")
        return self.raw

    def list(self) -> list["Doc"]:
        if not isinstance(self.raw, list):
            raise self.error(f"should be a list, not {kind_of(self.raw)}")
        return [self.child(value, i) for i, value in enumerate(self.raw)]

    def texts(self) -> list[str]:
        """A list of strings."""
        return [item.text() for item in self.list()]

    def numbers(self) -> list[int | float]:
        """A list of numbers."""
        return [item.number() for item in self.list()]

    def integers(self) -> list[int]:
        """A list of whole numbers."""
        return [item.integer() for item in self.list()]

    def items(self) -> Iterator[tuple[str, "Doc"]]:
        """``(key, Doc)`` pairs of an object, in file order."""
        if not isinstance(self.raw, dict):
            raise self.error(f"should be an object, not {kind_of(self.raw)}")
        for key, value in self.raw.items():
            yield key, self.child(value, key)

    def keys(self) -> list[str]:
        return [key for key, _ in self.items()]

    def object(self) -> dict[str, Any]:
        """An object, as the plain dict it is (for free-form fields such as ``settings``)."""
        if not isinstance(self.raw, dict):
            raise self.error(f"should be an object, not {kind_of(self.raw)}")
        return self.raw

    def opt_object(self) -> dict[str, Any] | None:
        return None if self.raw is None else self.object()

    def text_map(self) -> dict[str, str]:
        """An object of strings (``{"Spain": "no neurons selected by union"}``)."""
        return {key: value.text() for key, value in self.items()}

    def number_map(self) -> dict[str, int | float]:
        """An object of numbers."""
        return {key: value.number() for key, value in self.items()}

    def interval(self) -> tuple[int | float, int | float] | None:
        """A ``[low, high]`` pair of numbers, or None when null."""
        if self.raw is None:
            return None
        pair = self.list()
        if len(pair) != 2:
            raise self.error(f"should be a [low, high] pair, not {len(pair)} values")
        return pair[0].number(), pair[1].number()


def kind_of(value: Any) -> str:
    """``"a string"``, ``"null"``, ``"an object"``...: a JSON value's kind, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", tuple: "a list", str: "a string", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def optional(doc: Doc, key: str, read) -> Any:
    """``read(doc[key])`` when ``key`` is in the object, else None (a field the writer leaves out at times)."""
    return read(doc[key]) if key in doc.object() else None


def interval_json(interval: tuple[float, float] | list[float] | None) -> list[float] | None:
    """``(low, high)`` as the ``[low, high]`` list a result file holds (None stays None)."""
    return None if interval is None else [interval[0], interval[1]]


def open_document(document: Any, result_type: type, where: str, fix: str | None) -> Doc:
    """The top of a result file as a :class:`Doc`, once its ``format`` and ``version`` are ``result_type``'s.

    ``result_type`` has ``FORMAT``, ``VERSION`` and ``COMMAND`` (the command that writes it); ``fix`` defaults to
    "regenerate it with `COMMAND`".
    """
    doc = Doc(document, where, fix or f"regenerate it with `{result_type.COMMAND}`")
    tag = doc["format"].text()
    if tag != result_type.FORMAT:
        raise doc.error(f"is {tag!r}, not {result_type.FORMAT!r}: this file holds another kind of result", "format")
    version = doc["version"].raw
    if version != result_type.VERSION:
        raise doc.error(f"is {version!r}; this neurospec reads {result_type.FORMAT} version {result_type.VERSION} "
                        "(a newer neurospec wrote it? upgrade)", "version")
    return doc


def check_rewrites(doc: Doc, written: Any) -> None:
    """Raise naming the first field where ``written`` (the rebuilt result's ``to_json()``) differs from the file.

    A field only the file has is unknown to the format; one whose value differs is computed from other fields
    (a matrix view of the cells, a summary) and disagrees with them: the file was edited or is damaged.
    """
    found = first_difference(doc.raw, written)
    if found is None:
        return
    path, stored, rebuilt = found
    where = Doc(None, doc.where, doc.fix, path[:-1]) if path else doc
    key = path[-1] if path else None
    if rebuilt is ABSENT:
        raise where.error(f"is not a field of a {doc.raw.get('format')} version {doc.raw.get('version')} file "
                          "(remove it)", key)
    if stored is ABSENT:
        raise where.error("is missing", key)
    if isinstance(stored, dict) and isinstance(rebuilt, dict):
        raise where.error(f"holds its fields in another order ({', '.join(stored)}) than a "
                          f"{doc.raw.get('format')} file ({', '.join(rebuilt)})", key)
    if kind_of(stored) != kind_of(rebuilt) and stored is not None and rebuilt is not None:
        raise where.error(f"should be {kind_of(rebuilt)}, not {kind_of(stored)}", key)
    raise where.error(f"is {_short(stored)}, but the fields it is computed from give {_short(rebuilt)} (was the "
                      "file edited?)", key)


ABSENT = object()  # a key one of two objects lacks (:func:`first_difference`)


def first_difference(stored: Any, rebuilt: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], Any, Any] | None:
    """``(path, stored, rebuilt)`` of the first value that differs between two JSON values, or None.

    Lists and tuples are alike; 1 and 1.0 are alike; NaN equals NaN; a key in one object only differs
    (:data:`ABSENT` on the other side); two objects with the same keys in another order differ as wholes.
    """
    if isinstance(stored, dict) and isinstance(rebuilt, dict):
        for key in list(stored) + [k for k in rebuilt if k not in stored]:
            found = first_difference(stored.get(key, ABSENT), rebuilt.get(key, ABSENT), path + (str(key),))
            if found is not None:
                return found
        return None if list(stored) == list(rebuilt) else (path, stored, rebuilt)
    if isinstance(stored, (list, tuple)) and isinstance(rebuilt, (list, tuple)):
        if len(stored) != len(rebuilt):
            return path, stored, rebuilt
        for i, (a, b) in enumerate(zip(stored, rebuilt)):
            found = first_difference(a, b, path + (str(i),))
            if found is not None:
                return found
        return None
    return None if same_scalar(stored, rebuilt) else (path, stored, rebuilt)


def same_scalar(a: Any, b: Any) -> bool:
    """Two JSON scalars are the same value: a boolean only equals itself, numbers compare as numbers (NaN equal to
    NaN), anything else by type and value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
