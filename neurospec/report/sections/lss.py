"""Report sections of Language Steering Shift: one LSS matrix (lss.json) and a sweep of settings (sweep.json).

    from neurospec.report.sections.lss import lss_section, sweep_section, sweep_setting_labels
    section = lss_section(artifact)                          # an Artifact of kind "lss"
    labels = sweep_setting_labels(sweep_artifact)            # the lss.json labels the sweep owns
    section = sweep_section(sweep_artifact, {label: lss_artifact, ...})

lss.json is read as a :class:`~neurospec.results.lss.LSSRecord` (sources, targets, cells with their
intervals and controls, the pooled LSS and margins, the means); sweep.json as a
:class:`~neurospec.results.sweep.SweepRecord` (a curve point per setting, and the best setting); each
setting's lss.json lives in ``<sweep folder>/<point's folder>/lss.json``. A sweep that generated adds the
share in the target language against fluency per setting (:mod:`neurospec.report.sections.sweep_fluency`).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.plots import bar_values, ci_errors, colors, draw, grid_shape, heatmap, small_multiples
from neurospec.report.sections.sweep_fluency import fluency_facts, fluency_figure, fluency_table
from neurospec.results.lss import LSSCell, LSSRecord, PooledLSS
from neurospec.results.sweep import SweepPoint, SweepRecord


def _matrix(record: LSSRecord) -> tuple[list[str], list[str], list[list[float | None]], dict[tuple[str, str], LSSCell]]:
    sources, targets = record.sources, record.targets
    cells = {(c.source, c.target): c for c in record.cells}
    values = [[cells[(s, t)].lss if (s, t) in cells else None for t in targets] for s in sources]
    return sources, targets, values, cells


def _interval_text(interval) -> str:
    return "" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def lss_section(artifact: Artifact) -> Section:
    record = artifact.read(LSSRecord)
    recipe = record.recipe.name
    section = Section("lss", artifact.label, "Language steering shift", artifact.step)
    sources, targets, values, cells = _matrix(record)
    pooled = record.pooled
    section.facts += [("recipe", recipe), ("sources", ", ".join(sources)), ("targets", ", ".join(targets)),
                      ("mean off-diagonal LSS", _fmt(record.mean_offdiagonal)), ("mean D0", _fmt(record.mean_d0))]
    if pooled is not None:
        section.facts.append(("pooled LSS", f"{pooled.lss:.3f} {_interval_text(pooled.ci95)} over {pooled.n} "
                                            f"item-cells ({pooled.items} items)"))
    if record.degenerate:
        section.warnings.append("The mean D0 is not negative: without intervention the target answers are as likely "
                                "as the source answers, so this cut of the items is degenerate.")
    subtitle = f"; pooled {pooled.lss:.2f} {_interval_text(pooled.ci95)}" if pooled is not None else ""
    figure = draw("lss", f"LSS, source \u2192 target ({recipe}){subtitle}",
                  lambda fig: _paint_matrix(fig, fig.add_subplot(), sources, targets, values, colorbar=True),
                  size=(max(4.5, 0.7 * len(targets) + 2.6), max(3.2, 0.5 * len(sources) + 1.8)),
                  alt=f"Heatmap of LSS for {len(sources)} sources by {len(targets)} targets",
                  caption="Share of items whose answer moves toward the target language when the target's neurons "
                          "are intervened; the diagonal is undefined. Intervals are in the table.")
    section.add(figure, _cells_table(cells, record.interval_method))
    if pooled is not None:
        section.add(_pooled_figure(pooled) if pooled.controls else None, _pooled_table(pooled, record.interval_method))
    return section


def _fmt(value) -> str:
    return "\u2014" if value is None else f"{value:.4g}"


def _paint_matrix(fig, ax, sources, targets, values, *, colorbar: bool, annotate=None):
    heatmap(fig, ax, values, sources, targets, cmap="viridis", vmin=0.0, vmax=1.0, annotate=annotate,
            colorbar="LSS" if colorbar else None)
    ax.set_xlabel("target (neurons intervened)")
    ax.set_ylabel("source (prompt language)")


def _methods(interval_method: dict[str, str] | None) -> dict[str, str]:
    """The method of each kind of interval, as the file names them (older files: percentile bootstraps)."""
    bootstrap = "percentile bootstrap over items"
    return interval_method or {"lss": bootstrap, "margin": bootstrap, "pooled_lss": bootstrap,
                               "pooled_margin": bootstrap}


def _cells_table(cells: dict[tuple[str, str], LSSCell], interval_method: dict[str, str] | None = None) -> Table:
    names = sorted({name for c in cells.values() for name in c.controls})
    columns = ["source", "target", "n", "excluded", "LSS", "95% CI low", "95% CI high", "mean D0"]
    for name in names:
        columns += [f"{name}: LSS", f"{name}: margin", f"{name}: margin CI low", f"{name}: margin CI high"]
    methods = _methods(interval_method)
    table = Table("cells", f"LSS per source and target with its 95% interval ({methods['lss']}), and each control's "
                  f"LSS and the paired margin over it ({methods['margin']} interval)", columns)
    for (source, target), cell in cells.items():
        interval = cell.ci95
        row = [label(source), text(target), number(cell.n), number(cell.excluded_identical), number(cell.lss, ".3f"),
               number(interval[0] if interval else None, ".3f"), number(interval[1] if interval else None, ".3f"),
               number(cell.mean_d0, ".3f")]
        for name in names:
            control = cell.controls.get(name)
            if control is None:
                row += [text(None)] * 4
                continue
            margin = control.margin_ci95
            row += [number(control.lss, ".3f"), number(control.margin, "+.3f"),
                    number(margin[0] if margin else None, "+.3f"), number(margin[1] if margin else None, "+.3f")]
        table.add(*row)
    return table


def _pooled_table(pooled: PooledLSS, interval_method: dict[str, str] | None = None) -> Table:
    methods = _methods(interval_method)
    table = Table("pooled", f"Pooled over every cell's items; 95% intervals: LSS {methods['pooled_lss']}, "
                  f"margins {methods['pooled_margin']}",
                  ["neurons", "LSS", "95% CI low", "95% CI high", "margin", "margin CI low", "margin CI high"])
    interval = pooled.ci95
    table.add(label("target's own"), number(pooled.lss, ".3f"),
              number(interval[0] if interval else None, ".3f"), number(interval[1] if interval else None, ".3f"),
              text(None), text(None), text(None))
    for name, control in pooled.controls.items():
        margin = control.margin_ci95
        table.add(label(f"control: {name}"), number(control.lss, ".3f"), text(None), text(None),
                  number(control.margin, "+.3f"), number(margin[0] if margin else None, "+.3f"),
                  number(margin[1] if margin else None, "+.3f"))
    return table


def _pooled_figure(pooled: PooledLSS):
    names = list(pooled.controls)
    margins = [pooled.controls[n].margin for n in names]
    intervals = [pooled.controls[n].margin_ci95 for n in names]

    def paint(fig):
        left, right = fig.subplots(1, 2)
        labels = ["own"] + list(names)
        shares = [pooled.lss] + [pooled.controls[n].lss for n in names]
        own_ci = pooled.ci95
        palette = colors(len(labels))
        left.bar(range(len(labels)), shares, color=palette,
                 yerr=ci_errors(shares, [own_ci] + [None] * len(names)), capsize=4)
        left.set_xticks(range(len(labels)), labels=labels)
        left.set_ylim(0, 1)
        left.set_ylabel("pooled LSS")
        left.set_xlabel("neurons intervened")
        left.set_title("pooled LSS")
        right.bar(range(len(names)), margins, color=palette[1:], yerr=ci_errors(margins, intervals), capsize=4)
        right.axhline(0, color="black", linewidth=0.8)
        right.set_xticks(range(len(names)), labels=names)
        right.set_ylabel("own minus control")
        right.set_xlabel("control")
        right.set_title("paired margin (95% CI)")

    return draw("pooled", "Pooled LSS: the target's own neurons against the controls", paint,
                size=(3.6 + 1.4 * len(names), 3.3), alt="Bar charts of pooled LSS and margins over controls",
                caption="Left: LSS pooled over every cell's items for the target's own neurons (with its 95% "
                        "interval) and for each control. Right: the paired margin over each control with its 95% "
                        "interval; a margin whose interval lies above zero means the target's neurons move answers "
                        "toward the target more than the control does.")


# ---- sweeps


def sweep_setting_labels(artifact: Artifact) -> list[str]:
    """The labels of the per-setting lss.json files of a sweep (whether they exist or not), in curve order."""
    base = PurePosixPath(artifact.label).parent
    return [(base / point.folder / "lss.json").as_posix() for point in artifact.read(SweepRecord).curve
            if point.folder is not None]


def _value_label(point: SweepPoint) -> str:
    value = point.value
    value = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    op = point.recipe.split(":", 1)[0] if ":" in point.recipe else point.recipe.split("*", 1)[0]
    where = _positions(point)
    return f"{op}:{value}" + ("" if where == "all" else f"@{where}")


def _positions(point: SweepPoint) -> str:
    return point.positions if point.positions is not None else "all"


def sweep_section(artifact: Artifact, settings: dict[str, Artifact]) -> Section:
    record = artifact.read(SweepRecord)
    curve = record.curve
    best = record.best.name
    section = Section("sweep", artifact.label, "Sweep of intervention settings (LSS)", artifact.step)
    section.facts += [("settings", str(len(curve))), ("best setting", best)]
    if "items" in record.settings:
        section.facts.append(("items", str(record.settings["items"])))
    points = [(_value_label(p), p.factor, p.pooled_lss, p.pooled_lss_ci95, p.mean_lss, p) for p in curve]
    table = Table("curve", "LSS per setting: mean over cells and pooled over items (95% CI)",
                  ["setting", "value", "factor", "positions", "mean LSS", "pooled LSS", "95% CI low", "95% CI high",
                   "mean D0", "best"])
    for value, factor, pooled, interval, mean, point in points:
        table.add(label(point.recipe), text(value), number(factor, "g"), text(_positions(point)), number(mean, ".3f"),
                  number(pooled, ".3f"), number(interval[0] if interval else None, ".3f"),
                  number(interval[1] if interval else None, ".3f"), number(point.mean_d0, ".3f"),
                  text("best" if point.recipe == best else ""))
    section.add(_curve_figure(points, best) if curve else None, table)
    if record.fluency_bound is not None and any(point.steering is not None for point in curve):  # it generated
        section.facts += fluency_facts(record)
        if record.best_fluent_reason:
            section.notes.append(f"Best within the fluency bound: {record.best_fluent_reason}.")
        section.add(fluency_figure(record), fluency_table(record))
    present = [(p.recipe, settings.get(lbl)) for p, lbl in zip(curve, sweep_setting_labels(artifact))]
    found = [(name, a) for name, a in present if a is not None]
    missing = [name for name, a in present if a is None]
    if missing:
        section.notes.append(f"No per-setting lss.json found for: {', '.join(missing)}.")
    if found:
        section.add(*_settings_block(found))
    return section


def _curve_figure(points, best: str):
    series: dict[str, list] = {}
    for point in points:
        series.setdefault(point[0], []).append(point)
    factors = [p[1] for p in points]
    log_x = all(f > 0 for f in factors) and max(factors) / min(factors) >= 4

    def paint(fig):
        ax = fig.add_subplot()
        for (name, members), color in zip(series.items(), colors(len(series))):
            members = sorted(members, key=lambda p: p[1])
            xs = [p[1] for p in members]
            ys = bar_values([p[2] for p in members])
            low = bar_values([p[3][0] if p[3] else None for p in members])
            high = bar_values([p[3][1] if p[3] else None for p in members])
            ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
            if len(xs) == 1:  # a band needs two points: one setting shows its interval as a whisker
                ax.errorbar(xs, ys, yerr=[ys - low, high - ys], color=color, capsize=3, linewidth=1)
            ax.plot(xs, ys, marker="o", color=color, label=f"{name} (pooled, 95% CI band)")
            ax.plot(xs, bar_values([p[4] for p in members]), linestyle="--", linewidth=1, color=color,
                    label=f"{name} (mean over cells)")
            for p in members:
                if p[5].recipe == best and p[2] is not None:
                    ax.plot([p[1]], [p[2]], marker="*", markersize=14, color="black", linestyle="none",
                            label=f"best: {best}")
        if log_x:
            ax.set_xscale("log")
        ax.set_xticks(sorted(set(factors)), labels=[f"{f:g}" for f in sorted(set(factors))])
        ax.minorticks_off()
        ax.set_xlabel("factor")
        ax.set_ylabel("LSS")
        ax.set_ylim(0, 1)
        ax.legend(loc="best")

    return draw("curve", "Sweep: pooled LSS against the factor, per value (band: 95% CI)", paint, size=(6.4, 3.8),
                alt=f"Line chart of pooled LSS for {len(points)} settings", caption="Solid: LSS pooled over every "
                "cell's items, with its 95% interval as a band; dashed: mean LSS over cells (the selection criterion); "
                "star: the best setting.")


def _settings_block(found: list[tuple[str, Artifact]]):
    matrices = []
    table = Table("settings", "LSS per setting, source and target (each setting's lss.json), 95% CI",
                  ["setting", "file", "source", "target", "LSS", "95% CI low", "95% CI high"])
    for name, artifact in found:
        sources, targets, values, cells = _matrix(artifact.read(LSSRecord))
        matrices.append((name, sources, targets, values))
        for (source, target), cell in cells.items():
            interval = cell.ci95
            table.add(label(name), text(artifact.label), text(source), text(target), number(cell.lss, ".3f"),
                      number(interval[0] if interval else None, ".3f"), number(interval[1] if interval else None, ".3f"))
    rows, cols = grid_shape(len(matrices), 4)
    width = max(len(m[2]) for m in matrices)

    def paint(fig):
        grid, axes = small_multiples(fig, len(matrices))
        image = None
        for (name, sources, targets, values), ax in zip(matrices, axes):
            image = heatmap(fig, ax, values, sources, targets, cmap="viridis", vmin=0.0, vmax=1.0,
                            annotate=len(sources) * len(targets) <= 64)
            ax.set_title(name)
        if image is not None:
            fig.colorbar(image, ax=grid, label="LSS", shrink=0.6)

    panel = max(2.6, 0.45 * width + 1.4)
    figure = draw("settings", "LSS matrix of every setting (rows: source, columns: target)", paint,
                  size=(panel * cols + 1.0, panel * rows * 0.9 + 0.6),
                  alt=f"{len(matrices)} LSS heatmaps, one per sweep setting",
                  caption="Same colour scale in every panel; the diagonal is undefined.")
    return figure, table
