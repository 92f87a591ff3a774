"""The measuring and selecting verbs: collect, select lape / all-active / top-mean / random, neurons import.

    from neurospec.verbs.measure import CollectOptions, SelectLapeOptions, collect, select_lape
    stats = collect(CollectOptions(model="gemma-3-270m", corpus=["fr=fr.txt", "de=ntrex128"], out=Path("runs/stats")))
    lape = select_lape(SelectLapeOptions(stats=Path("runs/stats"), out=Path("lape.json")))

``collect`` writes a statistics folder (stamped with what produced it) and returns the
:class:`~neurospec.measure.stats.ActivationStats`; the other verbs write a NeuronSet JSON file whose
``meta.source.provenance`` records the verb and its options, and return the
:class:`~neurospec.neurons.neuron_set.NeuronSet`. A selection may leave a group without neurons (a result, not an
error): :func:`warn_empty_groups` says so in one warning.
"""

from __future__ import annotations

import os
import warnings
from enum import Enum
from pathlib import Path

from neurospec.measure.run_folder import writing
from neurospec.util.errors import EmptyGroupWarning, NeurospecError
from neurospec.verbs.base import (
    ModelOptions,
    VerbOptions,
    check_not_an_input,
    corpora_from_options,
    load_for,
    option,
    options_provenance,
    split_list,
    stamp_result,
    verb_options,
)

# --------------------------------------------------------------------------------------------
# collect


class Mode(str, Enum):
    """How ``collect`` cuts text into rows: packed rows (LAPE) or one sentence per row (amplification)."""

    packed = "packed"
    sentence = "sentence"


@verb_options("collect")
class CollectOptions(ModelOptions):
    """Options of ``neurospec collect``: activation statistics per language."""

    corpus: list[str] = option([])
    corpus_dir: Path | None = None
    languages: str | None = None
    out: Path
    site: str = "act"
    mode: Mode = Mode.packed
    max_tokens: int | None = option(None, min=1)
    seq_len: int | None = option(None, min=1)
    batch_size: str | int = "auto"
    sample_sentences: int = option(100, min=0)
    no_pack: bool = False
    no_bos: bool = False
    checkpoint_every: int = option(10_000_000, min=1)
    top_contexts: int = option(0, min=0)
    context_neurons: Path | None = None
    context_sample: int = option(0, min=0)
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    text_field: str = "text"
    split: str | None = None
    quiet: bool = False


def is_main_rank() -> bool:
    """``if is_main_rank(): stamp(...)``: true in a single process and in torchrun's rank 0, the one that writes."""
    return os.environ.get("RANK", "0") == "0"


def collection_settings(options: CollectOptions, batch_size: int | None = None):
    """The engine's :class:`neurospec.measure.collect.CollectOptions` of ``options``, checked (``batch_size``: the
    one ``auto`` chose; before the model is loaded, 8 stands in for it)."""
    from neurospec.core.batch_size import parse
    from neurospec.measure import collect as collection

    settings = collection.CollectOptions(
        site=options.site, mode=Mode(options.mode).value, seq_len=options.seq_len, max_tokens=options.max_tokens,
        batch_size=batch_size or parse(options.batch_size) or 8, sample_sentences=options.sample_sentences,
        pack_sentences=not options.no_pack,
        bos=not options.no_bos, checkpoint_every=options.checkpoint_every, top_contexts=options.top_contexts,
        context_neurons=options.context_neurons, context_sample=options.context_sample, seed=options.seed)
    settings.check()
    return settings


def collect(options: CollectOptions, *, lm=None):
    """Activation statistics per language (counts of value > 0, sums, squares, max; per-sentence sample), written
    to ``options.out`` (``--resume`` continues an unfinished folder) and returned
    (:class:`~neurospec.measure.stats.ActivationStats`). Under torchrun every process runs this; rank 0 writes."""
    from neurospec.measure import collect as collection

    with writing(options.out, "neurospec collect"):
        corpora = corpora_from_options(options.corpus, options.corpus_dir, options.languages, options.text_field,
                                       options.split)
        collection_settings(options)   # checked before the model loads
        lm = load_for(options, lm)   # on the GPU of this process's rank under torchrun
        collection.check_length(lm.model, options.seq_len, "--seq-len")
        tokens = options.seq_len or collection.default_seq_len(lm.model, Mode(options.mode).value)
        settings = collection_settings(options, options.batch_for(lm, tokens=tokens))
        stats = collection.collect(lm.model, lm.tokenizer, corpora, options.out, settings, resume=options.resume,
                                   overwrite=options.overwrite, quiet=options.quiet)
        if is_main_rank():
            stamp_result(options.out, "collect", options, lm.model, "stats.json")
    return stats


# --------------------------------------------------------------------------------------------
# What every selection shares


def save_selection(neurons, out: Path, verb: str, options: VerbOptions, model=None):
    """``neurons`` with the provenance of ``verb`` run with ``options`` (on ``model``: a loaded model or a model
    record; None: the model its inputs record), saved to ``out``, with one warning naming any group left without
    neurons; returned."""
    neurons.meta.source = {**neurons.meta.source, "provenance": options_provenance(verb, options, model)}
    neurons.save(out)
    warn_empty_groups(neurons, out)
    return neurons


def warn_empty_groups(neurons, out: Path) -> list[str]:
    """One :class:`EmptyGroupWarning` naming the groups of ``neurons`` (saved at ``out``) left without neurons
    and why; returns those groups (none: no warning)."""
    from neurospec.interventions.targets import empty_reason, summary_reason

    empty = [group for group in neurons.groups if neurons.is_empty(group)]
    if empty:
        reason = summary_reason({group: empty_reason(neurons, group) for group in empty}, "in its meta params")
        warnings.warn(f"{out}: {', '.join(empty)}: {reason}; the evaluation verbs will skip them", EmptyGroupWarning,
                      stacklevel=2)
    return empty


def check_rates(rates: dict[str, float]) -> None:
    """Each ``{flag: value}`` a rate in (0, 1], as LAPE needs, checked before anything is read."""
    for flag, value in rates.items():
        if not 0 < value <= 1:   # NaN fails too
            raise NeurospecError(f"{flag} {value!r} is not a rate in (0, 1]: give a number such as 0.95")


def load_stats(folder: Path):
    """The finished statistics folder ``folder`` (written by ``collect``)."""
    from neurospec.measure.stats import ActivationStats

    return ActivationStats.load(folder)


# --------------------------------------------------------------------------------------------
# select lape / all-active / top-mean / random


@verb_options("select lape")
class SelectLapeOptions(VerbOptions):
    """Options of ``neurospec select lape``: language-specific neurons by activation-probability entropy."""

    stats: Path
    out: Path
    top_rate: float = 0.01
    filter_rate: float = 0.95
    bar_rate: float = 0.95
    top_k: int | None = option(None, min=1)
    languages: str | None = None


def select_lape(options: SelectLapeOptions):
    """LAPE (Tang et al., 2024) on the statistics ``options.stats``: the ``top_rate`` share of neurons (or, with
    ``top_k``, the k per language) of lowest entropy; saved to ``options.out`` and returned (a NeuronSet)."""
    from neurospec.select import lape

    with writing(options.out, "neurospec select lape", file=True):
        check_rates({"--filter-rate": options.filter_rate, "--bar-rate": options.bar_rate,
                     **({} if options.top_k else {"--top-rate": options.top_rate})})
        data, names = load_stats(options.stats), split_list(options.languages, "--languages")
        if options.top_k is not None:
            neurons = lape.select_lape_top_k(data, options.top_k, filter_rate=options.filter_rate,
                                             activation_bar_ratio=options.bar_rate, languages=names)
        else:
            neurons = lape.select_lape(data, top_rate=options.top_rate, filter_rate=options.filter_rate,
                                       activation_bar_ratio=options.bar_rate, languages=names)
        return save_selection(neurons, options.out, "select lape", options)


@verb_options("select all-active")
class SelectAllActiveOptions(VerbOptions):
    """Options of ``neurospec select all-active``."""

    stats: Path
    out: Path
    languages: str | None = None


def select_all_active(options: SelectAllActiveOptions):
    """Neurons whose per-sentence mean is > 0 in every sampled sentence (Rahmanisa et al.'s baseline); saved to
    ``options.out`` and returned."""
    from neurospec.select import baselines

    with writing(options.out, "neurospec select all-active", file=True):
        neurons = baselines.select_active_in_all_sentences(load_stats(options.stats),
                                                           languages=split_list(options.languages, "--languages"))
        return save_selection(neurons, options.out, "select all-active", options)


@verb_options("select top-mean")
class SelectTopMeanOptions(VerbOptions):
    """Options of ``neurospec select top-mean``."""

    stats: Path
    out: Path
    k: int = option(min=1)
    languages: str | None = None


def select_top_mean(options: SelectTopMeanOptions):
    """The ``k`` neurons with the highest mean per-sentence activation, per language; saved to ``options.out`` and
    returned."""
    from neurospec.select import baselines

    with writing(options.out, "neurospec select top-mean", file=True):
        neurons = baselines.select_top_mean(load_stats(options.stats), options.k,
                                            languages=split_list(options.languages, "--languages"))
        return save_selection(neurons, options.out, "select top-mean", options)


@verb_options("select random")
class SelectRandomOptions(VerbOptions):
    """Options of ``neurospec select random``."""

    like: Path
    out: Path
    seed: int = 0
    exclude: bool = False


def select_random(options: SelectRandomOptions):
    """A random set with as many neurons as ``options.like`` in every group, site and layer (``exclude``: none of
    its neurons); saved to ``options.out`` and returned."""
    from neurospec.neurons.neuron_set import NeuronSet
    from neurospec.select import baselines

    with writing(options.out, "neurospec select random", file=True):
        check_not_an_input(options.out, "--out", {"--like": options.like})
        neurons = baselines.select_random(NeuronSet.load(options.like), seed=options.seed, exclude=options.exclude)
        return save_selection(neurons, options.out, "select random", options)


# --------------------------------------------------------------------------------------------
# neurons import


@verb_options("neurons import")
class NeuronsImportOptions(VerbOptions):
    """Options of ``neurospec neurons import``: a LAPE .pth neuron file as a NeuronSet JSON file."""

    file: Path = option(positional=True)
    groups: str
    out: Path
    model: str | None = None
    site: str = "act"
    trust_remote_code: bool = False


def neurons_import(options: NeuronsImportOptions):
    """The LAPE reference file ``options.file`` (list[lang][layer]) with its lists named ``options.groups``,
    checked against ``options.model``'s shape when given (config only); saved to ``options.out`` and returned."""
    from neurospec.neurons.neuron_set import NeuronSet

    with writing(options.out, "neurospec neurons import", file=True):
        shape = None
        if options.model is not None:
            from neurospec.core.models import model_shape

            shape = model_shape(options.model, trust_remote_code=options.trust_remote_code)
        neurons = NeuronSet.from_lape(options.file, split_list(options.groups, "--groups"), site=options.site,
                                      shape=shape)
        return save_selection(neurons, options.out, "neurons import", options,
                              {"id": options.model} if options.model else None)
