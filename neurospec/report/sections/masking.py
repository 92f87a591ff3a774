"""Report section of culture masking (mask_eval.json): accuracy changes and the related-cultures matrices.

    from neurospec.report.sections.masking import mask_section
    section = mask_section(artifact)        # an Artifact of kind "mask_eval"

Reads ``conditions``, ``benchmarks`` (kind, items, groups), ``cells[]`` (condition, benchmark, group,
n, accuracy, ci95, change, change_ci95, random_change, margin_over_random, margin_ci95), ``summary[]``
and ``related[benchmark][condition][group]`` (accuracy change on the evaluated group).
Conditions named ``random<seed>:<group>`` are random baselines: drawn as the marker of their
group's mean change (the cells' ``random_change``), listed in full in the table.
"""

from __future__ import annotations

import re

import numpy as np
from matplotlib.patches import Rectangle

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.fields import Doc
from neurospec.report.plots import bar_values, ci_errors, colors, draw, heatmap, rotate_labels, symmetric_limit

BASELINE = "none"
_RANDOM = re.compile(r"^random\d+:")


def is_random_condition(name: str) -> bool:
    return bool(_RANDOM.match(name))


def mask_section(artifact: Artifact) -> Section:
    doc = Doc(artifact.data, str(artifact.path), artifact.fix)
    conditions = doc["conditions"].texts()
    benchmarks = {name: entry for name, entry in doc["benchmarks"].items()}
    kinds = {name: (entry.get("kind").text() if entry.get("kind") is not None else "cultural")
             for name, entry in benchmarks.items()}
    section = Section("mask_eval", artifact.label, "Culture neurons masked: accuracy per benchmark", artifact.step)
    settings = doc.get("settings")
    masked = [c for c in conditions if c != BASELINE and not is_random_condition(c)]
    randoms = [c for c in conditions if is_random_condition(c)]
    section.facts += [("conditions", f"{len(masked)} masked groups, {len(randoms)} random baselines"),
                      ("benchmarks", ", ".join(f"{b} ({kinds[b]}, {e['items'].raw} items)"
                                               for b, e in benchmarks.items()))]
    if settings is not None and "scoring" in settings:
        section.facts.append(("scoring", str(settings["scoring"].raw)))
    templates = doc.get("templates")
    if templates is not None:
        section.facts.append(("templates", ", ".join(templates.texts())))
    overall = {}
    table = Table("cells", "Accuracy on every benchmark (all items) per condition, change against `none`, margin "
                           "over the random baselines; 95% bootstrap intervals",
                  ["condition", "benchmark", "n", "accuracy", "95% CI low", "95% CI high", "change", "change CI low",
                   "change CI high", "random change", "margin over random", "margin CI low", "margin CI high"])
    for cell in doc["cells"].list():
        if cell["group"].text() != "all":
            continue
        condition, benchmark = cell["condition"].text(), cell["benchmark"].text()
        interval = cell["ci95"].interval()
        change = cell.get("change")
        change_ci = cell.get("change_ci95")
        change_ci = change_ci.interval() if change_ci is not None else None
        margin_ci = cell.get("margin_ci95")
        margin_ci = margin_ci.interval() if margin_ci is not None else None
        random_change = cell.get("random_change")
        margin = cell.get("margin_over_random")
        overall[(condition, benchmark)] = (change.number() if change is not None else None, change_ci,
                                           random_change.number() if random_change is not None else None)
        table.add(label(condition), text(benchmark), number(cell["n"].number()),
                  number(cell["accuracy"].number(), ".3f"), number(interval[0] if interval else None, ".3f"),
                  number(interval[1] if interval else None, ".3f"),
                  number(change.number() if change is not None else None, "+.3f"),
                  number(change_ci[0] if change_ci else None, "+.3f"), number(change_ci[1] if change_ci else None, "+.3f"),
                  number(random_change.number() if random_change is not None else None, "+.3f"),
                  number(margin.number() if margin is not None else None, "+.3f"),
                  number(margin_ci[0] if margin_ci else None, "+.3f"), number(margin_ci[1] if margin_ci else None, "+.3f"))
    tables = [table]
    rules = _rules_table(doc["cells"].list())
    if rules is not None:
        tables.append(rules)
    summary = doc.get("summary")
    if summary is not None and summary.list():
        tables.append(_summary_table(summary))
    figure = _change_figure(masked, list(benchmarks), kinds, overall) if masked and benchmarks else None
    section.add(figure, *tables)
    related = doc.get("related")
    for benchmark, matrix in (related.items() if related is not None else []):
        rows = [c for c in matrix.keys()]
        columns = list(dict.fromkeys(g for c in rows for g in matrix[c].keys()))
        if not rows or not columns:
            continue
        values = [[matrix[c][g].opt_number() if g in matrix[c] else None for g in columns] for c in rows]
        rel = Table(f"related-{_slug(benchmark)}", f"{benchmark}: accuracy change on each evaluated group when a "
                                                   "group's neurons are masked", ["masked", *columns])
        for condition, row in zip(rows, values):
            rel.add(label(condition), *[number(v, "+.3f") for v in row])
        figure = _related_figure(benchmark, rows, columns, values) if len(columns) >= 2 else None
        section.add(figure, rel)
    return section


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "benchmark"


def _rules_table(cells) -> Table | None:
    """Both accuracy rules of letter scoring side by side, and the share of answers that were no letter."""
    rows = [c for c in cells if c["group"].text() == "all" and c.get("rules") is not None]
    if not rows:
        return None
    table = Table("rules", "Accuracy by the paper's rule (the argmax over the whole vocabulary is the gold letter) "
                           "and over the option letters only; share of answers that were no option's letter",
                  ["condition", "benchmark", "full vocabulary", "letters only", "no letter"])
    for cell in rows:
        rules = cell["rules"]
        table.add(label(cell["condition"].text()), text(cell["benchmark"].text()),
                  number(rules["full_vocabulary"]["accuracy"].number(), ".3f"),
                  number(rules["letters_only"]["accuracy"].number(), ".3f"),
                  number(cell["non_letter_share"].number(), ".3f"))
    return table


def _summary_table(summary: Doc) -> Table:
    entries = summary.list()
    keys = list(dict.fromkeys(k for e in entries for k in e.keys() if k != "condition"))
    table = Table("summary", "Mean accuracy change per condition over the cultural and the NLU benchmarks",
                  ["condition", *[k.replace("_", " ") for k in keys]])
    for entry in entries:
        table.add(label(entry["condition"].text()),
                  *[number(entry[k].opt_number() if k in entry else None, "+.4f") for k in keys])
    return table


def _change_figure(masked, benchmarks, kinds, overall):
    palette = colors(len(benchmarks))

    def paint(fig):
        ax = fig.add_subplot()
        width = 0.8 / len(benchmarks)
        x = np.arange(len(masked))
        marked = False
        for i, (benchmark, color) in enumerate(zip(benchmarks, palette)):
            values = [overall.get((c, benchmark), (None, None, None))[0] for c in masked]
            intervals = [overall.get((c, benchmark), (None, None, None))[1] for c in masked]
            offset = x + (i - (len(benchmarks) - 1) / 2) * width
            ax.bar(offset, bar_values(values), width, color=color, yerr=ci_errors(values, intervals), capsize=2,
                   error_kw={"linewidth": 0.8}, hatch="..." if kinds[benchmark] == "nlu" else None,
                   label=f"{benchmark} ({kinds[benchmark]})")
            randoms = bar_values([overall.get((c, benchmark), (None, None, None))[2] for c in masked])
            if np.isfinite(randoms).any():
                ax.plot(offset, randoms, linestyle="none", marker="D", markersize=4, color="black",
                        label=None if marked else "mean change of the random baselines")
                marked = True
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, labels=masked)
        rotate_labels(ax, masked)
        ax.set_xlabel("masked neurons")
        ax.set_ylabel("accuracy change")
        ax.legend(loc="best")

    return draw("change", "Accuracy change when each group's neurons are masked (95% CI)", paint,
                size=(max(5.5, 0.35 * len(masked) * len(benchmarks) + 2.5), 3.8),
                alt=f"Bar chart of accuracy change for {len(masked)} masked groups on {len(benchmarks)} benchmarks",
                caption="Bars: change of accuracy (all items of the benchmark) against the unmodified model, with "
                        "its paired 95% bootstrap interval; diamonds: the mean change under the group's random "
                        "baselines; dotted bars: NLU benchmarks.")


def _related_figure(benchmark, rows, columns, values):
    limit = symmetric_limit(values)

    def paint(fig):
        ax = fig.add_subplot()
        heatmap(fig, ax, values, rows, columns, cmap="RdBu_r", vmin=-limit, vmax=limit, fmt=lambda v: f"{v:+.2f}",
                colorbar="accuracy change")
        for i, row in enumerate(rows):
            if row in columns:
                j = columns.index(row)
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.4))
        ax.set_xlabel("evaluated group")
        ax.set_ylabel("masked neurons")

    return draw(f"related-{_slug(benchmark)}", f"Related cultures on {benchmark}: accuracy change per evaluated group",
                paint, size=(max(4.5, 0.6 * len(columns) + 3.0), max(3.0, 0.36 * len(rows) + 1.8)),
                alt=f"Heatmap of accuracy change, {len(rows)} masked groups by {len(columns)} evaluated groups",
                caption="Does masking one culture's neurons also hurt its neighbours? Rows: the masked group; "
                        "columns: the group of the evaluated items; framed: the masked group's own items.")
