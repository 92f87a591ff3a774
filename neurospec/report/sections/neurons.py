"""Report section of a neuron set: neurons per layer and group (MLP and attention sites apart) and overlaps.

    from neurospec.report.sections.neurons import neuron_section
    section = neuron_section(artifact)      # an Artifact of kind "neurons" (neurospec.report.discover)

Counts are distinct neurons (site, layer, index) as :class:`neurospec.neurons.neuron_set.NeuronSet` holds them
(the file is loaded, and so checked, with ``NeuronSet.load``). Random baselines (method ``random`` or
``random-pooled``, or every group named ``random...``) get their count table only. Figures leave out what
holds no neuron (a group without neurons, named in the section's warnings; a site no group uses); the tables
keep every group. Up to :data:`LINE_GROUPS` groups are drawn as lines over the layers, more as a heatmap.
"""

from __future__ import annotations

from neurospec.neurons.neuron_set import NeuronSet
from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.fields import ReportError
from neurospec.report.plots import colors, draw, grid_shape, heatmap, small_multiples
from neurospec.report.runinfo import model_fact, model_sections
from neurospec.util.errors import NeurospecError

MLP_SITES = ("act", "down_in", "gate_pre", "up_pre")
ATTENTION_SITES = ("q", "k", "v", "o")
LINE_GROUPS = 8  # more groups than this are drawn as a group x layer heatmap per site


def site_family(site: str) -> str:
    """``"MLP"``, ``"attention"`` or ``"other"``."""
    return "MLP" if site in MLP_SITES else "attention" if site in ATTENTION_SITES else "other"


def ordered_sites(sites) -> list[str]:
    """MLP sites first, then attention sites, each in the canonical order; unknown ones last."""
    order = {site: i for i, site in enumerate(MLP_SITES + ATTENTION_SITES)}
    return sorted(set(sites), key=lambda s: (order.get(s, len(order)), s))


def is_random(neurons: NeuronSet) -> bool:
    return neurons.meta.method in ("random", "random-pooled") or (
        bool(neurons.groups) and all(g.startswith("random") for g in neurons.groups))


def neuron_section(artifact: Artifact) -> Section:
    try:
        neurons = NeuronSet.load(artifact.path)
    except NeurospecError as err:
        raise ReportError(f"{err} (artifact '{artifact.label}'; {artifact.fix})") from None
    meta = neurons.meta
    random = is_random(neurons)
    title = "Random baseline neuron set" if random else "Neuron set" + (f" ({meta.method})" if meta.method else "")
    section = Section("neurons", artifact.label, title, artifact.step)
    sites = ordered_sites(site for group in neurons.groups for site in neurons.sites(group))
    section.facts += [
        ("method", str(meta.method)), model_fact([], model_sections(artifact)), ("layers", str(neurons.num_layers)),
        ("widths", ", ".join(f"{s} {w}" for s, w in meta.widths.items()) or "unknown"),
        ("groups", str(len(neurons.groups))), ("distinct neurons", str(neurons.count())),
        ("sites", ", ".join(f"{s} ({site_family(s)})" for s in sites) or "none"),
        ("created", str(meta.created)), ("neurospec", str(meta.neurospec_version)),
    ]
    if not neurons.groups:
        section.notes.append("This neuron set has no groups.")
        return section
    counts = {(g, s): neurons.per_layer_counts(g, s).tolist() for g in neurons.groups for s in sites}
    table = _per_layer_table(neurons, sites, counts)
    if random or not sites:
        if random:
            section.notes.append("A random baseline: its figures are left out; the table gives its counts.")
        section.add(None, table)
        return section
    drawn = [g for g in neurons.groups if any(sum(counts[(g, s)]) for s in sites)]
    drawn_sites = [s for s in sites if any(sum(counts[(g, s)]) for g in drawn)]
    section.add(_per_layer_figure(drawn, drawn_sites, counts, neurons.num_layers) if drawn_sites else None, table)
    if len(neurons.groups) >= 2:
        shared, jaccard = _overlaps(neurons)
        keep = [i for i, g in enumerate(neurons.groups) if g in drawn]
        figure = _overlap_figure([neurons.groups[i] for i in keep], [[shared[i][j] for j in keep] for i in keep],
                                 [[jaccard[i][j] for j in keep] for i in keep]) if len(keep) >= 2 else None
        section.add(figure, *_overlap_tables(neurons.groups, shared, jaccard))
    return section


def _per_layer_table(neurons: NeuronSet, sites: list[str], counts: dict) -> Table:
    layers = list(range(neurons.num_layers))
    table = Table("per-layer", "Neurons per layer, by group and site", ["group", "site", *[f"L{layer}" for layer in layers],
                                                                         "total"])
    for group in neurons.groups:
        for site in sites:
            row = counts[(group, site)]
            table.add(label(group), text(site), *[number(int(c)) for c in row], number(int(sum(row))))
    return table


def _per_layer_figure(groups: list[str], sites: list[str], counts: dict, num_layers: int):
    """Neurons per layer: per site a panel, one line per group (a group x layer heatmap past LINE_GROUPS)."""
    if len(groups) > LINE_GROUPS:
        return _per_layer_heatmap(groups, sites, counts, num_layers)
    palette = colors(len(groups))
    layers = list(range(num_layers))
    rows, cols = grid_shape(len(sites), 4)

    def paint(fig):
        for site, ax in zip(sites, small_multiples(fig, len(sites), columns=4)[1]):
            for group, color in zip(groups, palette):
                ax.plot(layers, counts[(group, site)], marker="o", markersize=3, linewidth=1.2, color=color,
                        label=group)
            ax.set_title(f"{site_family(site)} site {site}")
            ax.set_xlabel("layer")
            ax.set_ylabel("neurons")
            ax.set_ylim(bottom=0)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_xticks(layers if len(layers) <= 16 else layers[::max(1, len(layers) // 8)])
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=min(len(groups), 6))

    legend_rows = -(-len(groups) // 6)
    return draw("per-layer", "Neurons per layer and group", paint,
                size=(max(4.6, 3.2 * cols), 2.6 * rows + 0.6 + 0.22 * legend_rows),
                alt=f"Line charts of neuron counts per layer for {len(groups)} groups at sites {', '.join(sites)}",
                caption="Distinct neurons per layer; one line per group, one panel per site (MLP sites first, then "
                        "attention sites). Groups without neurons and sites no group uses are left out.")


def _per_layer_heatmap(groups: list[str], sites: list[str], counts: dict, num_layers: int):
    layers = [str(layer) for layer in range(num_layers)]
    rows, cols = grid_shape(len(sites), 2)
    top = max(max(counts[(g, s)]) for g in groups for s in sites) or 1

    def paint(fig):
        grid, axes = small_multiples(fig, len(sites), columns=2)
        mesh = None
        for site, ax in zip(sites, axes):
            values = [counts[(group, site)] for group in groups]
            mesh = heatmap(fig, ax, values, groups, layers, cmap="Blues", vmin=0, vmax=top,
                           annotate=len(groups) * num_layers <= 250 and num_layers <= 24, fmt=lambda v: f"{v:.0f}")
            ax.set_title(f"{site_family(site)} site {site}")
            ax.set_xlabel("layer")
        if mesh is not None:
            fig.colorbar(mesh, ax=grid, label="neurons", shrink=0.6)

    panel_w = max(3.0, 0.32 * num_layers + 1.6)
    return draw("per-layer", "Neurons per layer and group", paint,
                size=(panel_w * cols + 1.0, (0.24 * len(groups) + 1.3) * rows),
                alt=f"Heatmaps of neuron counts per layer for {len(groups)} groups at sites {', '.join(sites)}",
                caption="Distinct neurons per layer (colour); one row per group, one panel per site (MLP sites "
                        "first). Groups without neurons and sites no group uses are left out.")


def _overlaps(neurons: NeuronSet) -> tuple[list[list[int]], list[list[float]]]:
    members = {g: {(site, layer, int(i)) for _, site, layer, idx in neurons.entries([g]) for i in idx.tolist()}
               for g in neurons.groups}
    shared, jaccard = [], []
    for a in neurons.groups:
        shared.append([])
        jaccard.append([])
        for b in neurons.groups:
            both = len(members[a] & members[b])
            either = len(members[a] | members[b])
            shared[-1].append(both)
            jaccard[-1].append(both / either if either else 0.0)
    return shared, jaccard


def _overlap_figure(groups, shared, jaccard):
    """Jaccard index off the diagonal (colour, scaled to the largest one), shared neurons written in every cell;
    the diagonal holds each group's size, uncoloured."""
    n = len(groups)
    side = max(3.2, min(14.0, 0.42 * n + 2.0))
    colours = [[None if i == j else value for j, value in enumerate(row)] for i, row in enumerate(jaccard)]
    top = max((v for row in colours for v in row if v is not None), default=0.0) or 1.0

    def paint(fig):
        ax = fig.add_subplot()
        notes = [[str(v) for v in row] for row in shared]
        heatmap(fig, ax, colours, groups, groups, cmap="Blues", vmin=0.0, vmax=top, annotations=notes,
                annotate=n <= 24, colorbar="Jaccard index")
        ax.set_xlabel("group")
        ax.set_ylabel("group")

    return draw("overlap", "Neuron overlap between groups", paint,
                size=(side + 1.3, side), alt=f"Heatmap of Jaccard overlap between {n} groups",
                caption="Numbers: shared neurons |A \u2229 B| (on the diagonal, the group's size, grey); colour: the "
                        "Jaccard index |A \u2229 B| / |A \u222a B|, its scale running to the largest one between two "
                        "different groups.")


def _overlap_tables(groups, shared, jaccard) -> list[Table]:
    counts = Table("overlap-shared", "Shared neurons between groups (diagonal: group size)", ["group", *groups])
    index = Table("overlap-jaccard", "Jaccard index between groups", ["group", *groups])
    for group, row_counts, row_index in zip(groups, shared, jaccard):
        counts.add(label(group), *[number(v) for v in row_counts])
        index.add(label(group), *[number(v, ".3f") for v in row_index])
    return [counts, index]
