"""Neuron selection: LAPE (Tang et al., 2024), raw-activation baselines (Rahmanisa et al., 2025), random controls.

    from neurospec.select import select_lape, select_random
    stats = ActivationStats.load("runs/stats")
    lape = select_lape(stats, top_rate=0.01)          # NeuronSet: one group per language
    select_random(lape, seed=0).save("random.json")   # size-matched control

See docs/selection.md for every formula, default and edge rule.
"""

from neurospec.select.baselines import (
    select_active_in_all_sentences,
    select_random,
    select_top_mean,
)
from neurospec.select.lape import (
    DEFAULT_ACTIVATION_BAR_RATIO,
    DEFAULT_FILTER_RATE,
    DEFAULT_TOP_RATE,
    lape_entropy,
    select_lape,
    select_lape_top_k,
)

__all__ = [
    "DEFAULT_ACTIVATION_BAR_RATIO", "DEFAULT_FILTER_RATE", "DEFAULT_TOP_RATE", "lape_entropy",
    "select_active_in_all_sentences", "select_lape", "select_lape_top_k", "select_random", "select_top_mean",
]
