"""Report section of a downstream task under each target's intervention (``neurospec eval TASK``): self vs cross.

    from neurospec.report.sections.downstream import downstream_section
    section = downstream_section(artifact)      # an Artifact of kind "downstream"

Reads the file as a :class:`~neurospec.results.downstream.DownstreamTable`: the task, its rows (``none`` then
the target groups), languages, each cell's score, interval and n, the change against ``none`` and the
self/cross summary, with their intervals and methods where the file has them. A cell is "self" when the row's
language is the column's, as the table decides.
"""

from __future__ import annotations

import numpy as np

from neurospec.data.languages import language_of
from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.plots import GREY, colors, dots, draw, offsets, rotate_labels
from neurospec.results.downstream import DownstreamTable, SummaryIntervals

OLDER = "none: a file written before change intervals"


def interval_cells(interval: tuple[float, float] | None, spec: str) -> tuple:
    """The low and high bound of ``interval`` as two number cells (empty for None)."""
    return (number(interval[0] if interval else None, spec), number(interval[1] if interval else None, spec))


def with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    """``+0.0312 [-0.01, +0.07]``, or the value alone without an interval (a dash for None)."""
    if value is None:
        return "\u2014"
    return f"{value:+.4g}" + (f" [{interval[0]:+.3g}, {interval[1]:+.3g}]" if interval else "")


def row_language(row: str) -> str:
    """The language key a row's group names (``fr`` -> ``fra_Latn``), or the row itself."""
    return language_of(row) or row


def downstream_section(artifact: Artifact) -> Section:
    result = artifact.read(DownstreamTable)
    task, rows, languages, cells = result.task, result.rows, result.languages, result.cells
    change, summary = result.change(), result.self_cross()
    metric = cells[rows[0]][languages[0]].metric if rows and languages else "score"
    section = Section("downstream", artifact.label, f"Downstream task {task}: self vs cross language", artifact.step)
    section.facts += [("task", task), ("metric", metric), ("recipe", result.recipe.name if result.recipe else "none"),
                      ("languages", ", ".join(languages)), ("targets", ", ".join(r for r in rows if r != "none"))]
    bounds = summary.intervals or SummaryIntervals(None, None, None)
    for name, value, interval in (("mean self change", summary.self_mean, bounds.self_mean),
                                  ("mean cross change", summary.cross_mean, bounds.cross_mean),
                                  ("self minus cross", summary.self_minus_cross, bounds.self_minus_cross)):
        section.facts.append((name, with_interval(value, interval)))
    methods = {"score": "the task's", "change": OLDER, "summary": OLDER, **(result.interval_method or {})}
    table = Table("scores", f"{task}: {metric} per row and language with its 95% CI ({methods['score']}), change "
                            f"against `none` with its 95% CI ({methods['change']})",
                  ["row", "language", "cell", "n", metric, "95% CI low", "95% CI high", "change", "change CI low",
                   "change CI high"])
    change_ci95 = result.change_ci95 or {}
    grid = {}
    for row in rows:
        for lang in languages:
            cell = cells[row][lang]
            interval = cell.ci95
            kind = "baseline" if row == "none" else ("self" if row_language(row) == lang else "cross")
            delta = change[row][lang] if row != "none" else None
            grid[(row, lang)] = (cell.score, interval, kind, delta)
            table.add(label(row), text(lang), text(kind), number(cell.n), number(cell.score, ".4g"),
                      *interval_cells(interval, ".4g"), number(delta, "+.4g"),
                      *interval_cells(change_ci95.get(row, {}).get(lang), "+.4g"))
    per = Table("summary", "Mean change on the row's own language (self) and on the others (cross), 95% CI "
                           f"(self: as the change's; means: {methods['summary']})",
                ["target", "self change", "self CI low", "self CI high", "mean cross change", "cross CI low",
                 "cross CI high"])
    for row, entry in summary.per_target.items():
        own_ci, cross_ci = entry.intervals or (None, None)
        per.add(label(row), number(entry.own, "+.4g"), *interval_cells(own_ci, "+.4g"),
                number(entry.cross_mean, "+.4g"), *interval_cells(cross_ci, "+.4g"))
    per.add(label("all targets"), number(summary.self_mean, "+.4g"), *interval_cells(bounds.self_mean, "+.4g"),
            number(summary.cross_mean, "+.4g"), *interval_cells(bounds.cross_mean, "+.4g"))
    section.add(_figure(task, metric, rows, languages, grid, _contrasts(summary.per_target)), table, per)
    return section


def _contrasts(per_target) -> dict:
    """target -> (self change, its interval, mean cross change, its interval) of ``summary.per_target``."""
    out = {}
    for row, entry in per_target.items():
        own_ci, cross_ci = entry.intervals or (None, None)
        out[row] = (entry.own, own_ci, entry.cross_mean, cross_ci)
    return out


def _figure(task, metric, rows, languages, grid, contrasts):
    """Left: every row's score per language as a dot with its interval (self cells ringed). Right, when the
    artifact holds a change: per target the change on its own language and the mean on the others, with their
    intervals where the file has them (``contrasts``: target -> (self, its interval, cross mean, its interval))."""
    targets = [r for r in rows if r != "none"]
    palette = [GREY] + colors(max(1, len(targets)))
    lines = [contrasts.get(r, (None, None, None, None)) for r in targets]
    selfs, self_cis, crosses, cross_cis = ([line[i] for line in lines] for i in range(4))
    changes = any(v is not None for v in selfs + crosses)

    def paint(fig):
        if changes:
            left, right = fig.subplots(1, 2, width_ratios=[max(2, len(languages)), max(1.5, 0.8 * len(targets))])
        else:
            left, right = fig.add_subplot(), None
        x = np.arange(len(languages))
        ring_label = "self cell"
        for shift, row, color in zip(offsets(len(rows)), rows, palette):
            values = [grid[(row, lang)][0] for lang in languages]
            intervals = [grid[(row, lang)][1] for lang in languages]
            dots(left, x + shift, values, intervals, color=color, marker="s" if row == "none" else "o",
                 label="unmodified" if row == "none" else f"{row} neurons")
            ringed = [i for i, lang in enumerate(languages) if grid[(row, lang)][2] == "self"
                      and grid[(row, lang)][0] is not None]
            left.plot(x[ringed] + shift, [values[i] for i in ringed], linestyle="none", marker="o", markersize=10,
                      markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.1,
                      label=ring_label if ringed else None)
            ring_label = ring_label if not ringed else None
        left.set_xticks(x, labels=languages)
        left.set_xlim(-0.6, len(languages) - 0.4)
        rotate_labels(left, languages)
        left.set_xlabel("evaluated language")
        left.set_ylabel(metric)
        left.set_title(f"{metric} per language (ringed: self cell; 95% CI)")
        left.grid(axis="y", color="#e6e6e6", linewidth=0.6)
        left.legend(loc="best")
        if right is not None:
            xs = np.arange(len(targets))
            dots(right, xs - 0.12, selfs, self_cis, color="#d95f02", marker="o", label="self")
            dots(right, xs + 0.12, crosses, cross_cis, color="#7570b3", marker="D", label="mean cross")
            right.axhline(0, color="black", linewidth=0.8)
            right.set_xticks(xs, labels=targets)
            right.set_xlim(-0.6, len(targets) - 0.4)
            rotate_labels(right, targets, limit=3)
            right.set_ylabel(f"change in {metric}")
            right.set_title("change against unmodified")
            right.legend(loc="best")

    return draw("scores", f"{task}: self vs cross language", paint,
                size=(max(6.0, 0.45 * len(languages) * len(rows) + (0.6 * len(targets) + 2.0 if changes else 0) + 2.5),
                      3.6),
                alt=f"Dot plots of {task} {metric} per language and row, and self vs cross change",
                caption="Left: the score of every row in every language with its 95% interval; the row's own language "
                        "is ringed. Right: the change against the unmodified model on the own language (self) and "
                        "its mean on the other languages (cross), with the 95% intervals the file holds (none in files "
                        "written before change intervals).")
