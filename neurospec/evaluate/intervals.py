"""Confidence intervals: shares (Wilson), paired shares (Newcombe), and seeded bootstraps (plain, clustered, paired).

    from neurospec.evaluate.intervals import wilson, newcombe_paired, paired_bootstrap, bootstrap_clustered_mean
    low, high = wilson(successes=41, trials=60)          # 95% Wilson score interval; never collapses at 0 or 1
    low, high = newcombe_paired(ours, theirs)            # the share difference of two 0/1 vectors on the same items
    low, high = paired_bootstrap(columns, lambda s: (s[:, 0] - s[:, 1]) / s[:, 2])   # units resampled together
    low, high = bootstrap_clustered_mean(values, clusters=item_ids)   # rows of one item resampled together

Which interval where: a share of independent trials (k of n) gets Wilson's score interval, which stays
inside [0, 1] and keeps a width at k = 0 and k = n (a percentile bootstrap of 0/1 values collapses there to
[0, 0] or [1, 1]); the difference of two shares measured on the same items gets Newcombe's hybrid score
interval for paired data (method 10 of Newcombe 1998, with its correlation correction), which does not
collapse either; a statistic of sums over units (texts, items) gets a seeded percentile bootstrap that draws
the units with replacement, every column of a unit together (paired).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Callable

from neurospec.util.errors import NeurospecError

WILSON = "wilson"
NEWCOMBE_PAIRED = "newcombe paired score"
PAIRED_BOOTSTRAP = "paired percentile bootstrap"
CLUSTERED_BOOTSTRAP = "clustered percentile bootstrap"


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.959964 for 0.95)."""
    if not 0 < confidence < 1:
        raise NeurospecError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sound near 0 and 1, unlike the normal interval)."""
    if trials <= 0:
        raise NeurospecError("a proportion needs at least one trial")
    if not 0 <= successes <= trials:
        raise NeurospecError(f"successes {successes} outside 0..{trials}")
    return wilson_share(successes / trials, trials, confidence)


def wilson_share(share: float, trials: float, confidence: float = 0.95) -> tuple[float, float]:
    """``wilson_share(0.75, 8)``: the Wilson interval of an observed ``share`` over ``trials`` (which may be an
    effective number of trials, as for a pooled share of correlated rows)."""
    if trials <= 0:
        raise NeurospecError("a proportion needs at least one trial")
    if not 0 <= share <= 1:
        raise NeurospecError(f"share {share} outside 0..1")
    z = z_value(confidence)
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    # at share 0 (1) the bound is exactly 0 (1); centre - half leaves a rounding residue such as 1.7e-18
    return (0.0 if share == 0 else max(0.0, centre - half)), (1.0 if share == 1 else min(1.0, centre + half))


def newcombe_paired(first, second, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of ``mean(first) - mean(second)`` for two 0/1 vectors on the same items (Newcombe's method 10).

    ``newcombe_paired([1, 1, 0, 1], [1, 0, 0, 0])``; see :func:`newcombe_paired_counts` for the formula.
    """
    if len(first) != len(second):
        raise NeurospecError(f"paired shares need as many values in both: {len(first)} and {len(second)}")
    pairs = [(bool(a), bool(b)) for a, b in zip(first, second)]
    return newcombe_paired_counts(pairs.count((True, True)), pairs.count((True, False)), pairs.count((False, True)),
                                  pairs.count((False, False)), confidence)


def newcombe_paired_counts(both: int, first_only: int, second_only: int, neither: int,
                           confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (1998, method 10) for p1 - p2 from a paired 2x2 table.

    p1 = (both + first_only) / n and p2 = (both + second_only) / n; each gets its Wilson interval (l1, u1),
    (l2, u2), and ``phi`` estimates their correlation ((both * neither - first_only * second_only), less n/2
    when that is above n/2, 0 when between 0 and n/2, over the root of the four margins' product; 0 when a
    margin is empty). Then ``low = d - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)`` and
    ``high = d + sqrt((p2 - l2)^2 - 2 phi (p2 - l2)(u1 - p1) + (u1 - p1)^2)``.
    """
    n = both + first_only + second_only + neither
    if n <= 0 or min(both, first_only, second_only, neither) < 0:
        raise NeurospecError(f"a paired table needs counts >= 0 and at least one pair, got "
                             f"{(both, first_only, second_only, neither)}")
    p1, p2 = (both + first_only) / n, (both + second_only) / n
    l1, u1 = wilson_share(p1, n, confidence)
    l2, u2 = wilson_share(p2, n, confidence)
    margins = (both + first_only) * (second_only + neither) * (both + second_only) * (first_only + neither)
    phi = 0.0
    if margins > 0:
        cross = both * neither - first_only * second_only
        adjusted = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
        phi = adjusted / math.sqrt(margins)
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return max(-1.0, low), min(1.0, high)


def bootstrap_counts(units: int, resamples: int, generator):
    """A ``resamples`` x ``units`` float64 tensor: how often each unit is drawn in each resample (with replacement,
    from the torch ``generator``); ``counts @ values`` gives every resample's sum of a per-unit value."""
    import torch

    if units < 1:
        raise NeurospecError("a bootstrap needs at least one unit to resample")
    if resamples < 1:
        raise NeurospecError(f"a bootstrap needs at least one resample, got {resamples}")
    picks = torch.randint(0, units, (resamples, units), generator=generator)
    counts = torch.zeros(resamples, units, dtype=torch.float64)
    return counts.scatter_add_(1, picks, torch.ones(resamples, units, dtype=torch.float64))


def paired_bootstrap(columns, statistic: Callable, *, resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(sums)`` over units drawn with replacement (seeded).

    ``columns`` is units x k (per-unit values that add up, e.g. a text's NLL under two conditions and its
    tokens); each resample draws the units, every column of a unit together (paired), and sums the columns;
    ``statistic`` maps the ``resamples`` x k sums to one value per resample (the point estimate is
    ``statistic`` of the full sums). ``paired_bootstrap(t, lambda s: (s[:, 0] - s[:, 1]) / s[:, 2])``.
    """
    import torch

    data = torch.as_tensor(columns, dtype=torch.float64)
    if data.dim() != 2:
        raise NeurospecError(f"columns must be units x values, got a tensor of shape {tuple(data.shape)}")
    generator = torch.Generator().manual_seed(seed)
    sums = bootstrap_counts(data.shape[0], resamples, generator) @ data
    return percentile_interval(statistic(sums), confidence)


def bootstrap_mean(values, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (items resampled with replacement, seeded).

    ``bootstrap_mean([1, 0, 1, 1])``; pass per-item differences for a paired comparison. For 0/1 values use
    :func:`wilson` (and :func:`newcombe_paired` for a paired difference): this interval collapses at 0 and 1.
    """
    import torch

    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    if data.numel() == 0:
        raise NeurospecError("a bootstrap interval needs at least one value")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, data.numel(), (resamples, data.numel()), generator=generator)
    return percentile_interval(data[picks].mean(dim=1), confidence)


def bootstrap_clustered_mean(values, clusters, *, resamples: int = 1000, confidence: float = 0.95,
                             seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` when rows sharing a cluster are not independent.

    ``bootstrap_clustered_mean([1, 0, 1, 1], clusters=["a", "a", "b", "c"])`` resamples the clusters
    (here items met in several cells of a matrix) with replacement, each with all its rows.
    """
    import torch

    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    if data.numel() == 0:
        raise NeurospecError("a bootstrap interval needs at least one value")
    if len(clusters) != data.numel():
        raise NeurospecError(f"{len(clusters)} cluster labels for {data.numel()} values")
    index = {label: i for i, label in enumerate(dict.fromkeys(clusters))}
    rows = torch.tensor([index[label] for label in clusters])
    sums = torch.zeros(len(index), dtype=torch.float64).index_add_(0, rows, data)
    counts = torch.zeros(len(index), dtype=torch.float64).index_add_(0, rows, torch.ones_like(data))
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(index), (resamples, len(index)), generator=generator)
    return percentile_interval(sums[picks].sum(dim=1) / counts[picks].sum(dim=1), confidence)


def percentile_interval(replicates, confidence: float = 0.95) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap replicates (linear interpolation between order statistics)."""
    low, high = percentile_intervals(replicates, confidence)
    return float(low), float(high)


def percentile_intervals(replicates, confidence: float = 0.95):
    """Per column of a ``resamples`` x k tensor (or of a vector): the (low, high) percentile bounds, two tensors."""
    import torch

    data = torch.as_tensor(replicates, dtype=torch.float64)
    if not 0 < confidence < 1:
        raise NeurospecError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence}")
    alpha = (1 - confidence) / 2
    bounds = torch.quantile(data, torch.tensor([alpha, 1 - alpha], dtype=torch.float64), dim=0)
    return bounds[0], bounds[1]
