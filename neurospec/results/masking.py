"""Culture masking (mask_eval.json): accuracy per condition, benchmark and group, and the related-cultures matrices.

    from neurospec.results.masking import MaskingRecord
    record = MaskingRecord.from_json(json.loads(text), "runs/mask/mask_eval.json")
    cell = record.cell("China", "blend")     # a MaskCell: n, accuracy, ci95, change, margin_over_random...
    record.related["blend"]["China"]["Iran"], [row.columns() for row in record.summary]

Built by :meth:`neurospec.evaluate.masking.MaskingResult.record` from each item's correctness under each
template (the intervals are computed there; ``interval_method`` names each kind's method, absent from files
written before it). Conditions are ``none``, the masked groups and the random baselines ``random<seed>:<group>``;
a cell's group is ``all`` (every item of the benchmark) or one group of its items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurospec.results.fields import Doc, check_rewrites, interval_json, open_document, optional

Interval = tuple[float, float]
_CHANGE, _MARGIN = "_change", "_margin_over_random"


@dataclass(frozen=True)
class RuleAccuracy:
    """Accuracy by one scoring rule (full vocabulary or letters only) and, but for ``none``, its change."""

    accuracy: float
    change: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, **({"change": self.change} if self.change is not None else {})}

    @classmethod
    def from_json(cls, doc: Doc) -> "RuleAccuracy":
        return cls(doc["accuracy"].number(), optional(doc, "change", Doc.number))


@dataclass
class MaskCell:
    """One (condition, benchmark, group) cell: ``n`` items, accuracy with its 95% interval, accuracy per template;
    with letter scoring, both rules' accuracy and the share of answers that were no letter; but for ``none``, the
    paired change against ``none``; with random baselines, their mean change and the margin over them."""

    condition: str
    benchmark: str
    group: str
    n: int
    accuracy: float
    ci95: Interval
    per_template: dict[str, float]
    rules: dict[str, RuleAccuracy] | None = None
    non_letter_share: float | None = None
    change: float | None = None
    change_ci95: Interval | None = None
    random_change: float | None = None
    margin_over_random: float | None = None
    margin_ci95: Interval | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"condition": self.condition, "benchmark": self.benchmark, "group": self.group,
                               "n": self.n, "accuracy": self.accuracy, "ci95": interval_json(self.ci95),
                               "per_template": self.per_template}
        if self.rules is not None:
            out["rules"] = {rule: accuracy.to_json() for rule, accuracy in self.rules.items()}
            out["non_letter_share"] = self.non_letter_share
        if self.change is not None:
            out.update(change=self.change, change_ci95=interval_json(self.change_ci95))
        if self.margin_over_random is not None:
            out.update(random_change=self.random_change, margin_over_random=self.margin_over_random,
                       margin_ci95=interval_json(self.margin_ci95))
        return out

    @classmethod
    def from_json(cls, doc: Doc) -> "MaskCell":
        rules = optional(doc, "rules", lambda d: {rule: RuleAccuracy.from_json(a) for rule, a in d.items()})
        return cls(doc["condition"].text(), doc["benchmark"].text(), doc["group"].text(), doc["n"].integer(),
                   doc["accuracy"].number(), doc["ci95"].interval(), doc["per_template"].number_map(), rules,
                   doc["non_letter_share"].number() if rules is not None else None,
                   optional(doc, "change", Doc.number), optional(doc, "change_ci95", Doc.interval),
                   optional(doc, "random_change", Doc.number), optional(doc, "margin_over_random", Doc.number),
                   optional(doc, "margin_ci95", Doc.interval))


@dataclass(frozen=True)
class MaskBenchmark:
    """A benchmark of the evaluation: its ``kind`` (cultural or nlu), its number of items and its item groups."""

    kind: str | None
    items: int
    groups: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "items": self.items, "groups": self.groups}

    @classmethod
    def from_json(cls, doc: Doc) -> "MaskBenchmark":
        return cls(doc["kind"].opt_text(), doc["items"].integer(), doc["groups"].texts())


@dataclass
class MaskSummaryRow:
    """Per condition but ``none``: the mean accuracy change over each kind of benchmark (``changes[kind]``) and,
    with random baselines, the mean margin over them (``margins[kind]``)."""

    condition: str
    changes: dict[str, float]
    margins: dict[str, float] = field(default_factory=dict)

    def columns(self) -> dict[str, float]:
        """The numbers in file order, by their field names: ``{"cultural_change": ..., "nlu_change": ...}``."""
        out: dict[str, float] = {}
        for kind, change in self.changes.items():
            out[kind + _CHANGE] = change
            if kind in self.margins:
                out[kind + _MARGIN] = self.margins[kind]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"condition": self.condition, **self.columns()}

    @classmethod
    def from_json(cls, doc: Doc) -> "MaskSummaryRow":
        changes, margins = {}, {}
        for key, value in doc.items():
            if key == "condition":
                continue
            if key.endswith(_MARGIN):
                margins[key[:-len(_MARGIN)]] = value.number()
            elif key.endswith(_CHANGE):
                changes[key[:-len(_CHANGE)]] = value.number()
            else:
                raise doc.error(f"is not a field of a summary row (KIND{_CHANGE} or KIND{_MARGIN}); remove it", key)
        return cls(doc["condition"].text(), changes, margins)


@dataclass
class MaskingRecord:
    """A mask_eval.json: conditions, benchmarks and templates, every cell, the per-condition summary, and per
    benchmark the related-cultures matrix (masked condition x evaluated group: accuracy change)."""

    FORMAT = "neurospec.mask_eval"
    VERSION = 1
    COMMAND = "neurospec mask-eval"

    conditions: list[str]
    benchmarks: dict[str, MaskBenchmark]
    templates: list[str]
    summary: list[MaskSummaryRow]
    cells: list[MaskCell]
    related: dict[str, dict[str, dict[str, float]]]
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # group -> why it has no condition (no neurons)
    provenance: dict[str, Any] | None = None  # what `neurospec mask-eval` adds to the file (the command, the model)
    interval_method: dict[str, str] | None = None  # kind of interval -> its method (None: an older file)

    def cell(self, condition: str, benchmark: str, group: str = "all") -> MaskCell | None:
        """The cell of ``condition`` on ``benchmark``'s items of ``group`` (``all``: every item), or None."""
        return next((c for c in self.cells if (c.condition, c.benchmark, c.group) == (condition, benchmark, group)),
                    None)

    def to_json(self) -> dict[str, Any]:
        out = {"format": self.FORMAT, "version": self.VERSION, "settings": self.settings,
               "conditions": self.conditions,
               "benchmarks": {name: benchmark.to_json() for name, benchmark in self.benchmarks.items()},
               "templates": self.templates, "summary": [row.to_json() for row in self.summary],
               "cells": [cell.to_json() for cell in self.cells], "related": self.related,
               "empty_groups": self.empty_groups}
        if self.interval_method is not None:
            out["interval_method"] = self.interval_method
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out

    @classmethod
    def from_json(cls, document: Any, where: str, fix: str | None = None) -> "MaskingRecord":
        """The record a mask_eval.json holds (``where`` names the file in errors, ``fix`` says what to do)."""
        doc = open_document(document, cls, where, fix)
        related = {benchmark: {condition: row.number_map() for condition, row in matrix.items()}
                   for benchmark, matrix in doc["related"].items()}
        provenance = doc["provenance"].object() if "provenance" in doc else None
        record = cls(doc["conditions"].texts(),
                     {name: MaskBenchmark.from_json(entry) for name, entry in doc["benchmarks"].items()},
                     doc["templates"].texts(), [MaskSummaryRow.from_json(row) for row in doc["summary"].list()],
                     [MaskCell.from_json(cell) for cell in doc["cells"].list()], related, doc["settings"].object(),
                     doc["empty_groups"].text_map(), provenance, optional(doc, "interval_method", Doc.text_map))
        check_rewrites(doc, record.to_json())
        return record
