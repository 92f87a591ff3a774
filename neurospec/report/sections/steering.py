"""Report section of steering by generation (steer.json): share of continuations in the target language.

    from neurospec.report.sections.steering import steer_section
    section = steer_section(artifact)       # an Artifact of kind "steer"

Reads the file as a :class:`~neurospec.results.steering.SteeringRecord`: per target row (a group, or
``random<seed>:<group>``) and source language, the share ``k / n`` of continuations identified as the row's
target language with its 95% Wilson interval, the unmodified model's share in that language (``baseline``), and
the change between them with Newcombe's paired interval (the same prompts; absent from older files); and, where
the file has them, the fluency of the continuations (distinct-1, distinct-2, repeated-token share, perplexity
under the unmodified model): each value and its change from the unmodified model's generations in the share
table, and every interval in a fluency table.
"""

from __future__ import annotations

import numpy as np

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.plots import GREY, LIGHT, bar_values, ci_errors, colors, draw, grid_shape, rotate_labels, small_multiples
from neurospec.results.steering import SteeringLine, SteeringRecord

FLUENCY_COLUMNS = {"distinct_1": "distinct-1", "distinct_2": "distinct-2", "repeated_token_share": "repeated tokens",
                   "perplexity": "ppl (unmodified model)"}


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
    paired = any(line.change_ci95 is not None for line in steering.table)
    fluent = any(line.fluency is not None for line in steering.table)
    table = Table("share", "Share of continuations in the target language (95% Wilson intervals)"
                  + ("; change: share minus baseline share on the same prompts (95% Newcombe paired interval)"
                     if paired else ""),
                  ["row", "kind", "target", "source", "k", "n", "share", "95% CI low", "95% CI high",
                   "baseline k", "baseline n", "baseline share", "baseline CI low", "baseline CI high"]
                  + (["change", "change CI low", "change CI high"] if paired else [])
                  + ([f"{name}{suffix}" for name in FLUENCY_COLUMNS.values() for suffix in ("", " change")]
                     if fluent else []))
    records = []
    for line in steering.table:
        steered, base = line.steered, line.baseline
        record = {"row": line.row, "kind": line.kind, "target": line.target, "source": line.source,
                  "share": steered.share, "ci": steered.ci95, "base": base.share, "base_ci": base.ci95}
        records.append(record)
        table.add(label(line.row), text(line.kind), text(line.target), text(line.source), number(steered.k),
                  number(steered.n), number(steered.share, ".3f"), number(steered.ci95[0], ".3f"),
                  number(steered.ci95[1], ".3f"), number(base.k), number(base.n), number(base.share, ".3f"),
                  number(base.ci95[0], ".3f"), number(base.ci95[1], ".3f"), *_change_cells(line, paired),
                  *_fluency_cells(line, fluent))
    if not records:
        section.notes.append("The steering table is empty (no target rows).")
        return section
    section.add(_figure(records, sources, recipe), table)
    if fluent:
        section.add(None, _fluency_table(steering.table))
    return section


def _fluency_cells(line: SteeringLine, fluent: bool) -> list:
    """Per fluency measure: the row's value and its change from the unmodified model (dashes where absent)."""
    if not fluent:
        return []
    cells = []
    for name in FLUENCY_COLUMNS:
        comparison = line.fluency.get(name) if line.fluency else None
        cells += [number(comparison.steered.value if comparison else None, ".3f"),
                  number(comparison.change if comparison else None, "+.3f")]
    return cells


def _fluency_table(lines: list[SteeringLine]) -> Table:
    """One row per (steering line, fluency measure): the value, the unmodified model's, the change, with intervals."""
    table = Table("fluency", "Fluency of the continuations against the unmodified model's on the same prompts "
                  "(95% percentile bootstrap over prompts; change: paired bootstrap). distinct-n: distinct n-grams "
                  "over n-grams per continuation; repeated tokens: share of tokens equal to the one before; ppl: "
                  "perplexity of the generated tokens given the prompt under the unmodified model",
                  ["row", "target", "source", "measure", "value", "CI low", "CI high", "unmodified",
                   "unmodified CI low", "unmodified CI high", "change", "change CI low", "change CI high"])
    for line in lines:
        for name, comparison in (line.fluency or {}).items():
            steered, base, change = comparison.steered, comparison.baseline, comparison.change_ci95
            table.add(label(line.row), text(line.target), text(line.source), text(FLUENCY_COLUMNS.get(name, name)),
                      *_measure_cells(steered), *_measure_cells(base), number(comparison.change, "+.3f"),
                      number(change[0] if change else None, "+.3f"), number(change[1] if change else None, "+.3f"))
    return table


def _measure_cells(measure) -> list:
    """A measure's value and its interval bounds (dashes where undefined)."""
    interval = measure.ci95
    return [number(measure.value, ".3f"), number(interval[0] if interval else None, ".3f"),
            number(interval[1] if interval else None, ".3f")]


def _change_cells(line, paired: bool) -> list:
    """The change and its interval (dashes where the file has none), when any line of the table has one."""
    if not paired:
        return []
    interval = line.change_ci95
    return [number(line.change if interval else None, "+.3f"), number(interval[0] if interval else None, "+.3f"),
            number(interval[1] if interval else None, "+.3f")]


def _figure(records, sources, recipe):
    """One panel per target holding a line of the table: per prompt language a dot per row (the unmodified
    model, the target's neurons, each random set) with its interval; a share of 0 is a dot at 0, not an empty bar."""
    targets = list(dict.fromkeys(r["target"] for r in records))
    # per target: the group row(s) and the random rows, in file order
    by_target = {t: list(dict.fromkeys(r["row"] for r in records if r["target"] == t)) for t in targets}
    lookup = {(r["row"], r["source"]): r for r in records}
    shown = {t: [s for s in sources if any((n, s) in lookup for n in by_target[t])] for t in targets}
    targets = [t for t in targets if shown[t]]  # a panel without a line of the table is left out
    rows, cols = grid_shape(len(targets), 3)
    widest = max(len(v) for v in by_target.values()) + 1

    def paint(fig):
        legend = {}
        for k, (target, ax) in enumerate(zip(targets, small_multiples(fig, len(targets), columns=3, sharey=True)[1])):
            names, here = by_target[target], shown[target]
            group_rows = [n for n in names if not n.startswith("random")]
            random_rows = [n for n in names if n.startswith("random")]
            series = [("unmodified model", names[0], "base", GREY, "s")]
            series += [("target's neurons", n, "share", color, "o")
                       for n, color in zip(group_rows, colors(max(1, len(group_rows))))]
            series += [("random neurons", n, "share", LIGHT, "D") for n in random_rows]
            step = 0.7 / len(series)
            x = np.arange(len(here))
            for i, (name, row, key, color, marker) in enumerate(series):
                recs = [lookup.get((row, s)) for s in here]
                values = [r[key] if r else None for r in recs]
                intervals = [(r["base_ci"] if key == "base" else r["ci"]) if r else None for r in recs]
                handle = ax.errorbar(x + (i - (len(series) - 1) / 2) * step, bar_values(values),
                                     yerr=ci_errors(values, intervals), fmt=marker, color=color, markersize=4.5,
                                     markeredgecolor="black", markeredgewidth=0.4, ecolor=color, elinewidth=1.1,
                                     capsize=2)
                legend.setdefault(name, handle)
            ax.set_title(f"target {target}")
            ax.set_xticks(x, labels=here)
            ax.set_xlim(-0.6, len(here) - 0.4)
            rotate_labels(ax, here, limit=4)
            ax.set_ylim(-0.04, 1.04)
            ax.grid(axis="y", color="#e6e6e6", linewidth=0.6)
            ax.set_axisbelow(True)
            if k % cols == 0:
                ax.set_ylabel("share in target")
            if k + cols >= len(targets):
                ax.set_xlabel("prompt language")
        fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=len(legend))

    panel_w = max(2.8, 0.32 * len(sources) * (1 + widest * 0.25) + 1.2)
    return draw("share", f"Steering ({recipe}): share of continuations in the target language", paint,
                size=(panel_w * cols, 2.5 * rows + 0.8),
                alt=f"Dot plots of the share in the target language for {len(targets)} targets",
                caption="One panel per target language, one column of dots per prompt language: grey squares the "
                        "unmodified model's share in the target language, coloured dots the share with the target's "
                        "neurons intervened, light grey diamonds random neurons; whiskers are the 95% intervals the "
                        "artifact records (ci95).")
