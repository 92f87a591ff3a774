"""The perplexity matrix (ppl.json): "neurons of group g intervened" x "language evaluated".

    from neurospec.results.perplexity import PerplexityMatrix
    matrix = PerplexityMatrix.from_json(json.loads(text), "runs/ppl/ppl.json")
    matrix.ppl["fra_Latn"]["deu_Latn"], matrix.change("nll"), matrix.summary()["fra_Latn"]["language"]
    matrix.save("runs/ppl")                   # ppl.json + ppl.csv, ppl_change.csv, nll_change.csv

Built by :func:`neurospec.evaluate.perplexity.perplexity_matrix`, which documents the protocol. A cell keeps
the summed NLL, the scored tokens and the texts; perplexities, changes and the own-versus-other summary are
computed from the cells, and :meth:`PerplexityMatrix.from_json` checks that the file's copies agree.

Intervals (``intervals`` in ppl.json, :class:`PerplexityIntervals`; absent from files written before them and
when the bootstrap is off) are paired percentile bootstraps over texts, computed by
:func:`neurospec.evaluate.perplexity.matrix_intervals` from each text's NLL and tokens and stored as numbers:
reading a file never resamples. With them, each summary entry adds the own and mean-other intervals, the
``difference`` (own minus mean other) with its interval, and gives the ratio (``selectivity``) only where its
denominator is meaningful (``selectivity_note`` says why not); without them the entry is as older files hold it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from neurospec.interventions.recipes import Recipe, match_group
from neurospec.results.fields import Doc, check_rewrites, interval_json, open_document
from neurospec.results.recipes import read_recipe
from neurospec.results.tables import write_matrix_csv
from neurospec.util.errors import NeurospecError
from neurospec.util.io import atomic_write_json

Interval = tuple[float, float]


@dataclass(frozen=True)
class Perplexity:
    """Summed NLL (nats) over ``tokens`` scored tokens of ``texts`` texts; ``ppl`` = exp(nll / tokens).

    ``text_nll`` and ``text_tokens`` (each text's, in order) are kept by
    :func:`neurospec.evaluate.perplexity.perplexity` for the bootstrap; ppl.json does not hold them."""

    nll: float
    tokens: int
    texts: int
    text_nll: tuple[float, ...] = field(default=(), compare=False, repr=False)
    text_tokens: tuple[int, ...] = field(default=(), compare=False, repr=False)

    @property
    def mean_nll(self) -> float:
        return self.nll / self.tokens

    @property
    def ppl(self) -> float:
        return math.exp(self.mean_nll)

    def to_json(self) -> dict[str, Any]:
        return {"ppl": self.ppl, "mean_nll": self.mean_nll, "nll": self.nll, "tokens": self.tokens, "texts": self.texts}

    @classmethod
    def from_json(cls, doc: Doc) -> "Perplexity":
        """``Perplexity.from_json(doc["cells"]["none"]["eng_Latn"])``; ``ppl`` and ``mean_nll`` are recomputed."""
        tokens = doc["tokens"].integer()
        if tokens < 1:
            raise doc["tokens"].error(f"is {tokens}; a cell scores at least one token")
        return cls(doc["nll"].number(), tokens, doc["texts"].integer())


@dataclass(frozen=True)
class Row:
    """One row of the matrix: ``kind`` none, group or random; ``group`` whose neurons; ``seed`` for random rows."""

    name: str
    kind: Literal["none", "group", "random"]
    group: str | None = None
    seed: int | None = None
    neurons: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "group": self.group, "seed": self.seed, "neurons": self.neurons}

    @classmethod
    def from_json(cls, doc: Doc) -> "Row":
        kind = doc["kind"].text()
        if kind not in ("none", "group", "random"):
            raise doc["kind"].error(f"is {kind!r}; a row is none, group or random")
        return cls(doc["name"].text(), kind, doc["group"].opt_text(), doc["seed"].opt_integer(),  # type: ignore[arg-type]
                   doc["neurons"].integer())


@dataclass(frozen=True)
class ContrastIntervals:
    """The intervals of one own-versus-other contrast: the own change, the mean other change, their
    ``difference`` and, where it is reported, the ratio (``selectivity``; None with the reason in ``note``)."""

    own: Interval
    mean_other: Interval
    difference: Interval
    selectivity: Interval | None
    note: str | None = None

    @classmethod
    def from_json(cls, doc: Doc) -> "ContrastIntervals":
        """From a summary entry of ppl.json (``summary.fra_Latn.neurons.ppl``)."""
        return cls(_pair(doc["own_ci"]), _pair(doc["mean_other_ci"]), _pair(doc["difference_ci"]),
                   doc["selectivity_ci"].interval(), doc["selectivity_note"].opt_text())


def _pair(doc: Doc) -> Interval:
    interval = doc.interval()
    if interval is None:
        raise doc.error("is null; it is a [low, high] interval")
    return interval


@dataclass(frozen=True)
class Selectivity:
    """A change on a group's own language, the mean change on the other languages, and their ratio
    (``selectivity``).

    Without ``intervals`` (older files) the ratio is reported whenever the mean other change is not 0. With
    them, the entry also holds the ``difference`` (own minus mean other) and every interval, and the ratio only
    where it has a meaning: the mean other change positive with an interval above 0 (see
    :func:`neurospec.evaluate.perplexity.matrix_intervals`); elsewhere it is None and ``intervals.note`` says why
    (a negative or near-zero denominator makes a ratio of -31.8 or 10^4 that says nothing about selectivity)."""

    own: float
    mean_other: float
    selectivity: float | None
    intervals: ContrastIntervals | None = None

    @property
    def difference(self) -> float:
        """Own change minus the mean change on the other languages."""
        return self.own - self.mean_other

    @classmethod
    def of(cls, changes: Mapping[str, float], own: str, intervals: ContrastIntervals | None = None) -> "Selectivity":
        """``Selectivity.of({"fra_Latn": 3.0, "deu_Latn": 0.5, ...}, "fra_Latn")``: from the changes per language."""
        others = [value for lang, value in changes.items() if lang != own]
        mean_other = sum(others) / len(others)
        if intervals is None:
            return cls(changes[own], mean_other, changes[own] / mean_other if mean_other != 0 else None)
        ratio = changes[own] / mean_other if intervals.selectivity is not None and mean_other > 0 else None
        return cls(changes[own], mean_other, ratio, intervals)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"own": self.own, "mean_other": self.mean_other, "selectivity": self.selectivity}
        if self.intervals is not None:
            out.update(own_ci=interval_json(self.intervals.own), mean_other_ci=interval_json(self.intervals.mean_other),
                       difference=self.difference, difference_ci=interval_json(self.intervals.difference),
                       selectivity_ci=interval_json(self.intervals.selectivity), selectivity_note=self.intervals.note)
        return out


@dataclass(frozen=True)
class GroupSelectivity:
    """A group's own language (a column of the matrix) and, for its neurons (``"neurons"``) and each of its random
    rows (by row name), the selectivity of the PPL change and of the mean-NLL change (``by_row[name]["ppl"]``)."""

    language: str
    by_row: dict[str, dict[str, Selectivity]]

    def to_json(self) -> dict[str, Any]:
        return {"language": self.language,
                **{name: {kind: value.to_json() for kind, value in kinds.items()} for name, kinds in self.by_row.items()}}


@dataclass
class PerplexityIntervals:
    """The matrix's intervals: ``change[kind][row][language]`` (kind ``ppl`` or ``nll``; None for the unmodified
    row, the reference) and ``contrasts[group][label][kind]`` (label ``neurons`` or a random row's name), from a
    ``method`` bootstrap with ``bootstrap`` resamples seeded by ``seed``, over ``texts[language]`` texts."""

    METHOD = "paired percentile bootstrap over texts"

    confidence: float
    bootstrap: int
    seed: int
    texts: dict[str, int]
    change: dict[str, dict[str, dict[str, Interval | None]]]
    contrasts: dict[str, dict[str, dict[str, ContrastIntervals]]]
    method: str = METHOD

    def to_json(self) -> dict[str, Any]:
        """The ``intervals`` object of ppl.json (the contrasts' intervals are in the summary entries)."""
        return {"method": self.method, "confidence": self.confidence, "bootstrap": self.bootstrap, "seed": self.seed,
                "texts": self.texts,
                **{f"change_{kind}": {row: {lang: interval_json(value) for lang, value in by_lang.items()}
                                      for row, by_lang in self.change[kind].items()} for kind in ("ppl", "nll")}}

    @classmethod
    def from_json(cls, doc: Doc, summary: Doc) -> "PerplexityIntervals":
        """From ppl.json's ``intervals`` and the intervals its ``summary`` entries hold."""
        change = {kind: {row: {lang: value.interval() for lang, value in by_lang.items()}
                         for row, by_lang in doc[f"change_{kind}"].items()} for kind in ("ppl", "nll")}
        contrasts = {group: {label: {kind: ContrastIntervals.from_json(part) for kind, part in kinds.items()}
                             for label, kinds in entry.items() if label != "language"}
                     for group, entry in summary.items()}
        texts = {lang: value.integer() for lang, value in doc["texts"].items()}
        return cls(doc["confidence"].number(), doc["bootstrap"].integer(), doc["seed"].integer(), texts, change,
                   contrasts, doc["method"].text())


@dataclass
class PerplexityMatrix:
    """Cells ``cells[row][language]`` (:class:`Perplexity`); rows as in the module docstring."""

    FORMAT = "neurospec.ppl_matrix"
    VERSION = 1
    COMMAND = "neurospec ppl"

    rows: list[Row]
    languages: list[str]
    cells: dict[str, dict[str, Perplexity]]
    recipe: Recipe
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # group -> why it has no row (no neurons)
    provenance: dict[str, Any] | None = None  # what `neurospec ppl` adds to the file (the command, the model)
    intervals: PerplexityIntervals | None = None  # paired bootstrap intervals (None: written without them)

    @property
    def ppl(self) -> dict[str, dict[str, float]]:
        return {row: {lang: cell.ppl for lang, cell in cols.items()} for row, cols in self.cells.items()}

    def change(self, kind: Literal["ppl", "nll"] = "ppl") -> dict[str, dict[str, float]]:
        """Per row and language: PPL minus the unmodified PPL (``ppl``), or the change in mean NLL (``nll``)."""
        base = self.cells["none"]
        value = (lambda c: c.ppl) if kind == "ppl" else (lambda c: c.mean_nll)
        return {row: {lang: value(cell) - value(base[lang]) for lang, cell in cols.items()}
                for row, cols in self.cells.items()}

    def contrasts(self) -> dict[str, tuple[str, list[tuple[str, str]]]]:
        """Per group whose own language is a column (with at least one other): that language and the
        ``(label, row name)`` pairs its summary compares, ``("neurons", group row)`` then each random row's."""
        out: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        for row in self.rows:
            if row.kind != "group" or len(self.languages) < 2:
                continue
            try:
                own = match_group(row.group, self.languages)  # the column of the group's own language
            except NeurospecError:
                continue
            names = [("neurons", row.name)] + [(r.name, r.name) for r in self.rows
                                               if r.kind == "random" and r.group == row.group]
            out[row.group] = (own, names)
        return out

    def selectivity(self) -> dict[str, GroupSelectivity]:
        """Per group whose language is evaluated: its own-language change, the mean change on the other
        languages, their difference and ratio (with intervals when the matrix has them), for the group and for
        each of its random rows."""
        changes = {kind: self.change(kind) for kind in ("ppl", "nll")}
        out: dict[str, GroupSelectivity] = {}
        for group, (own, names) in self.contrasts().items():
            out[group] = GroupSelectivity(own, {label: {kind: Selectivity.of(changes[kind][name], own,
                                                                             self._contrast(group, label, kind))
                                                        for kind in ("ppl", "nll")} for label, name in names})
        return out

    def _contrast(self, group: str, label: str, kind: str) -> ContrastIntervals | None:
        if self.intervals is None:
            return None
        return self.intervals.contrasts[group][label][kind]

    def summary(self) -> dict[str, dict[str, Any]]:
        """:meth:`selectivity` as ppl.json holds it: ``summary()["fra_Latn"]["neurons"]["ppl"]["selectivity"]``."""
        return {group: entry.to_json() for group, entry in self.selectivity().items()}

    def to_json(self) -> dict[str, Any]:
        out = {
            "format": self.FORMAT, "version": self.VERSION, "recipe": self.recipe.to_json(),
            "languages": self.languages, "rows": [row.to_json() for row in self.rows],
            "cells": {row: {lang: cell.to_json() for lang, cell in cols.items()} for row, cols in self.cells.items()},
            "change_ppl": self.change("ppl"), "change_nll": self.change("nll"), "summary": self.summary(),
            "empty_groups": self.empty_groups, "settings": self.settings,
        }
        if self.intervals is not None:
            out["intervals"] = self.intervals.to_json()
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out

    @classmethod
    def from_json(cls, document: Any, where: str, fix: str | None = None) -> "PerplexityMatrix":
        """The matrix a ppl.json holds (``where`` names the file in errors, ``fix`` says what to do about one)."""
        doc = open_document(document, cls, where, fix)
        languages = doc["languages"].texts()
        rows = [Row.from_json(row) for row in doc["rows"].list()]
        if not rows or rows[0].kind != "none":
            raise doc.error("should start with the unmodified row (kind none)", "rows")
        cells = {row.name: {lang: Perplexity.from_json(doc["cells"][row.name][lang]) for lang in languages}
                 for row in rows}
        provenance = doc["provenance"].object() if "provenance" in doc else None
        intervals = PerplexityIntervals.from_json(doc["intervals"], doc["summary"]) if "intervals" in doc else None
        matrix = cls(rows, languages, cells, read_recipe(doc["recipe"]), doc["settings"].object(),
                     doc["empty_groups"].text_map(), provenance, intervals)
        check_rewrites(doc, matrix.to_json())
        return matrix

    def save(self, folder: str | Path) -> Path:
        """``ppl.json`` plus ``ppl.csv``, ``ppl_change.csv`` and ``nll_change.csv`` (rows x languages)."""
        folder = Path(folder)
        names = [row.name for row in self.rows]
        write_matrix_csv(folder / "ppl.csv", names, self.languages, self.ppl)
        write_matrix_csv(folder / "ppl_change.csv", names, self.languages, self.change("ppl"))
        write_matrix_csv(folder / "nll_change.csv", names, self.languages, self.change("nll"))
        return atomic_write_json(folder / "ppl.json", self.to_json())

