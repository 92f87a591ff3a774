"""The Language Steering Shift matrix of one recipe (lss.json): every source -> target cell with its controls.

    from neurospec.results.lss import LSSRecord
    record = LSSRecord.from_json(json.loads(text), "runs/lss/lss.json")
    record.lss["eng_Latn"]["fra_Latn"], record.cells[0].ci95, record.pooled.controls["random"].margin
    record.mean_offdiagonal, record.mean_d0, record.degenerate

Built by :meth:`neurospec.evaluate.lss.LSSMatrix.record` from the per-item scores (METHODS section 2; the
statistics and their intervals are computed there; ``interval_method`` names the method of each kind of
interval, absent from files written before it, whose intervals are all percentile bootstraps). A record holds
what the file holds: each cell's LSS, interval, mean D0 and controls, and (unless the file was written without
items) every item's D0 and DI. ``lss`` (the sources x targets view of the cells) and ``degenerate`` are computed
from the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurospec.interventions.recipes import Recipe
from neurospec.results.fields import Doc, check_rewrites, interval_json, open_document, optional
from neurospec.results.recipes import read_recipe

Interval = tuple[float, float]


@dataclass
class LSSControl:
    """A paired control of one cell: its LSS on the same items and the cell's margin over it (both with 95%
    intervals: Wilson for the LSS, Newcombe's paired score interval for the margin); ``seed`` (random neurons)
    or ``group`` (another language's neurons) says which; ``di``
    the control's DI per item, when the file keeps items."""

    lss: float
    ci95: Interval
    margin: float
    margin_ci95: Interval
    seed: int | None = None
    group: str | None = None
    di: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.seed is not None:
            out["seed"] = self.seed
        if self.group is not None:
            out["group"] = self.group
        out.update(lss=self.lss, ci95=interval_json(self.ci95), margin=self.margin,
                   margin_ci95=interval_json(self.margin_ci95))
        if self.di is not None:
            out["di"] = self.di
        return out

    @classmethod
    def from_json(cls, doc: Doc) -> "LSSControl":
        return cls(doc["lss"].number(), doc["ci95"].interval(), doc["margin"].number(), doc["margin_ci95"].interval(),
                   optional(doc, "seed", Doc.integer), optional(doc, "group", Doc.text),
                   optional(doc, "di", Doc.numbers))


@dataclass
class LSSCell:
    """LSS of one source -> target pair: ``n`` usable items (``excluded_identical`` had answers tokenised alike,
    ``missing`` lacked a language), the share shifted toward the target with its 95% interval, mean D0 and DI,
    the controls, and per item (``ids``, ``d0``, ``di``) when the file keeps items."""

    source: str
    target: str
    n: int
    excluded_identical: int
    missing: int
    lss: float
    ci95: Interval | None
    mean_d0: float
    mean_di: float | None
    controls: dict[str, LSSControl] = field(default_factory=dict)
    ids: list[str] | None = None
    d0: list[float] | None = None
    di: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source, "target": self.target, "n": self.n, "excluded_identical": self.excluded_identical,
            "missing": self.missing, "lss": self.lss, "ci95": interval_json(self.ci95), "mean_d0": self.mean_d0,
            "mean_di": self.mean_di, "controls": {name: c.to_json() for name, c in self.controls.items()},
        }
        if self.ids is not None:
            out.update(ids=self.ids, d0=self.d0, di=self.di)
        return out

    @classmethod
    def from_json(cls, doc: Doc) -> "LSSCell":
        has_items = "ids" in doc.object()
        return cls(doc["source"].text(), doc["target"].text(), doc["n"].integer(), doc["excluded_identical"].integer(),
                   doc["missing"].integer(), doc["lss"].number(), doc["ci95"].interval(), doc["mean_d0"].number(),
                   doc["mean_di"].opt_number(),
                   {name: LSSControl.from_json(control) for name, control in doc["controls"].items()},
                   doc["ids"].texts() if has_items else None, doc["d0"].numbers() if has_items else None,
                   doc["di"].numbers() if has_items else None)


@dataclass
class PooledControl:
    """A control pooled over the ``cells`` that have it: its LSS and the paired margin, with the margin's interval."""

    cells: int
    lss: float
    margin: float
    margin_ci95: Interval

    def to_json(self) -> dict[str, Any]:
        return {"cells": self.cells, "lss": self.lss, "margin": self.margin,
                "margin_ci95": interval_json(self.margin_ci95)}

    @classmethod
    def from_json(cls, doc: Doc) -> "PooledControl":
        return cls(doc["cells"].integer(), doc["lss"].number(), doc["margin"].number(), doc["margin_ci95"].interval())


@dataclass
class PooledLSS:
    """Every cell's items together: ``n`` item-cells of ``items`` distinct items, the LSS with its interval
    (Wilson, the distinct items as trials), and per control its pooled LSS and margin (items resampled)."""

    n: int
    items: int
    lss: float
    ci95: Interval
    controls: dict[str, PooledControl] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "items": self.items, "lss": self.lss, "ci95": interval_json(self.ci95),
                "controls": {name: control.to_json() for name, control in self.controls.items()}}

    @classmethod
    def from_json(cls, doc: Doc) -> "PooledLSS | None":
        """The pooled numbers, or None for the empty object a matrix without usable cells writes."""
        if not doc.object():
            return None
        return cls(doc["n"].integer(), doc["items"].integer(), doc["lss"].number(), doc["ci95"].interval(),
                   {name: PooledControl.from_json(control) for name, control in doc["controls"].items()})


@dataclass
class LSSRecord:
    """An lss.json: the cells of one recipe (the diagonal is undefined and left out) and their summaries."""

    FORMAT = "neurospec.lss_matrix"
    VERSION = 1
    COMMAND = "neurospec lss"

    recipe: Recipe
    sources: list[str]
    targets: list[str]
    mean_offdiagonal: float
    mean_d0: float
    pooled: PooledLSS | None
    cells: list[LSSCell]
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # target group -> why it has no column (no neurons)
    provenance: dict[str, Any] | None = None  # what `neurospec lss` adds to the file (the command, the model)
    interval_method: dict[str, str] | None = None  # kind of interval -> its method (None: an older file)

    @property
    def lss(self) -> dict[str, dict[str, float]]:
        """``lss[source][target]``: the cells as a matrix (every source, only the targets it has a cell for)."""
        out: dict[str, dict[str, float]] = {s: {} for s in self.sources}
        for cell in self.cells:
            out[cell.source][cell.target] = cell.lss
        return out

    @property
    def degenerate(self) -> bool:
        """True when the mean D0 is not negative: without intervention the target answers are as likely as the
        source answers, so the cut of the items is degenerate."""
        return not self.mean_d0 < 0

    def cell(self, source: str, target: str) -> LSSCell | None:
        """The cell of ``source -> target``, or None."""
        return next((c for c in self.cells if (c.source, c.target) == (source, target)), None)

    def to_json(self) -> dict[str, Any]:
        out = {
            "format": self.FORMAT, "version": self.VERSION, "recipe": self.recipe.to_json(),
            "sources": self.sources, "targets": self.targets, "lss": self.lss,
            "mean_offdiagonal": self.mean_offdiagonal, "mean_d0": self.mean_d0, "degenerate": self.degenerate,
            "pooled": self.pooled.to_json() if self.pooled is not None else {}, "empty_groups": self.empty_groups,
            "cells": [cell.to_json() for cell in self.cells], "settings": self.settings,
        }
        if self.interval_method is not None:
            out["interval_method"] = self.interval_method
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out

    @classmethod
    def from_json(cls, document: Any, where: str, fix: str | None = None) -> "LSSRecord":
        """The record an lss.json holds (``where`` names the file in errors, ``fix`` says what to do about one)."""
        doc = open_document(document, cls, where, fix)
        sources, targets = doc["sources"].texts(), doc["targets"].texts()
        cells = [LSSCell.from_json(cell) for cell in doc["cells"].list()]
        for i, cell in enumerate(cells):
            if cell.source not in sources:
                raise doc["cells"][i]["source"].error(f"is {cell.source!r}, not one of the sources")
        provenance = doc["provenance"].object() if "provenance" in doc else None
        record = cls(read_recipe(doc["recipe"]), sources, targets, doc["mean_offdiagonal"].number(),
                     doc["mean_d0"].number(), PooledLSS.from_json(doc["pooled"]), cells, doc["settings"].object(),
                     doc["empty_groups"].text_map(), provenance,
                     doc["interval_method"].text_map() if "interval_method" in doc else None)
        check_rewrites(doc, record.to_json())
        return record
