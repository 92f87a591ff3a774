"""What a report page is made of: sections holding figures, each followed by the tables behind it.

    from neurospec.report.content import Cell, Table, Section, number, label
    table = Table("lss", "LSS per source and target", ["source", "target", "LSS"],
                  [[label("eng_Latn"), label("fra_Latn"), number(0.75, ".3f")]])
    section = Section(kind="lss", artifact="lss/lss.json", title="Language steering shift")
    section.add(figure, table)            # a figure and the tables of its numbers

Builders (``neurospec.report.sections``) fill these plain objects; ``neurospec.report.html`` renders
them. A numeric cell keeps the exact number it shows (``Cell.value``), so the page can carry it in
``data-value`` for anyone checking the page against the artifact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cell:
    """One table cell: ``text`` as shown; ``value`` the number behind it (None for a text cell)."""

    text: str
    value: int | float | None = None
    header: bool = False
    title: str | None = None
    href: str | None = None  # a link (relative to the report) the text opens

    @property
    def numeric(self) -> bool:
        return self.value is not None


def label(text: Any, *, title: str | None = None) -> Cell:
    """``label("eng_Latn")``: a row-header cell (text only)."""
    return Cell("" if text is None else str(text), header=True, title=title)


def text(value: Any, *, title: str | None = None) -> Cell:
    """``text("self")``: a plain text cell; None shows as a dash."""
    return Cell("\u2014" if value is None else str(value), title=title)


def link(shown: str, href: str) -> Cell:
    """``link("fra-latn.html", "explorer/fra-latn.html")``: a text cell whose text links ``href``."""
    return Cell(shown, href=href)


def number(value: Any, spec: str = ".4g") -> Cell:
    """``number(0.1234567, ".3f")`` -> a cell showing ``0.123`` whose value is the exact number.

    Integers are shown whole whatever ``spec`` says; None (a missing number) shows as a dash and
    carries no value; booleans are not numbers and are refused.
    """
    if value is None:
        return Cell("\u2014")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"number() needs an int or float, not {type(value).__name__} ({value!r})")
    if isinstance(value, int):
        return Cell(f"{value:d}", value)
    if math.isnan(value):
        return Cell("NaN", value)
    if math.isinf(value):
        return Cell("\u221e" if value > 0 else "\u2212\u221e", value)
    return Cell(format(value, spec), value)


@dataclass
class Table:
    """A table: ``id`` unique within its section, a caption, column headers and rows of cells."""

    id: str
    caption: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str | None = None

    def add(self, *cells: Cell) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.id!r}: a row of {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))


@dataclass
class Figure:
    """A rendered figure: ``name`` is unique within its section; ``png`` the high-dpi PNG bytes (the file beside
    the page), ``svg`` the SVG bytes (on the page); ``width`` x ``height`` its size on the page in CSS pixels."""

    name: str
    title: str
    png: bytes
    width: int
    height: int
    alt: str
    caption: str = ""
    svg: bytes = b""
    slug: str = ""  # set by the writer: unique over the whole report, the PNG's file name


@dataclass
class Block:
    """A figure (or none) followed by the tables of the numbers it shows."""

    figure: Figure | None
    tables: list[Table]


@dataclass
class Section:
    """One artifact's part of the page."""

    kind: str
    artifact: str
    title: str
    step: str | None = None
    facts: list[tuple[str, str] | tuple[str, str, str]] = field(default_factory=list)  # (label, value[, tooltip])
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    anchor: str = ""  # set by the writer

    def add(self, figure: Figure | None, *tables: Table) -> None:
        """Append a figure and the tables behind it (either may be missing, not both)."""
        if figure is None and not tables:
            return
        self.blocks.append(Block(figure, list(tables)))

    @property
    def figures(self) -> list[Figure]:
        return [block.figure for block in self.blocks if block.figure is not None]

    @property
    def tables(self) -> list[Table]:
        return [table for block in self.blocks for table in block.tables]
