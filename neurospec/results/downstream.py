"""A downstream task under each target's intervention (``<task>.json``): self language against cross language.

    from neurospec.results.downstream import DownstreamTable
    table = DownstreamTable.from_json(json.loads(text), "runs/xcopa/xcopa.json")
    table.cells["hat_Latn"]["hat_Latn"].score, table.change(), table.summary()["self_mean"]
    table.save("runs/xcopa")                  # xcopa.json, xcopa.csv, xcopa_change.csv

Built by :func:`neurospec.evaluate.downstream.self_cross` (rows ``none`` and the target groups, columns the
evaluated languages; a cell is "self" when the row's language is its column's). Its cells are
:class:`TaskScore` objects (``neurospec.evaluate.tasks.TaskResult`` is this class). Changes and the self/cross
summary are computed from the scores, and :meth:`DownstreamTable.from_json` checks that the file's copies agree.
Their 95% intervals (``change_ci95`` per row and language, the summary's ``*_ci95``, named in ``interval_method``)
are computed by :mod:`neurospec.evaluate.downstream` from each item's result and kept as the file gives them;
files written before them lack these keys and still read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurospec.data.languages import language_of
from neurospec.interventions.recipes import Recipe
from neurospec.results.fields import Doc, check_rewrites, interval_json, open_document, optional
from neurospec.results.recipes import read_recipe
from neurospec.results.tables import write_matrix_csv
from neurospec.util.io import atomic_write_json


@dataclass
class TaskScore:
    """One task in one language: the primary ``metric``'s ``score`` (an accuracy in [0, 1] or a chrF++ in
    [0, 100]), its 95% interval, every metric and the details needed to read the number (split, data source,
    prompt, chance level, sacrebleu signatures; per-item outputs with ``keep_outputs=True``).

    ``item_correct``: per item, in order, 1 when answered right, 0 when not (accuracy tasks; None in files written
    before it): what a paired interval of a change between two rows needs. ``sentence_statistics``: per sentence,
    sacrebleu's chrF++ statistics (translation; in memory only, never in the file: too large)."""

    task: str
    language: str
    metric: str
    score: float
    ci95: tuple[float, float] | None
    n: int
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    item_correct: list[int] | None = None
    sentence_statistics: Any = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = {"task": self.task, "language": self.language, "metric": self.metric, "score": self.score,
               "ci95": interval_json(self.ci95), "n": self.n, "metrics": dict(self.metrics), "details": self.details}
        if self.item_correct is not None:
            out["item_correct"] = list(self.item_correct)
        return out

    @classmethod
    def from_json(cls, doc: Doc) -> "TaskScore":
        return cls(doc["task"].text(), doc["language"].text(), doc["metric"].text(), doc["score"].number(),
                   doc["ci95"].interval(), doc["n"].integer(), doc["metrics"].number_map(), doc["details"].object(),
                   optional(doc, "item_correct", Doc.integers))


Interval = tuple[float, float]


@dataclass(frozen=True)
class TargetChange:
    """One target row's mean change on its own language (``own``; None when its language is not evaluated) and on
    the other languages (``cross_mean``; None when there is none); with intervals (``intervals``: the pair
    ``(own_ci95, cross_mean_ci95)``, either None where it has none; None for a file written before them)."""

    own: float | None
    cross_mean: float | None
    intervals: tuple[Interval | None, Interval | None] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"self": self.own, "cross_mean": self.cross_mean}
        if self.intervals is not None:
            out.update(self_ci95=interval_json(self.intervals[0]), cross_mean_ci95=interval_json(self.intervals[1]))
        return out


@dataclass(frozen=True)
class SummaryIntervals:
    """95% intervals of the self/cross summary: of ``self_mean``, ``cross_mean``, their difference
    (``self_minus_cross``) and per target row its ``cross_mean`` (``per_target_cross``); None where there is none."""

    self_mean: Interval | None
    cross_mean: Interval | None
    self_minus_cross: Interval | None
    per_target_cross: dict[str, Interval | None] = field(default_factory=dict)


@dataclass(frozen=True)
class SelfCross:
    """The mean change on the diagonal (self) and off it (cross), over every target row and per target row; with
    ``intervals`` also the difference ``self_minus_cross`` and the intervals (None: a file written before them)."""

    self_mean: float | None
    cross_mean: float | None
    per_target: dict[str, TargetChange]
    intervals: SummaryIntervals | None = None

    @property
    def self_minus_cross(self) -> float | None:
        """Mean self change minus mean cross change (None when either is)."""
        if self.self_mean is None or self.cross_mean is None:
            return None
        return self.self_mean - self.cross_mean

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"self_mean": self.self_mean, "cross_mean": self.cross_mean,
                               "per_target": {row: change.to_json() for row, change in self.per_target.items()}}
        if self.intervals is not None:
            out.update(self_mean_ci95=interval_json(self.intervals.self_mean),
                       cross_mean_ci95=interval_json(self.intervals.cross_mean),
                       self_minus_cross=self.self_minus_cross,
                       self_minus_cross_ci95=interval_json(self.intervals.self_minus_cross))
        return out

    @staticmethod
    def read_intervals(doc: Doc) -> SummaryIntervals | None:
        """The intervals a ``summary`` object holds (None in a file written before them)."""
        if "self_mean_ci95" not in doc:
            return None
        per_target = {row: entry["cross_mean_ci95"].interval() for row, entry in doc["per_target"].items()}
        return SummaryIntervals(doc["self_mean_ci95"].interval(), doc["cross_mean_ci95"].interval(),
                                doc["self_minus_cross_ci95"].interval(), per_target)


@dataclass
class DownstreamTable:
    """``cells[row][language]``: a :class:`TaskScore`; rows ``none`` and the target groups."""

    FORMAT = "neurospec.downstream"
    VERSION = 1
    COMMAND = "neurospec eval TASK"

    task: str
    rows: list[str]
    languages: list[str]
    cells: dict[str, dict[str, Any]]
    recipe: Recipe | None
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # group -> why it has no row (no neurons)
    provenance: dict[str, Any] | None = None  # what `neurospec eval` adds to the file (the command, the model)
    change_ci95: dict[str, dict[str, Interval | None]] | None = None  # row -> language (None: an older file)
    summary_ci95: SummaryIntervals | None = None  # the self/cross summary's intervals (None: an older file)
    interval_method: dict[str, str] | None = None  # kind of interval -> its method (None: an older file)

    def scores(self) -> dict[str, dict[str, float]]:
        return {row: {lang: result.score for lang, result in cols.items()} for row, cols in self.cells.items()}

    def change(self) -> dict[str, dict[str, float]]:
        """Score minus the unmodified model's score, per row and language."""
        base = self.cells["none"]
        return {row: {lang: r.score - base[lang].score for lang, r in cols.items()}
                for row, cols in self.cells.items() if row != "none"}

    def is_self(self, row: str, language: str) -> bool:
        return row != "none" and (language_of(row) or row) == language

    def self_cross(self) -> SelfCross:
        """Mean change on the diagonal (self) and off it (cross), overall and per target row (with the intervals
        the table holds)."""
        per_row = {}
        selfs, crosses = [], []
        for row, cols in self.change().items():
            own = [v for lang, v in cols.items() if self.is_self(row, lang)]
            other = [v for lang, v in cols.items() if not self.is_self(row, lang)]
            selfs += own
            crosses += other
            per_row[row] = TargetChange(own[0] if own else None, mean(other), self.target_intervals(row))
        return SelfCross(mean(selfs), mean(crosses), per_row, self.summary_ci95)

    def target_intervals(self, row: str) -> tuple[Interval | None, Interval | None] | None:
        """``(own change's interval, cross mean's interval)`` of a target row; None without summary intervals."""
        if self.summary_ci95 is None:
            return None
        own = next((interval for lang, interval in (self.change_ci95 or {}).get(row, {}).items()
                    if self.is_self(row, lang)), None)
        return own, self.summary_ci95.per_target_cross.get(row)

    def summary(self) -> dict[str, Any]:
        """:meth:`self_cross` as the table's JSON holds it: ``summary()["per_target"]["hat_Latn"]["self"]``."""
        return self.self_cross().to_json()

    def to_json(self) -> dict[str, Any]:
        out = {"format": self.FORMAT, "version": self.VERSION, "task": self.task,
               "recipe": self.recipe.to_json() if self.recipe else None, "rows": self.rows,
               "languages": self.languages,
               "cells": {row: {lang: r.to_json() for lang, r in cols.items()} for row, cols in self.cells.items()},
               "change": self.change(), "summary": self.summary(), "empty_groups": self.empty_groups,
               "settings": self.settings}
        if self.change_ci95 is not None:
            out["change_ci95"] = {row: {lang: interval_json(interval) for lang, interval in cols.items()}
                                  for row, cols in self.change_ci95.items()}
        if self.interval_method is not None:
            out["interval_method"] = self.interval_method
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out

    @classmethod
    def from_json(cls, document: Any, where: str, fix: str | None = None) -> "DownstreamTable":
        """The table a ``<task>.json`` holds (``where`` names the file in errors, ``fix`` says what to do)."""
        doc = open_document(document, cls, where, fix)
        rows, languages = doc["rows"].texts(), doc["languages"].texts()
        if not rows or rows[0] != "none":
            raise doc.error("should start with the unmodified row none", "rows")
        cells = {row: {lang: TaskScore.from_json(doc["cells"][row][lang]) for lang in languages} for row in rows}
        recipe = read_recipe(doc["recipe"]) if doc.get("recipe") is not None else None
        provenance = doc["provenance"].object() if "provenance" in doc else None
        change_ci95 = optional(doc, "change_ci95", lambda d: {row: {lang: d[row][lang].interval() for lang in languages}
                                                              for row in rows[1:]})
        table = cls(doc["task"].text(), rows, languages, cells, recipe, doc["settings"].object(),
                    doc["empty_groups"].text_map(), provenance, change_ci95, SelfCross.read_intervals(doc["summary"]),
                    optional(doc, "interval_method", Doc.text_map))
        check_rewrites(doc, table.to_json())
        return table

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        write_matrix_csv(folder / f"{self.task}.csv", self.rows, self.languages, self.scores())
        write_matrix_csv(folder / f"{self.task}_change.csv", [r for r in self.rows if r != "none"], self.languages,
                         self.change())
        return atomic_write_json(folder / f"{self.task}.json", self.to_json())


def mean(values: list[float]) -> float | None:
    """The mean of ``values``; None for none."""
    return sum(values) / len(values) if values else None
