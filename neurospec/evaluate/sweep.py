"""Sweeps: a grid of recipes -> an LSS matrix per setting -> the setting with the highest mean off-diagonal LSS.

    from neurospec.evaluate.sweep import recipe_grid, sweep
    recipes = recipe_grid(values=["p_max", "p_median"], factors=[1, 2, 5, 10])   # set:p_max, set:p_max*2, ...
    result = sweep(model, tok, items, lape, recipes, stats=stats)
    result.best, result.curve()                  # the chosen Recipe; mean LSS per setting
    result.save("runs/sweep")                    # sweep.json + one LSS folder per setting

The criterion is the amplification paper's: the mean over all source -> target cells (s != t) of
LSS. Ties go to the setting listed first.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from neurospec.evaluate.lss import INTERVAL_METHOD, LSSMatrix, lss_matrix
from neurospec.interventions.recipes import Recipe, RecipeValue, parse_recipes
from neurospec.results.sweep import SweepPoint, SweepRecord
from neurospec.util.errors import EmptyGroupWarning, NeurospecError
from neurospec.util.io import atomic_write_json


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

    @property
    def best(self) -> Recipe:
        scores = [m.mean_offdiagonal for m in self.matrices]
        return self.matrices[max(range(len(scores)), key=lambda i: (scores[i], -i))].recipe

    def points(self) -> list[SweepPoint]:
        """Per setting: the recipe, its factor and value, the mean off-diagonal LSS, the pooled LSS of all
        cells' items with its Wilson interval (the distinct items as trials), and the mean D0."""
        points = []
        for i, m in enumerate(self.matrices):
            pooled = m.pooled_record()
            points.append(SweepPoint(m.recipe.name, m.recipe.to_json()["value"], m.recipe.factor, m.mean_offdiagonal,
                                     pooled.lss if pooled else None, pooled.ci95 if pooled else None, m.mean_d0,
                                     m.recipe.positions, setting_folder(i, m.recipe)))
        return points

    def curve(self) -> list[dict[str, Any]]:
        """:meth:`points` as JSON: the ``curve`` of sweep.json."""
        return [point.to_json() for point in self.points()]

    def record(self) -> SweepRecord:
        """What sweep.json holds (:class:`neurospec.results.sweep.SweepRecord`); each setting's matrix is saved
        apart, in its own folder."""
        return SweepRecord(self.best, [m.recipe for m in self.matrices], self.points(), self.settings,
                           self.matrices[0].empty_groups if self.matrices else {})

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        for i, matrix in enumerate(self.matrices):
            matrix.save(folder / setting_folder(i, matrix.recipe))
        return atomic_write_json(folder / "sweep.json", self.to_json())


def sweep(model, tokenizer, items, neurons, recipes: Sequence[Recipe | str], *, stats=None,
          sources: Sequence[str] | None = None, targets: Sequence[str] | None = None, batch_size: int = 8,
          bootstrap: int = 1000, seed: int = 0, on_setting: Callable[[LSSMatrix], None] | None = None,
          quiet: bool = True) -> SweepResult:
    """An LSS matrix per recipe (see :func:`neurospec.evaluate.lss.lss_matrix`) and the best setting."""
    recipes = parse_recipes(list(recipes))
    if any(r.value_kind == "corpus" for r in recipes) and stats is None:
        raise NeurospecError("some recipes read corpus statistics (p_max, p_median, mean): pass stats=")
    matrices = []
    for recipe in recipes:
        with warnings.catch_warnings():
            if matrices:  # every setting skips the same empty groups: say so once
                warnings.simplefilter("ignore", EmptyGroupWarning)
            matrix = lss_matrix(model, tokenizer, items, neurons, recipe=recipe, stats=stats, sources=sources,
                                targets=targets, batch_size=batch_size, bootstrap=bootstrap, seed=seed, quiet=quiet)
        matrices.append(matrix)
        if on_setting:
            on_setting(matrix)
    return SweepResult(matrices, {"bootstrap": bootstrap, "seed": seed, "items": len(items),
                                  "interval_method": INTERVAL_METHOD["pooled_lss"]})
