"""A sweep of intervention settings (sweep.json): the LSS curve over the settings and the best one.

    from neurospec.results.sweep import SweepRecord
    record = SweepRecord.from_json(json.loads(text), "runs/sweep/sweep.json")
    record.best.name, [(p.recipe, p.mean_lss, p.pooled_lss) for p in record.curve]
    record.curve[0].folder                    # "00-set_p_max": that setting's lss.json is in this folder
    record.best_fluent, record.best_fluent_reason, record.curve[0].steering.share   # a sweep with --generate

Built by :meth:`neurospec.evaluate.sweep.SweepResult.record`; each setting's own LSS matrix is a separate
lss.json (:class:`neurospec.results.lss.LSSRecord`) in the point's ``folder``. The best setting has the
highest mean off-diagonal LSS (ties go to the setting listed first).

A sweep that also generated (``neurospec sweep --generate``; absent from other and older files) holds per point
``steering`` (:class:`SettingSteering`: the share of steered continuations in the target language, pooled over
every target group and every prompt language other than the target, the unmodified model's share on the same
prompts, and the fluency of those continuations against the unmodified model's), the ``fluency_bound``
(:class:`FluencyBound`) and ``best_fluent``: the setting with the highest share among those within the bound
(ties: the setting listed first), or null, with ``best_fluent_reason`` saying why either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurospec.interventions.recipes import Recipe
from neurospec.results.fields import Doc, check_rewrites, interval_json, open_document, optional
from neurospec.results.recipes import read_recipe
from neurospec.results.steering import FluencyComparison, Share

FLUENCY_RULES = {  # measure -> (how the bound is read, its default, how a setting can be worse than the unmodified model)
    "distinct_1": ("fall", 0.2, "distinct-1 falls at most {bound:g} below the unmodified model's"),
    "distinct_2": ("fall", 0.2, "distinct-2 falls at most {bound:g} below the unmodified model's"),
    "repeated_token_share": ("rise", 0.2, "the repeated-token share rises at most {bound:g} above the unmodified "
                                          "model's"),
    "perplexity": ("ratio", 2.0, "the perplexity under the unmodified model rises at most by a factor of {bound:g} "
                                 "over the unmodified model's own generations'"),
}


@dataclass(frozen=True)
class FluencyBound:
    """How far a setting's continuations may fall below the unmodified model's generations on the same prompts in
    one fluency ``measure`` (:data:`FLUENCY_RULES`): distinct-n may fall, the repeated-token share rise, by at most
    ``bound``; the perplexity under the unmodified model may grow by at most a factor of ``bound``."""

    measure: str
    bound: float

    @property
    def rule(self) -> str:
        """The bound in words: ``distinct-2 falls at most 0.2 below the unmodified model's``."""
        return FLUENCY_RULES[self.measure][2].format(bound=self.bound)

    def degradation(self, comparison: FluencyComparison) -> float | None:
        """How much worse the setting is than the unmodified model, in the bound's units (a fall, a rise or a
        ratio); None where either value is undefined."""
        steered, baseline = comparison.steered.value, comparison.baseline.value
        if steered is None or baseline is None:
            return None
        kind = FLUENCY_RULES[self.measure][0]
        if kind == "ratio":
            return steered / baseline
        return baseline - steered if kind == "fall" else steered - baseline

    def to_json(self) -> dict[str, Any]:
        return {"measure": self.measure, "bound": self.bound, "rule": self.rule}

    @classmethod
    def from_json(cls, doc: Doc) -> "FluencyBound":
        measure = doc["measure"].text()
        if measure not in FLUENCY_RULES:
            raise doc["measure"].error(f"is {measure!r}; a fluency bound is on one of {', '.join(FLUENCY_RULES)}")
        return cls(measure, float(doc["bound"].number()))


@dataclass(frozen=True)
class SettingSteering:
    """What one setting's generations gave, pooled over its lines (target group x prompt language other than the
    target): the ``share`` of continuations in the target language and the unmodified model's (``baseline``), each
    with its Wilson interval, the paired interval of the change (Newcombe), the ``fluency`` per measure against the
    unmodified model's generations on the same prompts, the bound's ``degradation`` and whether it is
    ``within_bound``."""

    share: Share
    baseline: Share
    change_ci95: tuple[float, float]
    fluency: dict[str, FluencyComparison]
    degradation: float | None
    within_bound: bool

    @property
    def change(self) -> float:
        """The share minus the unmodified model's share, on the same prompts."""
        return self.share.share - self.baseline.share

    def to_json(self) -> dict[str, Any]:
        return {**self.share.to_json(), "baseline": self.baseline.to_json(), "change": self.change,
                "change_ci95": interval_json(self.change_ci95),
                "fluency": {name: comparison.to_json() for name, comparison in self.fluency.items()},
                "degradation": self.degradation, "within_bound": self.within_bound}

    @classmethod
    def from_json(cls, doc: Doc) -> "SettingSteering":
        change = doc["change_ci95"].interval()
        if change is None:
            raise doc["change_ci95"].error("is null; a setting's change has a [low, high] interval")
        degradation = doc["degradation"].opt_number()
        return cls(Share.from_json(doc), Share.from_json(doc["baseline"]), change,
                   {name: FluencyComparison.from_json(measure) for name, measure in doc["fluency"].items()},
                   None if degradation is None else float(degradation), doc["within_bound"].boolean())


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
    steering: SettingSteering | None = None  # the setting's generations (None: a sweep without --generate)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"recipe": self.recipe, "value": self.value, "factor": self.factor}
        if self.positions is not None:
            out["positions"] = self.positions
        out.update(mean_lss=self.mean_lss, pooled_lss=self.pooled_lss,
                   pooled_lss_ci95=interval_json(self.pooled_lss_ci95), mean_d0=self.mean_d0)
        if self.folder is not None:
            out["folder"] = self.folder
        if self.steering is not None:
            out["steering"] = self.steering.to_json()
        return out

    @classmethod
    def from_json(cls, doc: Doc) -> "SweepPoint":
        return cls(doc["recipe"].text(), doc["value"].raw, doc["factor"].number(), doc["mean_lss"].number(),
                   doc["pooled_lss"].opt_number(), doc["pooled_lss_ci95"].interval(), doc["mean_d0"].number(),
                   optional(doc, "positions", Doc.text), optional(doc, "folder", Doc.text),
                   SettingSteering.from_json(doc["steering"]) if "steering" in doc else None)


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
    fluency_bound: FluencyBound | None = None  # a sweep with --generate: the bound best_fluent keeps to
    best_fluent: Recipe | None = None  # the highest share within the bound (None: none is, or no generations)
    best_fluent_reason: str | None = None  # why best_fluent is that setting, or null

    def to_json(self) -> dict[str, Any]:
        out = {"format": self.FORMAT, "version": self.VERSION, "best": self.best.to_json(),
               "recipes": [recipe.to_json() for recipe in self.recipes], "curve": [p.to_json() for p in self.curve],
               "empty_groups": self.empty_groups, "settings": self.settings}
        if self.fluency_bound is not None:
            out.update(fluency_bound=self.fluency_bound.to_json(),
                       best_fluent=self.best_fluent.to_json() if self.best_fluent is not None else None,
                       best_fluent_reason=self.best_fluent_reason)
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
        if "fluency_bound" in doc:
            best_fluent = doc["best_fluent"]
            record.fluency_bound = FluencyBound.from_json(doc["fluency_bound"])
            record.best_fluent = None if best_fluent.is_null else read_recipe(best_fluent)
            record.best_fluent_reason = doc["best_fluent_reason"].opt_text()
        check_rewrites(doc, record.to_json())
        return record
