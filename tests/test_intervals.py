"""Interval functions against independent computations: Wilson against the roots of its defining quadratic and
textbook values, Newcombe's paired interval against its independent-samples form and by coverage, the paired
bootstrap against a brute-force resampling with the same seed and against the normal approximation."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from neurospec.evaluate.intervals import (
    bootstrap_counts,
    bootstrap_mean,
    newcombe_paired,
    newcombe_paired_counts,
    paired_bootstrap,
    percentile_interval,
    wilson,
    wilson_share,
)
from neurospec.util.errors import NeurospecError

Z95 = 1.959963984540054  # the 97.5% normal quantile


def wilson_by_quadratic(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson bounds as the two roots p of (k/n - p)^2 = z^2 p (1 - p) / n."""
    share = k / n
    roots = np.roots([1 + z * z / n, -(2 * share + z * z / n), share * share])
    low, high = sorted(float(r.real) for r in roots)
    return low, high


@pytest.mark.parametrize("k,n", [(0, 10), (1, 29), (15, 148), (81, 263), (7, 7), (3, 4), (50, 100)])
def test_wilson_is_the_root_pair_of_its_quadratic(k, n):
    assert wilson(k, n) == pytest.approx(wilson_by_quadratic(k, n), abs=1e-9)


@pytest.mark.parametrize("k,n,low,high", [  # Newcombe (1998), Statistics in Medicine 17: 857-872, method 3
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_textbook_values(k, n, low, high):
    assert wilson(k, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_keeps_a_width_at_none_and_all():
    assert wilson(0, 10) == pytest.approx((0.0, Z95 ** 2 / (10 + Z95 ** 2)))   # upper 0.2775
    assert wilson(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    # the bound at share 0 or 1 is exactly 0 or 1, not a rounding residue (160 trials left 1.7e-18)
    assert wilson(0, 160)[0] == 0.0 and wilson(160, 160)[1] == 1.0
    low, high = wilson(30, 30)
    assert high == 1.0 and low == pytest.approx(30 / (30 + Z95 ** 2)) and low < 0.9
    assert bootstrap_mean([1.0] * 30) == (1.0, 1.0)  # what a percentile bootstrap gives there
    narrower = wilson(30, 30, confidence=0.5)
    assert low < narrower[0] < 1.0
    assert wilson_share(0.75, 8) == wilson(6, 8)
    with pytest.raises(NeurospecError, match="outside 0..4"):
        wilson(5, 4)
    with pytest.raises(NeurospecError, match="confidence"):
        wilson(1, 4, confidence=95)


def test_newcombe_without_correlation_is_the_independent_square_and_add_form():
    both, first, second, neither = 3, 2, 2, 2   # ad - bc = 2 lies in [0, n/2]: no correlation term
    n = both + first + second + neither
    p1, p2 = (both + first) / n, (both + second) / n
    l1, u1 = wilson(both + first, n)
    l2, u2 = wilson(both + second, n)
    expected = (p1 - p2 - math.hypot(p1 - l1, u2 - p2), p1 - p2 + math.hypot(p2 - l2, u1 - p1))
    assert newcombe_paired_counts(both, first, second, neither) == pytest.approx(expected)


def test_newcombe_counts_the_pairs_and_does_not_collapse():
    first = [1, 1, 0, 1, 0, 1]
    second = [1, 0, 0, 0, 1, 1]
    assert newcombe_paired(first, second) == newcombe_paired_counts(2, 2, 1, 1)
    low, high = newcombe_paired([1] * 30, [1] * 30)   # both always shift: a bootstrap says [0, 0]
    assert low < 0 < high and high == pytest.approx(1 - 30 / (30 + Z95 ** 2))
    low, high = newcombe_paired([1] * 30, [0] * 30)   # one always, the other never: a bootstrap says [1, 1]
    assert 0.7 < low < 1.0 and high == 1.0
    a, b = newcombe_paired(first, second)
    c, d = newcombe_paired(second, first)
    assert (a, b) == pytest.approx((-d, -c))          # swapping the two sides mirrors the interval
    with pytest.raises(NeurospecError, match="as many values"):
        newcombe_paired([1, 0], [1])


def test_newcombe_covers_the_true_paired_difference():
    """Paired 0/1 data with known shares (0.7 and 0.5) and correlated pairs: a 95% interval covers the true
    difference in about 95% of samples."""
    rng = random.Random(0)
    cells = [(1, 1), (1, 0), (0, 1), (0, 0)]
    probabilities = [0.45, 0.25, 0.05, 0.25]           # p1 = 0.7, p2 = 0.5
    covered, trials = 0, 2000
    for _ in range(trials):
        pairs = rng.choices(cells, probabilities, k=40)
        low, high = newcombe_paired([a for a, _ in pairs], [b for _, b in pairs])
        covered += low <= 0.2 <= high
    assert 0.93 <= covered / trials <= 0.975


def test_bootstrap_counts_draw_every_unit_of_each_resample():
    counts = bootstrap_counts(7, 50, torch.Generator().manual_seed(1))
    assert counts.shape == (50, 7) and torch.all(counts.sum(dim=1) == 7) and torch.all(counts >= 0)
    with pytest.raises(NeurospecError, match="at least one unit"):
        bootstrap_counts(0, 5, torch.Generator())


def test_paired_bootstrap_equals_a_brute_force_resampling_with_the_same_seed():
    generator = torch.Generator().manual_seed(5)
    tokens = torch.randint(3, 40, (25,), generator=generator).double()
    base = tokens * (2.0 + torch.rand(25, generator=generator, dtype=torch.float64))
    treated = base + tokens * torch.rand(25, generator=generator, dtype=torch.float64)
    columns = torch.stack([treated, base, tokens], dim=1)

    def change(sums):
        return torch.exp(sums[:, 0] / sums[:, 2]) - torch.exp(sums[:, 1] / sums[:, 2])

    got = paired_bootstrap(columns, change, resamples=400, seed=11)
    picks = torch.randint(0, 25, (400, 25), generator=torch.Generator().manual_seed(11)).numpy()
    t, b, n = treated.numpy(), base.numpy(), tokens.numpy()
    replicates = [math.exp(t[p].sum() / n[p].sum()) - math.exp(b[p].sum() / n[p].sum()) for p in picks]
    assert got == pytest.approx(tuple(np.percentile(replicates, [2.5, 97.5])), rel=1e-12)


def test_paired_bootstrap_agrees_with_the_normal_approximation_and_is_paired():
    generator = torch.Generator().manual_seed(2)
    shared = torch.randn(4000, generator=generator, dtype=torch.float64) * 5    # what both conditions share
    first = shared + 0.3 + torch.randn(4000, generator=generator, dtype=torch.float64)
    second = shared + torch.randn(4000, generator=generator, dtype=torch.float64)
    ones = torch.ones(4000, dtype=torch.float64)
    low, high = paired_bootstrap(torch.stack([first, second, ones], dim=1),
                                 lambda s: (s[:, 0] - s[:, 1]) / s[:, 2], resamples=2000, seed=0)
    difference = (first - second).numpy()
    half = Z95 * difference.std(ddof=1) / math.sqrt(len(difference))
    assert low == pytest.approx(difference.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(difference.mean() + half, abs=0.1 * half)
    assert high - low < 0.3 * 2 * Z95 * 5 * math.sqrt(2 / 4000)   # far narrower than unpaired draws would give


def test_percentile_interval_and_bad_input():
    assert percentile_interval(torch.arange(101, dtype=torch.float64)) == pytest.approx((2.5, 97.5))
    with pytest.raises(NeurospecError, match="units x values"):
        paired_bootstrap([1.0, 2.0], lambda s: s[:, 0])
