"""A downstream task under each target's intervention (``<task>.json``): self language against cross language.

    from neurospec.results.downstream import DownstreamTable
    table = DownstreamTable.from_json(json.loads(text), "runs/xcopa/xcopa.json")
    table.cells["hat_Latn"]["hat_Latn"].score, table.change(), table.summary()["self_mean"]
    table.save("runs/xcopa")                  # xcopa.json, xcopa.csv, xcopa_change.csv

Built by :func:`neurospec.evaluate.downstream.self_cross` (rows ``none`` and the target groups, columns the
evaluated languages; a cell is "self" when the row's language is its column's). Its cells are
:class:`TaskScore` objects (``neurospec.evaluate.tasks.TaskResult`` is this class). Changes and the self/cross
summary are computed from the scores, and :meth:`DownstreamTable.from_json` checks that the file's copies agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurospec.data.languages import language_of
from neurospec.interventions.recipes import Recipe
from neurospec.results.fields import Doc, check_rewrites, interval_json, open_document
from neurospec.results.recipes import read_recipe
from neurospec.results.tables import write_matrix_csv
from neurospec.util.io import atomic_write_json


@dataclass
class TaskScore:
    """One task in one language: the primary ``metric``'s ``score`` (an accuracy in [0, 1] or a chrF++ in
    [0, 100]), its 95% interval, every metric and the details needed to read the number (split, data source,
    prompt, chance level, sacrebleu signatures; per-item outputs with ``keep_outputs=True``)."""

    task: str
    language: str
    metric: str
    score: float
    ci95: tuple[float, float] | None
    n: int
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "language": self.language, "metric": self.metric, "score": self.score,
                "ci95": interval_json(self.ci95), "n": self.n, "metrics": dict(self.metrics), "details": self.details}

    @classmethod
    def from_json(cls, doc: Doc) -> "TaskScore":
        return cls(doc["task"].text(), doc["language"].text(), doc["metric"].text(), doc["score"].number(),
                   doc["ci95"].interval(), doc["n"].integer(), doc["metrics"].number_map(), doc["details"].object())


@dataclass(frozen=True)
class TargetChange:
    """One target row's mean change on its own language (``own``; None when its language is not evaluated) and on
    the other languages (``cross_mean``; None when there is none)."""

    own: float | None
    cross_mean: float | None

    def to_json(self) -> dict[str, Any]:
        return {"self": self.own, "cross_mean": self.cross_mean}


@dataclass(frozen=True)
class SelfCross:
    """The mean change on the diagonal (self) and off it (cross), over every target row and per target row."""

    self_mean: float | None
    cross_mean: float | None
    per_target: dict[str, TargetChange]

    def to_json(self) -> dict[str, Any]:
        return {"self_mean": self.self_mean, "cross_mean": self.cross_mean,
                "per_target": {row: change.to_json() for row, change in self.per_target.items()}}


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
        """Mean change on the diagonal (self) and off it (cross), overall and per target row."""
        per_row = {}
        selfs, crosses = [], []
        for row, cols in self.change().items():
            own = [v for lang, v in cols.items() if self.is_self(row, lang)]
            other = [v for lang, v in cols.items() if not self.is_self(row, lang)]
            selfs += own
            crosses += other
            per_row[row] = TargetChange(own[0] if own else None, mean(other))
        return SelfCross(mean(selfs), mean(crosses), per_row)

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
        table = cls(doc["task"].text(), rows, languages, cells, recipe, doc["settings"].object(),
                    doc["empty_groups"].text_map(), provenance)
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
