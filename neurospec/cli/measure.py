"""The measuring and selecting verbs of the ``neurospec`` command: collect, stats show, select lape/all-active/top-mean/random.

    neurospec collect --model M --corpus fr=fr.txt --corpus de=ntrex128 --out stats/ --max-tokens 1000000
    neurospec stats show stats/
    neurospec select lape --stats stats/ --out lape.json

The verbs are Python functions in neurospec.verbs.measure; the commands here build their options, call them and
print what they wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from neurospec.cli.base import (
    DEVICE,
    DEVICE_MAP,
    DTYPE,
    MODEL,
    MODEL_ARG,
    QUIET,
    REVISION,
    TRUST,
    VerbGroup,
    app,
    command_provenance,
    console,
    user_errors,
    warnings_after,
)
from neurospec.cli.neurons import counts_table, neuron_set_header
from neurospec.util.io import json_text
from neurospec.verbs.measure import (
    CollectOptions,
    Mode,
    SelectAllActiveOptions,
    SelectLapeOptions,
    SelectRandomOptions,
    SelectTopMeanOptions,
    collect,
    select_all_active,
    select_lape,
    select_random,
    select_top_mean,
    warn_empty_groups,
)

# --------------------------------------------------------------------------------------------
# neurospec collect / select / stats


@app.command("collect")
def collect_command(
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    corpus: list[str] = typer.Option([], "--corpus", help="LANGUAGE=PATH (repeatable): a text, .jsonl or .tsv file, an "
                                     "NTREX-128 or SIB-200 folder, or hf:NAME[:CONFIG][@SPLIT]."),
    corpus_dir: Optional[Path] = typer.Option(None, "--corpus-dir", help="Every language of a folder (LANG.txt files, "
                                              "or an NTREX-128 / SIB-200 folder) or data set (ntrex128, flores)."),
    languages: Optional[str] = typer.Option(None, "--languages", help="With --corpus-dir: only these, e.g. en,fr,zh."),
    out: Path = typer.Option(..., "--out", help="Statistics folder to write."),
    site: str = typer.Option("act", "--site", help="Neuron site: act, down_in, gate_pre, up_pre, q, k, v."),
    mode: Mode = typer.Option(Mode.packed, "--mode", help="packed rows (LAPE) or one sentence per row (amplification)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Counted tokens per language (default all)."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", min=1, help="Row length (default min(max_position, 4096); "
                                          "512 in sentence mode)."),
    batch_size: str = typer.Option("auto", "--batch-size", help="Rows per forward call, or auto: the largest that "
                                   "fits (tried on a GPU; on a CPU estimated against a quarter of the free memory, "
                                   "at most 8)."),
    sample_sentences: int = typer.Option(100, "--sample-sentences", min=0, help="Sentence mode: per-sentence means kept "
                                         "for the first K sentences (p_max / p_median)."),
    no_pack: bool = typer.Option(False, "--no-pack", help="Sentence mode: one padded sentence per row."),
    no_bos: bool = typer.Option(False, "--no-bos", help="Sentence mode: no BOS / special tokens before each sentence "
                                "(the amplification reference's tokenisation; Gemma degrades without BOS)."),
    checkpoint_every: int = typer.Option(10_000_000, "--checkpoint-every", min=1, help="Tokens between checkpoints."),
    top_contexts: int = typer.Option(0, "--top-contexts", min=0, help="Keep every neuron's K top activating "
                                     "contexts per language (0: off); read them with neurospec.measure.contexts."),
    context_neurons: Optional[Path] = typer.Option(None, "--context-neurons", help="With --top-contexts: keep "
                                                   "contexts only for this neuron file's neurons at --site (e.g. "
                                                   "lape.json), plus --context-sample others."),
    context_sample: int = typer.Option(0, "--context-sample", min=0, help="With --top-contexts: also keep the "
                                       "contexts of N other neurons drawn at random (--seed)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --context-sample draw."),
    resume: bool = typer.Option(False, "--resume", help="Continue an unfinished --out folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    text_field: str = typer.Option("text", "--text-field", help="Field of JSONL / HF records holding the text."),
    split: Optional[str] = typer.Option(None, "--split", help="SIB-200 split (train, dev, test) or HF split."),
    dtype: str = DTYPE, device: Optional[str] = DEVICE, device_map: Optional[str] = DEVICE_MAP,
    trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Activation statistics per language (counts of value > 0, sums, squares, max; per-sentence sample)."""
    with user_errors():
        options = CollectOptions(**locals())
        stats = collect(options)
        if not quiet:
            console.print(_stats_table(stats))


def _stats_table(stats) -> Table:
    probabilities = stats.probabilities()
    table = Table(title=escape(f"{stats.path}: site {stats.site}, {stats.num_layers} layers x {stats.width} neurons"))
    for column in ("language", "tokens", "sentences", "mean P(>0)", "mean value", "sample"):
        table.add_column(column, justify="left" if column == "language" else "right")
    for g, language in enumerate(stats.languages):
        sample = "-"
        if language in stats.sample_files:
            sample = str(stats.sentence_means(language).shape[0])
        table.add_row(language, f"{int(stats.tokens[g]):,}", f"{stats.sentences.get(language, 0):,}",
                      f"{float(probabilities[g].mean()):.4f}", f"{float(stats.mean()[g].mean()):.4f}", sample)
    return table


stats_app = typer.Typer(cls=VerbGroup, help="Inspect activation statistics folders.", no_args_is_help=True)
app.add_typer(stats_app, name="stats")


@stats_app.command("show")
def stats_show(
    folder: Path = typer.Argument(..., help="A folder written by `neurospec collect`."),
    as_json: bool = typer.Option(False, "--json", help="Print stats.json (model, corpora, options, tokens)."),
) -> None:
    """Tokens, sentences and activation rates per language; model, site and options."""
    from neurospec.measure.stats import ActivationStats

    with user_errors():
        meta = ActivationStats.read_meta(folder)
        if as_json:
            typer.echo(json_text(meta), nl=False)
            return
        if not meta.get("complete"):
            console.print(f"[yellow]unfinished collection (checkpoint at {meta.get('progress')}); "
                          "finish it with `neurospec collect ... --resume`[/]")
            return
        stats = ActivationStats.load(folder)
        console.print(escape(f"model {stats.model.get('model_id') or 'unknown'} ({stats.model.get('model_type')}), "
                             f"mode {stats.options.get('mode')}, rows of {stats.options.get('seq_len')} tokens"))
        console.print(_stats_table(stats))


select_app = typer.Typer(cls=VerbGroup, help="Select neurons from activation statistics.", no_args_is_help=True)
app.add_typer(select_app, name="select")

_STATS = typer.Option(..., "--stats", help="A folder written by `neurospec collect`.")
_OUT = typer.Option(..., "--out", help="NeuronSet JSON file to write.")
_LANGUAGES = typer.Option(None, "--languages", help="Only these languages of the statistics, e.g. en,fr,zh.")


def write_selection(neurons, out: Path) -> None:
    """Print a selection's counts; save it to ``out`` first (with the current command's provenance, warning about
    groups left without neurons) unless the verb saved it there."""
    if neurons.path is None or Path(neurons.path) != Path(out):
        neurons.meta.source = {**neurons.meta.source, "provenance": command_provenance()}
        neurons.save(out)
        warn_empty_groups(neurons, out)
    console.print(escape(f"{out}: " + neuron_set_header(neurons).split(": ", 1)[1]), soft_wrap=True)
    console.print(counts_table(neurons))


@select_app.command("lape")
def select_lape_command(
    stats: Path = _STATS,
    out: Path = _OUT,
    top_rate: float = typer.Option(0.01, "--top-rate", help="Share of all neurons kept (lowest entropy), over all layers."),
    filter_rate: float = typer.Option(0.95, "--filter-rate", help="Quantile of all probabilities a neuron must exceed."),
    bar_rate: float = typer.Option(0.95, "--bar-rate", help="Quantile a language's probability must exceed to be assigned."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Instead: the k lowest-entropy neurons per language."),
    languages: Optional[str] = _LANGUAGES,
) -> None:
    """LAPE (Tang et al., 2024): language-specific neurons by activation-probability entropy."""
    with user_errors(), warnings_after():
        options = SelectLapeOptions(**locals())
        write_selection(select_lape(options), options.out)


@select_app.command("all-active")
def select_all_active_command(stats: Path = _STATS, out: Path = _OUT, languages: Optional[str] = _LANGUAGES) -> None:
    """Neurons whose per-sentence mean is > 0 in every sampled sentence (Rahmanisa et al.'s baseline)."""
    with user_errors(), warnings_after():
        options = SelectAllActiveOptions(**locals())
        write_selection(select_all_active(options), options.out)


@select_app.command("top-mean")
def select_top_mean_command(
    stats: Path = _STATS, out: Path = _OUT, k: int = typer.Option(..., "--k", min=1, help="Neurons per language."),
    languages: Optional[str] = _LANGUAGES,
) -> None:
    """The k neurons with the highest mean per-sentence activation, per language."""
    with user_errors(), warnings_after():
        options = SelectTopMeanOptions(**locals())
        write_selection(select_top_mean(options), options.out)


@select_app.command("random")
def select_random_command(
    like: Path = typer.Option(..., "--like", exists=True, dir_okay=False, help="NeuronSet whose sizes to match."),
    out: Path = _OUT,
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    exclude: bool = typer.Option(False, "--exclude", help="Never draw a neuron of --like."),
) -> None:
    """A random set with as many neurons as --like in every group, site and layer."""
    with user_errors(), warnings_after():
        options = SelectRandomOptions(**locals())
        write_selection(select_random(options), options.out)
