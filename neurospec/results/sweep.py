"""A sweep of intervention settings (sweep.json): the LSS curve over the settings and the best one.

    from neurospec.results.sweep import SweepRecord
    record = SweepRecord.from_json(json.loads(text), "runs/sweep/sweep.json")
    record.best.name, [(p.recipe, p.mean_lss, p.pooled_lss) for p in record.curve]
    record.curve[0].folder                    # "00-set_p_max": that setting's lss.json is in this folder

Built by :meth:`neurospec.evaluate.sweep.SweepResult.record`; each setting's own LSS matrix is a separate
lss.json (:class:`neurospec.results.lss.LSSRecord`) in the point's ``folder``. The best setting has the
highest mean off-diagonal LSS (ties go to the setting listed first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurospec.interventions.recipes import Recipe
from neurospec.results.fields import Doc, check_rewrites, interval_json, open_document, optional
from neurospec.results.recipes import read_recipe


@dataclass
class SweepPoint:
    """One setting: its ``recipe`` (short form), the recipe's ``value``, ``factor`` and ``positions``, the mean
    off-diagonal LSS, the LSS pooled over every cell's items with its interval (None without usable cells),
    the mean D0, and the ``folder`` of its lss.json (relative to the sweep's folder)."""

    recipe: str
    value: Any  # the recipe's value as its JSON holds it: None, a corpus statistic, a number or {"runtime": ...}
    factor: float
    mean_lss: float
    pooled_lss: float | None
    pooled_lss_ci95: tuple[float, float] | None
    mean_d0: float
    positions: str | None = None
    folder: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"recipe": self.recipe, "value": self.value, "factor": self.factor}
        if self.positions is not None:
            out["positions"] = self.positions
        out.update(mean_lss=self.mean_lss, pooled_lss=self.pooled_lss,
                   pooled_lss_ci95=interval_json(self.pooled_lss_ci95), mean_d0=self.mean_d0)
        if self.folder is not None:
            out["folder"] = self.folder
        return out

    @classmethod
    def from_json(cls, doc: Doc) -> "SweepPoint":
        return cls(doc["recipe"].text(), doc["value"].raw, doc["factor"].number(), doc["mean_lss"].number(),
                   doc["pooled_lss"].opt_number(), doc["pooled_lss_ci95"].interval(), doc["mean_d0"].number(),
                   optional(doc, "positions", Doc.text), optional(doc, "folder", Doc.text))


@dataclass
class SweepRecord:
    """A sweep.json: the settings' recipes in order, a point of the curve per setting, and the best recipe."""

    FORMAT = "neurospec.sweep"
    VERSION = 1
    COMMAND = "neurospec sweep"

    best: Recipe
    recipes: list[Recipe]
    curve: list[SweepPoint]
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # target group -> why it has no column (no neurons)
    provenance: dict[str, Any] | None = None  # what `neurospec sweep` adds to the file (the command, the model)

    def to_json(self) -> dict[str, Any]:
        out = {"format": self.FORMAT, "version": self.VERSION, "best": self.best.to_json(),
               "recipes": [recipe.to_json() for recipe in self.recipes], "curve": [p.to_json() for p in self.curve],
               "empty_groups": self.empty_groups, "settings": self.settings}
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out

    @classmethod
    def from_json(cls, document: Any, where: str, fix: str | None = None) -> "SweepRecord":
        """The record a sweep.json holds (``where`` names the file in errors, ``fix`` says what to do about one)."""
        doc = open_document(document, cls, where, fix)
        provenance = doc["provenance"].object() if "provenance" in doc else None
        record = cls(read_recipe(doc["best"]), [read_recipe(recipe) for recipe in doc["recipes"].list()],
                     [SweepPoint.from_json(point) for point in doc["curve"].list()], doc["settings"].object(),
                     doc["empty_groups"].text_map(), provenance)
        check_rewrites(doc, record.to_json())
        return record
