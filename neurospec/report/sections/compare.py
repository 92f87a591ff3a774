"""Report sections of a study of several models: the side-by-side comparison, and a heading per model.

    from neurospec.report.sections.compare import comparison_section, model_heading
    section = comparison_section(found)      # found: a Discovery whose ``models`` is set
    heading = model_heading(found.models[0])  # the model's facts and steps, before its own sections

What is compared and how it is matched is :mod:`neurospec.report.compare`. Per compared artifact: neuron sets by
relative depth (counts and shares per depth bin; a figure of shares, a panel per group, a line per model) and,
for two models of one shape, by overlap (Jaccard per group with the counts; otherwise a sentence says they are
compared by relative depth only); the perplexity matrix's diagonal dominance (own-language change minus the mean
other-language change, mean NLL and PPL, with the paired bootstrap interval the file records); LSS margins over
each control, per cell and pooled; steering's target-language shares (Wilson intervals); masking's accuracy
changes and margins over random (recorded intervals). Every table has a ``model`` column; its rows come from
each model's own artifact through the result class its own section reads.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Sequence

import numpy as np

from neurospec.report.compare import (
    DEPTH_BINS,
    Pairing,
    bin_edges,
    comparable_artifacts,
    depth_profile,
    group_key,
    load_neurons,
    match_groups,
    match_items,
    overlap,
    same_shape,
    shape_text,
)
from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Discovery, ModelRun
from neurospec.report.plots import colors, dots, draw, offsets, rotate_labels, small_multiples
from neurospec.report.runinfo import run_facts
from neurospec.report.sections.masking import is_random_condition
from neurospec.results.lss import LSSRecord
from neurospec.results.masking import MaskingRecord
from neurospec.results.perplexity import PerplexityMatrix
from neurospec.results.steering import SteeringRecord

KIND_NAMES = {"neurons": "neuron sets", "ppl": "perplexity matrices", "lss": "LSS matrices", "steer": "steering",
              "mask_eval": "masking"}
Interval = tuple[float, float] | None
Series = dict[str, list[tuple[float | None, Interval]]]  # model -> (value, interval) per category


def comparison_section(found: Discovery) -> Section:
    """The first section of a study of several models: each compared artifact's numbers, model beside model."""
    models = found.models or []
    section = Section("compare", "study.json", "Models compared: " + ", ".join(m.name for m in models))
    section.facts.append(("models", "; ".join(f"{m.name}: {m.model or 'not recorded'} (folder {m.out}/)"
                                              for m in models)))
    section.warnings += [f"model {m.name}: its run folder {m.out}/ is not there (the study has not run it yet)"
                         for m in models if m.found is None]
    pairings, alone = comparable_artifacts(models)
    section.facts.append(("compared", ", ".join(f"{KIND_NAMES[p.kind]} ({p.label})" for p in pairings) or "nothing"))
    if alone:
        section.notes.append("In one model only, not compared: " + "; ".join(f"{model}: {label}" for model, label in alone)
                             + ".")
    if not pairings:
        section.notes.append("No artifact kind that the comparison draws (neuron sets, ppl, lss, steer, mask-eval) is "
                             "held by two models yet.")
    for pairing in pairings:
        BUILDERS[pairing.kind](section, pairing)
    return section


def model_heading(model: ModelRun) -> Section:
    """The heading of one model's part of the page: its facts, its steps (its own study.json) and how it ended."""
    section = Section("model", f"{model.out}/study.json", f"Model {model.name}: {model.model or 'not recorded'}")
    if model.found is None:
        section.warnings.append(f"Its run folder {model.out}/ is not there: the study has not run this model yet.")
        return section
    facts = run_facts(model.found)
    section.facts += [item for item in facts.items if item[0] not in ("generated", "run folder")]
    section.facts.append(("run folder", f"{model.out}/"))
    if facts.outcome:
        section.warnings.append(facts.outcome)
    if facts.steps:
        table = Table("steps", f"Steps of {model.name} (its study.json), the status of each and the artifacts found",
                      ["step", "verb", "output", "status", "artifacts"])
        for name, verb, out, status, count in facts.steps:
            table.add(label(name), text(verb), text(out), text(status), number(count))
        section.add(None, table)
    return section


def _id(what: str, pairing: Pairing) -> str:
    """A table id or figure name unique within the section: what it shows, at which artifact."""
    return f"{what}@{pairing.label}"


def _caption_source(pairing: Pairing) -> str:
    return f"{KIND_NAMES[pairing.kind]} at {pairing.label}"


def _note_unmatched(section: Section, unmatched: dict[str, list[str]], what: str) -> None:
    """A note listing, per model, what no other model has (groups, cells): left out of the comparison."""
    if unmatched:
        held = "; ".join(f"{model}: {', '.join(names)}" for model, names in unmatched.items())
        section.notes.append(f"Unmatched {what} (in one model only, not compared): {held}.")


def _joined(unmatched: dict[str, list[tuple[str, ...]]], sep: str) -> dict[str, list[str]]:
    return {model: [sep.join(key) for key in keys] for model, keys in unmatched.items()}


# ---- neuron sets


def add_neurons(section: Section, pairing: Pairing) -> None:
    """Neurons per group by relative depth (figure and tables), and the overlap of models of one shape."""
    sets = {model: load_neurons(artifact) for model, artifact in pairing.artifacts.items()}
    matched, unmatched = match_groups({model: list(neurons.groups) for model, neurons in sets.items()})
    _note_unmatched(section, unmatched, f"groups of {pairing.label}")
    if not matched:
        section.notes.append(f"{pairing.label}: no group is in two models; nothing to compare.")
        return
    edges = [f"{low:.1f}\u2013{high:.1f}" for low, high in bin_edges()]
    profiles = {(match.name[0], model): depth_profile(sets[model].per_layer_counts(group).tolist())
                for match in matched for model, group in match.items.items()}
    counts = Table(_id("depth-counts", pairing), f"Neurons per relative-depth bin (layer / (layers \u2212 1)), all "
                   f"sites together: {_caption_source(pairing)}", ["group", "model", *edges, "total"])
    shares = Table(_id("depth-shares", pairing), f"Share of each group's neurons per relative-depth bin: "
                   f"{_caption_source(pairing)}", ["group", "model", *edges])
    for match in matched:
        for model in match.items:
            profile = profiles[(match.name[0], model)]
            counts.add(label(match.name[0]), text(model), *[number(c) for c in profile.counts], number(profile.total))
            shares.add(label(match.name[0]), text(model), *[number(s, ".3f") for s in profile.shares])
    layers = Table(_id("depth-layers", pairing), "Layers of each model per relative-depth bin",
                   ["model", "layers", *edges])
    for model, neurons in sets.items():
        layers.add(label(model), number(neurons.num_layers),
                   *[number(n) for n in depth_profile([0] * neurons.num_layers).layers])
    section.add(_depth_figure(pairing, matched, profiles, list(sets)), shares, counts, layers)
    _add_overlaps(section, pairing, sets, matched)


def _depth_figure(pairing: Pairing, matched, profiles, models: list[str]):
    groups = [match.name[0] for match in matched]
    palette = dict(zip(models, colors(len(models))))
    centres = [(low + high) / 2 for low, high in bin_edges()]

    def paint(fig):
        _, axes = small_multiples(fig, len(groups), columns=4, sharey=True)
        for match, ax in zip(matched, axes):
            for model in match.items:
                shares = [np.nan if s is None else s for s in profiles[(match.name[0], model)].shares]
                ax.plot(centres, shares, marker="o", markersize=3, linewidth=1.2, color=palette[model], label=model)
            ax.set_title(match.name[0])
            ax.set_xlim(0, 1)
            ax.set_xlabel("relative depth")
            ax.set_ylabel("share of neurons")
        handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 6))

    rows = -(-len(groups) // 4)
    return draw(_id("depth", pairing), f"Neurons by relative depth, model beside model ({pairing.label})", paint,
                size=(max(4.6, 3.0 * min(len(groups), 4)), 2.5 * rows + 0.8),
                alt=f"Line charts of the share of neurons per relative-depth bin for {len(groups)} groups, one line "
                    f"per model ({', '.join(models)})",
                caption=f"Each panel a group; each line a model: the share of the group's neurons in each of "
                        f"{DEPTH_BINS} bins of relative depth (layer / (layers \u2212 1)), so models of different "
                        "depths compare. Counts and the layers in each bin are in the tables.")


def _add_overlaps(section: Section, pairing: Pairing, sets, matched) -> None:
    """Jaccard per matched group for each pair of models of one shape; a sentence for each pair of two shapes."""
    table = Table(_id("overlap", pairing), f"Neurons shared by two models of the same shape, per group: "
                  f"{_caption_source(pairing)}", ["group", "models", "first", "second", "shared", "union", "Jaccard"])
    for first, second in combinations(sets, 2):
        if not same_shape(sets[first], sets[second]):
            section.notes.append(f"{first} ({shape_text(sets[first])}) and {second} ({shape_text(sets[second])}) "
                                 "differ in shape: their neurons are compared by relative depth only, not by "
                                 "overlap.")
            continue
        for match in matched:
            if first in match.items and second in match.items:
                found = overlap(sets[first], match.items[first], sets[second], match.items[second])
                table.add(label(match.name[0]), text(f"{first} vs {second}"), number(found.first),
                          number(found.second), number(found.shared), number(found.union),
                          number(found.jaccard, ".3f"))
    if table.rows:
        table.note = ("Same layers and widths: neuron i of one model is compared with neuron i of the other (as for "
                      "two checkpoints of one model). Jaccard = shared / union of (site, layer, index).")
        section.add(None, table)


# ---- perplexity


def add_ppl(section: Section, pairing: Pairing) -> None:
    """Diagonal dominance per group: own-language change minus the mean change on the other languages."""
    summaries = {model: artifact.read(PerplexityMatrix).selectivity() for model, artifact in pairing.artifacts.items()}
    matched, unmatched = match_groups({model: list(summary) for model, summary in summaries.items()})
    _note_unmatched(section, unmatched, f"groups of {pairing.label}")
    if not matched:
        return
    table = Table(_id("dominance", pairing), "Diagonal dominance: the change on the group's own language minus the mean "
                  "change on the other languages, with the paired bootstrap interval each file records: "
                  + _caption_source(pairing),
                  ["group", "model", "language", "own \u0394NLL", "mean other \u0394NLL", "\u0394NLL difference",
                   "CI low", "CI high", "own \u0394PPL", "mean other \u0394PPL", "\u0394PPL difference", "CI low",
                   "CI high"])
    series: Series = {model: [] for model in pairing.artifacts}
    for match in matched:
        for model, group in match.items.items():
            entry = summaries[model][group]
            cells = []
            for kind in ("nll", "ppl"):
                part = entry.by_row["neurons"][kind]
                interval = part.intervals.difference if part.intervals else None
                cells += [number(part.own, ".4g"), number(part.mean_other, ".4g"), number(part.difference, ".4g"),
                          *_bounds(interval, ".4g")]
            table.add(label(match.name[0]), text(model), text(entry.language), *cells)
        for model in series:
            part = summaries[model][match.items[model]].by_row["neurons"]["nll"] if model in match.items else None
            series[model].append((part.difference, part.intervals.difference if part.intervals else None)
                                 if part else (None, None))
    names = [match.name[0] for match in matched]
    figure = _dots_figure(_id("dominance", pairing), f"Diagonal dominance of the perplexity matrix ({pairing.label})",
                          names, series, "own \u2212 mean other \u0394 mean NLL (nats)",
                          "Per group: the change in mean NLL on its own language minus the mean change on the other "
                          "languages when its neurons are intervened, one marker per model, with the paired bootstrap "
                          "interval the model's ppl.json records (no whisker: the file has none). Mean NLL, not PPL, "
                          "so models of different perplexity compare; the PPL contrast is in the table.")
    section.add(figure, table)


def _bounds(interval: Interval, spec: str) -> list:
    return [number(interval[0] if interval else None, spec), number(interval[1] if interval else None, spec)]


def _dots_figure(name: str, title: str, categories: Sequence[str], series: Series, ylabel: str, caption: str):
    """Markers per category, one colour per model, with each value's interval as whiskers; a line at 0."""
    models = list(series)
    palette = colors(len(models))
    shift = offsets(len(models))

    def paint(fig):
        ax = fig.add_subplot()
        xs = np.arange(len(categories))
        for i, (model, color) in enumerate(zip(models, palette)):
            values = [value for value, _ in series[model]]
            dots(ax, xs + shift[i], values, [interval for _, interval in series[model]], color=color, label=model)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(xs, categories)
        rotate_labels(ax, list(categories))
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")

    return draw(name, title, paint, size=(max(4.6, 0.55 * len(categories) * max(1, len(models)) + 2.2), 3.4),
                alt=f"Markers with intervals for {len(categories)} categories, one colour per model "
                    f"({', '.join(models)})", caption=caption)


# ---- LSS


def add_lss(section: Section, pairing: Pairing) -> None:
    """LSS and the paired margin over each control, per matched cell and pooled, model beside model."""
    records = {model: artifact.read(LSSRecord) for model, artifact in pairing.artifacts.items()}
    controls = list(dict.fromkeys(name for record in records.values() for cell in record.cells
                                  for name in cell.controls))
    matched, unmatched = match_items({model: {(c.source, c.target): c for c in record.cells}
                                      for model, record in records.items()})
    _note_unmatched(section, _joined(unmatched, " \u2192 "), f"LSS cells of {pairing.label}")
    cells = Table(_id("lss-cells", pairing), "LSS per source \u2192 target cell and the paired margin over each "
                  "control, with the intervals each lss.json records: " + _caption_source(pairing),
                  ["source \u2192 target", "model", "n", "LSS", "CI low", "CI high",
                   *[f"{name}: {column}" for name in controls for column in ("margin", "CI low", "CI high")]])
    for match in matched:
        for model, cell in match.items.items():
            margins = []
            for name in controls:
                control = cell.controls.get(name)
                margins += [number(control.margin if control else None, "+.3f"),
                            *_bounds(control.margin_ci95 if control else None, "+.3f")]
            cells.add(label(" \u2192 ".join(match.name)), text(model), number(cell.n), number(cell.lss, ".3f"),
                      *_bounds(cell.ci95, ".3f"), *margins)
    pooled = Table(_id("lss-pooled", pairing), "Pooled over every cell's items: the LSS of the target's own neurons "
                   "and the paired margin over each control: " + _caption_source(pairing),
                   ["neurons", "model", "LSS", "CI low", "CI high", "margin", "CI low", "CI high"])
    for model, record in records.items():
        if record.pooled is not None:
            pooled.add(label("target's own"), text(model), number(record.pooled.lss, ".3f"),
                       *_bounds(record.pooled.ci95, ".3f"), number(None), number(None), number(None))
    for name in controls:
        for model, record in records.items():
            control = record.pooled.controls.get(name) if record.pooled is not None else None
            if control is not None:
                pooled.add(label(f"control: {name}"), text(model), number(control.lss, ".3f"), number(None),
                           number(None), number(control.margin, "+.3f"), *_bounds(control.margin_ci95, "+.3f"))
    figure = _margin_figure(pairing, records, matched, controls) if controls and (matched or pooled.rows) else None
    section.add(figure, cells, pooled)


def _margin_figure(pairing: Pairing, records: dict[str, LSSRecord], matched, controls: list[str]):
    """A panel per control: each matched cell's margin and the pooled margin, one colour per model."""
    models = list(records)
    categories = [" \u2192 ".join(match.name) for match in matched] + ["pooled"]
    palette = colors(len(models))
    shift = offsets(len(models))

    def margin(model: str, index: int, control: str):
        if index < len(matched):
            cell = matched[index].items.get(model)
            found = cell.controls.get(control) if cell is not None else None
        else:
            pooled = records[model].pooled
            found = pooled.controls.get(control) if pooled is not None else None
        return (found.margin, found.margin_ci95) if found is not None else (None, None)

    def paint(fig):
        _, axes = small_multiples(fig, len(controls), columns=2, sharey=True)
        xs = np.arange(len(categories))
        for control, ax in zip(controls, axes):
            for i, (model, color) in enumerate(zip(models, palette)):
                found = [margin(model, j, control) for j in range(len(categories))]
                dots(ax, xs + shift[i], [v for v, _ in found], [ci for _, ci in found], color=color, label=model)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.axvline(len(categories) - 1.5, color="#c9c9c9", linewidth=0.8)
            ax.set_xticks(xs, categories)
            rotate_labels(ax, categories)
            ax.set_title(f"margin over control: {control}")
            ax.set_ylabel("LSS margin")
        axes[0].legend(loc="best")

    width = max(4.6, 0.5 * len(categories) * max(1, len(models)) + 2.0)
    return draw(_id("lss-margins", pairing), f"LSS margins over the controls, model beside model ({pairing.label})",
                paint, size=(min(16.0, width * min(len(controls), 2)), 3.4 * -(-len(controls) // 2)),
                alt=f"Markers of LSS margins for {len(categories)} cells, one colour per model",
                caption="Per source \u2192 target cell (and pooled, right of the line): the LSS of the target's own "
                        "neurons minus the control's on the same items, with the interval each lss.json records; above "
                        "0: the target's neurons move answers more than the control's.")


# ---- steering


def add_steer(section: Section, pairing: Pairing) -> None:
    """The share of continuations in the target language per source and target group, model beside model."""
    records = {model: artifact.read(SteeringRecord) for model, artifact in pairing.artifacts.items()}
    matched, unmatched = match_items({model: {(line.source, line.target): line for line in record.table
                                              if line.kind == "group"} for model, record in records.items()})
    _note_unmatched(section, _joined(unmatched, " \u2192 "), f"steering lines of {pairing.label}")
    if not matched:
        return
    table = Table(_id("steer-share", pairing), "Share of continuations in the target language (95% Wilson intervals) "
                  "and its change from the unmodified model on the same prompts, as each steer.json records: "
                  + _caption_source(pairing),
                  ["source \u2192 target", "model", "k", "n", "share", "CI low", "CI high", "baseline share",
                   "change", "CI low", "CI high"])
    series: Series = {model: [] for model in records}
    for match in matched:
        for model, line in match.items.items():
            table.add(label(" \u2192 ".join(match.name)), text(model), number(line.steered.k), number(line.steered.n),
                      number(line.steered.share, ".3f"), *_bounds(line.steered.ci95, ".3f"),
                      number(line.baseline.share, ".3f"),
                      number(line.change if line.change_ci95 is not None else None, "+.3f"),
                      *_bounds(line.change_ci95, "+.3f"))
        for model in series:
            line = match.items.get(model)
            series[model].append((line.steered.share, line.steered.ci95) if line else (None, None))
    names = [" \u2192 ".join(match.name) for match in matched]
    figure = _dots_figure(_id("steer-share", pairing), f"Steering: share in the target language ({pairing.label})",
                          names, series, "share in target language",
                          "Per prompt language \u2192 target group: the share of steered continuations identified as "
                          "the target language, one marker per model, with its 95% Wilson interval.")
    section.add(figure, table)


# ---- masking


def add_mask(section: Section, pairing: Pairing) -> None:
    """Accuracy change per masked group and benchmark (and its margin over random), model beside model."""
    records = {model: artifact.read(MaskingRecord) for model, artifact in pairing.artifacts.items()}
    matched, unmatched = match_items(
        {model: {(c.condition, c.benchmark): c for c in record.cells
                 if c.group == "all" and c.condition != "none" and not is_random_condition(c.condition)}
         for model, record in records.items()},
        canonical=lambda key: (group_key(key[0]), key[1]))  # the benchmark's name is no group
    _note_unmatched(section, _joined(unmatched, " on "), f"masking cells of {pairing.label}")
    if not matched:
        return
    table = Table(_id("mask-change", pairing), "Accuracy change when a group's neurons are masked, and its margin over "
                  "the random baselines, with the intervals each mask_eval.json records: " + _caption_source(pairing),
                  ["masked group", "benchmark", "model", "n", "accuracy", "change", "CI low", "CI high",
                   "margin over random", "CI low", "CI high"])
    series: Series = {model: [] for model in records}
    for match in matched:
        for model, cell in match.items.items():
            table.add(label(match.name[0]), text(match.name[1]), text(model), number(cell.n),
                      number(cell.accuracy, ".3f"), number(cell.change, "+.3f"), *_bounds(cell.change_ci95, "+.3f"),
                      number(cell.margin_over_random, "+.3f"), *_bounds(cell.margin_ci95, "+.3f"))
        for model in series:
            cell = match.items.get(model)
            series[model].append((cell.change, cell.change_ci95) if cell else (None, None))
    names = [f"{match.name[0]} on {match.name[1]}" for match in matched]
    figure = _dots_figure(_id("mask-change", pairing), f"Masking: accuracy change ({pairing.label})", names, series,
                          "accuracy change", "Per masked group and benchmark: the accuracy change against the "
                          "unmodified model, one marker per model, with the interval each mask_eval.json records.")
    section.add(figure, table)


BUILDERS: dict[str, Callable[[Section, Pairing], None]] = {
    "neurons": add_neurons, "ppl": add_ppl, "lss": add_lss, "steer": add_steer, "mask_eval": add_mask}
