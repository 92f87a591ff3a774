"""Report section of a perplexity matrix (ppl.json): the change heatmap, the perplexities, own versus other.

    from neurospec.report.sections.perplexity import ppl_section
    section = ppl_section(artifact)         # an Artifact of kind "ppl"

Reads the file as a :class:`~neurospec.results.perplexity.PerplexityMatrix`: its rows (name, kind, group),
languages, the PPL change per row and language (the heatmap), each cell's perplexity, the changes' paired
bootstrap intervals (when the file has them) and, per group and measure (PPL, mean NLL), the own-versus-other
contrast: own change, mean other change, their difference, each with its interval, and the ratio only where
the file gives one (a dash, with the reason on hover, where its denominator makes it meaningless).
"""

from __future__ import annotations

from matplotlib.patches import Rectangle

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.plots import GREY, change_scale, draw, fixed_decimals, heatmap
from neurospec.results.perplexity import GroupSelectivity, PerplexityIntervals, PerplexityMatrix


def ppl_section(artifact: Artifact) -> Section:
    matrix = artifact.read(PerplexityMatrix)
    languages = matrix.languages
    rows = [(row.name, row.kind, row.group) for row in matrix.rows]
    recipe = matrix.recipe.name
    section = Section("ppl", artifact.label, "Perplexity with each group's neurons intervened", artifact.step)
    section.facts += [("recipe", recipe), ("languages", ", ".join(languages)),
                      ("rows", f"{sum(k == 'group' for _, k, _ in rows)} groups, "
                               f"{sum(k == 'random' for _, k, _ in rows)} random controls")]
    for key in ("bos", "max_length"):
        if key in matrix.settings:
            section.facts.append((key, str(matrix.settings[key])))
    if matrix.intervals is not None:
        section.facts.append(("intervals", _intervals_fact(matrix.intervals)))
    changed = [(name, kind, group) for name, kind, group in rows if kind != "none"]
    change = matrix.change("ppl")
    values = [[change[name][lang] for lang in languages] for name, _, _ in changed]
    summary = matrix.selectivity()
    own = {group: entry.language for group, entry in summary.items()}
    if changed:
        table = Table("change", "Perplexity change against the unmodified model (PPL minus PPL of `none`)",
                      ["row", "kind", *languages])
        for (name, kind, _), row_values in zip(changed, values):
            table.add(label(name), text(kind), *[number(v, ".4g") for v in row_values])
        section.add(_change_figure(changed, languages, values, own, recipe), table)
    ppl = Table("ppl", "Perplexity per row and evaluated language", ["row", "kind", *languages])
    for name, kind, _ in rows:
        ppl.add(label(name), text(kind), *[number(matrix.cells[name][lang].ppl, ".4g") for lang in languages])
    section.add(None, ppl)
    if changed and matrix.intervals is not None:
        section.add(None, _change_intervals_table(matrix, changed))
    for kind in ("ppl", "nll") if summary else ():
        section.add(None, _contrast_table(summary, kind, matrix.intervals))
    return section


def _intervals_fact(intervals: PerplexityIntervals) -> str:
    texts = ", ".join(f"{lang} {n}" for lang, n in intervals.texts.items())
    return (f"{intervals.confidence:.0%} {intervals.method}, {intervals.bootstrap} resamples (seed {intervals.seed}); "
            f"texts: {texts}")


def _change_figure(changed, languages, matrix, own, recipe):
    names = [name for name, _, _ in changed]
    kinds = [kind for _, kind, _ in changed]
    norm, scale = change_scale(matrix)
    decimals = fixed_decimals(matrix)
    first_random = next((i for i, k in enumerate(kinds) if k == "random"), None)

    def paint(fig):
        ax = fig.add_subplot()
        heatmap(fig, ax, matrix, names, languages, cmap="RdBu_r", norm=norm,
                fmt=lambda v: f"{v:+.{decimals}f}", colorbar=f"PPL change\n({scale})",
                row_colors=[GREY if k == "random" else "black" for k in kinds])
        for tick, kind in zip(ax.get_yticklabels(), kinds):
            if kind == "random":
                tick.set_fontstyle("italic")
        if first_random is not None and first_random > 0:
            ax.axhline(first_random - 0.5, color="black", linewidth=1.6)
        for i, (_, _, group) in enumerate(changed):
            lang = own.get(group) if group is not None else None
            if lang in languages:
                j = languages.index(lang)
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.4, clip_on=False))
        ax.set_xlabel("evaluated language")
        ax.set_ylabel("intervened neurons (grey italics: random controls)")

    height = max(3.0, 0.32 * len(names) + 1.8)
    width = max(5.0, 0.62 * len(languages) + 3.0)
    return draw("change", f"Perplexity change with each group's neurons intervened ({recipe})", paint,
                size=(width, height),
                alt=f"Heatmap of perplexity change, {len(names)} intervened rows by {len(languages)} languages",
                caption="Rows: the neurons intervened (groups, then random controls below the line, in grey); "
                        "columns: the evaluated language; framed cells: the group's own language. The colour scale "
                        f"is a {scale} (on the colour bar), so one large change does not hide the others.")


def _bounds(interval) -> list:
    return [number(interval[0] if interval else None, ".4g"), number(interval[1] if interval else None, ".4g")]


def _change_intervals_table(matrix: PerplexityMatrix, changed) -> Table:
    intervals = matrix.intervals
    table = Table("change-intervals", f"Each change with its {intervals.confidence:.0%} paired bootstrap interval "
                  "over texts (the same resampled texts with and without the intervention)",
                  ["row", "language", "texts", "\u0394PPL", "CI low", "CI high", "\u0394NLL", "CI low", "CI high"])
    changes = {kind: matrix.change(kind) for kind in ("ppl", "nll")}
    for name, _, _ in changed:
        for lang in matrix.languages:
            table.add(label(name), text(lang), number(intervals.texts.get(lang)),
                      number(changes["ppl"][name][lang], ".4g"), *_bounds(intervals.change["ppl"][name][lang]),
                      number(changes["nll"][name][lang], ".4g"), *_bounds(intervals.change["nll"][name][lang]))
    return table


def _contrast_table(summary: dict[str, GroupSelectivity], kind: str, intervals: PerplexityIntervals | None) -> Table:
    measure = "PPL" if kind == "ppl" else "mean NLL"
    level = f"{intervals.confidence:.0%} intervals" if intervals else "no intervals in this file"
    table = Table(f"contrast-{kind}", f"{measure}: the change on the group's own language against the mean change on "
                  f"the other languages, their difference, and their ratio where its denominator is positive and "
                  f"clearly above 0 ({level})",
                  ["group", "language", "neurons", "own \u0394", "CI low", "CI high", "mean other \u0394", "CI low",
                   "CI high", "difference", "CI low", "CI high", "ratio", "CI low", "CI high"])
    for group, entry in summary.items():
        for which, kinds in entry.by_row.items():
            part = kinds[kind]
            bounds = part.intervals
            ratio = number(part.selectivity, ".4g") if bounds else text(None, title="no intervals to judge it by")
            if bounds and part.selectivity is None:
                ratio = text(None, title=bounds.note)
            table.add(label(group), text(entry.language), text(which),
                      number(part.own, ".4g"), *_bounds(bounds.own if bounds else None),
                      number(part.mean_other, ".4g"), *_bounds(bounds.mean_other if bounds else None),
                      number(part.difference, ".4g"), *_bounds(bounds.difference if bounds else None),
                      ratio, *_bounds(bounds.selectivity if bounds else None))
    return table
