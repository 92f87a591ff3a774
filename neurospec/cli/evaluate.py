"""The intervention verbs of the ``neurospec`` command: ppl, steer, lss, sweep, eval.

    neurospec ppl   --model M --neurons lape.json --corpus-dir flores --split test --out runs/ppl
    neurospec steer --model M --neurons lape.json --stats stats/ --parallel ntrex --languages en,fr,de --out runs/steer
    neurospec lss   --model M --neurons lape.json --stats stats/ --parallel flores --languages en,fr,de --out runs/lss
    neurospec sweep --model M --neurons lape.json --stats stats/ --items mlama.jsonl --values p_max,p_median --factors 1,2,5
    neurospec eval xcopa --model M --neurons lape.json --stats stats/ --languages et,ht,sw --out runs/xcopa

Each writes JSON (and CSV for matrices) into ``--out``; the same functions are in neurospec.evaluate.
Registered on :data:`neurospec.cli.main.app` when that module is imported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from neurospec.cli.base import app, console, split_names, stamped, user_errors
from neurospec.cli.base import BATCH, DEVICE, DEVICE_MAP, DTYPE, MODEL, QUIET, TRUST, done, load, progress_printer
from neurospec.util.errors import NeurospecError
from neurospec.measure.run_folder import writing

_NEURONS = typer.Option(None, "--neurons", help="NeuronSet JSON file (neurospec select ...); targets are its groups.")
_STATS = typer.Option(None, "--stats", help="Statistics folder (neurospec collect --mode sentence) for p_max / p_median / mean.")
_TARGETS = typer.Option(None, "--targets", help="Only these groups of --neurons, e.g. fr,de.")
_OUT = typer.Option(..., "--out", help="Output folder (JSON + CSV).")
_LANGUAGES = typer.Option(None, "--languages", help="Languages, e.g. en,fr,zh (any code or name).")
_PARALLEL = typer.Option(None, "--parallel", help="ntrex or flores: parallel sentences from the shared data "
                         "(or NEUROSPEC_DATA) for --languages.")
_SPLIT = typer.Option(None, "--split", help="FLORES/SIB-200 split: train, dev, test (default dev; ppl: all).")
_DATA_DIR = typer.Option(None, "--data-dir", help="Folder of the parallel corpus or task data (default: shared data).")
_LIMIT = typer.Option(None, "--limit", min=1, help="Only the first N items / sentences per language.")


def _inputs(neurons: Optional[Path], stats: Optional[Path], lm, *, need_neurons: bool = True):
    """The NeuronSet (checked against the model) and the statistics (checked too), either may be None."""
    from neurospec.neurons.neuron_set import NeuronSet
    from neurospec.measure.stats import ActivationStats

    if neurons is None and need_neurons:
        raise NeurospecError("give --neurons FILE: the neuron set whose groups are intervened")
    neuron_set = NeuronSet.load(neurons, shape=lm.sites) if neurons is not None else None
    statistics = ActivationStats.load(stats).check_model(lm.sites) if stats is not None else None
    return neuron_set, statistics


def _parallel(parallel: Optional[str], languages: Optional[str], split: Optional[str], data_dir: Optional[Path]):
    from neurospec.data.lss_items import parallel_sentences

    names = split_names(languages)
    if not parallel or not names:
        raise NeurospecError("give --parallel ntrex|flores with --languages en,fr,... (or --items FILE)")
    return parallel_sentences(parallel, names, split=split or "dev", data_dir=data_dir)


def _lss_items(items: Optional[Path], parallel: Optional[str], languages: Optional[str], split: Optional[str],
               data_dir: Optional[Path], limit: Optional[int], answer_words: int, answer_chars: int):
    from neurospec.data.lss_items import items_from_parallel, load_lss_items

    if items is not None:
        loaded = load_lss_items(items, split_names(languages))
        return loaded[:limit] if limit else loaded
    return items_from_parallel(_parallel(parallel, languages, split, data_dir), answer_words=answer_words,
                               answer_chars=answer_chars, limit=limit)


def _recipe(text: str):
    """``--recipe`` parsed before anything is loaded (a NaN or infinite number is refused here)."""
    from neurospec.interventions.recipes import Recipe

    return Recipe.parse(text, "--recipe")


def _seeds(text: Optional[str]) -> tuple[int, ...]:
    """``--random-seeds 0,1,2``; ``''`` (or blank) for none, as its help says."""
    try:
        return tuple(int(s) for s in split_names(text, "--random-seeds", allow_empty=True, example="0,1,2") or [])
    except ValueError:
        raise NeurospecError(f"--random-seeds {text!r}: give integers, e.g. 0,1,2") from None


# --------------------------------------------------------------------------------------------


@app.command("ppl")
def ppl_command(
    model: str = MODEL, neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    corpus: list[str] = typer.Option([], "--corpus", help="LANGUAGE=PATH of held-out text (repeatable); as for collect."),
    corpus_dir: Optional[Path] = typer.Option(None, "--corpus-dir", help="Every language of a folder (or NTREX / SIB-200)."),
    languages: Optional[str] = _LANGUAGES, split: Optional[str] = _SPLIT,
    max_texts: Optional[int] = typer.Option(None, "--max-texts", min=1, help="First N texts per language (default all)."),
    recipe: str = typer.Option("zero", "--recipe", help="What is done to each group's neurons: zero, scale*0.5, set:p_max..."),
    targets: Optional[str] = _TARGETS,
    random_seeds: Optional[str] = typer.Option("0", "--random-seeds", help="Seeds of matched random control rows ('' for none)."),
    bos: str = typer.Option("auto", "--bos", help="auto: the tokenizer's BOS before every text; never: none."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=2, help="Window length (default min(max_position, 2048))."),
    text_field: str = typer.Option("text", "--text-field", help="Field of JSONL records holding the text."),
    batch_size: int = BATCH, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Perplexity matrix: each group's neurons intervened (zeroed by default) x each language evaluated."""
    from itertools import islice

    from neurospec.cli.measure import corpora_from_options
    from neurospec.measure.collect import check_length
    from neurospec.evaluate.perplexity import perplexity_matrix

    with user_errors(), writing(out, "neurospec ppl"):
        chosen_recipe = _recipe(recipe)
        corpora = corpora_from_options(corpus, corpus_dir, languages, text_field, split)
        twice = sorted({c.language for c in corpora if [d.language for d in corpora].count(c.language) > 1})
        if twice:
            raise NeurospecError(f"--corpus / --corpus-dir give {', '.join(twice)} more than once (two names of one "
                                 "language are one language): give each language once")
        texts = {c.language: list(islice(c.texts(), max_texts)) for c in corpora}
        lm = load(model, dtype, device, device_map, trust_remote_code)
        check_length(lm.model, max_length, "--max-length")
        neuron_set, statistics = _inputs(neurons, stats, lm, need_neurons=False)
        say = progress_printer(quiet)
        matrix = perplexity_matrix(
            lm.model, lm.tokenizer, texts, neuron_set, recipe=chosen_recipe, groups=split_names(targets), stats=statistics,
            random_seeds=_seeds(random_seeds) if neuron_set is not None else (), batch_size=batch_size, bos=bos,
            max_length=max_length, on_cell=lambda row, lang, r: say(f"{row:>24} {lang:>9}  ppl {r.ppl:10.3f}"),
            quiet=quiet)
        done(stamped(matrix.save(out), lm.model))


@app.command("steer")
def steer_command(
    model: str = MODEL, neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    prompts: list[str] = typer.Option([], "--prompts", help="LANGUAGE=FILE, one prompt per line (repeatable)."),
    parallel: Optional[str] = _PARALLEL, languages: Optional[str] = _LANGUAGES, split: Optional[str] = _SPLIT,
    data_dir: Optional[Path] = _DATA_DIR, limit: Optional[int] = typer.Option(20, "--limit", min=1, help="Prompts per source."),
    prompt_fraction: float = typer.Option(0.5, "--prompt-fraction", help="With --parallel: the share of each sentence kept as prompt."),
    recipe: str = typer.Option("set:p_max", "--recipe", help="set:p_max, set:p_median*2, add:runtime:max, ..."),
    targets: Optional[str] = _TARGETS,
    random_seeds: Optional[str] = typer.Option("0", "--random-seeds", help="Seeds of matched random control rows."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1),
    candidates: Optional[str] = typer.Option(None, "--langid-languages", help="Restrict language ID to these (default: all "
                                             "py3langid languages); 'study' = the sources and targets."),
    sample: bool = typer.Option(False, "--sample", help="Sample instead of greedy decoding."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    batch_size: int = BATCH, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Generate under each target's intervention; share of outputs in the target language (py3langid)."""
    from neurospec.evaluate.steering import prompts_from_parallel, steer_generation
    from neurospec.data.languages import resolve

    with user_errors(), writing(out, "neurospec steer"):
        chosen_recipe = _recipe(recipe)
        by_source: dict[str, list[str]] = {}
        for value in prompts:
            language, _, path = value.partition("=")
            if not language or not path:
                raise NeurospecError(f"--prompts {value!r}: write LANGUAGE=FILE")
            lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
            if not lines:
                raise NeurospecError(f"prompt file {path} is empty: give one prompt per line")
            by_source[resolve(language).key] = lines[:limit]
        if not by_source:
            by_source = prompts_from_parallel(_parallel(parallel, languages, split, data_dir), fraction=prompt_fraction,
                                              limit=limit)
        lm = load(model, dtype, device, device_map, trust_remote_code)
        neuron_set, statistics = _inputs(neurons, stats, lm)
        chosen = split_names(targets)
        if candidates == "study":
            names = list(by_source) + list(chosen or neuron_set.groups)
            candidates_list = list(dict.fromkeys(resolve(n).key for n in names))
        else:
            candidates_list = split_names(candidates)
        say = progress_printer(quiet)
        result = steer_generation(lm.model, lm.tokenizer, by_source, neuron_set, recipe=chosen_recipe, stats=statistics,
                                  targets=chosen, random_seeds=_seeds(random_seeds), max_new_tokens=max_new_tokens,
                                  batch_size=batch_size, candidates=candidates_list, do_sample=sample, seed=seed,
                                  quiet=quiet,
                                  on_row=lambda row, source: say(f"{row:>24} <- {source}"))
        for line in result.table():
            if line["kind"] == "group":
                say(f"{line['source']:>9} -> {line['target']:<9} share {line['share']:.2f} "
                    f"[{line['ci95'][0]:.2f}, {line['ci95'][1]:.2f}]  unmodified {line['baseline']['share']:.2f}")
        done(stamped(result.save(out), lm.model))


_ITEMS = typer.Option(None, "--items", help="LSS items: JSONL with prompt (or template+subject) and answer per language.")
_ANSWER_WORDS = typer.Option(1, "--answer-words", min=1, help="Parallel cut: words in the answer (spaced scripts).")
_ANSWER_CHARS = typer.Option(2, "--answer-chars", min=1, help="Parallel cut: characters in the answer (zh, ja, th...).")
_SOURCES = typer.Option(None, "--sources", help="Only these source languages (default: the targets' languages).")
_BOOTSTRAP = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap resamples for the intervals.")


@app.command("lss")
def lss_command(
    model: str = MODEL, neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    items: Optional[Path] = _ITEMS, parallel: Optional[str] = _PARALLEL, languages: Optional[str] = _LANGUAGES,
    split: Optional[str] = _SPLIT, data_dir: Optional[Path] = _DATA_DIR, limit: Optional[int] = _LIMIT,
    answer_words: int = _ANSWER_WORDS, answer_chars: int = _ANSWER_CHARS,
    recipe: str = typer.Option("set:p_max", "--recipe", help="set:p_max, set:p_median*2, ..."),
    targets: Optional[str] = _TARGETS, sources: Optional[str] = _SOURCES,
    controls: Optional[str] = typer.Option("random,other", "--controls", help="Paired controls: random, other ('' for none)."),
    random_seed: int = typer.Option(0, "--random-seed"), bootstrap: int = _BOOTSTRAP,
    batch_size: int = BATCH, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Language Steering Shift matrix (source x target) with bootstrap intervals and paired controls."""
    from neurospec.evaluate.lss import lss_matrix

    with user_errors(), writing(out, "neurospec lss"):
        chosen_recipe = _recipe(recipe)
        parallel_items = _lss_items(items, parallel, languages, split, data_dir, limit, answer_words, answer_chars)
        lm = load(model, dtype, device, device_map, trust_remote_code)
        neuron_set, statistics = _inputs(neurons, stats, lm)
        say = progress_printer(quiet)
        matrix = lss_matrix(
            lm.model, lm.tokenizer, parallel_items, neuron_set, recipe=chosen_recipe, stats=statistics,
            sources=split_names(sources), targets=split_names(targets), controls=split_names(controls, "--controls", allow_empty=True) or (),
            random_seed=random_seed, batch_size=batch_size, bootstrap=bootstrap, quiet=quiet,
            on_cell=lambda c: say(f"{c.source:>9} -> {c.target:<9} LSS {c.lss:.3f}  n {c.n}  excluded {c.excluded}  "
                                  f"mean D0 {c.mean_d0:.3f}"))
        say(f"mean off-diagonal LSS {matrix.mean_offdiagonal:.3f}; mean D0 {matrix.mean_d0:.3f}")
        for name, control in matrix.pooled().get("controls", {}).items():
            low, high = control["margin_ci95"]
            say(f"pooled margin over {name}: {control['margin']:+.3f} (95% interval {low:+.3f} to {high:+.3f})")
        if not matrix.mean_d0 < 0:
            console.print("[yellow]warning: mean D0 is not negative: without intervention the target answers are as "
                          "likely as the source answers, so the cut is degenerate (see docs/evaluation.md)[/]")
        done(stamped(matrix.save(out), lm.model))


@app.command("sweep")
def sweep_command(
    model: str = MODEL, neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    items: Optional[Path] = _ITEMS, parallel: Optional[str] = _PARALLEL, languages: Optional[str] = _LANGUAGES,
    split: Optional[str] = _SPLIT, data_dir: Optional[Path] = _DATA_DIR, limit: Optional[int] = _LIMIT,
    answer_words: int = _ANSWER_WORDS, answer_chars: int = _ANSWER_CHARS,
    recipe: list[str] = typer.Option([], "--recipe", help="A setting (repeatable); or build a grid with the options below."),
    op: str = typer.Option("set", "--op", help="Grid: operation (set, add, scale)."),
    values: str = typer.Option("p_max,p_median", "--values", help="Grid: p_max, p_median, mean, numbers, runtime:max..."),
    factors: str = typer.Option("1,2,5,10", "--factors", help="Grid: factors."),
    positions: str = typer.Option("all", "--positions", help="Grid: all, prompt, continuation."),
    targets: Optional[str] = _TARGETS, sources: Optional[str] = _SOURCES, bootstrap: int = _BOOTSTRAP,
    batch_size: int = BATCH, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """LSS matrix per setting of a grid; the best setting has the highest mean off-diagonal LSS."""
    from neurospec.evaluate.sweep import recipe_grid, sweep
    from neurospec.interventions.recipes import Recipe, parse_recipes

    with user_errors(), writing(out, "neurospec sweep"):
        if recipe:
            recipes = parse_recipes(recipe, "--recipe")
        else:
            value_list = [] if op != "scale" else [None]
            for value in split_names(values) or [] if op != "scale" else []:
                try:
                    value_list.append(Recipe.parse(f"{op}:{value}").value)
                except NeurospecError as err:
                    raise NeurospecError(f"--values {values!r}: {err}") from None
            try:
                factor_list = [float(f) for f in split_names(factors, "--factors", example="1,2,5,10") or []]
            except ValueError:
                raise NeurospecError(f"--factors {factors!r}: give numbers, e.g. 1,2,5,10") from None
            if not all(math.isfinite(f) for f in factor_list):
                raise NeurospecError(f"--factors {factors!r}: factors must be finite numbers (no NaN or infinity), "
                                     "e.g. 1,2,5,10")
            recipes = recipe_grid(op=op, values=value_list, factors=factor_list, positions=split_names(positions) or ["all"])
        parallel_items = _lss_items(items, parallel, languages, split, data_dir, limit, answer_words, answer_chars)
        lm = load(model, dtype, device, device_map, trust_remote_code)
        neuron_set, statistics = _inputs(neurons, stats, lm)
        say = progress_printer(quiet)
        result = sweep(lm.model, lm.tokenizer, parallel_items, neuron_set, recipes, stats=statistics,
                       sources=split_names(sources), targets=split_names(targets), batch_size=batch_size,
                       bootstrap=bootstrap, quiet=quiet,
                       on_setting=lambda m: say(f"{m.recipe.name:>28}  mean LSS {m.mean_offdiagonal:.3f}"))
        say(f"best: {result.best.name}")
        done(stamped(result.save(out), lm.model))


@app.command("eval")
def eval_command(
    task: str = typer.Argument(..., help="xcopa, xwinograd, belebele, include, flores, ntrex."),
    model: str = MODEL, neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    languages: str = typer.Option(..., "--languages", help="Evaluated languages, e.g. et,ht,sw."),
    recipe: str = typer.Option("set:p_max", "--recipe", help="Intervention on each target's neurons."),
    targets: Optional[str] = _TARGETS, limit: Optional[int] = _LIMIT, split: Optional[str] = _SPLIT,
    data_dir: Optional[Path] = _DATA_DIR,
    batch_size: int = BATCH, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """A downstream task in every language, unmodified and under each target's intervention (self vs cross)."""
    from neurospec.evaluate.downstream import self_cross
    from neurospec.evaluate.tasks import get_task

    with user_errors(), writing(out, f"neurospec eval {task}"):
        get_task(task)  # an unknown task fails before the model loads
        chosen_recipe = _recipe(recipe)
        lm = load(model, dtype, device, device_map, trust_remote_code)
        neuron_set, statistics = _inputs(neurons, stats, lm, need_neurons=False)
        say = progress_printer(quiet)
        table = self_cross(lm.model, lm.tokenizer, task, split_names(languages) or [], neuron_set, recipe=chosen_recipe,
                           stats=statistics, targets=split_names(targets), limit=limit, batch_size=batch_size,
                           data_dir=data_dir, split=split,
                           on_cell=lambda row, lang, r: say(f"{row:>12} {lang:>9}  {r.metric} {r.score:.4g}  n {r.n}"))
        summary = table.summary()
        if neuron_set is not None:
            say(f"mean change: self {summary['self_mean']}, cross {summary['cross_mean']}")
        done(stamped(table.save(out), lm.model))
