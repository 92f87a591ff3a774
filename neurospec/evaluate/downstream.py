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

from pathlib import Path
from typing import Any, Callable, Sequence

from neurospec.data.languages import language_of
from neurospec.interventions.conditions import build_conditions
from neurospec.interventions.recipes import Recipe
from neurospec.results.downstream import DownstreamTable
from neurospec.util.errors import NeurospecError
from neurospec.util.progress import progress

# DownstreamTable (rows, cells, changes, summary and JSON) is neurospec.results.downstream's.


def self_cross(model, tokenizer, task: str, languages: Sequence[str], neurons=None, *,
               recipe: Recipe | str = "set:p_max", stats=None, targets: Sequence[str] | None = None,
               limit: int | None = None, batch_size: int = 8, data_dir: str | Path | None = None,
               split: str | None = None, on_cell: Callable[[str, str, Any], None] | None = None,
               quiet: bool = True, **task_options: Any) -> DownstreamTable:
    """Evaluate ``task`` in every language, unmodified and under each target's intervention.

    ``neurons`` None evaluates the unmodified model only. ``targets`` defaults to the neuron set's
    groups that are among ``languages``. Unless ``quiet``, a progress bar (a line a minute in logs) shows
    cells done, items per second and the time left.
    """
    from neurospec.core.sites import site_map
    from neurospec.evaluate.tasks import get_task

    runner = get_task(task)
    keys = [language_of(lang) or lang for lang in languages]
    if not keys:
        raise NeurospecError(f"no language given for {task}: name at least one")
    recipe = Recipe.parse(recipe) if neurons is not None else None
    evaluated = None
    if neurons is not None:
        neurons.validate_for(site_map(model).shape)
        evaluated = [g for g in neurons.groups if (language_of(g) or g) in keys]
        if not targets and not evaluated:
            raise NeurospecError(f"none of the neuron set's groups ({', '.join(neurons.groups)}) is an evaluated "
                                 f"language ({', '.join(keys)}); name the targets")
    built = build_conditions(neurons, recipe, targets, verb=f"eval {task}", default=evaluated, stats=stats)
    plans = [(condition.name, condition.edit) for condition in built]
    empty = built.empty
    cells: dict[str, dict[str, Any]] = {}
    with progress(f"eval {task}", total=len(plans) * len(keys), unit="cells", quiet=quiet) as bar:
        for row, edit in plans:
            cells[row] = {}
            for language in keys:
                result = runner.evaluate(model, tokenizer, language, intervention=edit, limit=limit,
                                         batch_size=batch_size, data_dir=data_dir, split=split, **task_options)
                cells[row][language] = result
                bar.advance(1, items=result.n)
                if on_cell:
                    on_cell(row, language, result)
    settings = {"limit": limit, "split": split, "options": {k: str(v) for k, v in task_options.items()}}
    return DownstreamTable(task, [row for row, _ in plans], keys, cells, recipe, settings, empty)
