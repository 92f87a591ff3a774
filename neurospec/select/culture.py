"""Culture-general and culture-specific neurons (Yamamoto et al., ICLR 2026) from attribution scores.

    from neurospec.measure.attribution import AttributionScores
    from neurospec.select.culture import select_culture_general, select_culture_specific, select_random_pooled
    blend, ctrl, crc = (AttributionScores.load(f"runs/attr/{name}") for name in ("blend", "blend-control", "countryrc"))
    general = select_culture_general(blend, ctrl, crc)          # group "culture-general"
    specific = select_culture_specific(blend, ctrl, crc)        # one group per country (the paper's 8 by default)
    (general | specific).save("culture.json")
    select_random_pooled(general, seeds=range(10)).save("culture-random.json")   # groups "random<seed>:<group>"

Exactly METHODS section 3 (and the reference code's counting):

- Culture-general: ``s(n) = sum_c S_blend(n, c) / N_blend - sum_c S_ctrl(n, c) / N_ctrl`` with N the
  number of scored examples of each run. Per pool (MLP = ``gate_pre``; attention = ``q``, ``k``,
  ``v`` pooled), keep the top ``int(rate * pool size)`` (1% MLP, 0.2% attention) and unite the two;
  then remove every neuron in the top ``int(1% * pool size)`` of its pool by CountryRC score (the
  raw sum over CountryRC's countries).
- Culture-specific, per country c: ``s_c(n) = S_blend(n, c) / N_blend - S_ctrl(n, c) / N_ctrl``
  (normalised by the whole runs' sizes, as the reference does). ``gate_pre`` and ``q``/``k``/``v``
  form one pool: keep the top ``int(0.3% * pool)``, drop the top ``int(1% * pool)`` by c's raw
  CountryRC score, then keep neurons whose z-score of ``s_c`` across all scored countries
  (population standard deviation; z = 0 where it is 0) is at least 0.5.
- "Top" sorts by score, descending; equal scores keep pool order (site order as given, then layer,
  then index). Counts use ``int()`` (floor), not LAPE's ``round``.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping, Sequence

import torch

from neurospec.data.countryrc import CULTURE_COUNTRIES  # the paper's 8 culture-specific countries (BLEnD keys)
from neurospec.data.languages import resolve_country
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.select.baselines import entry_generator
from neurospec.select.lape import flat_to_layers, stable_order
from neurospec.util.errors import NeurospecError

__all__ = [
    "CULTURE_COUNTRIES", "GENERAL_GROUP", "MLP_SITES", "ATTENTION_SITES", "ROLE_DATASETS", "check_roles", "culture_scores",
    "select_culture_general", "select_culture_specific", "select_random_pooled", "top_count",
]

GENERAL_GROUP = "culture-general"
MLP_SITES: tuple[str, ...] = ("gate_pre",)
ATTENTION_SITES: tuple[str, ...] = ("q", "k", "v")
#: The data set (``neurospec attribute --data``) the attribution run of each role is made on.
ROLE_DATASETS = {"blend": "blend", "control": "blend-control", "countryrc": "countryrc"}


def top_count(rate: float, pool: int, option: str) -> int:
    """``int(rate * pool)``: the reference's floor count; ``rate`` must lie in [0, 1]."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise NeurospecError(f"{option}={rate!r} must be a fraction between 0 and 1 (0.01 = 1%)")
    return int(rate * pool)


class _Pool:
    """Several sites' (layers, width) score maps flattened into one vector, and back to neurons."""

    def __init__(self, sites: Sequence[str], num_layers: int, widths: Mapping[str, int]) -> None:
        self.sites = list(sites)
        self.num_layers = num_layers
        self.widths = {s: int(widths[s]) for s in self.sites}
        self.offsets, total = {}, 0
        for site in self.sites:
            self.offsets[site] = total
            total += num_layers * self.widths[site]
        self.size = total

    def flatten(self, maps: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([maps[s].reshape(-1).double() for s in self.sites])

    def to_neurons(self, positions: torch.Tensor) -> dict[str, dict[int, torch.Tensor]]:
        out: dict[str, dict[int, torch.Tensor]] = {}
        for site in self.sites:
            start, end = self.offsets[site], self.offsets[site] + self.num_layers * self.widths[site]
            local = positions[(positions >= start) & (positions < end)] - start
            if local.numel():
                out[site] = flat_to_layers(local, self.widths[site])
        return out

    def top(self, values: torch.Tensor, count: int) -> torch.Tensor:
        return stable_order(values, descending=True)[:count]


def check_roles(blend, control, countryrc, *, options: Mapping[str, str] | None = None) -> None:
    """Refuse attribution runs in the wrong roles: a run whose ``attribution.json`` records another data set than
    its role's (:data:`ROLE_DATASETS`; unchecked where it records none), or one run in two roles. ``options`` names
    the roles in messages (default the argument names; the CLI passes its flags, ``--blend`` ...)."""
    runs = {"blend": blend, "control": control, "countryrc": countryrc}
    names = {role: (options or {}).get(role, role) for role in runs}
    for role, run in runs.items():
        recorded = (getattr(run, "meta", None) or {}).get("dataset")
        dataset = str(recorded).strip().lower().replace("_", "-") if recorded is not None else None
        expected = ROLE_DATASETS[role]
        if dataset is not None and dataset != expected:
            where = f" {run.path}" if getattr(run, "path", None) else ""
            raise NeurospecError(f"{names[role]}{where}: that attribution run was made on {dataset}, not {expected}; "
                                 f"give the run of `neurospec attribute --data {expected}` as {names[role]}")
    seen: dict[Any, str] = {}
    for role, run in runs.items():
        path = getattr(run, "path", None)
        key = os.path.realpath(path) if path else id(run)
        if key in seen:
            where = f" ({path})" if path else ""
            raise NeurospecError(f"{names[seen[key]]} and {names[role]} name the same attribution run{where}: each role "
                                 "needs its own run (attribute --data blend, blend-control and countryrc)")
        seen[key] = role


def _check_sites(runs: Mapping[str, Any], sites: Iterable[str]) -> None:
    for name, run in runs.items():
        missing = [s for s in sites if s not in run.scores]
        if missing:
            raise NeurospecError(f"the {name} attribution has no scores at site(s) {missing} (it has {list(run.scores)}); "
                                 f"attribute with sites including {', '.join(sites)}")
    shapes = {name: {s: tuple(run.scores[s].shape[1:]) for s in sites} for name, run in runs.items()}
    if len({tuple(sorted(v.items())) for v in shapes.values()}) > 1:
        raise NeurospecError(f"the attribution runs were made on different models (layer x width per site: {shapes})")


def _group_key(name: str, groups: Sequence[str], run: str) -> str:
    """``name`` as the run spells it: exact, else the BLEnD key of the country it names."""
    if name in groups:
        return name
    try:
        key = resolve_country(name).key
    except NeurospecError:
        key = None
    if key in groups:
        return key
    raise NeurospecError(f"country {name!r} is not in the {run} attribution (its groups: {', '.join(groups)}); "
                         "attribute that country's items too, or leave it out of countries=")


def culture_scores(blend, control, site: str, country: str | None = None) -> torch.Tensor:
    """(layers, width): ``s(n)`` (country None) or ``s_c(n)``: blend minus control, each over its run's size."""
    if blend.num_examples == 0 or control.num_examples == 0:
        raise NeurospecError("an attribution run with no examples cannot be normalised; check the data")
    if country is None:
        return blend.sum(site) / blend.num_examples - control.sum(site) / control.num_examples
    return (blend.sum(site, _group_key(country, blend.groups, "BLEnD")) / blend.num_examples
            - control.sum(site, _group_key(country, control.groups, "control")) / control.num_examples)


def _meta(runs: Mapping[str, Any], method: str, params: dict, sites: Sequence[str]) -> NeuronSetMeta:
    blend = runs["blend"]
    params["examples"] = {name: run.num_examples for name, run in runs.items()}
    return NeuronSetMeta(num_layers=blend.num_layers, widths={s: blend.width(s) for s in sites},
                         model_id=(blend.meta.get("model") or {}).get("model_id"), method=method, params=params,
                         source={"attribution": {name: str(run.path) if run.path else None for name, run in runs.items()}})


def select_culture_general(blend, control, countryrc, *, mlp_sites: Sequence[str] = MLP_SITES,
                           attention_sites: Sequence[str] = ATTENTION_SITES, mlp_rate: float = 0.01,
                           attention_rate: float = 0.002, countryrc_rate: float = 0.01,
                           attention_countryrc_rate: float | None = None, name: str = GENERAL_GROUP) -> NeuronSet:
    """Culture-general neurons (one group, ``name``); see the module docstring. Rates are fractions."""
    countryrc_attention = countryrc_rate if attention_countryrc_rate is None else attention_countryrc_rate
    pools = [("mlp", list(mlp_sites), mlp_rate, countryrc_rate), ("attention", list(attention_sites), attention_rate,
                                                                     countryrc_attention)]
    all_sites = [s for _, sites, _, _ in pools for s in sites]
    if not all_sites:
        raise NeurospecError("no sites to select from: give mlp_sites and/or attention_sites")
    check_roles(blend, control, countryrc)
    _check_sites({"BLEnD": blend, "control": control, "CountryRC": countryrc}, all_sites)
    data: dict[str, dict[int, torch.Tensor]] = {}
    report: dict[str, Any] = {}
    for label, sites, rate, crc_rate in pools:
        if not sites:
            continue
        pool = _Pool(sites, blend.num_layers, {s: blend.width(s) for s in sites})
        score = pool.flatten({s: culture_scores(blend, control, s) for s in sites})
        kept = pool.top(score, top_count(rate, pool.size, f"{label}_rate"))
        crc = pool.flatten({s: countryrc.sum(s) for s in sites})
        removed = pool.top(crc, top_count(crc_rate, pool.size, f"{label} countryrc_rate"))
        final = kept[~torch.isin(kept, removed)]
        data.update(pool.to_neurons(final))
        report[label] = {"sites": sites, "pool": pool.size, "top": int(kept.numel()), "countryrc_top": int(removed.numel()),
                         "removed_by_countryrc": int(kept.numel() - final.numel()), "kept": int(final.numel())}
    params = {"mlp_rate": mlp_rate, "attention_rate": attention_rate, "countryrc_rate": countryrc_rate,
              "attention_countryrc_rate": countryrc_attention, "mlp_sites": list(mlp_sites),
              "attention_sites": list(attention_sites), "counts": report}
    runs = {"blend": blend, "control": control, "countryrc": countryrc}
    return NeuronSet({name: data}, _meta(runs, "culture-general", params, all_sites))


def select_culture_specific(blend, control, countryrc, *, countries: Sequence[str] | None = CULTURE_COUNTRIES,
                            sites: Sequence[str] = MLP_SITES + ATTENTION_SITES, rate: float = 0.003,
                            countryrc_rate: float = 0.01, z_threshold: float = 0.5) -> NeuronSet:
    """Culture-specific neurons, one group per country (BLEnD keys); ``countries=None`` = every BLEnD group."""
    sites = list(sites)
    check_roles(blend, control, countryrc)
    if isinstance(z_threshold, bool) or not isinstance(z_threshold, (int, float)) or not math.isfinite(z_threshold):
        raise NeurospecError(f"z_threshold={z_threshold!r} must be a finite number (the paper's: 0.5)")
    _check_sites({"BLEnD": blend, "control": control, "CountryRC": countryrc}, sites)
    chosen = list(blend.groups) if countries is None else [_group_key(c, blend.groups, "BLEnD") for c in countries]
    if not chosen:
        raise NeurospecError("countries= is empty: name at least one country")
    pool = _Pool(sites, blend.num_layers, {s: blend.width(s) for s in sites})
    every = torch.stack([pool.flatten({s: culture_scores(blend, control, s, g) for s in sites}) for g in blend.groups])
    mean, std = every.mean(0), every.std(0, unbiased=False)
    keep_count = top_count(rate, pool.size, "rate")
    crc_count = top_count(countryrc_rate, pool.size, "countryrc_rate")
    data, report = {}, {}
    for country in chosen:
        score = every[blend.groups.index(country)]
        top = pool.top(score, keep_count)
        crc = pool.flatten({s: countryrc.sum(s, _group_key(country, countryrc.groups, "CountryRC")) for s in sites})
        removed = pool.top(crc, crc_count)
        survivors = top[~torch.isin(top, removed)]
        z = torch.where(std[survivors] > 0, (score[survivors] - mean[survivors]) / std[survivors].clamp_min(1e-300),
                        torch.zeros_like(score[survivors]))
        final = survivors[z >= z_threshold]
        data[country] = pool.to_neurons(final)
        report[country] = {"top": int(top.numel()), "removed_by_countryrc": int(top.numel() - survivors.numel()),
                           "below_z": int(survivors.numel() - final.numel()), "kept": int(final.numel())}
    params = {"rate": rate, "countryrc_rate": countryrc_rate, "z_threshold": z_threshold, "sites": sites,
              "pool": pool.size, "z_over": list(blend.groups), "counts": report}
    runs = {"blend": blend, "control": control, "countryrc": countryrc}
    return NeuronSet(data, _meta(runs, "culture-specific", params, sites))


def select_random_pooled(like: NeuronSet, *, seeds: Iterable[int] = range(10), sites: Sequence[str] | None = None,
                         widths: Mapping[str, int] | None = None, prefix: str = "random") -> NeuronSet:
    """Per group and seed, as many neurons as ``like`` has, drawn uniformly from the pooled ``sites``.

    The reference's baseline: the candidates are every neuron of the pooled sites (default: the
    group's own sites) in every layer, so the draw is not matched per layer or site. Groups are named
    ``f"{prefix}{seed}:{group}"``; each (seed, group) has its own generator.
    """
    sizes = dict(like.meta.widths)
    sizes.update(widths or {})
    data: dict[str, dict[str, dict[int, torch.Tensor]]] = {}
    seeds = list(seeds)
    if not seeds:
        raise NeurospecError("seeds= is empty: give at least one seed")
    for group in like.groups:
        pooled = list(sites) if sites is not None else list(like.sites(group)) or list(MLP_SITES + ATTENTION_SITES)
        missing = [s for s in pooled if s not in sizes]
        if missing:
            raise NeurospecError(f"unknown width of site(s) {missing}: pass widths= (or a neuron set whose meta has them)")
        pool = _Pool(pooled, like.num_layers, sizes)
        count = like.count(group)
        for seed in seeds:
            generator = entry_generator(int(seed), group, "+".join(pooled), -1)
            drawn = torch.randperm(pool.size, generator=generator)[:count]
            data[f"{prefix}{seed}:{group}"] = pool.to_neurons(drawn)
    params = {"seeds": seeds, "matched": "count per group, uniform over the pooled sites of every layer",
              "source_method": like.meta.method}
    meta = NeuronSetMeta(num_layers=like.num_layers, widths=sizes, model_id=like.meta.model_id, method="random-pooled",
                         params=params, source={"file": str(like.path)} if like.path else {})
    return NeuronSet(data, meta)
