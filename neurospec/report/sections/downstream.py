"""Report section of a downstream task under each target's intervention (``neurospec eval TASK``): self vs cross.

    from neurospec.report.sections.downstream import downstream_section
    section = downstream_section(artifact)      # an Artifact of kind "downstream"

Reads the file as a :class:`~neurospec.results.downstream.DownstreamTable`: the task, its rows (``none`` then
the target groups), languages, each cell's score, interval and n, the change against ``none`` and the
self/cross summary. A cell is "self" when the row's language is the column's, as the table decides.
"""

from __future__ import annotations

import numpy as np

from neurospec.data.languages import language_of
from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.plots import GREY, bar_values, ci_errors, colors, draw, rotate_labels
from neurospec.results.downstream import DownstreamTable


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
    for name, value in (("mean self change", summary.self_mean), ("mean cross change", summary.cross_mean)):
        section.facts.append((name, "\u2014" if value is None else f"{value:+.4g}"))
    table = Table("scores", f"{task}: {metric} per row and language, 95% CI, change against `none`",
                  ["row", "language", "cell", "n", metric, "95% CI low", "95% CI high", "change"])
    grid = {}
    for row in rows:
        for lang in languages:
            cell = cells[row][lang]
            interval = cell.ci95
            kind = "baseline" if row == "none" else ("self" if row_language(row) == lang else "cross")
            delta = change[row][lang] if row != "none" else None
            grid[(row, lang)] = (cell.score, interval, kind, delta)
            table.add(label(row), text(lang), text(kind), number(cell.n), number(cell.score, ".4g"),
                      number(interval[0] if interval else None, ".4g"),
                      number(interval[1] if interval else None, ".4g"), number(delta, "+.4g"))
    per = Table("summary", "Mean change on the row's own language (self) and on the others (cross)",
                ["target", "self change", "mean cross change"])
    for row, entry in summary.per_target.items():
        per.add(label(row), number(entry.own, "+.4g"), number(entry.cross_mean, "+.4g"))
    per.add(label("all targets"), number(summary.self_mean, "+.4g"), number(summary.cross_mean, "+.4g"))
    section.add(_figure(task, metric, rows, languages, grid), table, per)
    return section


def _figure(task, metric, rows, languages, grid):
    targets = [r for r in rows if r != "none"]
    palette = [GREY] + colors(max(1, len(targets)))

    def paint(fig):
        if targets:
            left, right = fig.subplots(1, 2, width_ratios=[max(2, len(languages)), max(1.5, 0.8 * len(targets))])
        else:
            left, right = fig.add_subplot(), None
        width = 0.8 / len(rows)
        x = np.arange(len(languages))
        for i, (row, color) in enumerate(zip(rows, palette)):
            values = [grid[(row, lang)][0] for lang in languages]
            intervals = [grid[(row, lang)][1] for lang in languages]
            bars = left.bar(x + (i - (len(rows) - 1) / 2) * width, values, width, color=color,
                            yerr=ci_errors(values, intervals), capsize=2, error_kw={"linewidth": 0.8},
                            label="unmodified" if row == "none" else f"{row} neurons")
            for bar, lang in zip(bars, languages):
                if grid[(row, lang)][2] == "self":
                    bar.set_hatch("///")
                    bar.set_edgecolor("black")
        left.set_xticks(x, labels=languages)
        rotate_labels(left, languages)
        left.set_xlabel("evaluated language")
        left.set_ylabel(metric)
        left.set_title(f"{metric} per language (hatched: self cell; 95% CI)")
        left.legend(loc="best")
        if right is not None:
            selfs = [next((grid[(r, lang)][3] for lang in languages if grid[(r, lang)][2] == "self"), None)
                     for r in targets]
            crosses = []
            for r in targets:
                values = [grid[(r, lang)][3] for lang in languages if grid[(r, lang)][2] == "cross"
                          and grid[(r, lang)][3] is not None]
                crosses.append(sum(values) / len(values) if values else None)
            xs = np.arange(len(targets))
            right.bar(xs - 0.2, bar_values(selfs), 0.4, color="#d95f02", hatch="///", edgecolor="black",
                      label="self")
            right.bar(xs + 0.2, bar_values(crosses), 0.4, color="#7570b3", label="mean cross")
            right.axhline(0, color="black", linewidth=0.8)
            right.set_xticks(xs, labels=targets)
            rotate_labels(right, targets, limit=3)
            right.set_ylabel(f"change in {metric}")
            right.set_title("change against unmodified")
            right.legend(loc="best")

    return draw("scores", f"{task}: self vs cross language", paint,
                size=(max(6.0, 0.55 * len(languages) * len(rows) + 0.6 * len(targets) + 3.5), 3.8),
                alt=f"Bar charts of {task} {metric} per language and row, and self vs cross change",
                caption="Left: the score of every row in every language with its 95% interval; the row's own language "
                        "is hatched. Right: the change against the unmodified model on the own language (self) and "
                        "its mean on the other languages (cross); the artifact gives no interval for changes.")
