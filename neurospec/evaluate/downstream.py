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

Intervals (95%, named in the table's ``interval_method``): a cell's score has its task's interval (Wilson for an
accuracy, a percentile bootstrap over sentences for chrF++). A change (a row's score minus ``none``'s on the
same items) gets, for an accuracy, Newcombe's paired score interval from each item's correctness under both
rows; for chrF++, a paired percentile bootstrap over sentences, the corpus chrF++ of both rows recomputed from
the same resampled sentences. The summary means (self, cross, their difference, each target's cross mean) get
a paired bootstrap: per language the items are drawn once per resample and every row's score is recomputed on
that draw (``resamples``, seeded by ``interval_seed``). BLEU has no interval.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from neurospec.data.languages import language_of
from neurospec.evaluate.intervals import NEWCOMBE_PAIRED, WILSON, bootstrap_counts, newcombe_paired, percentile_interval
from neurospec.evaluate.tasks.mt_metrics import chrf_of_sums
from neurospec.interventions.conditions import build_conditions
from neurospec.interventions.recipes import Recipe
from neurospec.results.downstream import DownstreamTable, SummaryIntervals, TaskScore
from neurospec.util.errors import NeurospecError
from neurospec.util.progress import progress

# DownstreamTable (rows, cells, changes, summary and JSON) is neurospec.results.downstream's.

SENTENCE_BOOTSTRAP = "percentile bootstrap over sentences (corpus chrF++ recomputed per resample)"
#: The method of each kind of interval (the table's ``interval_method``), by the task's metric.
INTERVAL_METHOD = {
    "accuracy": {"score": WILSON, "change": NEWCOMBE_PAIRED,
                 "summary": "paired percentile bootstrap over items, drawn per language (accuracy per resample)"},
    "chrf++": {"score": SENTENCE_BOOTSTRAP, "change": f"paired {SENTENCE_BOOTSTRAP}",
               "summary": f"paired {SENTENCE_BOOTSTRAP}, drawn per language"},
}


def self_cross(model, tokenizer, task: str, languages: Sequence[str], neurons=None, *,
               recipe: Recipe | str = "set:p_max", stats=None, targets: Sequence[str] | None = None,
               limit: int | None = None, batch_size: int = 8, data_dir: str | Path | None = None,
               split: str | None = None, on_cell: Callable[[str, str, Any], None] | None = None,
               quiet: bool = True, resamples: int = 1000, interval_seed: int = 0,
               **task_options: Any) -> DownstreamTable:
    """Evaluate ``task`` in every language, unmodified and under each target's intervention.

    ``neurons`` None evaluates the unmodified model only. ``targets`` defaults to the neuron set's
    groups that are among ``languages``. Unless ``quiet``, a progress bar (a line a minute in logs) shows
    cells done, items per second and the time left. ``resamples`` and ``interval_seed``: the bootstrap of the
    changes' intervals (module docstring; a translation task's own ``bootstrap`` and ``seed`` options are its
    cells' intervals').
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
    settings = {"limit": limit, "split": split, "options": {k: str(v) for k, v in task_options.items()},
                "intervals": {"resamples": resamples, "seed": interval_seed, "confidence": 0.95}}
    table = DownstreamTable(task, [row for row, _ in plans], keys, cells, recipe, settings, empty)
    return with_intervals(table, resamples=resamples, seed=interval_seed)


def with_intervals(table: DownstreamTable, *, resamples: int = 1000, seed: int = 0) -> DownstreamTable:
    """``table`` with the 95% intervals of its changes and summary (module docstring), from its cells' per-item
    results (``item_correct``, ``sentence_statistics``); an interval whose cells lack them is None."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    replicates: dict[str, dict[str, Any]] = {row: {} for row in table.rows}
    for language in table.languages:
        counts = bootstrap_counts(table.cells["none"][language].n, resamples, generator)
        for row in table.rows:
            replicates[row][language] = resampled_scores(table.cells[row][language], counts)
    changes = {row: {lang: difference(replicates[row][lang], replicates["none"][lang]) for lang in table.languages}
               for row in table.rows if row != "none"}
    change_ci95 = {row: {lang: change_interval(table.cells[row][lang], table.cells["none"][lang], changes[row][lang])
                         for lang in table.languages} for row in changes}
    metric = next((cell.metric for cell in table.cells["none"].values()), None)
    methods = INTERVAL_METHOD.get(metric, {"score": "the task's", "change": "none", "summary": "none"})
    return replace(table, change_ci95=change_ci95, summary_ci95=summary_intervals(table, changes),
                   interval_method=dict(methods))


def resampled_scores(cell: TaskScore, counts) -> Any:
    """The cell's score on each resample of its items (``counts``: resamples x items, how often each is drawn), a
    float64 tensor; None when the cell kept no per-item results or has another number of items."""
    import torch

    if cell.item_correct is not None and len(cell.item_correct) == counts.shape[1]:
        return counts @ torch.tensor(cell.item_correct, dtype=torch.float64) / counts.shape[1]
    statistics = cell.sentence_statistics
    if statistics is not None and len(statistics) == counts.shape[1]:
        return torch.from_numpy(chrf_of_sums(counts.numpy() @ statistics.astype("float64")))
    return None


def difference(first, second):
    """``first - second`` of two replicate tensors; None when either is."""
    return None if first is None or second is None else first - second


def change_interval(cell: TaskScore, base: TaskScore, replicates) -> tuple[float, float] | None:
    """The interval of ``cell.score - base.score`` on the same items: Newcombe's paired score interval from each
    item's correctness, else the percentile interval of the paired replicates (None without either)."""
    if cell.item_correct is not None and base.item_correct is not None and len(cell.item_correct) == len(
            base.item_correct):
        return newcombe_paired(cell.item_correct, base.item_correct)
    return percentile_interval(replicates) if replicates is not None else None


def summary_intervals(table: DownstreamTable, changes: dict[str, dict[str, Any]]) -> SummaryIntervals:
    """Percentile intervals of the summary means, each recomputed on every resample from the paired replicates of
    the changes it averages (as :meth:`DownstreamTable.self_cross` averages the changes)."""
    selfs = [changes[row][lang] for row in changes for lang in table.languages if table.is_self(row, lang)]
    crosses = [changes[row][lang] for row in changes for lang in table.languages if not table.is_self(row, lang)]
    self_mean, cross_mean = mean_replicates(selfs), mean_replicates(crosses)
    per_target = {row: interval_of(mean_replicates([v for lang, v in cols.items() if not table.is_self(row, lang)]))
                  for row, cols in changes.items()}
    return SummaryIntervals(interval_of(self_mean), interval_of(cross_mean),
                            interval_of(difference(self_mean, cross_mean)), per_target)


def mean_replicates(replicates: list) -> Any:
    """The mean over several replicate tensors (per resample); None for none, or when one is None."""
    import torch

    if not replicates or any(r is None for r in replicates):
        return None
    return torch.stack(replicates).mean(dim=0)


def interval_of(replicates) -> tuple[float, float] | None:
    """The 95% percentile interval of ``replicates``; None for None."""
    return None if replicates is None else percentile_interval(replicates)
