"""Report section of a statistics folder (stats.json of `neurospec collect`): activation probabilities and LAPE entropy.

    from neurospec.report.sections.stats import stats_section
    section = stats_section(artifact)       # an Artifact of kind "stats" (its stats.json)

The folder is read with :meth:`neurospec.measure.stats.ActivationStats.load` (the main tensors only, every file
checked against its fingerprint; the per-sentence samples are not read). Drawn per layer: the distribution of
``P(value > 0) = active / tokens`` over every language and neuron, the mean of it per language, and the
distribution of LAPE's entropy over the neurons (:func:`neurospec.select.lape.lape_entropy`, two languages or
more). An unfinished folder (``"complete": false``) is named, not drawn.
"""

from __future__ import annotations

import math

import numpy as np

from neurospec.measure.stats import ActivationStats
from neurospec.report.content import Figure, Section, Table, label, number
from neurospec.report.discover import Artifact
from neurospec.report.fields import ReportError
from neurospec.report.plots import GREY, draw, heatmap
from neurospec.report.runinfo import model_fact, model_sections
from neurospec.select.lape import DEFAULT_FILTER_RATE, DEFAULT_TOP_RATE, lape_entropy
from neurospec.util.errors import NeurospecError

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def stats_section(artifact: Artifact) -> Section:
    data = artifact.data
    section = Section("stats", artifact.label, "Activation statistics", artifact.step)
    languages = [str(lang) for lang in data.get("languages") or []]
    section.facts += [("site", str(data.get("site"))), ("languages", ", ".join(languages) or "none"),
                      ("layers x neurons", f"{data.get('num_layers')} x {data.get('width')}"),
                      model_fact([], model_sections(artifact))]
    options = data.get("options") if isinstance(data.get("options"), dict) else {}
    if "mode" in options:
        section.facts.append(("mode", str(options["mode"])))
    if data.get("complete") is not True:
        section.warnings.append("These statistics are unfinished (the collection was interrupted or is running): "
                                "not drawn. Run `neurospec collect` again to finish them.")
        return section
    try:
        stats = ActivationStats.load(artifact.path.parent)
    except NeurospecError as err:
        raise ReportError(f"{err} (artifact '{artifact.label}'; {artifact.fix})") from None
    tokens = stats.tokens.tolist()
    section.facts.append(("tokens per language", ", ".join(f"{lang} {n:,}" for lang, n in zip(stats.languages,
                                                                                             tokens))))
    counted = [i for i, n in enumerate(tokens) if n > 0]
    if not counted:
        section.notes.append("No language has a counted token: nothing to draw.")
        return section
    probabilities = stats.probabilities()[counted].numpy().astype(np.float64)  # (G, L, W)
    names = [stats.languages[i] for i in counted]
    layers = list(range(stats.num_layers))
    spread = [np.quantile(probabilities[:, layer, :], QUANTILES) for layer in layers]
    entropy = _entropy(stats.probabilities()[counted]) if len(names) >= 2 else None
    section.add(_distribution_figure(layers, spread, entropy, len(names)), _layer_table(layers, spread, entropy))
    means = probabilities.mean(axis=2)  # (G, L)
    section.add(_language_figure(names, layers, means), _language_table(names, layers, means, tokens, counted))
    if entropy is None:
        section.notes.append("LAPE's entropy compares languages: with one language it is not drawn.")
    return section


def _entropy(probabilities) -> tuple[list[np.ndarray], list[int], float]:
    """Per layer the minimum and the quantiles of the finite LAPE entropies, the count of neurons with none
    (+inf), and the entropy below which lie LAPE's default share of the finite ones (its selection line)."""
    values, _tau = lape_entropy(probabilities, filter_rate=DEFAULT_FILTER_RATE)
    values = values.numpy().astype(np.float64)
    finite = np.isfinite(values)
    quantiles = [np.quantile(row[ok], (0.0, *QUANTILES)) if ok.any() else np.full(len(QUANTILES) + 1, np.nan)
                 for row, ok in zip(values, finite)]
    cut = float(np.quantile(values[finite], DEFAULT_TOP_RATE)) if finite.any() else math.nan
    return quantiles, [int((~ok).sum()) for ok in finite], cut


def _bands(ax, layers, quantiles, color: str, name: str) -> None:
    table = np.array(quantiles)
    ax.fill_between(layers, table[:, 0], table[:, 4], color=color, alpha=0.15, linewidth=0, label=f"{name}: 5-95%")
    ax.fill_between(layers, table[:, 1], table[:, 3], color=color, alpha=0.35, linewidth=0,
                    label=f"{name}: 25-75%")
    ax.plot(layers, table[:, 2], color=color, marker="o", markersize=2.5, linewidth=1.3, label=f"{name}: median")


def _distribution_figure(layers, spread, entropy, languages: int) -> Figure:
    panels = 2 if entropy is not None else 1

    def paint(fig):
        axes = fig.subplots(1, panels, squeeze=False)[0]
        _bands(axes[0], layers, spread, "#1f77b4", "P(active)")
        axes[0].set_ylim(0, 1)
        axes[0].set_xlabel("layer")
        axes[0].set_ylabel("P(value > 0)")
        axes[0].set_title("activation probability over languages and neurons")
        if entropy is not None:
            quantiles, _infinite, cut = entropy
            _bands(axes[1], layers, [q[1:] for q in quantiles], "#d95f02", "entropy")
            axes[1].plot(layers, [q[0] for q in quantiles], color="black", linestyle="none", marker=".",
                         markersize=4, label="entropy: lowest in the layer")
            if math.isfinite(cut):
                axes[1].axhline(cut, color=GREY, linestyle="--", linewidth=1,
                                label=f"lowest {DEFAULT_TOP_RATE:.0%} of all neurons below")
            axes[1].set_ylim(0, math.log(languages) * 1.05)  # ln(languages): a neuron equally active in all
            axes[1].set_xlabel("layer")
            axes[1].set_ylabel("LAPE entropy (nats)")
            axes[1].set_title("LAPE entropy over neurons")
        handles, labels = [], []
        for ax in axes:
            ax.set_xticks(layers if len(layers) <= 16 else layers[::max(1, len(layers) // 8)])
            for handle, name in zip(*ax.get_legend_handles_labels()):
                handles.append(handle)
                labels.append(name)
        fig.legend(handles, labels, loc="outside lower center", ncols=3 if panels == 1 else 5)

    return draw("distribution", "Activation probability and LAPE entropy per layer", paint,
                size=(4.2 * panels + 0.6, 3.9),
                alt="Quantile bands per layer of activation probability" + (" and LAPE entropy" if panels == 2 else ""),
                caption="Bands: the 5-95% and 25-75% ranges and the median, per layer, of P(value > 0) over every "
                        "language and neuron (left) and of LAPE's entropy over the neurons that have one (right; "
                        "low entropy: a neuron active for few languages; dots: the lowest in the layer; the dashed line "
                        f"is the entropy under which lie the {DEFAULT_TOP_RATE:.0%} lowest, LAPE's default "
                        "selection).")


def _layer_table(layers, spread, entropy) -> Table:
    columns = ["layer", *[f"P {q:.0%}" for q in QUANTILES]]
    if entropy is not None:
        columns += ["entropy min", *[f"entropy {q:.0%}" for q in QUANTILES], "neurons without entropy"]
    table = Table("layers", "Per layer: quantiles of P(value > 0) over languages and neurons"
                            + (", of LAPE entropy over neurons" if entropy is not None else ""), columns)
    for layer in layers:
        cells = [number(float(v), ".4f") for v in spread[layer]]
        if entropy is not None:
            quantiles, infinite, _ = entropy
            cells += [number(None if math.isnan(v) else float(v), ".4f") for v in quantiles[layer]]
            cells.append(number(infinite[layer]))
        table.add(label(f"L{layer}"), *cells)
    return table


def _language_figure(names, layers, means) -> Figure:
    def paint(fig):
        ax = fig.add_subplot()
        heatmap(fig, ax, means.tolist(), names, [str(layer) for layer in layers], cmap="viridis", vmin=0.0,
                vmax=max(float(means.max()), 1e-9), fmt=lambda v: f"{v:.2f}", colorbar="mean P(value > 0)",
                annotate=len(names) * len(layers) <= 200 and len(layers) <= 20)
        ax.set_xlabel("layer")
        ax.set_ylabel("language")

    return draw("languages", "Mean activation probability per language and layer", paint,
                size=(max(4.5, 0.42 * len(layers) + 2.6), max(2.6, 0.3 * len(names) + 1.5)),
                alt=f"Heatmap of mean activation probability, {len(names)} languages by {len(layers)} layers",
                caption="The mean over a layer's neurons of P(value > 0) in each language's text.")


def _language_table(names, layers, means, tokens, counted) -> Table:
    table = Table("languages", "Mean P(value > 0) per language and layer", ["language", "tokens",
                                                                            *[f"L{layer}" for layer in layers]])
    for row, (name, index) in enumerate(zip(names, counted)):
        table.add(label(name), number(int(tokens[index])), *[number(float(v), ".4f") for v in means[row]])
    return table

