"""A sweep's generations: per setting, the target-language share and the fluency, and the choice within a bound.

    from neurospec.evaluate.fluent_sweep import SteeringPlan, choose_fluent, fluency_bound, setting_steering
    plan = SteeringPlan({"eng_Latn": prompts}, max_new_tokens=32, bound=fluency_bound("distinct_2"))
    summary = setting_steering(steer_result, plan.bound)    # SettingSteering: share, fluency, within_bound
    index, reason = choose_fluent([summary, ...], plan.bound, ["set:p_max", ...])

Per setting, :func:`neurospec.evaluate.steering.steer_generation` generates with that setting's recipe (greedy,
no random controls). Its lines are pooled over every target group and every prompt language other than the
group's own language (a prompt already in the target counts for nothing): the share ``k / n`` of continuations
identified as the target, with its Wilson interval, and the unmodified model's on the same prompts with
Newcombe's paired interval of the change; the fluency measures of those continuations against the unmodified
model's continuations of the same prompts (:func:`neurospec.evaluate.fluency.compare_fluency`, a percentile
bootstrap over the pooled (prompt, target) pairs). The setting is within the bound when the bound's measure is
no worse than :class:`~neurospec.results.sweep.FluencyBound` allows (its point estimate; an undefined value is
not within). :func:`choose_fluent` picks the highest share among those settings (ties: the first listed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from neurospec.evaluate.fluency import FLUENCY_MEASURES, Units, compare_fluency
from neurospec.evaluate.intervals import newcombe_paired, wilson
from neurospec.evaluate.steering import SteeringResult
from neurospec.results.steering import Share
from neurospec.results.sweep import FLUENCY_RULES, FluencyBound, SettingSteering
from neurospec.util.errors import NeurospecError

DEFAULT_MEASURE = "distinct_2"


def fluency_bound(measure: str = DEFAULT_MEASURE, bound: float | None = None) -> FluencyBound:
    """``fluency_bound("perplexity")``: the bound on ``measure``, at its default (:data:`FLUENCY_RULES`) unless
    ``bound`` is given; an unknown measure or a negative or non-finite bound is refused."""
    if measure not in FLUENCY_RULES:
        raise NeurospecError(f"--fluency-measure {measure!r}: choose one of {', '.join(FLUENCY_MEASURES)}")
    value = FLUENCY_RULES[measure][1] if bound is None else float(bound)
    if not math.isfinite(value) or value < 0:
        raise NeurospecError(f"--fluency-bound {bound!r}: give a finite number of at least 0, e.g. "
                             f"{FLUENCY_RULES[measure][1]:g}")
    return FluencyBound(measure, value)


@dataclass(frozen=True)
class SteeringPlan:
    """What a sweep generates per setting: ``prompts`` per source language, ``max_new_tokens`` (greedy), the
    ``bound`` the fluent choice keeps to, and the py3langid ``candidates`` (None: every language it knows)."""

    prompts: Mapping[str, Sequence[str]]
    max_new_tokens: int = 32
    bound: FluencyBound = FluencyBound(DEFAULT_MEASURE, FLUENCY_RULES[DEFAULT_MEASURE][1])
    candidates: Sequence[str] | None = None


@dataclass(frozen=True)
class PooledLine:
    """A line a setting is judged on: a target group's ``row``, a prompt language ``source`` and the ``target``."""

    row: str
    source: str
    target: str


def pooled_lines(result: SteeringResult) -> list[PooledLine]:
    """The lines a setting is judged on: each target group's (no random control), from prompts in another
    language than the group's target; refused when there is none."""
    lines = [PooledLine(row.name, source, row.target) for row in result.rows
             if row.kind == "group" and row.target is not None for source in result.sources if source != row.target]
    if not lines:
        raise NeurospecError("the sweep's prompts are all in the target groups' own languages: give prompts in "
                             "another language too (e.g. --prompts en=FILE), so steering can move them")
    return lines


def pooled_units(result: SteeringResult, lines: Sequence[PooledLine]) -> tuple[list[Units], list[Units]]:
    """The fluency units of the lines' continuations and, paired with each, the unmodified model's of its prompt."""
    steered: list[Units] = []
    baseline: list[Units] = []
    for line in lines:
        mine, unmodified = result.fluency_units(line.row, line.source), result.fluency_units("none", line.source)
        if mine is None or unmodified is None:
            raise NeurospecError("the generations carry no token ids and scores: generate them with steer_generation")
        steered += mine
        baseline += unmodified
    return steered, baseline


def setting_steering(result: SteeringResult, bound: FluencyBound) -> SettingSteering:
    """One setting's pooled share, fluency and whether it keeps to ``bound`` (see the module docstring)."""
    lines = pooled_lines(result)
    steered = [hit for line in lines for hit in result.in_language(line.row, line.source, line.target)]
    baseline = [hit for line in lines for hit in result.in_language("none", line.source, line.target)]
    fluency = compare_fluency(*pooled_units(result, lines))
    degradation = bound.degradation(fluency[bound.measure])
    return SettingSteering(Share(sum(steered), len(steered), wilson(sum(steered), len(steered))),
                           Share(sum(baseline), len(baseline), wilson(sum(baseline), len(baseline))),
                           newcombe_paired(steered, baseline), fluency, degradation,
                           degradation is not None and degradation <= bound.bound)


def choose_fluent(settings: Sequence[SettingSteering], bound: FluencyBound,
                  names: Sequence[str]) -> tuple[int | None, str]:
    """The index of the highest share among the settings within ``bound`` (ties: the first), and why; None and
    the reason when no setting is within it."""
    within = [i for i, setting in enumerate(settings) if setting.within_bound]
    if not within:
        return None, no_fluent_reason(settings, bound, names)
    best = max(within, key=lambda i: (settings[i].share.share, -i))
    return best, (f"highest share in the target language ({settings[best].share.share:.3f}) among the "
                  f"{len(within)} of {len(settings)} settings where {bound.rule}")


def no_fluent_reason(settings: Sequence[SettingSteering], bound: FluencyBound, names: Sequence[str]) -> str:
    """Why no setting was chosen: none keeps to the bound; the closest one and its degradation."""
    measured = [(s.degradation, name) for s, name in zip(settings, names) if s.degradation is not None]
    closest = (f"; the closest is {min(measured)[1]} at {min(measured)[0]:.3g}" if measured
               else f"; {bound.measure} is undefined for every setting (continuations too short)")
    return f"no setting of {len(settings)} keeps to the bound: {bound.rule}{closest}"
