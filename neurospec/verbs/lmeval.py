"""The ``neurospec lmeval`` verb: any lm-eval task under each group's intervention, with paired controls.

    from neurospec.verbs.lmeval import LmevalOptions, lmeval
    result = lmeval(LmevalOptions(model="gemma-3-270m", neurons=Path("lape.json"), groups="fr,de",
                                  tasks="xnli_fr,xnli_de", out=Path("runs/lmeval")))
    result.cell("fra_Latn", "xnli_fr", "acc").change       # the change against the unmodified model

One lm-eval run per distinct edit: the unmodified model (``none``), each group's neurons under the recipe, the
size-matched random neurons of each seed (``random<seed>:<group>``, drawn outside every group's neurons) and
another language's neurons (``other:<group>``), as :func:`~neurospec.interventions.conditions.build_conditions`
builds them for every intervention verb. lm-eval's own results of each run are kept in ``OUT/lm_eval/``; the
typed result (:class:`~neurospec.results.lmeval.LmevalResult`) is ``OUT/lmeval.json`` with ``OUT/lmeval.csv``.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from neurospec.measure.run_folder import writing
from neurospec.results.lmeval import LmevalCell, LmevalCondition, LmevalResult
from neurospec.util.errors import NeurospecError
from neurospec.verbs.base import (
    ModelOptions,
    load_for,
    option,
    progress_printer,
    split_list,
    stamp_result,
    verb_options,
)
from neurospec.verbs.evaluate import TASK_TOKENS, load_inputs, parse_recipe, parse_seeds

CONTROLS = ("random", "other")
OUTPUTS = "lm_eval"  # the folder of lm-eval's own results, one file per run


@verb_options("lmeval")
class LmevalOptions(ModelOptions):
    """Options of ``neurospec lmeval``: lm-eval tasks under each group's intervention, with controls."""

    out: Path
    tasks: str
    neurons: Path | None = None
    stats: Path | None = None
    recipe: str = "zero"
    groups: str | None = None
    random_seeds: str | None = "0"
    controls: str | None = "random,other"
    limit: int | None = option(None, min=1)
    num_fewshot: int | None = option(None, min=0)
    include_path: Path | None = None
    log_samples: bool = False
    batch_size: str | int = "auto"
    quiet: bool = False


@dataclass(frozen=True)
class Run:
    """One lm-eval run: the edit it applies (None: the unmodified model), its results file (relative to the
    output folder) and the conditions it stands for (an ``other`` control that is also a target runs once)."""

    edit: Any
    output: str
    conditions: tuple[Any, ...]


def parse_controls(text: str | None) -> tuple[str, ...]:
    """``--controls random,other`` (``''`` for none)."""
    chosen = tuple(split_list(text, "--controls", allow_empty=True, example="random,other") or ())
    unknown = [name for name in chosen if name not in CONTROLS]
    if unknown:
        raise NeurospecError(f"--controls {text!r}: unknown control(s) {', '.join(unknown)}; use random, other "
                             "('' for none)")
    return chosen


def missing_lm_eval() -> NeurospecError:
    """The error for a machine without lm-evaluation-harness."""
    from neurospec.integrations.lmeval import LmEvalMissingError

    return LmEvalMissingError("neurospec lmeval needs lm-evaluation-harness; install it with: "
                              "pip install 'neurospec[lmeval]'")


def unknown_tasks(manager: Any, tasks: Sequence[str]) -> list[str]:
    """The names of ``tasks`` that match no task, group or tag ``manager`` knows (wildcards allowed)."""
    return [name for name in tasks if not manager.match_tasks([name])]


def task_manager(tasks: Sequence[str], include_path: Path | None) -> Any:
    """lm-eval's ``TaskManager`` that knows every one of ``tasks``: the ``include_path`` tasks alone when they are
    all there (lm-eval's 15,000 own tasks take seconds to index), else those and lm-eval's own. An unknown task
    is an error naming it, before any model is loaded."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise missing_lm_eval() from None
    if include_path is not None and not include_path.exists():
        raise NeurospecError(f"--include-path {include_path}: no such folder; give a folder of lm-eval task YAML files")
    path = None if include_path is None else str(include_path)
    if path is not None:
        local = TaskManager(include_path=path, include_defaults=False)
        if not unknown_tasks(local, tasks):
            return local
    manager = TaskManager(include_path=path)
    unknown = unknown_tasks(manager, tasks)
    if unknown:
        close = [match for name in unknown for match in difflib.get_close_matches(name, manager.all_tasks, n=3)]
        hint = f" (close: {', '.join(close)})" if close else ""
        raise NeurospecError(f"--tasks: lm-eval knows no task {', '.join(map(repr, unknown))}{hint}; list them with "
                             "`lm-eval ls tasks`, or give --include-path DIR holding the task's YAML")
    return manager


def build_experiment(neuron_set, recipe, groups: str | None, statistics, controls: tuple[str, ...],
                     seeds: tuple[int, ...]):
    """The conditions: ``none``, the ``groups`` (default every group), and the controls asked for: random neurons
    per seed drawn outside every group's neurons, another group's neurons (:func:`build_conditions`)."""
    from neurospec.interventions.conditions import build_conditions

    if neuron_set is None:
        if groups:
            raise NeurospecError("--groups names groups of --neurons: give --neurons FILE too")
        return build_conditions(None, recipe, verb="lmeval")
    return build_conditions(neuron_set, recipe, split_list(groups, "--groups"), verb="lmeval",
                            stats=statistics, random_seeds=seeds, random_exclude=True,
                            other_sources=[None] if "other" in controls else None)


def output_name(condition: str, taken: set[str]) -> str:
    """``random0:fra_Latn`` -> ``lm_eval/random0-fra_Latn.json``: a file name of its own for a run."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", condition).strip("-.") or "condition"
    name, count = f"{OUTPUTS}/{stem}.json", 1
    while name in taken:
        count += 1
        name = f"{OUTPUTS}/{stem}-{count}.json"
    taken.add(name)
    return name


def plan_runs(built) -> list[Run]:
    """The runs of a :class:`~neurospec.interventions.conditions.ConditionSet`, in its order; an ``other`` control
    whose group is also a target shares the target's run (the same edit)."""
    runs: list[Run] = []
    by_group: dict[str, int] = {}
    taken: set[str] = set()
    for condition in built:
        if condition.kind == "other" and condition.group in by_group:
            index = by_group[condition.group]
            runs[index] = Run(runs[index].edit, runs[index].output, runs[index].conditions + (condition,))
            continue
        if condition.kind == "target":
            by_group[condition.group] = len(runs)
        runs.append(Run(condition.edit, output_name(condition.name, taken), (condition,)))
    return runs


def control_targets(built) -> dict[str, str]:
    """``{condition: the target group it stands for}``: a target stands for itself, a random control for the group
    it is matched to, an ``other`` control for the target whose other group it is."""
    found = {condition.name: condition.group for condition in built if condition.kind in ("target", "random")}
    if built.of_kind("other"):
        for target in built.targets:
            other = built.other_for(target)
            if other is not None:
                found[other.name] = target
    return found


def number_or_none(value: Any) -> float | None:
    """A number lm-eval reports, or None for what is none (``"N/A"``, null, a boolean)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def result_cells(condition: str, results: dict) -> list[LmevalCell]:
    """Every metric of every result (task, subtask, group) in lm-eval's ``results``, as cells of ``condition``."""
    counts = results.get("n-samples") or {}
    better = results.get("higher_is_better") or {}
    cells = []
    for task, metrics in results.get("results", {}).items():
        n = (counts.get(task) or {}).get("effective")
        for key, value in metrics.items():
            metric, comma, filter_name = key.partition(",")
            if not comma or metric.endswith("_stderr"):
                continue
            higher = (better.get(task) or {}).get(metric)
            cells.append(LmevalCell(condition, task, metric, filter_name, number_or_none(value),
                                    number_or_none(metrics.get(f"{metric}_stderr,{filter_name}")),
                                    n if isinstance(n, int) else None, higher if isinstance(higher, bool) else None))
    return cells


def run_settings(options: LmevalOptions, controls: tuple[str, ...], seeds: tuple[int, ...], batch: int,
                 first: dict) -> dict[str, Any]:
    """What the result records of how it was run (lm-eval's version, task versions and shots from the first run)."""
    import lm_eval

    return {"controls": list(controls), "random_seeds": list(seeds),
            "random_exclude": True, "limit": options.limit, "num_fewshot": options.num_fewshot,
            "include_path": None if options.include_path is None else str(options.include_path),
            "log_samples": options.log_samples, "batch_size": batch,
            "lm_eval_version": getattr(lm_eval, "__version__", None), "task_versions": first.get("versions", {}),
            "n_shot": first.get("n-shot", {})}


@contextlib.contextmanager
def lm_eval_logs(quiet: bool) -> Iterator[None]:
    """``with lm_eval_logs(options.quiet):`` lm-eval's own log lines, only its errors when ``quiet``."""
    logger = logging.getLogger("lm_eval")
    before = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def say_cells(say, cells: list[LmevalCell]) -> None:
    for cell in cells:
        value = "n/a" if cell.value is None else f"{cell.value:.4g}"
        stderr = "" if cell.stderr is None else f" ± {cell.stderr:.2g}"
        say(f"{cell.condition:>24} {cell.task:>16} {cell.metric:>12} {value}{stderr}")


def run_conditions(lm, built, tasks: list[str], manager: Any, options: LmevalOptions, batch: int, say
                   ) -> tuple[list[LmevalCondition], list[LmevalCell], dict]:
    """Each run of :func:`plan_runs` through lm-eval, its results file written; the conditions and cells in the
    order of ``built``, and the first run's results (for the versions and shots it records)."""
    from neurospec.integrations.lmeval import run_lm_eval

    targets = control_targets(built)
    conditions, cells, first = [], [], None
    for run in plan_runs(built):
        with lm_eval_logs(options.quiet):
            results = run_lm_eval(lm, tasks, intervention=run.edit, limit=options.limit, batch_size=batch,
                                  device=str(lm.model.device), num_fewshot=options.num_fewshot,
                                  log_samples=options.log_samples, task_manager=manager,
                                  output=options.out / run.output)
        first = first or results
        for condition in run.conditions:
            conditions.append(LmevalCondition(condition.name, condition.kind, condition.group, condition.seed,
                                              targets.get(condition.name), condition.size, run.output))
            made = result_cells(condition.name, results)
            cells += made
            say_cells(say, made)
    order = {name: i for i, name in enumerate(built.names)}
    conditions.sort(key=lambda c: order[c.name])
    cells.sort(key=lambda c: order[c.condition])  # stable: a condition's cells keep lm-eval's order
    return conditions, cells, first or {}


def lmeval(options: LmevalOptions, *, lm=None) -> LmevalResult:
    """Run ``options.tasks`` with lm-eval, unmodified and under each condition; lm-eval's results of each run are
    kept in ``options.out / "lm_eval"``, the typed result written to ``options.out`` and returned
    (:class:`~neurospec.results.lmeval.LmevalResult`)."""
    with writing(options.out, "neurospec lmeval"):
        chosen_recipe = parse_recipe(options.recipe)
        controls = parse_controls(options.controls)
        seeds = parse_seeds(options.random_seeds) if "random" in controls else ()
        tasks = split_list(options.tasks, "--tasks", example="xnli_fr,arc_easy") or []
        manager = task_manager(tasks, options.include_path)  # an unknown task fails before the model loads
        lm = load_for(options, lm)
        neuron_set, statistics = load_inputs(options.neurons, options.stats, lm, need_neurons=False)
        built = build_experiment(neuron_set, chosen_recipe, options.groups, statistics, controls, seeds)
        batch = options.batch_for(lm, tokens=TASK_TOKENS)
        conditions, cells, first = run_conditions(lm, built, tasks, manager, options, batch,
                                                  progress_printer(options.quiet))
        settings = run_settings(options, controls, seeds if neuron_set is not None else (), batch, first)
        result = LmevalResult(tasks, chosen_recipe if neuron_set is not None else None, conditions, cells, settings,
                              dict(built.empty))
        stamp_result(result.save(options.out), "lmeval", options, lm.model)
    return result
