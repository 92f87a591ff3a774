"""Report section of an attribution run (attribution.json of `neurospec attribute`): the scores per layer.

    from neurospec.report.sections.attribution import attribution_section
    section = attribution_section(artifact)     # an Artifact of kind "attribution" (its attribution.json)

The run is read with :meth:`neurospec.measure.attribution.AttributionScores.load` (every tensor file checked
against its fingerprint). Drawn, one panel per site: per layer, the distribution over the layer's neurons of
the mean score per example, ``sum over groups of S(n, c)`` divided by the examples of every group (quantile
bands, the 99th percentile and the maximum). An unfinished run (``"complete": false``) is named, not drawn.
A run that keeps top items (``attribute --top-items K``) adds a table: per country, its :data:`TOP_NEURONS`
neurons of largest score per example of that country (``S(n, c)`` over its examples; every site pooled) and
their :data:`TOP_ITEMS` top-scoring items there (:class:`neurospec.measure.top_items.TopItems`).
"""

from __future__ import annotations

import numpy as np

from neurospec.measure.attribution import AttributionScores
from neurospec.measure.top_items import TopItems
from neurospec.report.content import Figure, Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.fields import ReportError
from neurospec.report.plots import draw, grid_shape, small_multiples
from neurospec.report.runinfo import model_fact, model_sections
from neurospec.util.errors import NeurospecError

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
TOP_NEURONS = 3  # neurons per country in the top-items table
TOP_ITEMS = 3  # items per neuron there
QUESTION_CHARS = 90  # a question is cut to this many characters in the table


def attribution_section(artifact: Artifact) -> Section:
    data = artifact.data
    section = Section("attribution", artifact.label, "Attribution scores (activation x gradient)", artifact.step)
    counts = data.get("counts") if isinstance(data.get("counts"), dict) else {}
    section.facts += [("data set", str(data.get("dataset"))), ("objective", str(data.get("objective"))),
                      ("target", str(data.get("target"))), ("sites", ", ".join(map(str, data.get("sites") or []))),
                      ("examples per group", ", ".join(f"{g} {n}" for g, n in counts.items()) or "none"),
                      model_fact([], model_sections(artifact))]
    if data.get("complete") is not True:
        section.warnings.append("This attribution run is unfinished (interrupted or running): not drawn. Run "
                                "`neurospec attribute` again to finish it.")
        return section
    try:
        scores = AttributionScores.load(artifact.path.parent)
    except NeurospecError as err:
        raise ReportError(f"{err} (artifact '{artifact.label}'; {artifact.fix})") from None
    examples = scores.num_examples
    if examples == 0:
        section.notes.append("The run scored no example: nothing to draw.")
        return section
    spread = {site: per_layer_quantiles(scores.sum(site).numpy().astype(np.float64) / examples)
              for site in scores.sites}
    section.add(_figure(spread, scores.num_layers), _table(spread))
    if data.get("top_item_files"):
        try:
            top = TopItems.load(artifact.path.parent)
        except NeurospecError as err:
            raise ReportError(f"{err} (artifact '{artifact.label}'; {artifact.fix})") from None
        section.add(None, top_items_table(scores, top))
    return section


def top_neurons(scores: AttributionScores, country: str, count: int) -> list[tuple[float, str, int, int]]:
    """``[(score per example, site, layer, neuron)]``: the ``count`` neurons of largest ``S(n, country)`` over the
    country's examples, every site pooled, largest first (ties: site order, then layer and neuron)."""
    examples = int(scores.counts[scores.group_index(country)])
    if examples == 0:
        return []
    found = []
    for site in scores.sites:
        values = scores.sum(site, country).flatten()
        best = values.topk(min(count, values.numel()))
        width = scores.width(site)
        found += [(float(v) / examples, site, int(i) // width, int(i) % width)
                  for v, i in zip(best.values.tolist(), best.indices.tolist())]
    order = {site: n for n, site in enumerate(scores.sites)}
    return sorted(found, key=lambda row: (-row[0], order[row[1]], row[2], row[3]))[:count]


def top_items_table(scores: AttributionScores, top: TopItems) -> Table:
    """Per country, its :data:`TOP_NEURONS` top neurons and each one's :data:`TOP_ITEMS` top items (one row each)."""
    table = Table("top-items", f"Per country, its {TOP_NEURONS} neurons of largest score per example and their "
                  f"{TOP_ITEMS} top-scoring items", ["country", "site", "layer", "neuron", "score per example",
                                                     "rank", "item score", "item", "question"])
    for country in top.groups:
        for mean, site, layer, neuron in top_neurons(scores, country, TOP_NEURONS):
            for rank, item in enumerate(top.neuron(country, layer, neuron, site)[:TOP_ITEMS], start=1):
                question = item.question or ""
                short = question if len(question) <= QUESTION_CHARS else question[:QUESTION_CHARS - 1] + "\u2026"
                table.add(label(country), text(site), number(layer), number(neuron), number(mean, ".3e"), number(rank),
                          number(item.score, ".3e"), text(item.item_id), text(short, title=question or None))
    return table


def per_layer_quantiles(per_example: np.ndarray) -> np.ndarray:
    """(layers, len(QUANTILES)): per layer (row of ``per_example``, one value per neuron) the quantiles of
    :data:`QUANTILES` (1.0 is the maximum)."""
    return np.quantile(per_example, QUANTILES, axis=1).T


def _figure(spread: dict[str, np.ndarray], num_layers: int) -> Figure:
    sites = list(spread)
    layers = np.arange(num_layers)
    rows, cols = grid_shape(len(sites), 3)
    positive = all(float(values[:, 0].min()) > 0 for values in spread.values())

    def paint(fig):
        for site, ax in zip(sites, small_multiples(fig, len(sites), columns=3)[1]):
            values = spread[site]
            ax.fill_between(layers, values[:, 0], values[:, 4], color="#7570b3", alpha=0.15, linewidth=0,
                            label="5-95%")
            ax.fill_between(layers, values[:, 1], values[:, 3], color="#7570b3", alpha=0.35, linewidth=0,
                            label="25-75%")
            ax.plot(layers, values[:, 2], color="#7570b3", linewidth=1.3, label="median")
            ax.plot(layers, values[:, 5], color="black", linestyle="--", linewidth=1, label="99th percentile")
            ax.plot(layers, values[:, 6], color="black", linestyle="none", marker=".", markersize=4, label="maximum")
            if positive:
                ax.set_yscale("log")
            else:
                small = np.abs(values[values != 0])
                ax.set_yscale("symlog", linthresh=float(np.quantile(small, 0.25)) if small.size else 1.0)
            ax.set_title(f"site {site}")
            ax.set_xticks(layers if len(layers) <= 16 else layers[::max(1, len(layers) // 8)])
            ax.set_xlabel("layer")
            ax.set_ylabel("score per example")
        handles = ax.get_legend_handles_labels()
        fig.legend(*handles, loc="outside lower center", ncols=5)

    scale = "log" if positive else "symmetric log"
    return draw("scores", f"Attribution score per example over each layer's neurons ({scale} scale)", paint,
                size=(3.5 * cols + 0.4, 2.7 * rows + 0.8),
                alt=f"Quantile bands per layer of attribution scores at sites {', '.join(sites)}",
                caption="Per site and layer, the distribution over the layer's neurons of the summed score of every "
                        "group divided by the number of examples: 5-95% and 25-75% bands, median, 99th percentile "
                        "(dashed) and maximum (dots).")


def _table(spread: dict[str, np.ndarray]) -> Table:
    names = ["5%", "25%", "median", "75%", "95%", "99%", "max"]
    table = Table("layers", "Per site and layer: quantiles over neurons of the score per example",
                  ["site", "layer", *names])
    for site, values in spread.items():
        for layer, row in enumerate(values):
            table.add(label(site), text(f"L{layer}"), *[number(float(v), ".3e") for v in row])
    return table
