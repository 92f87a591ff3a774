"""Intervals and per-group accuracy against independent computations."""

from __future__ import annotations

import math

import pytest
import torch

from neurospec.data.items import MCItem
from neurospec.evaluate.intervals import bootstrap_clustered_mean, bootstrap_mean, wilson
from neurospec.evaluate.mcq import accuracy_by_group
from neurospec.evaluate.scoring import MCPrediction
from neurospec.util.errors import NeurospecError


@pytest.mark.parametrize("k, n", [(41, 60), (0, 12), (12, 12), (250, 1000)])
def test_wilson_solves_the_score_equation(k, n):
    """The interval ends are the roots p of (p_hat - p)^2 = z^2 p (1 - p) / n (Wilson's definition)."""
    z = 1.959963984540054
    p_hat = k / n
    a, b, c = 1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat
    root = math.sqrt(b * b - 4 * a * c)
    low, high = wilson(k, n)
    assert low == pytest.approx((-b - root) / (2 * a), abs=1e-12)
    assert high == pytest.approx((-b + root) / (2 * a), abs=1e-12)
    with pytest.raises(NeurospecError):
        wilson(n + 1, n)


def test_clustered_bootstrap_resamples_whole_clusters():
    values = torch.rand(40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # one row per cluster: the plain bootstrap, draw for draw
    assert bootstrap_clustered_mean(values, list(range(40)), seed=3) == bootstrap_mean(values, seed=3)
    # every value three times in its cluster: the same interval as the clusters' values once
    tripled = values.repeat_interleave(3)
    assert bootstrap_clustered_mean(tripled, [i // 3 for i in range(120)], seed=3) == pytest.approx(
        bootstrap_mean(values, seed=3))
    # ... whereas treating the copies as independent narrows it
    naive = bootstrap_mean(tripled, seed=3)
    assert naive[1] - naive[0] < 0.8 * (bootstrap_mean(values, seed=3)[1] - bootstrap_mean(values, seed=3)[0])
    with pytest.raises(NeurospecError, match="2 cluster labels for 3 values"):
        bootstrap_clustered_mean([1, 2, 3], ["a", "b"])


def test_accuracy_by_group_counts_and_chance():
    def prediction(group, options, chosen, gold):
        item = MCItem("q", tuple(f"o{i}" for i in range(options)), gold, group=group)
        return MCPrediction(tuple(float(i == chosen) for i in range(options)), chosen, gold, item)

    table = accuracy_by_group([prediction("a", 4, 0, 0), prediction("a", 4, 1, 0), prediction("b", 2, 1, 1)])
    assert (table["a"].correct, table["a"].n, table["a"].chance) == (1, 2, 0.25)
    assert (table["all"].correct, table["all"].n) == (2, 3)
    assert table["all"].chance == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    assert table["a"].to_json()["ci95"] == list(wilson(1, 2))
