"""Sweeps: a grid of recipes -> an LSS matrix per setting -> the setting with the highest mean off-diagonal LSS.

    from neurospec.evaluate.sweep import recipe_grid, sweep
    recipes = recipe_grid(values=["p_max", "p_median"], factors=[1, 2, 5, 10])   # set:p_max, set:p_max*2, ...
    result = sweep(model, tok, items, lape, recipes, stats=stats)
    result.best, result.curve()                  # the chosen Recipe; mean LSS per setting
    result.save("runs/sweep")                    # sweep.json + one LSS folder per setting
    plan = SteeringPlan({"eng_Latn": prompts}, bound=fluency_bound("distinct_2", 0.2))
    result = sweep(model, tok, items, lape, recipes, stats=stats, steering=plan)
    result.best_fluent()                         # (the Recipe or None, why)

The criterion is the amplification paper's: the mean over all source -> target cells (s != t) of
LSS. Ties go to the setting listed first. With a ``steering`` plan every setting also generates
(:func:`neurospec.evaluate.steering.steer_generation` with its recipe), and :meth:`SweepResult.best_fluent` is
the setting with the highest target-language share among those whose fluency keeps to the plan's bound
(:mod:`neurospec.evaluate.fluent_sweep`); each setting's generations go to its folder's generations.jsonl.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

from neurospec.evaluate.fluent_sweep import SteeringPlan, choose_fluent, pooled_lines, setting_steering
from neurospec.evaluate.lss import INTERVAL_METHOD, LSSMatrix, lss_matrix
from neurospec.evaluate.steering import SteeringResult, steer_generation
from neurospec.interventions.recipes import Recipe, RecipeValue, parse_recipes
from neurospec.results.sweep import FluencyBound, SettingSteering, SweepPoint, SweepRecord
from neurospec.util.errors import EmptyGroupWarning, NeurospecError
from neurospec.util.io import atomic_write_json

STEERING_INTERVALS = {  # the intervals of a setting's pooled steering (sweep.json's settings.generation)
    "share": "wilson", "change": "newcombe paired score",
    "fluency": "percentile bootstrap over (prompt, target) pairs",
    "fluency_change": "paired percentile bootstrap over (prompt, target) pairs",
}


def recipe_grid(*, op: str = "set", values: Sequence[RecipeValue] = ("p_max",), factors: Sequence[float] = (1.0,),
                positions: Sequence[str] = ("all",)) -> list[Recipe]:
    """Every combination of value, factor and positions for one operation, in that nesting order."""
    recipes = [Recipe(op, value, factor, pos) for value in values for factor in factors for pos in positions]
    return parse_recipes(recipes)


def setting_folder(index: int, recipe: Recipe) -> str:
    """``03-set_p_max_x2``: a file-system-safe folder name for a setting."""
    return f"{index:02d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", recipe.name.replace("*", "_x"))


@dataclass
class SweepResult:
    """One LSS matrix per recipe, in the order given; :attr:`best` maximises the mean off-diagonal LSS."""

    matrices: list[LSSMatrix]
    settings: dict[str, Any] = field(default_factory=dict)
    steering: list[SteeringResult] | None = None  # per setting, its generations (None: the sweep did not generate)
    bound: FluencyBound | None = None  # the fluency bound of best_fluent (with ``steering``)

    @property
    def best(self) -> Recipe:
        scores = [m.mean_offdiagonal for m in self.matrices]
        return self.matrices[max(range(len(scores)), key=lambda i: (scores[i], -i))].recipe

    @cached_property
    def setting_steering(self) -> list[SettingSteering] | None:
        """Per setting, its pooled share and fluency against the bound (None when the sweep did not generate)."""
        if self.steering is None or self.bound is None:
            return None
        return [setting_steering(result, self.bound) for result in self.steering]

    def best_fluent(self) -> tuple[Recipe | None, str | None]:
        """The setting with the highest target-language share among those within the fluency bound (ties: the
        first listed), and why; ``(None, reason)`` when none is within it, ``(None, None)`` without generations."""
        summaries = self.setting_steering
        if summaries is None or self.bound is None:
            return None, None
        index, reason = choose_fluent(summaries, self.bound, [m.recipe.name for m in self.matrices])
        return (self.matrices[index].recipe if index is not None else None), reason

    def points(self) -> list[SweepPoint]:
        """Per setting: the recipe, its factor and value, the mean off-diagonal LSS, the pooled LSS of all
        cells' items with its Wilson interval (the distinct items as trials), the mean D0, and with generations
        the setting's share and fluency (:class:`~neurospec.results.sweep.SettingSteering`)."""
        points = []
        summaries = self.setting_steering or [None] * len(self.matrices)
        for i, (m, summary) in enumerate(zip(self.matrices, summaries)):
            pooled = m.pooled_record()
            points.append(SweepPoint(m.recipe.name, m.recipe.to_json()["value"], m.recipe.factor, m.mean_offdiagonal,
                                     pooled.lss if pooled else None, pooled.ci95 if pooled else None, m.mean_d0,
                                     m.recipe.positions, setting_folder(i, m.recipe), summary))
        return points

    def curve(self) -> list[dict[str, Any]]:
        """:meth:`points` as JSON: the ``curve`` of sweep.json."""
        return [point.to_json() for point in self.points()]

    def record(self) -> SweepRecord:
        """What sweep.json holds (:class:`neurospec.results.sweep.SweepRecord`); each setting's matrix is saved
        apart, in its own folder."""
        record = SweepRecord(self.best, [m.recipe for m in self.matrices], self.points(), self.settings,
                             self.matrices[0].empty_groups if self.matrices else {})
        if self.bound is not None and self.steering is not None:
            record.fluency_bound = self.bound
            record.best_fluent, record.best_fluent_reason = self.best_fluent()
        return record

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        for i, matrix in enumerate(self.matrices):
            matrix.save(folder / setting_folder(i, matrix.recipe))
            if self.steering is not None:
                self.steering[i].save_generations(folder / setting_folder(i, matrix.recipe))
        return atomic_write_json(folder / "sweep.json", self.to_json())


def sweep(model, tokenizer, items, neurons, recipes: Sequence[Recipe | str], *, stats=None,
          sources: Sequence[str] | None = None, targets: Sequence[str] | None = None, batch_size: int = 8,
          bootstrap: int = 1000, seed: int = 0, on_setting: Callable[[LSSMatrix], None] | None = None,
          steering: SteeringPlan | None = None, quiet: bool = True) -> SweepResult:
    """An LSS matrix per recipe (see :func:`neurospec.evaluate.lss.lss_matrix`) and the best setting; with a
    ``steering`` plan, each setting's generations too (module docstring)."""
    recipes = parse_recipes(list(recipes))
    if any(r.value_kind == "corpus" for r in recipes) and stats is None:
        raise NeurospecError("some recipes read corpus statistics (p_max, p_median, mean): pass stats=")
    matrices: list[LSSMatrix] = []
    generated: list[SteeringResult] = []
    for recipe in recipes:
        with warnings.catch_warnings():
            if matrices:  # every setting skips the same empty groups: say so once
                warnings.simplefilter("ignore", EmptyGroupWarning)
            if steering is not None:  # first: prompts that cannot be steered are refused before any LSS
                generated.append(steer_setting(model, tokenizer, neurons, recipe, steering, stats=stats,
                                               targets=targets, batch_size=batch_size, quiet=quiet))
            matrix = lss_matrix(model, tokenizer, items, neurons, recipe=recipe, stats=stats, sources=sources,
                                targets=targets, batch_size=batch_size, bootstrap=bootstrap, seed=seed, quiet=quiet)
        matrices.append(matrix)
        if on_setting:
            on_setting(matrix)
    settings = {"bootstrap": bootstrap, "seed": seed, "items": len(items),
                "interval_method": INTERVAL_METHOD["pooled_lss"]}
    if steering is None:
        return SweepResult(matrices, settings)
    settings["generation"] = generated[0].settings | {"pooled": "target groups x prompt languages other than the "
                                                                "target", "interval_method": STEERING_INTERVALS}
    return SweepResult(matrices, settings, generated, steering.bound)


def steer_setting(model, tokenizer, neurons, recipe: Recipe, plan: SteeringPlan, *, stats=None,
                  targets: Sequence[str] | None = None, batch_size: int = 8, quiet: bool = True) -> SteeringResult:
    """One setting's generations: :func:`~neurospec.evaluate.steering.steer_generation` with its recipe, greedy, no
    random controls; refused at once when no prompt is in another language than a target."""
    result = steer_generation(model, tokenizer, plan.prompts, neurons, recipe=recipe, stats=stats, targets=targets,
                              max_new_tokens=plan.max_new_tokens, batch_size=batch_size, candidates=plan.candidates,
                              quiet=quiet)
    pooled_lines(result)  # raises when no line can be pooled
    return result
