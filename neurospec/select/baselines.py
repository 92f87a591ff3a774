"""Baseline selections: raw-activation sets (Rahmanisa et al., 2025) and size-matched random controls.

    from neurospec.select import select_active_in_all_sentences, select_top_mean, select_random
    active = select_active_in_all_sentences(stats)   # neurons > 0 in every sampled sentence, per language
    top = select_top_mean(stats, 1000)                # per language, the 1000 highest mean activations
    control = select_random(lape, seed=0)             # same count per (group, site, layer) as ``lape``

The raw-activation methods read the per-sentence sample ``stats.sentence_means(language)``, (K, L, W):
the mean activation of every neuron over each of the first K sentences (collect with ``--mode
sentence --sample-sentences K``). They correspond to ``get_k_lang_actv_dict`` of tauimbz/lang-task-neuron
(``raw_act_neurons.py``), methods "default" (here "all-active") and "topk" (here "top-mean").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from neurospec.core.sites import SITES
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.select.lape import (
    TIE_BREAK,
    build_set,
    check_count,
    stable_order,
    stats_languages,
    stats_meta,
)
from neurospec.util.errors import NeurospecError

SAMPLE_DIR = "sample"


# --------------------------------------------------------------------------------------------
# Raw-activation baselines


def _sample(stats: Any, language: str) -> torch.Tensor:
    """The (K, L, W) per-sentence means of ``language``, checked for shape and NaN."""
    means = stats.sentence_means(language)
    expected = (stats.num_layers, stats.width)
    if means.dim() != 3 or tuple(means.shape[1:]) != expected or means.shape[0] < 1:
        raise NeurospecError(
            f"the per-sentence sample of {language!r} has shape {tuple(means.shape)}, not (K >= 1, {expected[0]}, "
            f"{expected[1]}): collect the statistics again with --sample-sentences K > 0."
        )
    if torch.isnan(means).any():
        raise NeurospecError(f"the per-sentence sample of {language!r} holds NaN (an empty sentence?); collect it again.")
    return means


def _sample_fields(stats: Any, names: list[str]) -> dict[str, Any]:
    return stats_meta(stats, files=[f"{SAMPLE_DIR}/{name}.safetensors" for name in names])


def select_active_in_all_sentences(stats: Any, *, languages: Sequence[str] | None = None) -> NeuronSet:
    """``select_active_in_all_sentences(stats)``: per language, the neurons whose per-sentence mean is
    > 0 in EVERY sampled sentence of that language (method ``"all-active"``)."""
    names = stats_languages(stats, languages)
    groups, sentences = {}, {}
    for name in names:
        means = _sample(stats, name)
        sentences[name] = int(means.shape[0])
        groups[name] = torch.nonzero((means > 0).all(dim=0).flatten()).flatten()
    params = {
        "languages": names, "statistic": "per-sentence mean", "rule": "> 0 in every sampled sentence",
        "sentences": sentences, "per_language": {name: int(g.numel()) for name, g in groups.items()},
    }
    return build_set(groups, _sample_fields(stats, names), "all-active", params)


def select_top_mean(stats: Any, k: int, *, languages: Sequence[str] | None = None) -> NeuronSet:
    """``select_top_mean(stats, 1000)``: per language, the ``k`` neurons (over all layers) with the highest
    mean of the per-sentence means, computed in float64; ties by (layer, index) (method ``"top-mean"``)."""
    names = stats_languages(stats, languages)
    k = check_count(k, "k", stats.num_layers * stats.width)
    groups, sentences = {}, {}
    for name in names:
        means = _sample(stats, name)
        sentences[name] = int(means.shape[0])
        groups[name] = stable_order(means.to(torch.float64).mean(dim=0), descending=True)[:k]
    params = {
        "k": k, "languages": names, "statistic": "mean over sentences of the per-sentence mean (float64)",
        "sentences": sentences, "tie_break": TIE_BREAK,
    }
    return build_set(groups, _sample_fields(stats, names), "top-mean", params)


# --------------------------------------------------------------------------------------------
# Random controls


def _shape_widths(shape: Any) -> dict[str, int]:
    """Site widths of a ModelShape, a SiteMap or a loaded model (anything with ``widths`` or ``.shape.widths``)."""
    for candidate in (shape, getattr(shape, "shape", None), getattr(getattr(shape, "sites", None), "shape", None)):
        widths = getattr(candidate, "widths", None)
        if isinstance(widths, Mapping):
            return dict(widths)
    raise NeurospecError(f"shape= must be a ModelShape or a SiteMap, not {type(shape).__name__}.")


def _widths(like: NeuronSet, widths: Mapping[str, int] | None, shape: Any) -> dict[str, int]:
    """The width of every site ``like`` uses: from its meta, then ``shape``, then ``widths``."""
    known = {**like.meta.widths, **(_shape_widths(shape) if shape is not None else {}), **dict(widths or {})}
    used = [s for s in SITES if any(s in like.sites(g) for g in like.groups)]
    for site in used:
        if site not in known:
            raise NeurospecError(
                f"the width of site {site!r} is unknown (the neuron set's meta does not record it): "
                f"pass widths={{'{site}': W}} or shape=lm.sites."
            )
        if isinstance(known[site], bool) or not isinstance(known[site], int) or known[site] < 1:
            raise NeurospecError(f"widths[{site!r}]={known[site]!r} must be a positive integer.")
    return {site: int(known[site]) for site in SITES if site in known}


def entry_generator(seed: int, group: str, site: str, layer: int) -> torch.Generator:
    """A generator seeded from (seed, group, site, layer): each draw is independent of the other groups."""
    digest = hashlib.sha256(f"{seed}\0{group}\0{site}\0{layer}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _draw(count: int, pool: torch.Tensor, generator: torch.Generator, where: str) -> torch.Tensor:
    if count > pool.numel():
        raise NeurospecError(
            f"{where}: {count} neurons are needed but only {pool.numel()} are available outside the source set; "
            "use exclude=False."
        )
    return pool[torch.randperm(pool.numel(), generator=generator)[:count]]


def select_random(
    like: NeuronSet,
    *,
    seed: int = 0,
    widths: Mapping[str, int] | None = None,
    shape: Any = None,
    exclude: bool = False,
) -> NeuronSet:
    """``select_random(lape, seed=1)``: a random set with as many neurons as ``like`` in each
    (group, site, layer), drawn uniformly without replacement from that layer's width.

    Deterministic for a seed: each (group, site, layer) draws from its own generator seeded from
    (seed, group, site, layer). ``exclude=True`` draws only from neurons in none of ``like``'s groups
    at that (site, layer). Widths come from ``like.meta.widths``, ``shape`` or ``widths``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise NeurospecError(f"seed={seed!r} must be an integer.")
    sizes = _widths(like, widths, shape)
    unions = {site: like.layer_indices(None, site) for site in sizes} if exclude else {}
    data: dict[str, dict[str, dict[int, torch.Tensor]]] = {name: {} for name in like.groups}
    for group, site, layer, indices in like.entries():
        pool = torch.arange(sizes[site], dtype=torch.int64)
        if exclude:
            pool = pool[~torch.isin(pool, unions[site][layer])]
        where = f"group {group!r}, site {site!r}, layer {layer}"
        data[group].setdefault(site, {})[layer] = _draw(indices.numel(), pool, entry_generator(seed, group, site, layer), where)
    params = {
        "seed": seed, "exclude": bool(exclude), "matched": "count per (group, site, layer)",
        "source_method": like.meta.method, "source_params": like.meta.params,
    }
    meta = NeuronSetMeta(
        num_layers=like.num_layers, widths=sizes, model_id=like.meta.model_id, method="random", params=params,
        source={"file": str(like.path)} if like.path else {},
    )
    return NeuronSet(data, meta)
