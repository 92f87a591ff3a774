"""Report section of a perplexity matrix (ppl.json): the change heatmap, the perplexities, selectivity.

    from neurospec.report.sections.perplexity import ppl_section
    section = ppl_section(artifact)         # an Artifact of kind "ppl"

Reads ``rows`` (name, kind, group), ``languages``, ``change_ppl[row][language]`` (the heatmap),
``cells[row][language].ppl`` and ``summary[group]`` (own change, mean other change, selectivity).
"""

from __future__ import annotations

from matplotlib.patches import Rectangle

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.fields import Doc
from neurospec.report.plots import GREY, draw, heatmap, symmetric_limit


def ppl_section(artifact: Artifact) -> Section:
    doc = Doc(artifact.data, str(artifact.path), artifact.fix)
    languages = doc["languages"].texts()
    rows = [(r["name"].text(), r["kind"].text(), r.get("group").text() if r.get("group") else None)
            for r in doc["rows"].list()]
    recipe = doc["recipe"]["name"].text()
    section = Section("ppl", artifact.label, "Perplexity with each group's neurons intervened", artifact.step)
    settings = doc.get("settings")
    section.facts += [("recipe", recipe), ("languages", ", ".join(languages)),
                      ("rows", f"{sum(k == 'group' for _, k, _ in rows)} groups, "
                               f"{sum(k == 'random' for _, k, _ in rows)} random controls")]
    if settings is not None:
        for key in ("bos", "max_length"):
            if key in settings:
                section.facts.append((key, str(settings[key].raw)))
    changed = [(name, kind, group) for name, kind, group in rows if kind != "none"]
    change = doc["change_ppl"]
    matrix = [[change[name][lang].opt_number() for lang in languages] for name, _, _ in changed]
    summary = doc.get("summary")
    own = {group: entry["language"].text() for group, entry in summary.items()} if summary is not None else {}
    if changed:
        table = Table("change", "Perplexity change against the unmodified model (PPL minus PPL of `none`)",
                      ["row", "kind", *languages])
        for (name, kind, _), values in zip(changed, matrix):
            table.add(label(name), text(kind), *[number(v, ".4g") for v in values])
        section.add(_change_figure(changed, languages, matrix, own, recipe), table)
    ppl = Table("ppl", "Perplexity per row and evaluated language", ["row", "kind", *languages])
    for name, kind, _ in rows:
        ppl.add(label(name), text(kind), *[number(doc["cells"][name][lang]["ppl"].number(), ".4g") for lang in languages])
    section.add(None, ppl)
    if summary is not None and summary.keys():
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


def _selectivity_table(summary: Doc) -> Table:
    table = Table("selectivity", "Own-language change against the mean change on the other languages",
                  ["group", "language", "neurons", "own \u0394PPL", "mean other \u0394PPL", "selectivity (PPL)",
                   "own \u0394NLL", "mean other \u0394NLL", "selectivity (NLL)"])
    for group, entry in summary.items():
        language = entry["language"].text()
        for which, values in entry.items():
            if which == "language":
                continue
            cells = []
            for kind in ("ppl", "nll"):
                part = values.get(kind)
                cells += [number(part[k].opt_number() if part is not None and k in part else None, ".4g")
                          for k in ("own", "mean_other", "selectivity")]
            table.add(label(group), text(language), text(which), *cells)
    return table
