"""The report of a study of several models: the comparison page against each model's own files.

Three small run folders (artifacts written with the result classes, random numbers) under the layout a study of
several models writes (``study.json`` with ``models``, one ordinary run folder per model): ``alpha`` and ``beta``
(4 layers x 16 neurons: overlapped) and ``gamma`` (7 layers x 24: relative depth only). ``beta`` names its groups
``en``/``fr``/``de`` (matched to ``eng_Latn``... by language), ``alpha`` alone has ``zho_Hans`` and ``gamma`` alone
``ita_Latn`` (unmatched). Every number of every comparison table is checked against the JSON files read here,
with groups matched, depth bins and overlaps computed here by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_report import page_tables

from neurospec.evaluate.perplexity import matrix_intervals
from neurospec.interventions.recipes import Recipe
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.pipeline.runner import FORMAT as STUDY_FORMAT
from neurospec.pipeline.runner import VERSION as STUDY_VERSION
from neurospec.report import ReportError, write_report
from neurospec.report.compare import depth_bin
from neurospec.results.lss import LSSCell, LSSControl, LSSRecord, PooledControl, PooledLSS
from neurospec.results.masking import MaskBenchmark, MaskCell, MaskingRecord
from neurospec.results.perplexity import Perplexity, PerplexityMatrix, Row
from neurospec.results.steering import Share, SteeringLine, SteeringRecord, SteeringRow

DASH = "\u2014"
ARROW = " \u2192 "
ALIASES = {"en": "eng_Latn", "fr": "fra_Latn", "de": "deu_Latn"}  # beta's names of the languages
MODELS = {  # name -> (model, layers, width, groups of its neuron set and ppl rows, LSS controls, has masking)
    "alpha": ("tests/alpha", 4, 16, ["eng_Latn", "fra_Latn", "deu_Latn", "zho_Hans"], ["random", "other"], True),
    "beta": ("tests/beta", 4, 16, ["en", "fr", "de"], ["random", "other"], True),
    "gamma": ("tests/gamma", 7, 24, ["eng_Latn", "fra_Latn", "ita_Latn"], ["random"], False),
}
HAND_BINS = {4: [0, 3, 6, 9], 7: [0, 1, 3, 5, 6, 8, 9]}  # layer -> relative-depth bin, worked out by hand
STEPS = [("steering", "steer", "steer"), ("select", "select lape", "lape.json"), ("perplexity", "ppl", "ppl"),
         ("shift", "lss", "lss"), ("masking", "mask-eval", "mask")]  # deliberately not in path order


# ------------------------------------------------------------------------------------------------
# the run folders


def _interval(rng, centre: float, width: float = 0.1) -> tuple[float, float]:
    return (centre - float(rng.uniform(0.01, width)), centre + float(rng.uniform(0.01, width)))


def write_neurons(folder: Path, rng, own, layers: int, width: int, groups: list[str], model: str) -> None:
    """A neuron set at ``act`` (alpha's and beta's drawn by the same ``rng`` seed, then each adds neurons of its
    own from ``own``: a partial overlap) and a random baseline (left out of the comparison)."""
    data = {}
    for group in groups:
        picked = {layer: set(rng.choice(width, size=int(rng.integers(0, 5)), replace=False).tolist())
                  for layer in range(layers)}
        for _ in range(3):
            picked[int(own.integers(0, layers))].add(int(own.integers(0, width)))
        data[group] = {"act": {layer: sorted(idx) for layer, idx in picked.items() if idx}}
    meta = NeuronSetMeta(num_layers=layers, widths={"act": width}, model_id=model, method="lape")
    NeuronSet(data, meta).save(folder / "lape.json")
    random = {f"random0:{group}": {"act": {0: [1, 2]}} for group in groups}
    NeuronSet(random, NeuronSetMeta(num_layers=layers, widths={"act": width}, method="random")).save(
        folder / "lape.random.json")


def write_ppl(folder: Path, rng, groups: list[str]) -> None:
    languages = ["eng_Latn", "fra_Latn", "deu_Latn"]
    rows = [Row("none", "none")] + [Row(group, "group", group, neurons=5) for group in groups]
    rows.append(Row(f"random0:{groups[0]}", "random", groups[0], 0, 5))
    cells = {}
    for row in rows:
        cells[row.name] = {}
        for lang in languages:
            text_nll = tuple(float(v) for v in rng.uniform(20, 40, size=3))
            text_tokens = (10, 12, 9)
            cells[row.name][lang] = Perplexity(sum(text_nll), sum(text_tokens), 3, text_nll, text_tokens)
    matrix = PerplexityMatrix(rows, languages, cells, Recipe.parse("zero"))
    matrix.intervals = matrix_intervals(matrix, bootstrap=50, seed=0)
    (folder / "ppl").mkdir()
    matrix.save(folder / "ppl")


def write_lss(folder: Path, rng, controls: list[str], groups: list[str]) -> None:
    languages = ["eng_Latn", "fra_Latn"] + (["deu_Latn"] if "deu_Latn" in groups or "de" in groups else ["ita_Latn"])
    cells = []
    for source in languages:
        for target in languages:
            if source == target:
                continue
            control = {name: LSSControl(float(rng.uniform(0, 0.3)), _interval(rng, 0.2), margin := float(rng.normal()),
                                        _interval(rng, margin), seed=0 if name == "random" else None,
                                        group="deu_Latn" if name == "other" else None) for name in controls}
            lss = float(rng.uniform(0, 1))
            cells.append(LSSCell(source, target, 6, 0, 0, lss, _interval(rng, lss), -0.5, None, control))
    pooled = PooledLSS(30, 6, 0.6, (0.5, 0.7), {name: PooledControl(6, 0.1, margin := float(rng.normal()),
                                                                    _interval(rng, margin)) for name in controls})
    record = LSSRecord(Recipe.parse("set:p_max*4"), languages, languages, 0.5, -0.5, pooled, cells)
    (folder / "lss").mkdir()
    (folder / "lss" / "lss.json").write_text(json.dumps(record.to_json()))


def write_steer(folder: Path, rng, groups: list[str]) -> None:
    sources = ["eng_Latn", "fra_Latn"]
    rows = [SteeringRow("none", "none")] + [SteeringRow(g, "group", g, ALIASES.get(g, g)) for g in groups[:3]]
    rows.append(SteeringRow(f"random0:{groups[0]}", "random", groups[0], ALIASES.get(groups[0], groups[0]), 0))
    table = []
    for row in rows[1:]:
        for source in sources:
            k, base = int(rng.integers(0, 9)), int(rng.integers(0, 9))
            table.append(SteeringLine(row.name, row.kind, row.target, source, Share(k, 8, _interval(rng, k / 8)),
                                      Share(base, 8, _interval(rng, base / 8)), _interval(rng, (k - base) / 8)))
    record = SteeringRecord(Recipe.parse("set:p_max*2"), sources, rows, table)
    (folder / "steer").mkdir()
    (folder / "steer" / "steer.json").write_text(json.dumps(record.to_json()))


def write_mask(folder: Path, rng) -> None:
    conditions = ["none", "China", "Iran", "random0:China"]
    cells = []
    for condition in conditions:
        for group in ("all", "China"):
            accuracy = float(rng.uniform(0.2, 0.8))
            change = None if condition == "none" else float(rng.normal(0, 0.1))
            cells.append(MaskCell(condition, "blend", group, 12, accuracy, _interval(rng, accuracy), {"t0": accuracy},
                                  change=change, change_ci95=None if change is None else _interval(rng, change),
                                  random_change=0.01 if condition in ("China", "Iran") else None,
                                  margin_over_random=(change - 0.01) if condition in ("China", "Iran") else None,
                                  margin_ci95=_interval(rng, change - 0.01) if condition in ("China", "Iran") else None))
    record = MaskingRecord(conditions, {"blend": MaskBenchmark("cultural", 12, ["China", "Iran"])}, ["t0"], [], cells,
                           {})
    (folder / "mask").mkdir()
    (folder / "mask" / "mask_eval.json").write_text(json.dumps(record.to_json()))


def write_model(folder: Path, seed: int, model: str, layers: int, width: int, groups: list[str], controls: list[str],
                masking: bool) -> None:
    """One model's ordinary run folder, its study.json listing its steps."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    write_neurons(folder, np.random.default_rng(100 + layers), rng, layers, width, groups, model)
    write_ppl(folder, rng, groups)
    write_lss(folder, rng, controls, groups)
    write_steer(folder, rng, groups)
    if masking:
        write_mask(folder, rng)
    steps = [{"name": n, "verb": v, "out": o, "status": "complete", "this_run": "ran"} for n, v, o in STEPS
             if masking or o != "mask"]
    (folder / "study.json").write_text(json.dumps({"format": STUDY_FORMAT, "version": STUDY_VERSION, "model": model,
                                                   "steps": steps}))
    (folder / "config.yaml").write_text(f"model: {model}\n")


def write_study(root: Path) -> Path:
    run = root / "study"
    for seed, (name, (model, layers, width, groups, controls, masking)) in enumerate(MODELS.items()):
        write_model(run / name, seed, model, layers, width, groups, controls, masking)
    (run / "study.json").write_text(json.dumps({
        "format": STUDY_FORMAT, "version": STUDY_VERSION, "title": "three models", "status": "complete",
        "models": [{"name": name, "model": spec[0], "out": name} for name, spec in MODELS.items()], "steps": []}))
    (run / "config.yaml").write_text("models: {alpha: tests/alpha, beta: tests/beta, gamma: tests/gamma}\n")
    return run


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    run = write_study(tmp_path_factory.mktemp("compare"))
    html = write_report(run)
    return run, html.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# the numbers, read from the JSON here


def load(run: Path, model: str, label: str) -> dict:
    return json.loads((run / model / label).read_text(encoding="utf-8"))


def key(name: str) -> str:
    return ALIASES.get(name, name)


def matched(held: dict[str, list]) -> list[tuple[str, dict[str, str]]]:
    """[(name as the first model holding it calls it, {model: its name})] for the names in two models or more."""
    order: dict[str, dict[str, str]] = {}
    for model, names in held.items():
        for name in names:
            order.setdefault(key(name) if isinstance(name, str) else tuple(map(key, name)), {})[model] = name
    return [(next(iter(found.values())), found) for found in order.values() if len(found) >= 2]


def pair(interval) -> list:
    return [None, None] if interval is None else list(interval)


def neuron_counts(doc: dict) -> dict[str, list[int]]:
    layers = doc["meta"]["num_layers"]
    return {group: [sum(len(set(by_layer.get(str(layer), []))) for by_layer in sites.values()) for layer in range(layers)]
            for group, sites in doc["groups"].items()}


def hand_bins(per_layer: list[int]) -> list[int]:
    counts = [0] * 10
    for layer, count in enumerate(per_layer):
        counts[HAND_BINS[len(per_layer)][layer]] += count
    return counts


def depth_tables(run: Path) -> dict:
    docs = {model: load(run, model, "lape.json") for model in MODELS}
    counts = {model: neuron_counts(doc) for model, doc in docs.items()}
    rows = {"depth-counts": [], "depth-shares": []}
    for name, models in matched({model: list(doc["groups"]) for model, doc in docs.items()}):
        for model, group in models.items():
            binned = hand_bins(counts[model][group])
            total = sum(binned)
            rows["depth-counts"].append([name, model, *binned, total])
            rows["depth-shares"].append([name, model, *[c / total if total else None for c in binned]])
    rows["depth-layers"] = [[model, spec[1], *[HAND_BINS[spec[1]].count(b) for b in range(10)]]
                            for model, spec in MODELS.items()]
    return rows


def members(doc: dict, group: str) -> set:
    return {(site, int(layer), i) for site, by_layer in doc["groups"][group].items() for layer, idx in by_layer.items()
            for i in idx}


def overlap_rows(run: Path) -> list:
    a, b = load(run, "alpha", "lape.json"), load(run, "beta", "lape.json")
    rows = []
    for name, models in matched({"alpha": list(a["groups"]), "beta": list(b["groups"])}):
        first, second = members(a, models["alpha"]), members(b, models["beta"])
        union = len(first | second)
        rows.append([name, "alpha vs beta", len(first), len(second), len(first & second), union,
                     len(first & second) / union if union else 0.0])
    return rows


def ppl_rows(run: Path) -> list:
    docs = {model: load(run, model, "ppl/ppl.json") for model in MODELS}
    rows = []
    for name, models in matched({model: list(doc["summary"]) for model, doc in docs.items()}):
        for model, group in models.items():
            entry = docs[model]["summary"][group]
            cells = []
            for kind in ("nll", "ppl"):
                part = entry["neurons"][kind]
                cells += [part["own"], part["mean_other"], part["difference"], *pair(part["difference_ci"])]
            rows.append([name, model, entry["language"], *cells])
    return rows


def lss_rows(run: Path) -> dict:
    docs = {model: load(run, model, "lss/lss.json") for model in MODELS}
    controls = list(dict.fromkeys(c for doc in docs.values() for cell in doc["cells"] for c in cell["controls"]))
    by_cell = {model: {(c["source"], c["target"]): c for c in doc["cells"]} for model, doc in docs.items()}
    cells = []
    for name, models in matched({model: list(held) for model, held in by_cell.items()}):
        for model, where in models.items():
            cell = by_cell[model][where]
            margins = []
            for control in controls:
                found = cell["controls"].get(control)
                margins += [None, None, None] if found is None else [found["margin"], *found["margin_ci95"]]
            cells.append([ARROW.join(name), model, cell["n"], cell["lss"], *cell["ci95"], *margins])
    pooled = [["target's own", model, doc["pooled"]["lss"], *doc["pooled"]["ci95"], None, None, None]
              for model, doc in docs.items()]
    pooled += [[f"control: {control}", model, found["lss"], None, None, found["margin"], *found["margin_ci95"]]
               for control in controls for model, doc in docs.items()
               for found in [doc["pooled"]["controls"].get(control)] if found is not None]
    return {"lss-cells": cells, "lss-pooled": pooled}


def steer_rows(run: Path) -> list:
    docs = {model: load(run, model, "steer/steer.json") for model in MODELS}
    lines = {model: {(t["source"], t["target"]): t for t in doc["table"] if t["kind"] == "group"}
             for model, doc in docs.items()}
    rows = []
    for name, models in matched({model: list(held) for model, held in lines.items()}):
        for model, where in models.items():
            t = lines[model][where]
            rows.append([ARROW.join(name), model, t["k"], t["n"], t["share"], *t["ci95"], t["baseline"]["share"],
                         t["change"], *t["change_ci95"]])
    return rows


def mask_rows(run: Path) -> list:
    docs = {model: load(run, model, "mask/mask_eval.json") for model in ("alpha", "beta")}
    cells = {model: {(c["condition"], c["benchmark"]): c for c in doc["cells"] if c["group"] == "all"
                     and c["condition"] != "none" and not c["condition"].startswith("random")}
             for model, doc in docs.items()}
    rows = []
    for (condition, benchmark), models in matched({model: list(held) for model, held in cells.items()}):
        for model in models:
            c = cells[model][(condition, benchmark)]
            rows.append([condition, benchmark, model, c["n"], c["accuracy"], c["change"], *c["change_ci95"],
                         c["margin_over_random"], *c["margin_ci95"]])
    return rows


def expected(run: Path) -> dict[str, list]:
    tables = {f"{what}@lape.json": rows for what, rows in depth_tables(run).items()}
    tables["overlap@lape.json"] = overlap_rows(run)
    tables["dominance@ppl/ppl.json"] = ppl_rows(run)
    tables.update({f"{what}@lss/lss.json": rows for what, rows in lss_rows(run).items()})
    tables["steer-share@steer/steer.json"] = steer_rows(run)
    tables["mask-change@mask/mask_eval.json"] = mask_rows(run)
    return tables


# ------------------------------------------------------------------------------------------------
# reading the page


def shown_rows(rows) -> list[list]:
    """Body rows: a header cell's text, a number's exact value (data-value), None for a dash, else the text."""
    out = []
    for row in rows:
        if all(tag == "th" for tag, _, _ in row):
            continue
        cells = []
        for tag, text, value in row:
            if tag == "th":
                cells.append(text)
            elif value is not None:
                cells.append(float(value))
            else:
                cells.append(None if text == DASH else text)
        out.append(cells)
    return out


def comparison_tables(html: str) -> dict[str, list]:
    return {table: shown_rows(rows) for (artifact, table), rows in page_tables(html).items() if artifact == "study.json"}


def sections(html: str) -> list[tuple[str, str, str]]:
    """(id, kind, artifact) of every section, in page order."""
    return re.findall(r'<section class="artifact" id="([^"]+)" data-kind="([^"]+)" data-artifact="([^"]+)"', html)


def notes(html: str) -> list[str]:
    import html as escaping

    start = html.index('data-kind="compare"')
    part = html[start:html.index("</section>", start)]
    return [escaping.unescape(n) for n in re.findall(r'<p class="note">(.*?)</p>', part)]


# ------------------------------------------------------------------------------------------------
# tests


def test_every_comparison_number_equals_each_models_own_files(study):
    run, html = study
    got, want = comparison_tables(html), expected(run)
    assert set(got) == set(want), f"tables differ: {set(got) ^ set(want)}"
    for table, rows in want.items():
        assert rows, f"{table}: nothing expected (a broken fixture)"
        assert got[table] == rows, table


def test_relative_depth_bins_are_the_hand_computed_ones():
    for layers, bins in HAND_BINS.items():
        assert [depth_bin(layer, layers) for layer in range(layers)] == bins
    assert [depth_bin(layer, 11) for layer in range(11)] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    assert depth_bin(0, 1) == 0


def test_groups_are_matched_by_language_and_the_others_listed(study):
    run, html = study
    said = " ".join(notes(html))
    assert "Unmatched groups of lape.json (in one model only, not compared): alpha: zho_Hans; gamma: ita_Latn." in said
    shares = comparison_tables(html)["depth-shares@lape.json"]
    assert [row[:2] for row in shares if row[0] == "fra_Latn"] == [["fra_Latn", m] for m in MODELS]
    assert "In one model only, not compared" not in said  # masking is in alpha and beta: compared, gamma has none


def test_models_of_two_shapes_are_compared_by_depth_only_and_the_page_says_so(study):
    _, html = study
    said = notes(html)
    jaccard = [row[-1] for row in comparison_tables(html)["overlap@lape.json"]]
    assert all(0 < value < 1 for value in jaccard), jaccard  # a partial overlap: the fixture tests something
    for other in ("alpha", "beta"):
        assert (f"{other} (4 layers; act 16) and gamma (7 layers; act 24) differ in shape: their neurons are "
                "compared by relative depth only, not by overlap.") in said
    assert {row[1] for row in comparison_tables(html)["overlap@lape.json"]} == {"alpha vs beta"}


def test_comparison_first_then_each_model_in_its_own_step_order(study):
    run, html = study
    found = sections(html)
    assert found[0][:2] == ("s-compare", "compare")
    headings = [i for i, (_, kind, _) in enumerate(found) if kind == "model"]
    assert [found[i][2] for i in headings] == [f"{m}/study.json" for m in MODELS]
    for n, model in enumerate(MODELS):
        end = headings[n + 1] if n + 1 < len(headings) else len(found)
        labels = [artifact for _, _, artifact in found[headings[n] + 1:end]]
        order = ["steer/steer.json", "lape.json", "lape.random.json", "ppl/ppl.json", "lss/lss.json",
                 "mask/mask_eval.json"]
        assert labels == [f"{model}/{label}" for label in order if (run / model / label).exists()]
    ids = [anchor for anchor, _, _ in found]
    slugs = re.findall(r'<figure data-figure="([^"]+)"', html)
    assert len(set(ids)) == len(ids) and len(set(slugs)) == len(slugs)
    assert {"compare-depth-lape", "alpha-ppl-change", "beta-ppl-change"} <= set(slugs)
    assert all((run / "report" / "figures" / f"{slug}.png").is_file() for slug in slugs)
    assert "alpha: tests/alpha, beta: tests/beta, gamma: tests/gamma" in html


def test_a_model_folder_alone_is_its_own_report(study, tmp_path):
    run, _ = study
    html = write_report(run / "alpha", out=tmp_path / "alpha").read_text(encoding="utf-8")
    kinds = [kind for _, kind, _ in sections(html)]
    assert "compare" not in kinds and "model" not in kinds
    assert [artifact for _, _, artifact in sections(html)][:2] == ["steer/steer.json", "lape.json"]


@pytest.mark.parametrize("models, words", [
    ([{"name": "a", "out": "../elsewhere"}], "models[0] needs"),
    ([{"name": "a", "out": "a"}, {"name": "b", "out": "a/b"}], "models[1] repeats"),
    ("alpha", "must be a list"),
])
def test_a_malformed_models_list_is_named(tmp_path, models, words):
    (tmp_path / "study.json").write_text(json.dumps({"models": models, "steps": []}))
    with pytest.raises(ReportError, match=re.escape(words)):
        write_report(tmp_path)


def test_the_page_has_no_console_error_in_chromium(study, tmp_path):
    from test_report_browser import browse, chromium

    chromium()
    run, html = study
    seen = browse(run / "report" / "report.html", tmp_path / "compare.png")
    assert [text for kind, text in seen.console if kind == "error"] == [] and seen.errors == []
    assert seen.refused == []
    assert all(image["complete"] and image["width"] > 0 for image in seen.images)
    assert {(t["artifact"], t["table"]) for t in seen.tables} >= {("study.json", name) for name in expected(run)}
