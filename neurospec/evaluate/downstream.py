"""Downstream tasks under each target language's intervention: the self-language diagonal and the cross-language rest.

    from neurospec.evaluate.downstream import self_cross
    table = self_cross(model, tok, "xcopa", ["et", "ht", "sw"], lape, recipe="set:p_max", stats=stats, limit=100)
    table.cells["hat_Latn"]["hat_Latn"].score        # Haitian accuracy with the Haitian neurons amplified
    table.summary()                                   # mean change, self (diagonal) against cross (the rest)
    table.save("runs/xcopa")                          # xcopa.json, xcopa.csv, xcopa_change.csv

Rows: ``none`` (no intervention), then one per target group with ``recipe`` applied to its neurons.
Columns: the evaluated languages. A cell whose row's language is its column's is "self", any other
"cross" (Rahmanisa et al., 2025). Tasks come from :mod:`neurospec.evaluate.tasks` (XCOPA, XWinograd,
Belebele, INCLUDE, FLORES and NTREX translation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from neurospec.util.errors import NeurospecError
from neurospec.evaluate.tables import write_matrix_csv
from neurospec.interventions.targets import target_groups
from neurospec.data.languages import language_of
from neurospec.util.io import atomic_write_json
from neurospec.interventions.recipes import Recipe


@dataclass
class DownstreamTable:
    """``cells[row][language]``: a :class:`neurospec.evaluate.tasks.TaskResult`; rows ``none`` and the target groups."""

    task: str
    rows: list[str]
    languages: list[str]
    cells: dict[str, dict[str, Any]]
    recipe: Recipe | None
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # group -> why it has no row (no neurons)

    def scores(self) -> dict[str, dict[str, float]]:
        return {row: {lang: result.score for lang, result in cols.items()} for row, cols in self.cells.items()}

    def change(self) -> dict[str, dict[str, float]]:
        """Score minus the unmodified model's score, per row and language."""
        base = self.cells["none"]
        return {row: {lang: r.score - base[lang].score for lang, r in cols.items()}
                for row, cols in self.cells.items() if row != "none"}

    def is_self(self, row: str, language: str) -> bool:
        return row != "none" and (language_of(row) or row) == language

    def summary(self) -> dict[str, Any]:
        """Mean change on the diagonal (self) and off it (cross), overall and per target row."""
        change = self.change()
        per_row = {}
        selfs, crosses = [], []
        for row, cols in change.items():
            own = [v for lang, v in cols.items() if self.is_self(row, lang)]
            other = [v for lang, v in cols.items() if not self.is_self(row, lang)]
            selfs += own
            crosses += other
            per_row[row] = {"self": own[0] if own else None, "cross_mean": _mean(other)}
        return {"self_mean": _mean(selfs), "cross_mean": _mean(crosses), "per_target": per_row}

    def to_json(self) -> dict[str, Any]:
        return {"format": "neurospec.downstream", "version": 1, "task": self.task,
                "recipe": self.recipe.to_json() if self.recipe else None, "rows": self.rows,
                "languages": self.languages,
                "cells": {row: {lang: r.to_json() for lang, r in cols.items()} for row, cols in self.cells.items()},
                "change": self.change(), "summary": self.summary(), "empty_groups": self.empty_groups,
                "settings": self.settings}

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        write_matrix_csv(folder / f"{self.task}.csv", self.rows, self.languages, self.scores())
        write_matrix_csv(folder / f"{self.task}_change.csv", [r for r in self.rows if r != "none"], self.languages,
                         self.change())
        return atomic_write_json(folder / f"{self.task}.json", self.to_json())


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def self_cross(model, tokenizer, task: str, languages: Sequence[str], neurons=None, *,
               recipe: Recipe | str = "set:p_max", stats=None, targets: Sequence[str] | None = None,
               limit: int | None = None, batch_size: int = 8, data_dir: str | Path | None = None,
               split: str | None = None, on_cell: Callable[[str, str, Any], None] | None = None,
               **task_options: Any) -> DownstreamTable:
    """Evaluate ``task`` in every language, unmodified and under each target's intervention.

    ``neurons`` None evaluates the unmodified model only. ``targets`` defaults to the neuron set's
    groups that are among ``languages``.
    """
    from neurospec.core.sites import site_map
    from neurospec.evaluate.tasks import get_task

    runner = get_task(task)
    keys = [language_of(lang) or lang for lang in languages]
    if not keys:
        raise NeurospecError(f"no language given for {task}: name at least one")
    recipe = Recipe.parse(recipe) if neurons is not None else None
    plans: list[tuple[str, Any]] = [("none", None)]
    empty: dict[str, str] = {}
    if neurons is not None:
        neurons.validate_for(site_map(model).shape)
        evaluated = [g for g in neurons.groups if (language_of(g) or g) in keys]
        if not targets and not evaluated:
            raise NeurospecError(f"none of the neuron set's groups ({', '.join(neurons.groups)}) is an evaluated "
                                 f"language ({', '.join(keys)}); name the targets")
        chosen = target_groups(neurons, targets, verb=f"eval {task}", default=evaluated)
        empty = chosen.empty
        plans += [(group, recipe.edit(neurons, group, stats)) for group in chosen.groups]
    cells: dict[str, dict[str, Any]] = {}
    for row, edit in plans:
        cells[row] = {}
        for language in keys:
            result = runner.evaluate(model, tokenizer, language, intervention=edit, limit=limit, batch_size=batch_size,
                                     data_dir=data_dir, split=split, **task_options)
            cells[row][language] = result
            if on_cell:
                on_cell(row, language, result)
    settings = {"limit": limit, "split": split, "options": {k: str(v) for k, v in task_options.items()}}
    return DownstreamTable(task, [row for row, _ in plans], keys, cells, recipe, settings, empty)
