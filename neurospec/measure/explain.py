"""Why a neuron was selected: its activation probability per language, its groups and its top contexts.

    from neurospec.measure.explain import explain_neurons
    explained = explain_neurons("lape.json", "runs/stats", ["fr"], limit=5, contexts=3)
    explained["neurons"][0]["probability"]["fra_Latn"], explained["neurons"][0]["contexts"]["fra_Latn"][0]["token"]

The neurons of each chosen group at the statistics' site, in layer order, the first ``limit`` of each group;
contexts come from ``collect --top-contexts K`` (:mod:`neurospec.measure.contexts`), none when the folder keeps
none (``has_contexts`` False).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from neurospec.util.errors import NeurospecError


def explain_neurons(neurons: str | Path, stats: str | Path, groups: Sequence[str] | None = None, *, limit: int = 5,
                    contexts: int = 3) -> dict[str, Any]:
    """``{"languages": [...], "has_contexts": bool, "neurons": [{group, site, layer, neuron, groups, probability:
    {language: P(>0)}, contexts: {language: [{value, token, left, right}]}}]}`` (see the module docstring)."""
    from neurospec.measure.contexts import TopContexts
    from neurospec.measure.stats import ActivationStats
    from neurospec.neurons.neuron_set import NeuronSet

    statistics = ActivationStats.load(stats)
    neuron_set = NeuronSet.load(neurons)
    if neuron_set.num_layers != statistics.num_layers:
        raise NeurospecError(f"{neurons} has {neuron_set.num_layers} layers, the statistics in {stats} "
                             f"{statistics.num_layers}: give the statistics of the same model")
    chosen = [neuron_set.group_name(g) for g in groups] if groups else list(neuron_set.groups)
    members = {g: {(layer, int(i)) for _, site, layer, idx in neuron_set.entries([g]) if site == statistics.site
                   for i in idx.tolist()} for g in neuron_set.groups}
    top = TopContexts.load(stats) if contexts and statistics.context_files else None
    probabilities = statistics.probabilities()
    explained = []
    for group in chosen:
        for layer, neuron in sorted(members[group])[:limit]:
            explained.append({
                "group": group, "site": statistics.site, "layer": layer, "neuron": neuron,
                "groups": [g for g in neuron_set.groups if (layer, neuron) in members[g]],
                "probability": {lang: float(probabilities[g, layer, neuron])
                                for g, lang in enumerate(statistics.languages)},
                "contexts": {lang: [{"value": c.value, "token": c.token, "left": c.left, "right": c.right}
                                    for c in top.neuron(lang, layer, neuron)[:contexts]]
                             for lang in top.languages} if top is not None else {}})
    return {"languages": list(statistics.languages), "has_contexts": top is not None, "neurons": explained}
