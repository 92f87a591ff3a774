"""The intervention verbs: ppl, steer, lss, sweep, eval.

    from neurospec.verbs.evaluate import PplOptions, ppl
    matrix = ppl(PplOptions(model="gemma-3-270m", neurons=Path("lape.json"), corpus_dir=Path("flores"),
                            languages="en,fr", out=Path("runs/ppl")))

Each writes JSON (and CSV for matrices) into ``out``, stamped with what produced it, and returns its result.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from neurospec.measure.run_folder import writing
from neurospec.util.errors import NeurospecError
from neurospec.verbs.base import (
    ModelOptions,
    corpora_from_options,
    load_for,
    option,
    progress_printer,
    split_list,
    stamp_result,
    verb_options,
)

PROMPT_TOKENS = 128      # what --batch-size auto plans for: a prompt of LSS, steering, multiple choice
TASK_TOKENS = 512        # a downstream item (a Belebele passage with its question, a translation)


def load_inputs(neurons: Path | None, stats: Path | None, lm, *, need_neurons: bool = True):
    """The NeuronSet (checked against the model) and the statistics (checked too), either may be None."""
    from neurospec.measure.stats import ActivationStats
    from neurospec.neurons.neuron_set import NeuronSet

    if neurons is None and need_neurons:
        raise NeurospecError("give --neurons FILE: the neuron set whose groups are intervened")
    neuron_set = NeuronSet.load(neurons, shape=lm.sites) if neurons is not None else None
    statistics = ActivationStats.load(stats).check_model(lm.sites) if stats is not None else None
    return neuron_set, statistics


def parse_recipe(text: str):
    """``--recipe`` parsed before anything is loaded (a NaN or infinite number is refused here)."""
    from neurospec.interventions.recipes import Recipe

    return Recipe.parse(text, "--recipe")


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """``--random-seeds 0,1,2``; ``''`` (or blank) for none."""
    try:
        return tuple(int(s) for s in split_list(text, "--random-seeds", allow_empty=True, example="0,1,2") or [])
    except ValueError:
        raise NeurospecError(f"--random-seeds {text!r}: give integers, e.g. 0,1,2") from None


def parallel_texts(parallel: str | None, languages: str | None, split: str | None, data_dir: Path | None):
    """Parallel sentences of ``languages`` from NTREX or FLORES."""
    from neurospec.data.lss_items import parallel_sentences

    names = split_list(languages, "--languages")
    if not parallel or not names:
        raise NeurospecError("give --parallel ntrex|flores with --languages en,fr,... (or --items FILE)")
    return parallel_sentences(parallel, names, split=split or "dev", data_dir=data_dir)


def lss_items(items: Path | None, parallel: str | None, languages: str | None, split: str | None,
              data_dir: Path | None, limit: int | None, answer_words: int, answer_chars: int):
    """LSS items from an MLAMA-style file, or built from parallel sentences."""
    from neurospec.data.lss_items import items_from_parallel, load_lss_items

    if items is not None:
        loaded = load_lss_items(items, split_list(languages, "--languages"))
        return loaded[:limit] if limit else loaded
    return items_from_parallel(parallel_texts(parallel, languages, split, data_dir), answer_words=answer_words,
                               answer_chars=answer_chars, limit=limit)


# --------------------------------------------------------------------------------------------
# ppl


@verb_options("ppl")
class PplOptions(ModelOptions):
    """Options of ``neurospec ppl``: the perplexity matrix."""

    out: Path
    neurons: Path | None = None
    stats: Path | None = None
    corpus: list[str] = option([])
    corpus_dir: Path | None = None
    languages: str | None = None
    split: str | None = None
    limit: int | None = option(None, min=1)
    recipe: str = "zero"
    groups: str | None = None
    random_seeds: str | None = "0"
    bootstrap: int = option(1000, min=0)
    seed: int = 0
    bos: str = "auto"
    max_length: int | None = option(None, min=2)
    text_field: str = "text"
    batch_size: str | int = "auto"
    quiet: bool = False


def ppl(options: PplOptions, *, lm=None):
    """Perplexity matrix: each group's neurons intervened (zeroed by default) x each language evaluated;
    written to ``options.out`` and returned (:class:`~neurospec.evaluate.perplexity.PerplexityMatrix`)."""
    from itertools import islice

    from neurospec.evaluate.perplexity import default_max_length, perplexity_matrix
    from neurospec.measure.collect import check_length

    with writing(options.out, "neurospec ppl"):
        chosen_recipe = parse_recipe(options.recipe)
        corpora = corpora_from_options(options.corpus, options.corpus_dir, options.languages, options.text_field,
                                       options.split)
        languages = [c.language for c in corpora]
        twice = sorted({language for language in languages if languages.count(language) > 1})
        if twice:
            raise NeurospecError(f"--corpus / --corpus-dir give {', '.join(twice)} more than once (two names of one "
                                 "language are one language): give each language once")
        texts = {c.language: list(islice(c.texts(), options.limit)) for c in corpora}
        lm = load_for(options, lm)
        check_length(lm.model, options.max_length, "--max-length")
        neuron_set, statistics = load_inputs(options.neurons, options.stats, lm, need_neurons=False)
        say = progress_printer(options.quiet)
        matrix = perplexity_matrix(
            lm.model, lm.tokenizer, texts, neuron_set, recipe=chosen_recipe,
            groups=split_list(options.groups, "--groups"), stats=statistics,
            random_seeds=parse_seeds(options.random_seeds) if neuron_set is not None else (),
            batch_size=options.batch_for(lm, tokens=options.max_length or default_max_length(lm.model)),
            bos=options.bos, max_length=options.max_length, bootstrap=options.bootstrap, seed=options.seed,
            on_cell=lambda row, lang, r: say(f"{row:>24} {lang:>9}  ppl {r.ppl:10.3f}"), quiet=options.quiet)
        stamp_result(matrix.save(options.out), "ppl", options, lm.model)
    return matrix


# --------------------------------------------------------------------------------------------
# steer


@verb_options("steer")
class SteerOptions(ModelOptions):
    """Options of ``neurospec steer``: generation under each target's intervention."""

    out: Path
    neurons: Path | None = None
    stats: Path | None = None
    prompts: list[str] = option([])
    parallel: str | None = None
    languages: str | None = None
    split: str | None = None
    data_dir: Path | None = None
    limit: int | None = option(20, min=1)
    prompt_fraction: float = 0.5
    recipe: str = "set:p_max"
    groups: str | None = None
    random_seeds: str | None = "0"
    max_new_tokens: int = option(32, min=1)
    candidates: str | None = option(None, flag="--langid-languages")
    sample: bool = False
    seed: int = 0
    batch_size: str | int = "auto"
    quiet: bool = False


def prompt_files(values: list[str], limit: int | None) -> dict[str, list[str]]:
    """``--prompts LANGUAGE=FILE`` (repeatable) -> ``{language key: the file's first ``limit`` non-blank lines}``."""
    from neurospec.data.languages import resolve

    by_source: dict[str, list[str]] = {}
    for value in values:
        language, _, path = value.partition("=")
        if not language or not path:
            raise NeurospecError(f"--prompts {value!r}: write LANGUAGE=FILE")
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not lines:
            raise NeurospecError(f"prompt file {path} is empty: give one prompt per line")
        by_source[resolve(language).key] = lines[:limit]
    return by_source


def steer_prompts(options: SteerOptions) -> dict[str, list[str]]:
    """The prompts per source language: from ``--prompts`` files, else cut from ``--parallel`` sentences."""
    from neurospec.evaluate.steering import prompts_from_parallel

    by_source = prompt_files(options.prompts, options.limit)
    if by_source:
        return by_source
    sentences = parallel_texts(options.parallel, options.languages, options.split, options.data_dir)
    return prompts_from_parallel(sentences, fraction=options.prompt_fraction, limit=options.limit)


def langid_candidates(candidates: str | None, sources: list[str], targets: list[str]) -> list[str] | None:
    """``--langid-languages``: None for every py3langid language, ``study`` for the sources and targets, or a list."""
    from neurospec.data.languages import resolve

    if candidates == "study":
        return list(dict.fromkeys(resolve(name).key for name in [*sources, *targets]))
    return split_list(candidates, "--langid-languages")


def steer(options: SteerOptions, *, lm=None):
    """Generate under each target's intervention and measure the share of outputs in the target language
    (py3langid); written to ``options.out`` and returned (:class:`~neurospec.evaluate.steering.SteeringResult`)."""
    from neurospec.evaluate.steering import steer_generation

    with writing(options.out, "neurospec steer"):
        chosen_recipe = parse_recipe(options.recipe)
        by_source = steer_prompts(options)
        lm = load_for(options, lm)
        neuron_set, statistics = load_inputs(options.neurons, options.stats, lm)
        chosen = split_list(options.groups, "--groups")
        candidates = langid_candidates(options.candidates, list(by_source), list(chosen or neuron_set.groups))
        say = progress_printer(options.quiet)
        result = steer_generation(
            lm.model, lm.tokenizer, by_source, neuron_set, recipe=chosen_recipe, stats=statistics, targets=chosen,
            random_seeds=parse_seeds(options.random_seeds), max_new_tokens=options.max_new_tokens,
            batch_size=options.batch_for(lm, tokens=PROMPT_TOKENS + options.max_new_tokens), candidates=candidates,
            do_sample=options.sample, seed=options.seed,
            quiet=options.quiet, on_row=lambda row, source: say(f"{row:>24} <- {source}"))
        for line in result.table():
            if line["kind"] == "group":
                say(f"{line['source']:>9} -> {line['target']:<9} share {line['share']:.2f} "
                    f"[{line['ci95'][0]:.2f}, {line['ci95'][1]:.2f}]  unmodified {line['baseline']['share']:.2f}")
        stamp_result(result.save(options.out), "steer", options, lm.model)
    return result


# --------------------------------------------------------------------------------------------
# lss


@dataclasses.dataclass(kw_only=True)
class ShiftItemsOptions(ModelOptions):
    """The options ``lss`` and ``sweep`` share: the neurons, statistics and the items the shift is measured on."""

    out: Path
    neurons: Path | None = None
    stats: Path | None = None
    items: Path | None = None
    parallel: str | None = None
    languages: str | None = None
    split: str | None = None
    data_dir: Path | None = None
    limit: int | None = option(None, min=1)
    answer_words: int = option(1, min=1)
    answer_chars: int = option(2, min=1)


@verb_options("lss")
class LssOptions(ShiftItemsOptions):
    """Options of ``neurospec lss``: the Language Steering Shift matrix."""

    recipe: str = "set:p_max"
    groups: str | None = None
    sources: str | None = None
    controls: str | None = "random,other"
    random_seeds: str | None = "0"
    bootstrap: int = option(1000, min=10)
    batch_size: str | int = "auto"
    quiet: bool = False


def lss(options: LssOptions, *, lm=None):
    """Language Steering Shift matrix (source x target) with intervals and paired controls; written to
    ``options.out`` and returned (:class:`~neurospec.evaluate.lss.LSSMatrix`). A caller should warn when its
    ``mean_d0`` is not negative (a degenerate cut)."""
    from neurospec.evaluate.lss import lss_matrix

    with writing(options.out, "neurospec lss"):
        chosen_recipe = parse_recipe(options.recipe)
        items = lss_items(options.items, options.parallel, options.languages, options.split, options.data_dir,
                          options.limit, options.answer_words, options.answer_chars)
        lm = load_for(options, lm)
        neuron_set, statistics = load_inputs(options.neurons, options.stats, lm)
        say = progress_printer(options.quiet)
        matrix = lss_matrix(
            lm.model, lm.tokenizer, items, neuron_set, recipe=chosen_recipe, stats=statistics,
            sources=split_list(options.sources, "--sources"), targets=split_list(options.groups, "--groups"),
            controls=split_list(options.controls, "--controls", allow_empty=True) or (),
            random_seeds=parse_seeds(options.random_seeds), batch_size=options.batch_for(lm, tokens=PROMPT_TOKENS),
            bootstrap=options.bootstrap,
            quiet=options.quiet,
            on_cell=lambda c: say(f"{c.source:>9} -> {c.target:<9} LSS {c.lss:.3f}  n {c.n}  excluded {c.excluded}  "
                                  f"mean D0 {c.mean_d0:.3f}"))
        say(f"mean off-diagonal LSS {matrix.mean_offdiagonal:.3f}; mean D0 {matrix.mean_d0:.3f}")
        for name, control in matrix.pooled().get("controls", {}).items():
            low, high = control["margin_ci95"]
            say(f"pooled margin over {name}: {control['margin']:+.3f} (95% interval {low:+.3f} to {high:+.3f})")
        stamp_result(matrix.save(options.out), "lss", options, lm.model)
    return matrix


# --------------------------------------------------------------------------------------------
# sweep


@verb_options("sweep")
class SweepOptions(ShiftItemsOptions):
    """Options of ``neurospec sweep``: an LSS matrix per intervention setting."""

    recipe: list[str] = option([])
    op: str = "set"
    values: str = "p_max,p_median"
    factors: str = "1,2,5,10"
    positions: str = "all"
    groups: str | None = None
    sources: str | None = None
    bootstrap: int = option(1000, min=10)
    generate: bool = False
    prompts: list[str] = option([])
    prompt_fraction: float = 0.5
    max_new_tokens: int = option(32, min=1)
    fluency_measure: str = "distinct_2"   # neurospec.evaluate.fluent_sweep.DEFAULT_MEASURE
    fluency_bound: float | None = None
    candidates: str | None = option(None, flag="--langid-languages")
    batch_size: str | int = "auto"
    quiet: bool = False


GENERATION_PROMPTS = 20  # prompts per source a generating sweep takes without --limit (steer's default)


def sweep_plan(options: SweepOptions):
    """With ``--generate``: what every setting generates (prompts per source, new tokens, the fluency bound; the
    language-ID candidates are set once the neurons are read); None without it, where a generation option given
    is refused."""
    from neurospec.evaluate.fluent_sweep import DEFAULT_MEASURE, SteeringPlan, fluency_bound
    from neurospec.evaluate.steering import prompts_from_parallel

    if not options.generate:
        given = [flag for flag, unused in (("--prompts", not options.prompts),
                                           ("--fluency-measure", options.fluency_measure == DEFAULT_MEASURE),
                                           ("--fluency-bound", options.fluency_bound is None),
                                           ("--langid-languages", options.candidates is None)) if not unused]
        if given:
            raise NeurospecError(f"{', '.join(given)} only act with --generate: add --generate, or drop them")
        return None
    bound = fluency_bound(options.fluency_measure, options.fluency_bound)
    limit = options.limit or GENERATION_PROMPTS
    by_source = prompt_files(options.prompts, limit)
    if not by_source:
        if not options.parallel:
            raise NeurospecError("sweep --generate needs prompts: give --prompts LANGUAGE=FILE, or --parallel "
                                 "ntrex|flores with --languages")
        sentences = parallel_texts(options.parallel, options.languages, options.split, options.data_dir)
        by_source = prompts_from_parallel(sentences, fraction=options.prompt_fraction, limit=limit)
    return SteeringPlan(by_source, options.max_new_tokens, bound)


def grid_values(op: str, values: str) -> list:
    """``--values p_max,p_median`` -> the recipe values of a grid of ``op``; ``scale`` takes none (``[None]``)."""
    from neurospec.interventions.recipes import Recipe

    if op == "scale":
        return [None]
    parsed = []
    for value in split_list(values, "--values") or []:
        try:
            parsed.append(Recipe.parse(f"{op}:{value}").value)
        except NeurospecError as err:
            raise NeurospecError(f"--values {values!r}: {err}") from None
    return parsed


def grid_factors(factors: str) -> list[float]:
    """``--factors 1,2,5,10`` -> finite numbers."""
    try:
        numbers = [float(f) for f in split_list(factors, "--factors", example="1,2,5,10") or []]
    except ValueError:
        raise NeurospecError(f"--factors {factors!r}: give numbers, e.g. 1,2,5,10") from None
    if not all(math.isfinite(f) for f in numbers):
        raise NeurospecError(f"--factors {factors!r}: factors must be finite numbers (no NaN or infinity), "
                             "e.g. 1,2,5,10")
    return numbers


def sweep_recipes(options: SweepOptions) -> list:
    """The settings of a sweep: every ``--recipe``, else the grid of ``--op``, ``--values``, ``--factors`` and
    ``--positions``."""
    from neurospec.evaluate.sweep import recipe_grid
    from neurospec.interventions.recipes import parse_recipes

    if options.recipe:
        return parse_recipes(options.recipe, "--recipe")
    return recipe_grid(op=options.op, values=grid_values(options.op, options.values),
                       factors=grid_factors(options.factors),
                       positions=split_list(options.positions, "--positions") or ["all"])


def sweep(options: SweepOptions, *, lm=None):
    """LSS matrix per setting of a grid; the best setting has the highest mean off-diagonal LSS. With
    ``--generate``, every setting also steers generations, and ``best_fluent`` has the highest target-language
    share among the settings within the fluency bound. Written to ``options.out`` and returned
    (:class:`~neurospec.evaluate.sweep.SweepResult`)."""
    from neurospec.evaluate.sweep import sweep as sweep_settings

    with writing(options.out, "neurospec sweep"):
        recipes = sweep_recipes(options)
        items = lss_items(options.items, options.parallel, options.languages, options.split, options.data_dir,
                          options.limit, options.answer_words, options.answer_chars)
        targets = split_list(options.groups, "--groups")
        plan = sweep_plan(options)
        lm = load_for(options, lm)
        neuron_set, statistics = load_inputs(options.neurons, options.stats, lm)
        if plan is not None:
            plan = dataclasses.replace(plan, candidates=langid_candidates(options.candidates, list(plan.prompts),
                                                                          list(targets or neuron_set.groups)))
        tokens = PROMPT_TOKENS + (options.max_new_tokens if plan is not None else 0)
        say = progress_printer(options.quiet)
        settings_done = iter(range(1, len(recipes) + 1))
        result = sweep_settings(
            lm.model, lm.tokenizer, items, neuron_set, recipes, stats=statistics,
            sources=split_list(options.sources, "--sources"), targets=targets,
            batch_size=options.batch_for(lm, tokens=tokens), bootstrap=options.bootstrap, quiet=options.quiet,
            steering=plan, on_setting=lambda m: say(f"setting {next(settings_done)}/{len(recipes)}  "
                                                    f"{m.recipe.name:>28}  mean LSS {m.mean_offdiagonal:.3f}"))
        say(f"best: {result.best.name}")
        if plan is not None:
            best_fluent, reason = result.best_fluent()
            say(f"best within the fluency bound: {best_fluent.name if best_fluent else 'none'} ({reason})")
        stamp_result(result.save(options.out), "sweep", options, lm.model)
    return result


# --------------------------------------------------------------------------------------------
# eval


@verb_options("eval")
class EvalOptions(ModelOptions):
    """Options of ``neurospec eval TASK``: a downstream task, self vs cross."""

    task: str = option(positional=True)
    out: Path
    languages: str
    neurons: Path | None = None
    stats: Path | None = None
    recipe: str = "set:p_max"
    groups: str | None = None
    limit: int | None = option(None, min=1)
    split: str | None = None
    data_dir: Path | None = None
    bootstrap: int = option(1000, min=10)
    seed: int = 0
    batch_size: str | int = "auto"
    quiet: bool = False


def evaluate_task(options: EvalOptions, *, lm=None):
    """A downstream task in every language, unmodified and under each target's intervention (self vs cross);
    written to ``options.out`` and returned (:class:`~neurospec.evaluate.downstream.DownstreamTable`)."""
    from neurospec.evaluate.downstream import self_cross
    from neurospec.evaluate.tasks import get_task

    with writing(options.out, f"neurospec eval {options.task}"):
        get_task(options.task)  # an unknown task fails before the model loads
        chosen_recipe = parse_recipe(options.recipe)
        lm = load_for(options, lm)
        neuron_set, statistics = load_inputs(options.neurons, options.stats, lm, need_neurons=False)
        say = progress_printer(options.quiet)
        table = self_cross(
            lm.model, lm.tokenizer, options.task, split_list(options.languages, "--languages") or [], neuron_set,
            recipe=chosen_recipe, stats=statistics, targets=split_list(options.groups, "--groups"),
            limit=options.limit, batch_size=options.batch_for(lm, tokens=TASK_TOKENS), data_dir=options.data_dir,
            split=options.split, resamples=options.bootstrap, interval_seed=options.seed,
            on_cell=lambda row, lang, r: say(f"{row:>12} {lang:>9}  {r.metric} {r.score:.4g}  n {r.n}"),
            quiet=options.quiet)
        if neuron_set is not None:
            summary = table.summary()
            say(f"mean change: self {summary['self_mean']}, cross {summary['cross_mean']}")
        stamp_result(table.save(options.out), "eval", options, lm.model)
    return table
