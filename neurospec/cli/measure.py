"""The measuring and selecting verbs of the ``neurospec`` command: collect, stats show, select lape/all-active/top-mean/random.

    neurospec collect --model M --corpus fr=fr.txt --corpus de=ntrex128 --out stats/ --max-tokens 1000000
    neurospec stats show stats/
    neurospec select lape --stats stats/ --out lape.json
"""

from __future__ import annotations

import os
import warnings
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from neurospec.util.errors import EmptyGroupWarning, NeurospecError
from neurospec.util.io import json_text
from neurospec.measure.run_folder import writing
from neurospec.cli.base import app, command_provenance, console, not_an_input, split_names, stamped, user_errors
from neurospec.cli.neurons import counts_table, neuron_set_header



# --------------------------------------------------------------------------------------------
# neurospec collect / select / stats


class Mode(str, Enum):
    packed = "packed"
    sentence = "sentence"


def _rank_device(device: Optional[str]) -> Optional[str]:
    """Under torchrun each process takes the GPU of its LOCAL_RANK unless a device was given."""
    import os

    import torch

    if device is None and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def corpora_from_options(corpus: list[str], corpus_dir: Optional[Path], languages: Optional[str], text_field: str,
                         split: Optional[str]) -> list:
    """The corpora named by ``--corpus LANG=PATH`` (repeatable) and ``--corpus-dir`` (with ``--languages``)."""
    from neurospec.data.corpora import corpora_in_directory, parse_corpus_option

    corpora = [parse_corpus_option(value, text_field=text_field, split=split) for value in corpus]
    if corpus_dir is not None:
        corpora += corpora_in_directory(corpus_dir, split_names(languages), text_field=text_field, split=split)
    if not corpora:
        raise NeurospecError("no corpus: give --corpus LANGUAGE=PATH (repeatable) or --corpus-dir FOLDER")
    return corpora


@app.command("collect")
def collect_command(
    model: str = typer.Option(..., "--model", help="Hub id or local folder of the model."),
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
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Rows per forward call."),
    sample_sentences: int = typer.Option(100, "--sample-sentences", min=0, help="Sentence mode: per-sentence means kept "
                                         "for the first K sentences (p_max / p_median)."),
    no_pack: bool = typer.Option(False, "--no-pack", help="Sentence mode: one padded sentence per row."),
    no_bos: bool = typer.Option(False, "--no-bos", help="Sentence mode: no BOS / special tokens before each sentence "
                                "(the amplification reference's tokenisation; Gemma degrades without BOS)."),
    checkpoint_every: int = typer.Option(10_000_000, "--checkpoint-every", min=1, help="Tokens between checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue an unfinished --out folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    text_field: str = typer.Option("text", "--text-field", help="Field of JSONL / HF records holding the text."),
    split: Optional[str] = typer.Option(None, "--split", help="SIB-200 split (train, dev, test) or HF split."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (fp32 on CPU, the checkpoint's elsewhere), float32, bfloat16..."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if available)."),
    device_map: Optional[str] = typer.Option(None, "--device-map", help="auto: spread a large model over all GPUs."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run code from the model's repository."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Activation statistics per language (counts of value > 0, sums, squares, max; per-sentence sample)."""
    from neurospec.measure.collect import CollectOptions, check_length, collect
    from neurospec.core.models import load_model

    with user_errors(), writing(out, "neurospec collect"):
        corpora = corpora_from_options(corpus, corpus_dir, languages, text_field, split)
        options = CollectOptions(site=site, mode=mode.value, seq_len=seq_len, max_tokens=max_tokens,
                                 batch_size=batch_size, sample_sentences=sample_sentences, pack_sentences=not no_pack,
                                 bos=not no_bos, checkpoint_every=checkpoint_every)
        options.check()
        lm = load_model(model, dtype=dtype, device=_rank_device(device), device_map=device_map,
                        trust_remote_code=trust_remote_code)
        check_length(lm.model, seq_len, "--seq-len")
        stats = collect(lm.model, lm.tokenizer, corpora, out, options, resume=resume, overwrite=overwrite, quiet=quiet)
        if os.environ.get("RANK", "0") == "0":  # under torchrun one process writes
            stamped(out, lm.model, "stats.json")
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


stats_app = typer.Typer(help="Inspect activation statistics folders.", no_args_is_help=True)
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


select_app = typer.Typer(help="Select neurons from activation statistics.", no_args_is_help=True)
app.add_typer(select_app, name="select")

_STATS = typer.Option(..., "--stats", help="A folder written by `neurospec collect`.")
_OUT = typer.Option(..., "--out", help="NeuronSet JSON file to write.")
_LANGUAGES = typer.Option(None, "--languages", help="Only these languages of the statistics, e.g. en,fr,zh.")


def write_selection(neurons, out: Path) -> None:
    """Save a selection, print its counts, and warn (one line) about groups left without neurons."""
    from neurospec.interventions.targets import empty_reason, summary_reason

    neurons.meta.source = {**neurons.meta.source, "provenance": command_provenance()}
    neurons.save(out)
    console.print(escape(f"{out}: " + neuron_set_header(neurons).split(": ", 1)[1]), soft_wrap=True)
    console.print(counts_table(neurons))
    empty = [group for group in neurons.groups if neurons.is_empty(group)]
    if empty:
        reason = summary_reason({group: empty_reason(neurons, group) for group in empty}, "in its meta params")
        warnings.warn(f"{out}: {', '.join(empty)}: {reason}; the evaluation verbs will skip them", EmptyGroupWarning)


def _check_rates(rates: dict) -> None:
    """Each ``{flag: value}`` a rate in (0, 1], as LAPE needs, checked before anything is read."""
    for flag, value in rates.items():
        if not 0 < value <= 1:   # NaN fails too
            raise NeurospecError(f"{flag} {value!r} is not a rate in (0, 1]: give a number such as 0.95")


def _load_stats(folder: Path):
    from neurospec.measure.stats import ActivationStats

    return ActivationStats.load(folder)


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
    from neurospec.select import select_lape, select_lape_top_k

    with user_errors(), writing(out, "neurospec select lape", file=True):
        _check_rates({"--filter-rate": filter_rate, "--bar-rate": bar_rate, **({} if top_k else {"--top-rate": top_rate})})
        data, names = _load_stats(stats), split_names(languages)
        if top_k is not None:
            neurons = select_lape_top_k(data, top_k, filter_rate=filter_rate, activation_bar_ratio=bar_rate, languages=names)
        else:
            neurons = select_lape(data, top_rate=top_rate, filter_rate=filter_rate, activation_bar_ratio=bar_rate,
                                  languages=names)
        write_selection(neurons, out)


@select_app.command("all-active")
def select_all_active_command(stats: Path = _STATS, out: Path = _OUT, languages: Optional[str] = _LANGUAGES) -> None:
    """Neurons whose per-sentence mean is > 0 in every sampled sentence (Rahmanisa et al.'s baseline)."""
    from neurospec.select import select_active_in_all_sentences

    with user_errors(), writing(out, "neurospec select all-active", file=True):
        write_selection(select_active_in_all_sentences(_load_stats(stats), languages=split_names(languages)), out)


@select_app.command("top-mean")
def select_top_mean_command(
    stats: Path = _STATS, out: Path = _OUT, k: int = typer.Option(..., "--k", min=1, help="Neurons per language."),
    languages: Optional[str] = _LANGUAGES,
) -> None:
    """The k neurons with the highest mean per-sentence activation, per language."""
    from neurospec.select import select_top_mean

    with user_errors(), writing(out, "neurospec select top-mean", file=True):
        write_selection(select_top_mean(_load_stats(stats), k, languages=split_names(languages)), out)


@select_app.command("random")
def select_random_command(
    like: Path = typer.Option(..., "--like", exists=True, dir_okay=False, help="NeuronSet whose sizes to match."),
    out: Path = _OUT,
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    exclude: bool = typer.Option(False, "--exclude", help="Never draw a neuron of --like."),
) -> None:
    """A random set with as many neurons as --like in every group, site and layer."""
    from neurospec.neurons.neuron_set import NeuronSet
    from neurospec.select import select_random

    with user_errors(), writing(out, "neurospec select random", file=True):
        not_an_input(out, "--out", {"--like": like})
        write_selection(select_random(NeuronSet.load(like), seed=seed, exclude=exclude), out)
