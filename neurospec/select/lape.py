"""LAPE selection (Tang et al., ACL 2024): language-specific neurons by activation probability entropy.

    from neurospec.select import select_lape, select_lape_top_k
    stats = ActivationStats.load("runs/stats")
    neurons = select_lape(stats)                     # 1% lowest-entropy neurons, each assigned to its languages
    top = select_lape_top_k(stats, 100)              # per language: its 100 lowest-entropy neurons
    neurons.save("lape.json")

The formulas follow the reference ``identify.py`` of RUCAIBox/Language-Specific-Neurons (see
docs/selection.md and METHODS.md section 1): ``p = active / tokens`` in float32; ``q = p / sum_k p``
(0 where the sum is 0); ``LAPE = -sum_k q ln q`` (0 ln 0 = 0); ``tau`` and ``bar`` are torch
``kthvalue`` of all probabilities at 1-indexed ranks ``round(rate * M)`` (Python's half-to-even
round); a neuron with no ``p_k > tau`` has entropy +inf. Ties in entropy go by (layer, index)
ascending. One deviation: +inf neurons are never selected, even when too few finite ones exist.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import torch

from neurospec.core.sites import SITES
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.util.errors import NeurospecError

DEFAULT_TOP_RATE = 0.01
DEFAULT_FILTER_RATE = 0.95
DEFAULT_ACTIVATION_BAR_RATIO = 0.95
TIE_BREAK = "layer, index ascending"
STATS_TENSOR_FILE = "stats.safetensors"


# --------------------------------------------------------------------------------------------
# Checks shared by every selection method


def _check_rate(value: Any, option: str) -> float:
    """A rate in (0, 1], or a NeurospecError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < float(value) <= 1:
        raise NeurospecError(f"{option}={value!r} is not a rate in (0, 1]: give a number such as 0.95.")
    return float(value)


def check_count(value: Any, option: str, limit: int | None = None) -> int:
    """A whole number >= 1 (and <= ``limit`` when given), or a NeurospecError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise NeurospecError(f"{option}={value!r} must be a whole number >= 1.")
    if limit is not None and value > limit:
        raise NeurospecError(f"{option}={value} is larger than the {limit} neurons there are; choose at most {limit}.")
    return int(value)


def rank(rate: float, total: int, option: str) -> int:
    """``rank(0.95, M, "filter_rate")``: the 1-indexed rank ``round(total * rate)`` (half to even), checked.

    The product is formed as the reference forms it (``len(x) * rate``) so the float rounds the same way.
    """
    position = round(total * rate)
    if not 1 <= position <= total:
        raise NeurospecError(
            f"{option}={rate} gives rank round({total} x {rate}) = {position}, outside 1..{total}: "
            f"choose a larger {option} (or use more languages / neurons)."
        )
    return position


def kth_smallest(values: torch.Tensor, position: int) -> float:
    """The ``position``-th smallest (1-indexed) of all of ``values``, as torch ``kthvalue`` gives it."""
    return float(values.flatten().kthvalue(position).values.item())


# --------------------------------------------------------------------------------------------
# Inputs: ActivationStats or a probability tensor


def _check_languages(languages: Sequence[str], count: int, what: str) -> list[str]:
    names = [languages] if isinstance(languages, str) else list(languages)
    if len(names) != count:
        raise NeurospecError(f"{what} has {count} languages but {len(names)} names were given ({names}); give one per row.")
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise NeurospecError(f"languages must be distinct non-empty names, not {names!r}.")
    return names


def stats_languages(stats: Any, languages: Sequence[str] | None) -> list[str]:
    """The languages of ``stats`` to use (its keys, in the order given), all of them by default."""
    if languages is None:
        return list(stats.languages)
    if isinstance(languages, str):
        languages = [languages]
    keys = [stats.languages[stats.index(name)] for name in languages]
    if len(set(keys)) != len(keys) or not keys:
        raise NeurospecError(f"languages={list(languages)!r}: give at least one language, each once.")
    return keys


def _check_probabilities(probs: torch.Tensor, languages: list[str]) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor) or probs.dim() != 3 or probs.dtype.is_complex:
        shape = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise NeurospecError(f"probabilities must be a (languages, layers, neurons) tensor, not {shape}.")
    probs = probs.detach().to("cpu", torch.float32)
    for name, row in zip(languages, probs):
        if torch.isnan(row).any():
            raise NeurospecError(
                f"the probabilities of language {name!r} hold NaN: it saw zero tokens (0/0). "
                "Collect statistics for it, or leave it out with languages=[...]."
            )
        if row.numel() and (float(row.min()) < 0 or float(row.max()) > 1):
            raise NeurospecError(
                f"the probabilities of language {name!r} are not in [0, 1]; pass P(value > 0) = active / tokens."
            )
    return probs


def _stats_probabilities(stats: Any, languages: list[str]) -> torch.Tensor:
    """``stats.probabilities()`` for ``languages``, refusing a language that saw no token."""
    rows = [stats.index(name) for name in languages]
    for name, row in zip(languages, rows):
        if int(stats.tokens[row]) <= 0:
            raise NeurospecError(
                f"language {name!r} has zero tokens in these statistics, so its activation probability is 0/0: "
                "collect text for it, or leave it out with languages=[...]."
            )
    return stats.probabilities()[rows]


def _is_stats(source: Any) -> bool:
    return hasattr(source, "probabilities") and hasattr(source, "languages") and hasattr(source, "tokens")


def _inputs(source: Any, languages: Sequence[str] | None, site: str | None) -> tuple[torch.Tensor, list[str], dict]:
    """(probabilities (G, L, W) float32, language names, meta fields) from stats or a tensor."""
    if _is_stats(source):
        names = stats_languages(source, languages)
        if site is not None and site != source.site:
            raise NeurospecError(f"site={site!r} but these statistics were collected at site {source.site!r}; drop site=.")
        probs = _check_probabilities(_stats_probabilities(source, names), names)
        return probs, names, stats_meta(source)
    if not isinstance(source, torch.Tensor):
        raise NeurospecError(
            f"expected ActivationStats or a (languages, layers, neurons) probability tensor, not {type(source).__name__}."
        )
    if languages is None:
        raise NeurospecError("a probability tensor needs languages=[...], one name per row (the first axis).")
    names = _check_languages(languages, source.shape[0] if source.dim() else 0, "the probability tensor")
    probs = _check_probabilities(source, names)
    site = site or "act"
    if site not in SITES:
        raise NeurospecError(f"unknown site {site!r}; the sites are {', '.join(SITES)}.")
    return probs, names, {"num_layers": probs.shape[1], "widths": {site: probs.shape[2]}, "site": site}


# --------------------------------------------------------------------------------------------
# Building NeuronSets (shared with neurospec.select.baselines)


def stats_meta(stats: Any, files: Sequence[str] = (STATS_TENSOR_FILE,)) -> dict[str, Any]:
    """Meta fields from ``stats``: layers, width, site, model id, and the fingerprint of the files read."""
    model = getattr(stats, "model", None) or {}
    fields: dict[str, Any] = {
        "num_layers": stats.num_layers, "widths": {stats.site: stats.width}, "site": stats.site,
        "model_id": model.get("model_id"),
    }
    recorded = getattr(stats, "files", None) or {}
    prints = {name: recorded[name] for name in files if name in recorded}
    if prints and len(prints) == len(files):
        fields["data_fingerprint"] = _combined_fingerprint(prints)
        if len(prints) > 1:
            fields["data_files"] = prints
    if getattr(stats, "path", None) is not None:
        fields["source"] = {"stats": str(stats.path)}
    return fields


def _combined_fingerprint(prints: Mapping[str, str]) -> str:
    if len(prints) == 1:
        return next(iter(prints.values()))
    text = "\n".join(f"{name}={value}" for name, value in sorted(prints.items()))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def flat_to_layers(flat: torch.Tensor, width: int) -> dict[int, torch.Tensor]:
    """Layer-major flat positions (``layer * width + index``) -> ``{layer: sorted indices}``."""
    flat = torch.sort(flat.to(torch.int64)).values
    layers = torch.div(flat, width, rounding_mode="floor")
    out: dict[int, torch.Tensor] = {}
    for layer in torch.unique(layers).tolist():
        out[int(layer)] = flat[layers == layer] - layer * width
    return out


def build_set(groups: Mapping[str, torch.Tensor], fields: Mapping[str, Any], method: str,
              params: Mapping[str, Any]) -> NeuronSet:
    """A NeuronSet from ``{group: flat positions}`` at ``fields["site"]``, with meta from ``fields``."""
    site, width = fields["site"], fields["widths"][fields["site"]]
    data = {name: {site: flat_to_layers(flat, width)} for name, flat in groups.items()}
    meta = NeuronSetMeta(
        num_layers=int(fields["num_layers"]), widths=dict(fields["widths"]), model_id=fields.get("model_id"),
        method=method, params=dict(params), data_fingerprint=fields.get("data_fingerprint"),
        source=dict(fields.get("source") or {}),
    )
    if fields.get("data_files"):
        meta.params["data_files"] = dict(fields["data_files"])
    return NeuronSet(data, meta)


def stable_order(values: torch.Tensor, *, descending: bool = False) -> torch.Tensor:
    """Flat positions of ``values`` sorted by value, equal values by position (layer, index) ascending."""
    flat = values.flatten()
    return torch.sort(-flat if descending else flat, stable=True).indices


# --------------------------------------------------------------------------------------------
# LAPE


def lape_entropy(probabilities: torch.Tensor, *, filter_rate: float = DEFAULT_FILTER_RATE) -> tuple[torch.Tensor, float]:
    """``entropy, tau = lape_entropy(p)``: LAPE per neuron, (L, W) float32, +inf where no ``p_k > tau``.

    ``probabilities`` is (G, L, W) float32, ``p_k = active / tokens``. ``tau`` is the value at rank
    ``round(filter_rate * M)`` of all M = G*L*W probabilities (1-indexed, ascending).
    """
    filter_rate = _check_rate(filter_rate, "filter_rate")
    probs = probabilities.to(torch.float32)
    if probs.dim() != 3:
        raise NeurospecError(f"probabilities must be (languages, layers, neurons), not of shape {tuple(probs.shape)}.")
    last = probs.permute(1, 2, 0).contiguous()  # (L, W, G): the reference's layout, so sums round alike
    normed = last / last.sum(dim=-1, keepdim=True)
    normed[torch.isnan(normed)] = 0
    logs = torch.where(normed > 0, normed.log(), torch.zeros_like(normed))
    entropy = -torch.sum(normed * logs, dim=-1)
    tau = kth_smallest(probs, rank(filter_rate, probs.numel(), "filter_rate"))
    entropy[(last > tau).sum(dim=-1) == 0] = math.inf
    return entropy, tau


def _check_several(names: list[str]) -> None:
    """LAPE's entropy compares languages: with one, every neuron's entropy is 0 and the choice is the tie-break."""
    if len(names) < 2:
        raise NeurospecError(
            f"LAPE needs at least two languages to compare, got {len(names)} ({', '.join(names)}): give two or more "
            "in languages=, or collect statistics for more languages")


def _assignments(probs: torch.Tensor, chosen: torch.Tensor, bar: float, names: list[str]) -> dict[str, torch.Tensor]:
    """Each language's share of the flat positions ``chosen``: those where its ``p_k > bar``."""
    flat = probs.reshape(probs.shape[0], -1)
    return {name: chosen[flat[k, chosen] > bar] for k, name in enumerate(names)}


def select_lape(
    stats_or_probs: Any,
    *,
    top_rate: float = DEFAULT_TOP_RATE,
    filter_rate: float = DEFAULT_FILTER_RATE,
    activation_bar_ratio: float = DEFAULT_ACTIVATION_BAR_RATIO,
    languages: Sequence[str] | None = None,
    site: str | None = None,
) -> NeuronSet:
    """``select_lape(stats)``: the ``round(top_rate * L * W)`` lowest-LAPE neurons over all layers, each
    assigned to every language whose ``p_k > bar`` (several or none); one group per language.

    ``stats_or_probs`` is an ActivationStats (``languages`` then picks a subset, default all) or a
    (G, L, W) probability tensor with ``languages`` naming its rows (``site`` default ``"act"``).
    Neurons with entropy +inf are never selected, so fewer may be selected than requested.
    """
    top_rate = _check_rate(top_rate, "top_rate")
    filter_rate = _check_rate(filter_rate, "filter_rate")
    bar_ratio = _check_rate(activation_bar_ratio, "activation_bar_ratio")
    probs, names, fields = _inputs(stats_or_probs, languages, site)
    _check_several(names)
    total = probs[0].numel()
    requested = round(total * top_rate)
    if requested < 1:
        raise NeurospecError(
            f"top_rate={top_rate} selects round({total} x {top_rate}) = 0 neurons: choose a larger value."
        )
    entropy, tau = lape_entropy(probs, filter_rate=filter_rate)
    finite = int(torch.isfinite(entropy).sum())
    chosen = stable_order(entropy)[: min(requested, finite)]
    bar = kth_smallest(probs, rank(bar_ratio, probs.numel(), "activation_bar_ratio"))
    groups = _assignments(probs, chosen, bar, names)
    assigned = torch.zeros(total, dtype=torch.bool)
    for flat in groups.values():
        assigned[flat] = True
    params = {
        "top_rate": top_rate, "filter_rate": filter_rate, "activation_bar_ratio": bar_ratio,
        "languages": names, "num_neurons": total, "num_probabilities": probs.numel(),
        "filter_rank": rank(filter_rate, probs.numel(), "filter_rate"), "tau": tau,
        "bar_rank": rank(bar_ratio, probs.numel(), "activation_bar_ratio"), "bar": bar,
        "requested": requested, "finite": finite, "selected": int(chosen.numel()),
        "unassigned": int(chosen.numel() - int(assigned[chosen].sum())),
        "per_language": {name: int(flat.numel()) for name, flat in groups.items()},
        "infinite_never_selected": True, "tie_break": TIE_BREAK,
    }
    return build_set(groups, fields, "lape", params)


def select_lape_top_k(
    stats_or_probs: Any,
    k: int,
    *,
    filter_rate: float = DEFAULT_FILTER_RATE,
    activation_bar_ratio: float = DEFAULT_ACTIVATION_BAR_RATIO,
    languages: Sequence[str] | None = None,
    site: str | None = None,
) -> NeuronSet:
    """``select_lape_top_k(stats, 100)``: per language, the ``k`` neurons with the lowest finite LAPE
    among those with ``p_k > bar``; ties by (layer, index). Groups may overlap; a language with fewer
    than ``k`` candidates gets all of them (counts in ``meta.params["per_language"]``).
    """
    filter_rate = _check_rate(filter_rate, "filter_rate")
    bar_ratio = _check_rate(activation_bar_ratio, "activation_bar_ratio")
    probs, names, fields = _inputs(stats_or_probs, languages, site)
    _check_several(names)
    k = check_count(k, "k", probs[0].numel())
    entropy, tau = lape_entropy(probs, filter_rate=filter_rate)
    bar_position = rank(bar_ratio, probs.numel(), "activation_bar_ratio")
    bar = kth_smallest(probs, bar_position)
    order = stable_order(entropy)
    order = order[torch.isfinite(entropy.flatten()[order])]
    flat = probs.reshape(probs.shape[0], -1)
    groups = {name: order[flat[i, order] > bar][:k] for i, name in enumerate(names)}
    params = {
        "k": k, "filter_rate": filter_rate, "activation_bar_ratio": bar_ratio, "languages": names,
        "num_neurons": entropy.numel(), "num_probabilities": probs.numel(),
        "filter_rank": rank(filter_rate, probs.numel(), "filter_rate"),
        "tau": tau, "bar_rank": bar_position, "bar": bar,
        "per_language": {name: int(g.numel()) for name, g in groups.items()},
        "infinite_never_selected": True, "tie_break": TIE_BREAK,
    }
    return build_set(groups, fields, "lape-top-k", params)
