"""Accuracy of multiple-choice predictions, per group, with confidence intervals.

    from neurospec.evaluate.mcq import accuracy_by_group
    table = accuracy_by_group(choose_by_loglikelihood(model, tok, items))
    table["China"].accuracy, table["China"].interval, table["all"].n
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from neurospec.evaluate.intervals import wilson


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``n`` right; ``interval`` the 95% Wilson interval; ``chance`` 1 / options (mean)."""

    correct: int
    n: int
    chance: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.n)

    @property
    def above_chance(self) -> bool:
        """The 95% interval lies entirely above chance."""
        return self.interval[0] > self.chance

    def to_json(self) -> dict:
        low, high = self.interval
        return {"correct": self.correct, "n": self.n, "accuracy": self.accuracy, "ci95": [low, high],
                "chance": self.chance, "above_chance": self.above_chance}


def accuracy_by_group(predictions: Iterable) -> dict[str, Accuracy]:
    """Per ``item.group`` and over ``"all"``: correct count, n, chance level (from the option counts)."""
    tallies: dict[str, list[float]] = {}
    for prediction in predictions:
        for key in (prediction.item.group or "none", "all"):
            tally = tallies.setdefault(key, [0, 0, 0.0])
            tally[0] += prediction.correct
            tally[1] += 1
            tally[2] += 1 / len(prediction.item.options)
    return {key: Accuracy(int(c), int(n), chance / n) for key, (c, n, chance) in tallies.items()}
