"""lm-eval tasks under each condition of an intervention experiment (``lmeval.json``, ``neurospec lmeval``).

    from neurospec.results.lmeval import LmevalResult
    result = LmevalResult.from_json(json.loads(text), "runs/lmeval/lmeval.json")
    cell = result.cell("fra_Latn", "xnli_fr", "acc")     # value, stderr, n and change vs the unmodified model
    cell.value, cell.stderr, cell.change, result.change()[("fra_Latn", "xnli_fr", "acc", "none")]
    result.save("runs/lmeval")                          # lmeval.json and lmeval.csv (one row per cell)

Built by :func:`neurospec.verbs.lmeval.lmeval` from lm-eval's own results, one run per condition (whose JSON is
kept beside this file; ``conditions[i].output`` names it). Conditions are those of
:mod:`neurospec.interventions.conditions`: ``none`` (the unmodified model), each target group, the matched random
controls ``random<seed>:<group>`` and the other-language controls ``other:<group>``; a control's ``target`` is the
target group it stands in for. A cell is one condition, one lm-eval result (a task or a group of tasks), one metric
and one filter: the value and standard error lm-eval reports, the number of items, whether higher is better, and
(but for ``none``) the change against the unmodified model, computed from the values and checked when a file is read.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from neurospec.interventions.recipes import Recipe
from neurospec.results.fields import Doc, check_rewrites, open_document
from neurospec.results.recipes import read_recipe
from neurospec.results.tables import csv_cell
from neurospec.util.io import atomic_write_json, atomic_write_text

ConditionKind = Literal["none", "target", "random", "other"]
CONDITION_KINDS = ("none", "target", "random", "other")
BASELINE = "none"
CSV_COLUMNS = ("condition", "kind", "group", "seed", "target", "task", "metric", "filter", "n", "value", "stderr",
               "change", "higher_is_better")


@dataclass(frozen=True)
class LmevalCondition:
    """One way the model ran: ``kind`` none, target, random or other; ``group`` whose neurons were edited (for a
    random control the group it is matched to); ``target`` the target group a control stands in for (the group
    itself for a target); ``neurons`` how many were edited; ``output`` lm-eval's results file (relative to the
    result's folder; two conditions with the same edit share one run and one file)."""

    name: str
    kind: ConditionKind
    group: str | None
    seed: int | None
    target: str | None
    neurons: int
    output: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "group": self.group, "seed": self.seed, "target": self.target,
                "neurons": self.neurons, "output": self.output}

    @classmethod
    def from_json(cls, doc: Doc) -> "LmevalCondition":
        kind = doc["kind"].text()
        if kind not in CONDITION_KINDS:
            raise doc["kind"].error(f"is {kind!r}; a condition is one of {', '.join(CONDITION_KINDS)}")
        return cls(doc["name"].text(), kind, doc["group"].opt_text(), doc["seed"].opt_integer(),  # type: ignore[arg-type]
                   doc["target"].opt_text(), doc["neurons"].integer(), doc["output"].text())


@dataclass(frozen=True)
class LmevalCell:
    """One condition x lm-eval result x metric (x filter): what lm-eval reports (``value`` and ``stderr``, None
    where it gives none or not a finite number), ``n`` items (None for a group of tasks), and ``change`` against
    the unmodified model (None for ``none`` and where either value is missing)."""

    condition: str
    task: str
    metric: str
    filter: str
    value: float | None
    stderr: float | None
    n: int | None
    higher_is_better: bool | None
    change: float | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """``(condition, task, metric, filter)``."""
        return self.condition, self.task, self.metric, self.filter

    def to_json(self) -> dict[str, Any]:
        return {"condition": self.condition, "task": self.task, "metric": self.metric, "filter": self.filter,
                "n": self.n, "value": self.value, "stderr": self.stderr, "change": self.change,
                "higher_is_better": self.higher_is_better}

    @classmethod
    def from_json(cls, doc: Doc) -> "LmevalCell":
        better = doc["higher_is_better"]
        return cls(doc["condition"].text(), doc["task"].text(), doc["metric"].text(), doc["filter"].text(),
                   doc["value"].opt_number(), doc["stderr"].opt_number(), doc["n"].opt_integer(),
                   None if better.is_null else better.boolean(), doc["change"].opt_number())


def with_changes(cells: list[LmevalCell]) -> list[LmevalCell]:
    """``cells`` with ``change`` set: value minus the ``none`` cell's value of the same task, metric and filter."""
    base = {cell.key[1:]: cell.value for cell in cells if cell.condition == BASELINE}
    out = []
    for cell in cells:
        before = base.get(cell.key[1:])
        change = (cell.value - before if cell.condition != BASELINE and cell.value is not None
                  and before is not None else None)
        out.append(LmevalCell(cell.condition, cell.task, cell.metric, cell.filter, cell.value, cell.stderr, cell.n,
                              cell.higher_is_better, change))
    return out


@dataclass
class LmevalResult:
    """An ``lmeval.json``: the tasks asked for, the recipe, the conditions and every cell."""

    FORMAT = "neurospec.lmeval"
    VERSION = 1
    COMMAND = "neurospec lmeval"

    tasks: list[str]
    recipe: Recipe | None
    conditions: list[LmevalCondition]
    cells: list[LmevalCell]
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # group -> why it has no condition (no neurons)
    provenance: dict[str, Any] | None = None  # what `neurospec lmeval` adds to the file (the command, the model)

    def __post_init__(self) -> None:
        self.cells = with_changes(self.cells)

    @property
    def condition_names(self) -> list[str]:
        return [condition.name for condition in self.conditions]

    @property
    def results(self) -> list[str]:
        """The lm-eval results the cells hold (tasks, subtasks and groups), in order."""
        return list(dict.fromkeys(cell.task for cell in self.cells))

    def condition(self, name: str) -> LmevalCondition:
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise KeyError(name)

    def cell(self, condition: str, task: str, metric: str, filter: str = "none") -> LmevalCell:
        """The cell of ``condition``, ``task`` and ``metric`` (lm-eval's filter ``none`` unless given)."""
        for cell in self.cells:
            if cell.key == (condition, task, metric, filter):
                return cell
        raise KeyError((condition, task, metric, filter))

    def change(self) -> dict[tuple[str, str, str, str], float | None]:
        """``{(condition, task, metric, filter): change against none}`` for every condition but ``none``."""
        return {cell.key: cell.change for cell in self.cells if cell.condition != BASELINE}

    def to_json(self) -> dict[str, Any]:
        out = {"format": self.FORMAT, "version": self.VERSION, "tasks": self.tasks,
               "recipe": self.recipe.to_json() if self.recipe else None,
               "conditions": [condition.to_json() for condition in self.conditions],
               "cells": [cell.to_json() for cell in self.cells], "empty_groups": self.empty_groups,
               "settings": self.settings}
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out

    @classmethod
    def from_json(cls, document: Any, where: str, fix: str | None = None) -> "LmevalResult":
        """The result an lmeval.json holds (``where`` names the file in errors, ``fix`` says what to do)."""
        doc = open_document(document, cls, where, fix)
        conditions = [LmevalCondition.from_json(item) for item in doc["conditions"].list()]
        if not conditions or conditions[0].name != BASELINE:
            raise doc.error("should start with the unmodified condition none", "conditions")
        names = {condition.name for condition in conditions}
        cells = [LmevalCell.from_json(item) for item in doc["cells"].list()]
        for i, cell in enumerate(cells):
            if cell.condition not in names:
                raise doc["cells"][i]["condition"].error(f"is {cell.condition!r}, which is not a condition of the file")
        recipe = read_recipe(doc["recipe"]) if doc.get("recipe") is not None else None
        provenance = doc["provenance"].object() if "provenance" in doc else None
        result = cls(doc["tasks"].texts(), recipe, conditions, cells, doc["settings"].object(),
                     doc["empty_groups"].text_map(), provenance)
        check_rewrites(doc, result.to_json())
        return result

    def csv_text(self) -> str:
        """One row per cell (:data:`CSV_COLUMNS`), the condition's kind, group, seed and target beside it."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        by_name = {condition.name: condition for condition in self.conditions}
        for cell in self.cells:
            condition = by_name[cell.condition]
            row = [cell.condition, condition.kind, condition.group, condition.seed, condition.target, cell.task,
                   cell.metric, cell.filter, cell.n, cell.value, cell.stderr, cell.change, cell.higher_is_better]
            writer.writerow(["" if value is None else csv_cell(value) for value in row])
        return buffer.getvalue()

    def save(self, folder: str | Path) -> Path:
        """``lmeval.json`` and ``lmeval.csv`` in ``folder``; returns the JSON's path."""
        folder = Path(folder)
        atomic_write_text(folder / "lmeval.csv", self.csv_text())
        return atomic_write_json(folder / "lmeval.json", self.to_json())
