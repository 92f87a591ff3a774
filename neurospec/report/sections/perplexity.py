"""Report section of a perplexity matrix (ppl.json): the change heatmap, the perplexities, selectivity.

    from neurospec.report.sections.perplexity import ppl_section
    section = ppl_section(artifact)         # an Artifact of kind "ppl"

Reads the file as a :class:`~neurospec.results.perplexity.PerplexityMatrix`: its rows (name, kind, group),
languages, the PPL change per row and language (the heatmap), each cell's perplexity and the summary per
group (own change, mean other change, selectivity).
"""

from __future__ import annotations

from matplotlib.patches import Rectangle

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.plots import GREY, draw, heatmap, symmetric_limit
from neurospec.results.perplexity import GroupSelectivity, PerplexityMatrix


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
    if summary:
        section.add(None, _selectivity_table(summary))
    return section


def _change_figure(changed, languages, matrix, own, recipe):
    names = [name for name, _, _ in changed]
    kinds = [kind for _, kind, _ in changed]
    limit = symmetric_limit(matrix)
    first_random = next((i for i, k in enumerate(kinds) if k == "random"), None)

    def paint(fig):
        ax = fig.add_subplot()
        heatmap(fig, ax, matrix, names, languages, cmap="RdBu_r", vmin=-limit, vmax=limit,
                fmt=lambda v: f"{v:.3g}", colorbar="PPL change",
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
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.4))
        ax.set_xlabel("evaluated language")
        ax.set_ylabel("intervened neurons (grey italics: random controls)")

    height = max(3.0, 0.32 * len(names) + 1.8)
    width = max(5.0, 0.62 * len(languages) + 3.0)
    return draw("change", f"Perplexity change with each group's neurons intervened ({recipe})", paint,
                size=(width, height),
                alt=f"Heatmap of perplexity change, {len(names)} intervened rows by {len(languages)} languages",
                caption="Rows: the neurons intervened (groups, then random controls below the line, in grey); "
                        "columns: the evaluated language; framed cells: the group's own language.")


def _selectivity_table(summary: dict[str, GroupSelectivity]) -> Table:
    table = Table("selectivity", "Own-language change against the mean change on the other languages",
                  ["group", "language", "neurons", "own \u0394PPL", "mean other \u0394PPL", "selectivity (PPL)",
                   "own \u0394NLL", "mean other \u0394NLL", "selectivity (NLL)"])
    for group, entry in summary.items():
        for which, kinds in entry.by_row.items():
            cells = []
            for kind in ("ppl", "nll"):
                part = kinds[kind]
                cells += [number(part.own, ".4g"), number(part.mean_other, ".4g"), number(part.selectivity, ".4g")]
            table.add(label(group), text(entry.language), text(which), *cells)
    return table
