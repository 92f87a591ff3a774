"""Report section of culture masking (mask_eval.json): accuracy changes and the related-cultures matrices.

    from neurospec.report.sections.masking import mask_section
    section = mask_section(artifact)        # an Artifact of kind "mask_eval"

Reads the file as a :class:`~neurospec.results.masking.MaskingRecord`: conditions, benchmarks (kind, items,
groups), cells (accuracy, change and margin over the random baselines, with their intervals), the summary
and per benchmark the related-cultures matrix (accuracy change on each evaluated group).
Conditions named ``random<seed>:<group>`` are random baselines: drawn as the marker of their
group's mean change (the cells' ``random_change``), listed in full in the table.
"""

from __future__ import annotations

import re

import numpy as np
from matplotlib.patches import Rectangle

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.plots import bar_values, colors, dots, draw, heatmap, offsets, rotate_labels, symmetric_limit
from neurospec.results.masking import MaskCell, MaskingRecord, MaskSummaryRow

BASELINE = "none"
_RANDOM = re.compile(r"^random\d+:")


def is_random_condition(name: str) -> bool:
    return bool(_RANDOM.match(name))


def mask_section(artifact: Artifact) -> Section:
    record = artifact.read(MaskingRecord)
    conditions = record.conditions
    benchmarks = record.benchmarks
    kinds = {name: (entry.kind if entry.kind is not None else "cultural") for name, entry in benchmarks.items()}
    section = Section("mask_eval", artifact.label, "Culture neurons masked: accuracy per benchmark", artifact.step)
    masked = [c for c in conditions if c != BASELINE and not is_random_condition(c)]
    randoms = [c for c in conditions if is_random_condition(c)]
    section.facts += [("conditions", f"{len(masked)} masked groups, {len(randoms)} random baselines"),
                      ("benchmarks", ", ".join(f"{b} ({kinds[b]}, {e.items} items)" for b, e in benchmarks.items()))]
    if "scoring" in record.settings:
        section.facts.append(("scoring", str(record.settings["scoring"])))
    section.facts.append(("templates", ", ".join(record.templates)))
    overall = {}
    table = Table("cells", "Accuracy on every benchmark (all items) per condition, change against `none`, margin "
                           f"over the random baselines; 95% intervals ({interval_methods(record)})",
                  ["condition", "benchmark", "n", "accuracy", "95% CI low", "95% CI high", "change", "change CI low",
                   "change CI high", "random change", "margin over random", "margin CI low", "margin CI high"])
    for cell in record.cells:
        if cell.group != "all":
            continue
        interval, change_ci, margin_ci = cell.ci95, cell.change_ci95, cell.margin_ci95
        overall[(cell.condition, cell.benchmark)] = (cell.change, change_ci, cell.random_change)
        table.add(label(cell.condition), text(cell.benchmark), number(cell.n), number(cell.accuracy, ".3f"),
                  number(interval[0] if interval else None, ".3f"), number(interval[1] if interval else None, ".3f"),
                  number(cell.change, "+.3f"), number(change_ci[0] if change_ci else None, "+.3f"),
                  number(change_ci[1] if change_ci else None, "+.3f"), number(cell.random_change, "+.3f"),
                  number(cell.margin_over_random, "+.3f"), number(margin_ci[0] if margin_ci else None, "+.3f"),
                  number(margin_ci[1] if margin_ci else None, "+.3f"))
    tables = [table]
    rules = _rules_table(record.cells)
    if rules is not None:
        tables.append(rules)
    if record.summary:
        tables.append(_summary_table(record.summary))
    figure = _change_figure(masked, list(benchmarks), kinds, overall) if masked and benchmarks else None
    section.add(figure, *tables)
    for benchmark, matrix in record.related.items():
        rows = list(matrix)
        columns = list(dict.fromkeys(g for c in rows for g in matrix[c]))
        if not rows or not columns:
            continue
        values = [[matrix[c].get(g) for g in columns] for c in rows]
        rel = Table(f"related-{_slug(benchmark)}", f"{benchmark}: accuracy change on each evaluated group when a "
                                                   "group's neurons are masked", ["masked", *columns])
        for condition, row in zip(rows, values):
            rel.add(label(condition), *[number(v, "+.3f") for v in row])
        figure = _related_figure(benchmark, rows, columns, values) if len(columns) >= 2 else None
        section.add(figure, rel)
    return section


def interval_methods(record: MaskingRecord) -> str:
    """``accuracy: wilson; change: newcombe paired score; ...`` from the file's ``interval_method`` (an older file:
    percentile bootstraps over items)."""
    if record.interval_method is None:
        return "percentile bootstraps over items"
    return "; ".join(f"{kind.replace('_', ' ')}: {method}" for kind, method in record.interval_method.items())


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "benchmark"


def _rules_table(cells: list[MaskCell]) -> Table | None:
    """Both accuracy rules of letter scoring side by side, and the share of answers that were no letter."""
    rows = [c for c in cells if c.group == "all" and c.rules is not None]
    if not rows:
        return None
    table = Table("rules", "Accuracy by the paper's rule (the argmax over the whole vocabulary is the gold letter) "
                           "and over the option letters only; share of answers that were no option's letter",
                  ["condition", "benchmark", "full vocabulary", "letters only", "no letter"])
    for cell in rows:
        table.add(label(cell.condition), text(cell.benchmark), number(cell.rules["full_vocabulary"].accuracy, ".3f"),
                  number(cell.rules["letters_only"].accuracy, ".3f"), number(cell.non_letter_share, ".3f"))
    return table


def _summary_table(summary: list[MaskSummaryRow]) -> Table:
    columns = [row.columns() for row in summary]
    keys = list(dict.fromkeys(k for entry in columns for k in entry))
    table = Table("summary", "Mean accuracy change per condition over the cultural and the NLU benchmarks",
                  ["condition", *[k.replace("_", " ") for k in keys]])
    for row, entry in zip(summary, columns):
        table.add(label(row.condition), *[number(entry.get(k), "+.4f") for k in keys])
    return table


def _change_figure(masked, benchmarks, kinds, overall):
    """Per masked group a dot per benchmark (its change, with the interval; NLU benchmarks hollow) and a black
    diamond for the mean change of the group's random baselines; None when no cell holds a change."""
    palette = colors(len(benchmarks))
    if all(entry[0] is None for entry in overall.values()):
        return None

    def paint(fig):
        ax = fig.add_subplot()
        x = np.arange(len(masked))
        marked = False
        for shift, benchmark, color in zip(offsets(len(benchmarks)), benchmarks, palette):
            cells = [overall.get((c, benchmark), (None, None, None)) for c in masked]
            dots(ax, x + shift, [c[0] for c in cells], [c[1] for c in cells], color=color,
                 hollow=kinds[benchmark] == "nlu", label=f"{benchmark} ({kinds[benchmark]})")
            randoms = bar_values([c[2] for c in cells])
            if np.isfinite(randoms).any():
                ax.plot(x + shift + 0.09, randoms, linestyle="none", marker="D", markersize=3.5, color="black",
                        label=None if marked else "mean change of the random baselines")
                marked = True
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, labels=masked)
        ax.set_xlim(-0.6, len(masked) - 0.4)
        rotate_labels(ax, masked)
        ax.grid(axis="y", color="#e6e6e6", linewidth=0.6)
        ax.set_xlabel("masked neurons")
        ax.set_ylabel("accuracy change")
        ax.legend(loc="best")

    return draw("change", "Accuracy change when each group's neurons are masked (95% CI)", paint,
                size=(max(5.5, 0.3 * len(masked) * len(benchmarks) + 2.5), 3.6),
                alt=f"Dot plot of accuracy change for {len(masked)} masked groups on {len(benchmarks)} benchmarks",
                caption="Dots: change of accuracy (all items of the benchmark) against the unmodified model, with "
                        "its paired 95% bootstrap interval; black diamonds: the mean change under the group's random "
                        "baselines; hollow dots: NLU benchmarks.")


def _related_figure(benchmark, rows, columns, values):
    limit = symmetric_limit(values)

    def paint(fig):
        ax = fig.add_subplot()
        heatmap(fig, ax, values, rows, columns, cmap="RdBu_r", vmin=-limit, vmax=limit, fmt=lambda v: f"{v:+.2f}",
                colorbar="accuracy change")
        for i, row in enumerate(rows):
            if row in columns:
                j = columns.index(row)
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.4, clip_on=False))
        ax.set_xlabel("evaluated group")
        ax.set_ylabel("masked neurons")

    return draw(f"related-{_slug(benchmark)}", f"Related cultures on {benchmark}: accuracy change per evaluated group",
                paint, size=(max(4.5, 0.6 * len(columns) + 3.0), max(3.0, 0.36 * len(rows) + 1.8)),
                alt=f"Heatmap of accuracy change, {len(rows)} masked groups by {len(columns)} evaluated groups",
                caption="Does masking one culture's neurons also hurt its neighbours? Rows: the masked group; "
                        "columns: the group of the evaluated items; framed: the masked group's own items.")
