"""Confidence intervals for accuracies and shares.

    from neurospec.evaluate.intervals import wilson, bootstrap_mean, bootstrap_clustered_mean
    low, high = wilson(successes=41, trials=60)          # 95% Wilson score interval
    low, high = bootstrap_clustered_mean(values, clusters=item_ids)   # rows of one item resampled together
"""

from __future__ import annotations

import math

from neurospec.util.errors import NeurospecError


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sound near 0 and 1, unlike the normal interval)."""
    if trials <= 0:
        raise NeurospecError("a proportion needs at least one trial")
    if not 0 <= successes <= trials:
        raise NeurospecError(f"successes {successes} outside 0..{trials}")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean(values, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (items resampled with replacement, seeded).

    ``bootstrap_mean([1, 0, 1, 1])``; pass per-item differences for a paired comparison.
    """
    import torch

    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    if data.numel() == 0:
        raise NeurospecError("a bootstrap interval needs at least one value")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, data.numel(), (resamples, data.numel()), generator=generator)
    return _percentiles(data[picks].mean(dim=1), confidence)


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
    return _percentiles(sums[picks].sum(dim=1) / counts[picks].sum(dim=1), confidence)


def _percentiles(means, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of the bootstrap means."""
    import torch

    alpha = (1 - confidence) / 2
    low, high = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    return float(low), float(high)
