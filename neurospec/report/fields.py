"""Reading an artifact's JSON with errors that name the file, the field and the fix.

    from neurospec.report.fields import Doc
    doc = Doc(data, where="runs/x/ppl/ppl.json", fix="regenerate it with `neurospec ppl`")
    doc["cells"]["none"]["eng_Latn"]["ppl"].number()       # 260.19...
    doc.get("summary")                                      # None when absent or null
    doc["ci95"].interval()                                  # (low, high) or None

A missing field, a wrong type or a malformed interval raises :class:`ReportError` saying
``<file>: field cells.none.eng_Latn.ppl is missing; <fix>``. Report builders read artifacts only
through this class, so a truncated or hand-edited file never turns into a half-drawn figure.
"""

from __future__ import annotations

from typing import Any, Iterator

from neurospec.util.errors import FileFormatError


class ReportError(FileFormatError):
    """An artifact (or the run folder) cannot be reported on; the message names the file and the fix."""


class Doc:
    """A JSON value inside one artifact, with its dotted path for error messages."""

    __slots__ = ("raw", "where", "fix", "path")

    def __init__(self, raw: Any, where: str, fix: str = "regenerate it", path: tuple[str, ...] = ()):
        self.raw = raw
        self.where = where
        self.fix = fix
        self.path = path

    # ---- errors

    def _name(self, key: Any = None) -> str:
        parts = list(self.path) + ([str(key)] if key is not None else [])
        return ".".join(parts) if parts else "(top level)"

    def error(self, problem: str, key: Any = None) -> ReportError:
        """A :class:`ReportError` about this value (or its ``key``)."""
        return ReportError(f"{self.where}: field {self._name(key)} {problem}; {self.fix}")

    # ---- navigation

    def _child(self, raw: Any, key: Any) -> "Doc":
        return Doc(raw, self.where, self.fix, self.path + (str(key),))

    def __getitem__(self, key: str | int) -> "Doc":
        if isinstance(key, int):
            if not isinstance(self.raw, list):
                raise self.error(f"should be a list, not {_kind(self.raw)}")
            if not -len(self.raw) <= key < len(self.raw):
                raise self.error(f"has no element {key} (it holds {len(self.raw)})")
            return self._child(self.raw[key], key)
        if not isinstance(self.raw, dict):
            raise self.error(f"should be an object, not {_kind(self.raw)}")
        if key not in self.raw:
            raise self.error("is missing", key)
        return self._child(self.raw[key], key)

    def get(self, key: str) -> "Doc | None":
        """The field ``key``, or None when it is absent or null (the value must be an object)."""
        if not isinstance(self.raw, dict):
            raise self.error(f"should be an object, not {_kind(self.raw)}")
        value = self.raw.get(key)
        return None if value is None else self._child(value, key)

    def __contains__(self, key: str) -> bool:
        return isinstance(self.raw, dict) and key in self.raw

    @property
    def is_null(self) -> bool:
        return self.raw is None

    # ---- typed reads

    def number(self) -> int | float:
        """An int or float (not a boolean, not null)."""
        if isinstance(self.raw, bool) or not isinstance(self.raw, (int, float)):
            raise self.error(f"should be a number, not {_kind(self.raw)}")
        return self.raw

    def opt_number(self) -> int | float | None:
        """A number or None (null)."""
        return None if self.raw is None else self.number()

    def integer(self) -> int:
        value = self.number()
        if not isinstance(value, int):
            raise self.error(f"should be a whole number, not {value!r}")
        return value

    def text(self) -> str:
        if not isinstance(self.raw, str):
            raise self.error(f"should be a string, not {_kind(self.raw)}")
        return self.raw

    def opt_text(self) -> str | None:
        return None if self.raw is None else self.text()

    def boolean(self) -> bool:
        if not isinstance(self.raw, bool):
            raise self.error(f"should be true or false, not {_kind(self.raw)}")
        return self.raw

    def list(self) -> list["Doc"]:
        if not isinstance(self.raw, list):
            raise self.error(f"should be a list, not {_kind(self.raw)}")
        return [self._child(value, i) for i, value in enumerate(self.raw)]

    def texts(self) -> list[str]:
        """A list of strings."""
        return [item.text() for item in self.list()]

    def items(self) -> Iterator[tuple[str, "Doc"]]:
        """``(key, Doc)`` pairs of an object, in file order."""
        if not isinstance(self.raw, dict):
            raise self.error(f"should be an object, not {_kind(self.raw)}")
        for key, value in self.raw.items():
            yield key, self._child(value, key)

    def keys(self) -> list[str]:
        return [key for key, _ in self.items()]

    def interval(self) -> tuple[int | float, int | float] | None:
        """A ``[low, high]`` pair of numbers, or None when null."""
        if self.raw is None:
            return None
        pair = self.list()
        if len(pair) != 2:
            raise self.error(f"should be a [low, high] pair, not {len(pair)} values")
        return pair[0].number(), pair[1].number()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)
