"""Confidence intervals for accuracies and shares.

    from neurospec.evaluate.intervals import wilson
    low, high = wilson(successes=41, trials=60)          # 95% Wilson score interval
"""

from __future__ import annotations

import math

from neurospec.errors import NeurospecError


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
