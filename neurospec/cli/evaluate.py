"""The intervention verbs of the ``neurospec`` command: ppl, steer, lss, sweep, eval.

    neurospec ppl   --model M --neurons lape.json --corpus-dir flores --split test --out runs/ppl
    neurospec steer --model M --neurons lape.json --stats stats/ --parallel ntrex --languages en,fr,de --out runs/steer
    neurospec lss   --model M --neurons lape.json --stats stats/ --parallel flores --languages en,fr,de --out runs/lss
    neurospec sweep --model M --neurons lape.json --stats stats/ --items mlama.jsonl --values p_max,p_median --factors 1,2,5
    neurospec sweep ... --generate --prompts en=prompts_en.txt --fluency-measure distinct_2 --fluency-bound 0.2
    neurospec eval xcopa --model M --neurons lape.json --stats stats/ --languages et,ht,sw --out runs/xcopa

Each writes JSON (and CSV for matrices) into ``--out``; the same verbs are Python functions in neurospec.verbs.evaluate.
Registered on :data:`neurospec.cli.main.app` when that module is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from neurospec.cli.base import (
    BATCH_AUTO,
    DEVICE,
    DEVICE_MAP,
    DTYPE,
    MODEL,
    MODEL_ARG,
    QUIET,
    REVISION,
    TRUST,
    app,
    console,
    done,
    user_errors,
)
from neurospec.verbs.evaluate import (
    EvalOptions,
    LssOptions,
    PplOptions,
    SteerOptions,
    SweepOptions,
    evaluate_task,
    lss,
    ppl,
    steer,
    sweep,
)

_NEURONS = typer.Option(None, "--neurons", help="NeuronSet JSON file (neurospec select ...); the groups are its groups.")
_STATS = typer.Option(None, "--stats", help="Statistics folder (neurospec collect --mode sentence) for p_max / p_median / mean.")
_GROUPS = typer.Option(None, "--groups", help="Only these groups of --neurons (any language or country name), e.g. fr,de.")
_OUT = typer.Option(..., "--out", help="Output folder (JSON + CSV).")
_LANGUAGES = typer.Option(None, "--languages", help="Languages, e.g. en,fr,zh (any code or name).")
_PARALLEL = typer.Option(None, "--parallel", help="ntrex or flores: parallel sentences from the shared data "
                         "(or NEUROSPEC_DATA) for --languages.")
_SPLIT = typer.Option(None, "--split", help="FLORES/SIB-200 split: train, dev, test (default dev; ppl: all).")
_DATA_DIR = typer.Option(None, "--data-dir", help="The data root, as NEUROSPEC_DATA (default: NEUROSPEC_DATA, else the "
                         "fetched data).")
_RANDOM_SEEDS = typer.Option("0", "--random-seeds", help="Seeds of size-matched random control groups ('' for none).")
_LIMIT = typer.Option(None, "--limit", min=1, help="Only the first N items / sentences per language.")


# --------------------------------------------------------------------------------------------


@app.command("ppl")
def ppl_command(
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    corpus: list[str] = typer.Option([], "--corpus", help="LANGUAGE=PATH of held-out text (repeatable); as for collect."),
    corpus_dir: Optional[Path] = typer.Option(None, "--corpus-dir", help="Every language of a folder (or NTREX / SIB-200)."),
    languages: Optional[str] = _LANGUAGES, split: Optional[str] = _SPLIT,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="First N texts per language (default all)."),
    recipe: str = typer.Option("zero", "--recipe", help="What is done to each group's neurons: zero, scale*0.5, set:p_max..."),
    groups: Optional[str] = _GROUPS, random_seeds: Optional[str] = _RANDOM_SEEDS,
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Resamples of texts for the paired intervals of "
                                  "every change (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    bos: str = typer.Option("auto", "--bos", help="auto: the tokenizer's BOS before every text; never: none."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=2,
                                             help="Window length (default min(max_position, 2048))."),
    text_field: str = typer.Option("text", "--text-field", help="Field of JSONL records holding the text."),
    batch_size: str = BATCH_AUTO, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Perplexity matrix: each group's neurons intervened (zeroed by default) x each language evaluated."""
    with user_errors():
        options = PplOptions(**locals())
        ppl(options)
        done(options.out / "ppl.json")


@app.command("steer")
def steer_command(
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    prompts: list[str] = typer.Option([], "--prompts", help="LANGUAGE=FILE, one prompt per line (repeatable)."),
    parallel: Optional[str] = _PARALLEL, languages: Optional[str] = _LANGUAGES, split: Optional[str] = _SPLIT,
    data_dir: Optional[Path] = _DATA_DIR, limit: Optional[int] = typer.Option(20, "--limit", min=1, help="Prompts per source."),
    prompt_fraction: float = typer.Option(0.5, "--prompt-fraction",
                                          help="With --parallel: the share of each sentence kept as prompt."),
    recipe: str = typer.Option("set:p_max", "--recipe", help="set:p_max, set:p_median*2, add:runtime:max, ..."),
    groups: Optional[str] = _GROUPS, random_seeds: Optional[str] = _RANDOM_SEEDS,
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1),
    candidates: Optional[str] = typer.Option(None, "--langid-languages", help="Restrict language ID to these (default: all "
                                             "py3langid languages); 'study' = the sources and targets."),
    sample: bool = typer.Option(False, "--sample", help="Sample instead of greedy decoding."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    batch_size: str = BATCH_AUTO, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Generate under each target's intervention; share of outputs in the target language (py3langid)."""
    with user_errors():
        options = SteerOptions(**locals())
        steer(options)
        done(options.out / "steer.json")


_ITEMS = typer.Option(None, "--items", help="LSS items: JSONL with prompt (or template+subject) and answer per language.")
_ANSWER_WORDS = typer.Option(1, "--answer-words", min=1, help="Parallel cut: words in the answer (spaced scripts).")
_ANSWER_CHARS = typer.Option(2, "--answer-chars", min=1, help="Parallel cut: characters in the answer (zh, ja, th...).")
_SOURCES = typer.Option(None, "--sources", help="Only these source languages (default: the groups' languages).")
_BOOTSTRAP = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap resamples for the pooled margins (cells and "
                          "shares take Wilson / Newcombe intervals).")


@app.command("lss")
def lss_command(
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    items: Optional[Path] = _ITEMS, parallel: Optional[str] = _PARALLEL, languages: Optional[str] = _LANGUAGES,
    split: Optional[str] = _SPLIT, data_dir: Optional[Path] = _DATA_DIR, limit: Optional[int] = _LIMIT,
    answer_words: int = _ANSWER_WORDS, answer_chars: int = _ANSWER_CHARS,
    recipe: str = typer.Option("set:p_max", "--recipe", help="set:p_max, set:p_median*2, ..."),
    groups: Optional[str] = _GROUPS, sources: Optional[str] = _SOURCES,
    controls: Optional[str] = typer.Option("random,other", "--controls", help="Paired controls: random, other ('' for none)."),
    random_seeds: Optional[str] = _RANDOM_SEEDS, bootstrap: int = _BOOTSTRAP,
    batch_size: str = BATCH_AUTO, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Language Steering Shift matrix (source x target) with intervals and paired controls."""
    with user_errors():
        options = LssOptions(**locals())
        matrix = lss(options)
        if not matrix.mean_d0 < 0:
            console.print("[yellow]warning: mean D0 is not negative: without intervention the target answers are as "
                          "likely as the source answers, so the cut is degenerate (see docs/evaluation.md)[/]")
        done(options.out / "lss.json")


@app.command("sweep")
def sweep_command(
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    items: Optional[Path] = _ITEMS, parallel: Optional[str] = _PARALLEL, languages: Optional[str] = _LANGUAGES,
    split: Optional[str] = _SPLIT, data_dir: Optional[Path] = _DATA_DIR, limit: Optional[int] = _LIMIT,
    answer_words: int = _ANSWER_WORDS, answer_chars: int = _ANSWER_CHARS,
    recipe: list[str] = typer.Option([], "--recipe", help="A setting (repeatable); or build a grid with the options below."),
    op: str = typer.Option("set", "--op", help="Grid: operation (set, add, scale)."),
    values: str = typer.Option("p_max,p_median", "--values", help="Grid: p_max, p_median, mean, numbers, runtime:max..."),
    factors: str = typer.Option("1,2,5,10", "--factors", help="Grid: factors."),
    positions: str = typer.Option("all", "--positions", help="Grid: all, prompt, continuation."),
    groups: Optional[str] = _GROUPS, sources: Optional[str] = _SOURCES, bootstrap: int = _BOOTSTRAP,
    generate: bool = typer.Option(False, "--generate", help="Also steer generations per setting: target-language "
                                  "share and fluency; best_fluent = the highest share within --fluency-bound."),
    prompts: list[str] = typer.Option([], "--prompts", help="With --generate: LANGUAGE=FILE, one prompt per line "
                                      "(repeatable); else cut from --parallel sentences. At most --limit (default "
                                      "20) per language."),
    prompt_fraction: float = typer.Option(0.5, "--prompt-fraction",
                                          help="With --generate and --parallel: the share of each sentence kept as prompt."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1, help="With --generate: tokens per continuation "
                                       "(greedy)."),
    fluency_measure: str = typer.Option("distinct_2", "--fluency-measure", help="With --generate: the measure the "
                                        "bound is on: distinct_2 (default), distinct_1, repeated_token_share, perplexity."),
    fluency_bound: Optional[float] = typer.Option(None, "--fluency-bound", help="With --generate: how much worse than "
                                                  "the unmodified model's generations a setting may be: distinct-n "
                                                  "may fall / repeated tokens rise by at most this (default 0.2); "
                                                  "perplexity may grow by at most this factor (default 2)."),
    candidates: Optional[str] = typer.Option(None, "--langid-languages", help="With --generate: restrict language ID "
                                             "to these (default: all py3langid languages); 'study' = sources and targets."),
    batch_size: str = BATCH_AUTO, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """LSS matrix per setting of a grid; the best setting has the highest mean off-diagonal LSS. With --generate,
    also the best by target-language share among the settings within a fluency bound."""
    with user_errors():
        options = SweepOptions(**locals())
        sweep(options)
        done(options.out / "sweep.json")


@app.command("eval")
def eval_command(
    task: str = typer.Argument(..., help="xcopa, xwinograd, belebele, include, flores, ntrex."),
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    neurons: Optional[Path] = _NEURONS, stats: Optional[Path] = _STATS, out: Path = _OUT,
    languages: str = typer.Option(..., "--languages", help="Evaluated languages, e.g. et,ht,sw."),
    recipe: str = typer.Option("set:p_max", "--recipe", help="Intervention on each target's neurons."),
    groups: Optional[str] = _GROUPS, limit: Optional[int] = _LIMIT, split: Optional[str] = _SPLIT,
    data_dir: Optional[Path] = _DATA_DIR,
    bootstrap: int = typer.Option(1000, "--bootstrap", min=10, help="Resamples of items for the intervals of the "
                                  "translation scores, their changes and the self/cross summary."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    batch_size: str = BATCH_AUTO, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """A downstream task in every language, unmodified and under each target's intervention (self vs cross)."""
    with user_errors():
        options = EvalOptions(**locals())
        table = evaluate_task(options)
        done(options.out / f"{table.task}.json")
