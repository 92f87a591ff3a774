"""The part of a sweep's report section drawn from its generations (``neurospec sweep --generate``).

    from neurospec.report.sections.sweep_fluency import fluency_facts, fluency_figure, fluency_table
    if any(point.steering for point in record.curve):
        section.add(fluency_figure(record), fluency_table(record))

Per setting (a :class:`~neurospec.results.sweep.SweepPoint` with ``steering``): the share of its continuations in
the target language (pooled over target groups and prompt languages other than the target; 95% Wilson interval)
against the bound's fluency measure of those continuations (95% bootstrap interval), one point per setting labelled
by its factor, the bound drawn where it cuts (the unmodified model's value moved by the bound), the unmodified
model's own point, and the setting chosen within the bound (``best_fluent``) starred.
"""

from __future__ import annotations

import re

from neurospec.report.content import Table, label, number, text
from neurospec.report.plots import GREY, colors, draw
from neurospec.report.sections.steering import FLUENCY_COLUMNS
from neurospec.results.sweep import FLUENCY_RULES, FluencyBound, SweepPoint, SweepRecord


def fluency_facts(record: SweepRecord) -> list[tuple[str, str]]:
    """The facts of a generating sweep: the bound and the setting chosen within it (or none, and why)."""
    if record.fluency_bound is None:
        return []
    chosen = record.best_fluent.name if record.best_fluent is not None else "none"
    return [("fluency bound", record.fluency_bound.rule), ("best within the fluency bound", chosen)]


def bound_limit(bound: FluencyBound, baseline: float | None) -> float | None:
    """Where the bound cuts the measure's axis: the unmodified model's value moved by the bound (None without it)."""
    if baseline is None:
        return None
    kind = FLUENCY_RULES[bound.measure][0]
    if kind == "ratio":
        return baseline * bound.bound
    return baseline - bound.bound if kind == "fall" else baseline + bound.bound


def setting_name(point: SweepPoint) -> str:
    """The series a point belongs to: its recipe without the factor (``set:p_max``, ``set:p_median@prompt``)."""
    return re.sub(r"\*[^@]*", "", point.recipe)


def fluency_figure(record: SweepRecord):
    """Share in the target language against the bound's fluency measure, one point per setting (both intervals)."""
    bound = record.fluency_bound
    points = [p for p in record.curve if p.steering is not None]
    if bound is None or not points:
        return None
    measure = bound.measure
    chosen = record.best_fluent.name if record.best_fluent is not None else None
    series = list(dict.fromkeys(setting_name(p) for p in points))
    limits = sorted({limit for p in points
                     if (limit := bound_limit(bound, p.steering.fluency[measure].baseline.value)) is not None})

    def paint(fig):
        ax = fig.add_subplot()
        for name, color in zip(series, colors(len(series))):
            members = [p for p in points if setting_name(p) == name]
            for point in members:
                plot_setting(ax, point, measure, color, name if point is members[0] else None)
        first = points[0].steering
        unmodified = first.fluency[measure].baseline
        if unmodified.value is not None:
            ax.errorbar([unmodified.value], [first.baseline.share], xerr=errors(unmodified.value, unmodified.ci95),
                        yerr=errors(first.baseline.share, first.baseline.ci95), fmt="s", color=GREY, capsize=2,
                        label="unmodified model")
        for i, limit in enumerate(limits):
            ax.axvline(limit, color="firebrick", linestyle="--", linewidth=1,
                       label=f"bound: {bound.rule}" if i == 0 else None)
        for point in points:
            value = point.steering.fluency[measure].steered.value
            if point.recipe == chosen and value is not None:
                ax.plot([value], [point.steering.share.share], marker="*", markersize=15, color="black",
                        linestyle="none", label=f"chosen: {chosen}")
        if measure == "perplexity":
            ax.set_xscale("log")
        ax.set_xlabel(f"{FLUENCY_COLUMNS.get(measure, measure)} of the continuations")
        ax.set_ylabel("share in the target language")
        ax.set_ylim(-0.04, 1.04)
        ax.legend(loc="best", fontsize="small")

    return draw("fluency", "Sweep: share in the target language against fluency, per factor (95% CI)", paint,
                size=(6.4, 4.2), alt=f"Scatter of target-language share against {measure} for {len(points)} settings",
                caption="Each point a setting, labelled by its factor, with the 95% Wilson interval of the share "
                        "(pooled over target groups and prompt languages other than the target) and the 95% "
                        f"bootstrap interval of {FLUENCY_COLUMNS.get(measure, measure)}; grey square: the unmodified "
                        "model on the same prompts; dashed line: the bound; star: the setting chosen within it.")


def plot_setting(ax, point: SweepPoint, measure: str, color, legend: str | None) -> None:
    """One setting's point with both intervals, labelled by its factor (nothing where the measure is undefined)."""
    steering = point.steering
    fluency = steering.fluency[measure].steered
    if fluency.value is None:
        return
    ax.errorbar([fluency.value], [steering.share.share], xerr=errors(fluency.value, fluency.ci95),
                yerr=errors(steering.share.share, steering.share.ci95), fmt="o", color=color, capsize=2,
                markeredgecolor="black", markeredgewidth=0.4, label=legend)
    ax.annotate(f"×{point.factor:g}", (fluency.value, steering.share.share), textcoords="offset points",
                xytext=(5, 5), fontsize="small")


def errors(value: float, interval: tuple[float, float] | None) -> list[list[float]] | None:
    """A 2 x 1 error array (distance below, above) for errorbar; None without an interval."""
    if interval is None:
        return None
    return [[max(0.0, value - interval[0])], [max(0.0, interval[1] - value)]]


def fluency_table(record: SweepRecord) -> Table | None:
    """One row per setting: its share with interval, the unmodified model's, the paired change, every fluency value,
    the bound's measure with its intervals and degradation, whether it is within the bound, and the choice."""
    bound = record.fluency_bound
    if bound is None:
        return None
    chosen = record.best_fluent.name if record.best_fluent is not None else None
    name = FLUENCY_COLUMNS.get(bound.measure, bound.measure)
    table = Table("fluent", f"Share in the target language and fluency per setting; bound: {bound.rule} "
                  "(share: 95% Wilson; change: 95% Newcombe paired; fluency: 95% bootstrap)",
                  ["setting", "factor", "share", "CI low", "CI high", "unmodified share", "change", "change CI low",
                   "change CI high", *FLUENCY_COLUMNS.values(), f"{name} CI low", f"{name} CI high",
                   f"unmodified {name}", f"{name} change CI low", f"{name} change CI high", "degradation",
                   "within bound", "chosen"])
    for point in record.curve:
        steering = point.steering
        if steering is None:
            continue
        bounded = steering.fluency[bound.measure]
        share, change = steering.share, steering.change_ci95
        table.add(label(point.recipe), number(point.factor, "g"), number(share.share, ".3f"),
                  number(share.ci95[0], ".3f"), number(share.ci95[1], ".3f"), number(steering.baseline.share, ".3f"),
                  number(steering.change, "+.3f"), number(change[0], "+.3f"), number(change[1], "+.3f"),
                  *[number(steering.fluency[m].steered.value if m in steering.fluency else None, ".3f")
                    for m in FLUENCY_COLUMNS],
                  *interval_cells(bounded.steered.ci95), number(bounded.baseline.value, ".3f"),
                  *interval_cells(bounded.change_ci95, "+.3f"), number(steering.degradation, ".3f"),
                  text("yes" if steering.within_bound else "no"), text("chosen" if point.recipe == chosen else ""))
    return table


def interval_cells(interval: tuple[float, float] | None, spec: str = ".3f") -> list:
    """An interval's two bounds as cells (dashes without one)."""
    return [number(interval[0] if interval else None, spec), number(interval[1] if interval else None, spec)]
