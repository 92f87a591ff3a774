"""Why a neuron was selected: its activation probability per language, its groups and its top contexts.

    from neurospec.measure.explain import explain_group, explain_neurons
    explained = explain_neurons("lape.json", "runs/stats", ["fr"], limit=5, contexts=3)
    explained["neurons"][0]["probability"]["fra_Latn"], explained["neurons"][0]["contexts"]["fra_Latn"][0]["token"]
    group = explain_group("lape.json", "runs/stats", "fr", top_tokens=10)
    group["languages"][0]     # {"language": "fra_Latn", "probability": 0.41, "top_for": 37}: the one it fires on most
    group["tokens"]["fra_Latn"][0]   # {"token": " le", "count": 12}

The neurons of each chosen group at the statistics' site, in layer order, the first ``limit`` of each group;
contexts come from ``collect --top-contexts K`` (:mod:`neurospec.measure.contexts`), none when the folder keeps
none (``has_contexts`` False). A group as a whole (:func:`explain_group`): the mean over its neurons at the site of
P(value > 0) per language, largest first, with the number of its neurons whose largest P is in that language
(``top_for``); and its top tokens per language: the marked tokens of its neurons' kept contexts, most frequent
first (equal counts: the token first met in layer, neuron, rank order).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from neurospec.util.errors import NeurospecError

if TYPE_CHECKING:
    from neurospec.measure.contexts import Context, TopContexts
    from neurospec.measure.stats import ActivationStats
    from neurospec.neurons.neuron_set import NeuronSet


def explain_neurons(neurons: str | Path, stats: str | Path, groups: Sequence[str] | None = None, *, limit: int = 5,
                    contexts: int = 3) -> dict[str, Any]:
    """``{"languages": [...], "has_contexts": bool, "neurons": [{group, site, layer, neuron, groups, probability:
    {language: P(>0)}, contexts: {language: [{value, token, left, right}]}}]}`` (see the module docstring)."""
    from neurospec.measure.contexts import TopContexts
    from neurospec.measure.stats import ActivationStats
    from neurospec.neurons.neuron_set import NeuronSet

    statistics = ActivationStats.load(stats)
    neuron_set = NeuronSet.load(neurons)
    check_same_model(neuron_set, statistics, neurons, stats)
    chosen = [neuron_set.group_name(g) for g in groups] if groups else list(neuron_set.groups)
    members = group_members(neuron_set, statistics.site)
    member_sets = {g: set(found) for g, found in members.items()}
    top = TopContexts.load(stats) if contexts and statistics.context_files else None
    probabilities = statistics.probabilities()
    explained = []
    for group in chosen:
        for layer, neuron in members[group][:limit]:
            explained.append({
                "group": group, "site": statistics.site, "layer": layer, "neuron": neuron,
                "groups": [g for g in neuron_set.groups if (layer, neuron) in member_sets[g]],
                "probability": {lang: float(probabilities[g, layer, neuron])
                                for g, lang in enumerate(statistics.languages)},
                "contexts": {lang: [{"value": c.value, "token": c.token, "left": c.left, "right": c.right}
                                    for c in top.neuron(lang, layer, neuron)[:contexts]]
                             for lang in top.languages} if top is not None else {}})
    return {"languages": list(statistics.languages), "has_contexts": top is not None, "neurons": explained}


def explain_group(neurons: "str | Path | NeuronSet", stats: "str | Path | ActivationStats", group: str,
                  top_tokens: int = 10, *, contexts: "TopContexts | RememberedContexts | None" = None) -> dict[str, Any]:
    """``explain_group("lape.json", "runs/stats", "fr")`` -> ``{"group", "site", "neurons": count at the site,
    "languages": [{"language", "probability", "top_for"}] (largest mean first), "has_contexts", "tokens":
    {language: [{"token", "count"}]}}`` (see the module docstring). ``neurons`` and ``stats`` may be loaded already,
    and ``contexts`` the folder's :class:`TopContexts` (read from ``stats`` when None and it keeps some)."""
    from neurospec.measure.contexts import TopContexts
    from neurospec.measure.stats import ActivationStats
    from neurospec.neurons.neuron_set import NeuronSet

    statistics = stats if isinstance(stats, ActivationStats) else ActivationStats.load(stats)
    neuron_set = neurons if isinstance(neurons, NeuronSet) else NeuronSet.load(neurons)
    check_same_model(neuron_set, statistics, neurons, stats)
    name = neuron_set.group_name(group)
    members = group_members(neuron_set, statistics.site)[name]
    if contexts is None and statistics.context_files and statistics.path is not None:
        contexts = TopContexts.load(statistics.path)
    return {"group": name, "site": statistics.site, "neurons": len(members),
            "languages": language_summary(statistics, members), "has_contexts": contexts is not None,
            "tokens": top_tokens_of(contexts, members, top_tokens) if contexts is not None else {}}


def check_same_model(neuron_set: "NeuronSet", statistics: "ActivationStats", neurons: object, stats: object) -> None:
    """Raise unless the neuron set and the statistics have the same number of layers."""
    if neuron_set.num_layers != statistics.num_layers:
        raise NeurospecError(f"{neurons} has {neuron_set.num_layers} layers, the statistics in {stats} "
                             f"{statistics.num_layers}: give the statistics of the same model")


def group_members(neuron_set: "NeuronSet", site: str) -> dict[str, list[tuple[int, int]]]:
    """``{group: [(layer, neuron), ...]}``: each group's neurons at ``site``, in layer order."""
    return {group: sorted({(layer, int(i)) for _, at, layer, idx in neuron_set.entries([group]) if at == site
                           for i in idx.tolist()}) for group in neuron_set.groups}


def language_summary(statistics: "ActivationStats", members: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
    """Per language the mean P(value > 0) over ``members`` and how many of them have their largest P there, largest
    mean first (equal means: the statistics' order); means are 0.0 for no members."""
    import torch

    languages = statistics.languages
    if not members:
        return [{"language": lang, "probability": 0.0, "top_for": 0} for lang in languages]
    layers = torch.tensor([layer for layer, _ in members])
    indices = torch.tensor([neuron for _, neuron in members])
    chosen = statistics.probabilities()[:, layers, indices].to(torch.float64)  # (G, N)
    means = chosen.mean(dim=1).tolist()
    tops = Counter(chosen.argmax(dim=0).tolist())  # the first language of equal largest values
    rows = [{"language": lang, "probability": float(means[g]), "top_for": int(tops.get(g, 0))}
            for g, lang in enumerate(languages)]
    return sorted(rows, key=lambda row: -row["probability"])


def top_tokens_of(contexts: "TopContexts | RememberedContexts", members: Sequence[tuple[int, int]],
                  limit: int) -> dict[str, list[dict[str, Any]]]:
    """Per language the ``limit`` most frequent marked tokens among the kept contexts of ``members``."""
    found = {}
    for language in contexts.languages:
        counts = Counter(context.token for layer, neuron in members
                         for context in contexts.neuron(language, layer, neuron))
        found[language] = [{"token": token, "count": count} for token, count in counts.most_common(limit)]
    return found


class RememberedContexts:
    """``RememberedContexts(TopContexts.load(folder))``: the same ``languages`` and ``neuron(...)``, each neuron's
    contexts decoded once (a page and its group's header read the same ones)."""

    def __init__(self, contexts: "TopContexts") -> None:
        self.contexts = contexts
        self.languages = list(contexts.languages)
        self.seen: dict[tuple[str, int, int], list[Context]] = {}

    def neuron(self, language: str, layer: int, neuron: int) -> "list[Context]":
        key = (language, layer, neuron)
        if key not in self.seen:
            self.seen[key] = self.contexts.neuron(language, layer, neuron)
        return self.seen[key]


def explain_culture_neurons(neurons: str | Path, attribution_run: str | Path, groups: Sequence[str] | None = None, *,
                            limit: int = 5, items: int = 3) -> dict[str, Any]:
    """``explain_culture_neurons("culture.json", "runs/attr/blend", ["China"], limit=5, items=3)`` -> ``{"countries":
    [...], "has_top_items": bool, "neurons": [{group, site, layer, neuron, groups, score: {country: S(n, c) / examples
    of c}, items: {country: [{score, item_id, question, template}]}}]}``.

    The neurons of each chosen group of the set (culture-specific or -general, from ``select culture``), in (layer,
    site, neuron) order, the first ``limit`` of each; their mean attribution score per example of each country of
    the run (its BLEnD run), and the ``items`` top-scoring items per country the run kept (``attribute --top-items
    K``; none when it keeps none: ``has_top_items`` False)."""
    from neurospec.measure.attribution import AttributionScores
    from neurospec.measure.top_items import TopItems
    from neurospec.neurons.neuron_set import NeuronSet

    scores = AttributionScores.load(attribution_run)
    neuron_set = NeuronSet.load(neurons)
    if neuron_set.num_layers != scores.num_layers:
        raise NeurospecError(f"{neurons} has {neuron_set.num_layers} layers, the attribution run {attribution_run} "
                             f"{scores.num_layers}: give the attribution run of the same model")
    for site, width in (neuron_set.meta.widths or {}).items():
        if site in scores.sites and width != scores.width(site):
            raise NeurospecError(f"{neurons} has {width} neurons at site {site!r}, the attribution run "
                                 f"{attribution_run} {scores.width(site)}: give the attribution run of the same model")
    members = culture_members(neuron_set, scores.sites, attribution_run)
    member_sets = {g: set(found) for g, found in members.items()}
    chosen = [neuron_set.group_name(g) for g in groups] if groups else list(neuron_set.groups)
    top = TopItems.load(attribution_run) if items and scores.meta.get("top_items") else None
    counts = dict(zip(scores.groups, scores.counts.tolist()))
    explained = []
    for group in chosen:
        for layer, site, neuron in members[group][:limit]:
            explained.append({
                "group": group, "site": site, "layer": layer, "neuron": neuron,
                "groups": [g for g in neuron_set.groups if (layer, site, neuron) in member_sets[g]],
                "score": {c: (float(scores.scores[site][i, layer, neuron]) / counts[c] if counts[c] else None)
                          for i, c in enumerate(scores.groups)},
                "items": {c: [{"score": found.score, "item_id": found.item_id, "question": found.question,
                               "template": found.template} for found in top.neuron(c, layer, neuron, site)[:items]]
                          for c in top.groups} if top is not None else {}})
    return {"countries": list(scores.groups), "has_top_items": top is not None, "neurons": explained}


def culture_members(neuron_set: "NeuronSet", sites: Sequence[str], run: object) -> dict[str, list[tuple[int, str, int]]]:
    """``{group: [(layer, site, neuron), ...]}`` in that order; a neuron at a site the run did not score is refused."""
    found: dict[str, set[tuple[int, str, int]]] = {group: set() for group in neuron_set.groups}
    for group, site, layer, idx in neuron_set.entries():
        if site not in sites:
            raise NeurospecError(f"group {group!r} has neurons at site {site!r}, which the attribution run {run} did "
                                 f"not score (scored: {', '.join(sites)}); give the run the set was selected from")
        found[group].update((layer, site, int(i)) for i in idx.tolist())
    return {group: sorted(members) for group, members in found.items()}
