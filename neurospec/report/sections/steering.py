"""Report section of steering by generation (steer.json): share of continuations in the target language.

    from neurospec.report.sections.steering import steer_section
    section = steer_section(artifact)       # an Artifact of kind "steer"

Reads the file as a :class:`~neurospec.results.steering.SteeringRecord`: per target row (a group, or
``random<seed>:<group>``) and source language, the share ``k / n`` of continuations identified as the row's
target language with its 95% Wilson interval, and the unmodified model's share in that language (``baseline``).
"""

from __future__ import annotations

import numpy as np

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.plots import GREY, LIGHT, bar_values, ci_errors, colors, draw, grid_shape, rotate_labels, small_multiples
from neurospec.results.steering import SteeringRecord


def steer_section(artifact: Artifact) -> Section:
    steering = artifact.read(SteeringRecord)
    recipe = steering.recipe.name
    sources = steering.sources
    section = Section("steer", artifact.label, "Steering by generation: share in the target language", artifact.step)
    section.facts += [("recipe", recipe), ("sources", ", ".join(sources))]
    for key, name in (("max_new_tokens", "new tokens"), ("language_id", "language identifier"),
                      ("do_sample", "sampling")):
        if key in steering.settings:
            section.facts.append((name, str(steering.settings[key])))
    table = Table("share", "Share of continuations in the target language (95% Wilson intervals)",
                  ["row", "kind", "target", "source", "k", "n", "share", "95% CI low", "95% CI high",
                   "baseline k", "baseline n", "baseline share", "baseline CI low", "baseline CI high"])
    records = []
    for line in steering.table:
        steered, base = line.steered, line.baseline
        record = {"row": line.row, "kind": line.kind, "target": line.target, "source": line.source,
                  "share": steered.share, "ci": steered.ci95, "base": base.share, "base_ci": base.ci95}
        records.append(record)
        table.add(label(line.row), text(line.kind), text(line.target), text(line.source), number(steered.k),
                  number(steered.n), number(steered.share, ".3f"), number(steered.ci95[0], ".3f"),
                  number(steered.ci95[1], ".3f"), number(base.k), number(base.n), number(base.share, ".3f"),
                  number(base.ci95[0], ".3f"), number(base.ci95[1], ".3f"))
    if not records:
        section.notes.append("The steering table is empty (no target rows).")
        return section
    section.add(_figure(records, sources, recipe), table)
    return section


def _figure(records, sources, recipe):
    targets = list(dict.fromkeys(r["target"] for r in records))
    # per target: the group row(s) and the random rows, in file order
    by_target = {t: list(dict.fromkeys(r["row"] for r in records if r["target"] == t)) for t in targets}
    lookup = {(r["row"], r["source"]): r for r in records}
    rows, cols = grid_shape(len(targets), 4)
    widest = max(len(v) for v in by_target.values())

    def paint(fig):
        legend = {}
        for k, (target, ax) in enumerate(zip(targets, small_multiples(fig, len(targets), sharey=True)[1])):
            names = by_target[target]
            series = [("unmodified", [lookup.get((names[0], s)) for s in sources], "base", GREY)]
            group_rows = [n for n in names if not n.startswith("random")]
            random_rows = [n for n in names if n.startswith("random")]
            palette = colors(max(1, len(group_rows)))
            for n, color in zip(group_rows, palette):
                series.append((f"{n} neurons", [lookup.get((n, s)) for s in sources], "share", color))
            for n in random_rows:
                series.append((f"{n} (random)", [lookup.get((n, s)) for s in sources], "share", LIGHT))
            width = 0.8 / len(series)
            x = np.arange(len(sources))
            for i, (_name, recs, key, color) in enumerate(series):
                values = [r[key] if r else None for r in recs]
                intervals = [(r["base_ci"] if key == "base" else r["ci"]) if r else None for r in recs]
                handle = ax.bar(x + (i - (len(series) - 1) / 2) * width, bar_values(values), width, color=color,
                                yerr=ci_errors(values, intervals), capsize=2, error_kw={"linewidth": 0.8},
                                edgecolor="black" if key == "share" and color != LIGHT else "none", linewidth=0.4)
                legend.setdefault("unmodified model" if key == "base" else
                                  ("random neurons" if color == LIGHT else "target's neurons"), handle)
            ax.set_title(f"target {target}")
            ax.set_xticks(x, labels=sources)
            rotate_labels(ax, sources, limit=4)
            ax.set_ylim(0, 1.05)
            if k % cols == 0:
                ax.set_ylabel("share in target")
            if k + cols >= len(targets):
                ax.set_xlabel("prompt language")
        fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=len(legend))

    panel_w = max(3.0, 0.45 * len(sources) * (1 + widest * 0.3) + 1.2)
    return draw("share", f"Steering ({recipe}): share of continuations in the target language, 95% Wilson CI", paint,
                size=(panel_w * cols, 2.6 * rows + 0.9),
                alt=f"Bar charts of the share in the target language for {len(targets)} targets",
                caption="One panel per target language: grey the unmodified model's share in that language, coloured "
                        "the share with the target's neurons intervened, light grey random neurons; error bars are "
                        "95% Wilson intervals.")
