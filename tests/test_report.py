"""`neurospec.report.write_report` on artifacts made by the real verbs on a tiny random model.

The run folder (built once per session, shared with test_report_browser.py through :func:`shared_run`)
holds a language neuron set and its random baseline, ppl, lss, a sweep, steer, an `eval xwinograd`
table, a culture neuron set with attention sites and its random baseline, mask-eval and finetune,
plus a study.json, a config.yaml, a statistics folder and unrelated JSON (which must be left out).
Every number of every table on the page is checked against values this file reads from the JSON
itself (:func:`expected_tables`), never through the report's code.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurospec.util.errors import EmptyGroupWarning

STEPS = [  # study.json: deliberately not in path order
    ("select", "select lape", "lape.json"),
    ("perplexity", "ppl", "ppl"),
    ("steering", "steer", "steer"),
    ("shift", "lss", "lss"),
    ("sweep", "sweep", "sweep"),
    ("xwinograd", "eval", "xwinograd"),
    ("culture", "select culture", "culture.json"),
    ("masking", "mask-eval", "mask"),
    ("finetune", "finetune", "ft"),
    ("never-ran", "ppl", "missing"),
]

# section order the page must follow (study.json steps; culture.json's step owns culture.random.json)
SECTION_ORDER = ["lape.json", "lape.random.json", "ppl/ppl.json", "steer/steer.json", "lss/lss.json",
                 "sweep/sweep.json", "xwinograd/xwinograd.json", "culture.json", "culture.random.json",
                 "mask/mask_eval.json", "ft/finetune.json"]

FIGURES = {  # artifact -> the figure slugs its section must show
    "lape.json": ["lape-per-layer", "lape-overlap"],
    "lape.random.json": [],
    "culture.json": ["culture-per-layer", "culture-overlap"],
    "culture.random.json": [],
    "ppl/ppl.json": ["ppl-change"],
    "lss/lss.json": ["lss-lss", "lss-pooled"],
    "sweep/sweep.json": ["sweep-curve", "sweep-settings"],
    "steer/steer.json": ["steer-share"],
    "xwinograd/xwinograd.json": ["xwinograd-scores"],
    "mask/mask_eval.json": ["mask-mask-eval-change", "mask-mask-eval-related-blend"],
    "ft/finetune.json": ["ft-finetune-accuracy"],
}

_RUN: dict[str, Path] = {}


# ------------------------------------------------------------------------------------------------
# the run folder


def build_run(root: Path) -> Path:
    """Every artifact kind, made by the real API and CLI verbs on a tiny Llama."""
    from interventions_common import TEXTS, neuron_set, sentence_stats, tiny_llama, tok
    from typer.testing import CliRunner

    from neurospec.cli.main import app
    from neurospec.core.sites import site_map
    from neurospec.data.blend import BLEND_TEMPLATES, blend_prompt_format
    from neurospec.data.lss_items import items_from_parallel, parallel_sentences
    from neurospec.data.mc_sets import load_mc_set
    from neurospec.evaluate.lss import lss_matrix
    from neurospec.evaluate.masking import mask_eval, masking_conditions
    from neurospec.evaluate.perplexity import perplexity_matrix
    from neurospec.evaluate.steering import prompts_from_parallel, steer_generation
    from neurospec.evaluate.sweep import sweep
    from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
    from neurospec.select import select_random
    from neurospec.select.culture import select_random_pooled

    run = root / "run"
    run.mkdir(parents=True)
    model, tokenizer = tiny_llama(), tok()
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    lape = neuron_set(model, per_group=8)
    lape = NeuronSet({g: {"act": {layer: lape.indices(g, "act", layer) for layer in lape.layers(g, "act")}} for g in lape.groups}
                     | {"eng_Latn": {"act": {0: [1, 2, 3], 1: lape.indices("fra_Latn", "act", 1)[:2].tolist()
                                             + lape.indices("eng_Latn", "act", 1).tolist()}}},
                     NeuronSetMeta(num_layers=2, widths=dict(lape.meta.widths), model_id="tests/tiny-llama",
                                   method="lape"))  # eng shares two neurons with fra: a non-trivial overlap
    lape.save(run / "lape.json")
    select_random(lape, seed=0).save(run / "lape.random.json")
    (run / "stats_work").mkdir()
    stats = sentence_stats(model, run / "stats_work")  # statistics: an internal format the report leaves out
    perplexity_matrix(model, tokenizer, TEXTS, lape, random_seeds=(0,)).save(run / "ppl")
    items = items_from_parallel(parallel_sentences("ntrex", ["en", "fr", "de"]), limit=6)
    lss_matrix(model, tokenizer, items, lape, recipe="set:p_max*4", stats=stats, controls=("random", "other"),
               bootstrap=100).save(run / "lss")
    sweep(model, tokenizer, items, lape, ["set:p_max", "set:p_max*4", "set:p_median*4"], stats=stats,
          bootstrap=100).save(run / "sweep")
    prompts = prompts_from_parallel(parallel_sentences("ntrex", ["en", "fr", "de"]), limit=3)
    steer_generation(model, tokenizer, prompts, lape, stats=stats, random_seeds=(0,), max_new_tokens=4,
                     candidates=["eng_Latn", "fra_Latn", "deu_Latn"]).save(run / "steer")
    widths = site_map(model).shape.widths
    culture = NeuronSet({
        "culture-general": {"gate_pre": {0: [1, 5, 9], 1: [2]}, "q": {1: [3, 4]}, "v": {0: [7]}},
        "China": {"gate_pre": {0: [5, 9, 11]}, "k": {0: [1]}},
        "Iran": {"gate_pre": {1: [2, 20]}, "q": {0: [6]}, "k": {1: [0, 2]}},
        "Spain": {},  # a country the selection left without neurons: shown as such, skipped by mask-eval
    }, NeuronSetMeta(num_layers=2, widths={s: widths[s] for s in ("gate_pre", "q", "k", "v")},
                     model_id="tests/tiny-llama", method="union"))
    culture.save(run / "culture.json")
    randoms = select_random_pooled(culture, seeds=[0])
    randoms.save(run / "culture.random.json")
    sets = {"blend": load_mc_set("blend", countries=["China", "Iran"], split="test", limit=3),
            "qnli": load_mc_set("qnli", limit=3)}
    with pytest.warns(EmptyGroupWarning, match="Spain"):
        conditions = masking_conditions(culture, random=randoms)
    mask_eval(model, tokenizer, sets, conditions, fmt=blend_prompt_format(),
              templates=[BLEND_TEMPLATES["blend"]], kinds={"qnli": "nlu"}, resamples=200, quiet=True).save(run / "mask")
    runner = CliRunner()
    for args in (["eval", "xwinograd", "--model", root / "model", "--neurons", run / "lape.json", "--stats",
                  run / "stats_work" / "stats", "--languages", "en,fr", "--limit", "4", "--quiet", "--out",
                  run / "xwinograd"],
                 ["finetune", "--model", root / "model", "--neurons", run / "culture.json", "--layers", "richest:1",
                  "--data", "qnli", "--samples", "4", "--lr", "1e-3", "--evaluate", "qnli,blend", "--eval-limit", "1",
                  "--quiet", "--out", run / "ft"]):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    (run / "study.json").write_text(json.dumps(
        {"model": "tests/tiny-llama", "steps": [{"name": n, "verb": v, "out": o} for n, v, o in STEPS]}))
    (run / "config.yaml").write_text("model: tests/tiny-llama\nlanguages: [en, fr, de]\nnote: <b>escaped</b>\n")
    (run / "notes.json").write_text(json.dumps({"hello": "not an artifact"}))
    (run / "scratch.json").write_text("{ half a file of something else")
    return run


def shared_run(factory) -> tuple[Path, Path]:
    """The run folder and its report, built once per session (both test modules use it)."""
    if "run" not in _RUN:
        from neurospec.report import write_report

        run = build_run(factory.mktemp("report"))
        _RUN["run"] = run
        _RUN["html"] = write_report(run)
    return _RUN["run"], _RUN["html"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return shared_run(tmp_path_factory)


# ------------------------------------------------------------------------------------------------
# the numbers every table must hold, read from the JSON here


def load(run: Path, label: str):
    return json.loads((run / label).read_text(encoding="utf-8"))


def _pair(interval):
    return (None, None) if interval is None else (interval[0], interval[1])


def neuron_tables(doc) -> dict:
    groups = doc["groups"]
    sites = []
    for group in groups.values():
        sites += [s for s in group if s not in sites]
    order = ["act", "down_in", "gate_pre", "up_pre", "q", "k", "v", "o"]
    sites.sort(key=order.index)
    layers = doc["meta"]["num_layers"]
    per_layer = []
    for name, group in groups.items():
        for site in sites:
            counts = [len(set(group.get(site, {}).get(str(layer), []))) for layer in range(layers)]
            per_layer.append([name, *counts, sum(counts)])
    out = {"per-layer": per_layer}
    random = doc["meta"]["method"] in ("random", "random-pooled")
    if len(groups) >= 2 and not random:
        members = {name: {(site, layer, i) for site, by_layer in group.items() for layer, idx in by_layer.items()
                          for i in idx} for name, group in groups.items()}
        shared, jaccard = [], []
        for a in groups:
            both = [len(members[a] & members[b]) for b in groups]
            either = [len(members[a] | members[b]) for b in groups]
            shared.append([a, *both])
            jaccard.append([a, *[x / y if y else 0.0 for x, y in zip(both, either)]])
        out["overlap-shared"], out["overlap-jaccard"] = shared, jaccard
    return out


def ppl_tables(doc) -> dict:
    languages = doc["languages"]
    names = [r["name"] for r in doc["rows"]]
    out = {"change": [[n, *[doc["change_ppl"][n][lang] for lang in languages]] for n in names if n != "none"],
           "ppl": [[n, *[doc["cells"][n][lang]["ppl"] for lang in languages]] for n in names]}
    selectivity = []
    for group, entry in doc["summary"].items():
        for which, values in entry.items():
            if which != "language":
                selectivity.append([group, *[values[k][f] for k in ("ppl", "nll")
                                             for f in ("own", "mean_other", "selectivity")]])
    out["selectivity"] = selectivity
    return out


def lss_tables(doc) -> dict:
    controls = sorted({name for c in doc["cells"] for name in c["controls"]})
    cells = []
    for c in doc["cells"]:
        row = [c["source"], c["n"], c["excluded_identical"], c["lss"], *_pair(c["ci95"]), c["mean_d0"]]
        for name in controls:
            k = c["controls"].get(name)
            row += [None] * 4 if k is None else [k["lss"], k["margin"], *_pair(k["margin_ci95"])]
        cells.append(row)
    pooled = doc["pooled"]
    rows = [["target's own", pooled["lss"], *_pair(pooled["ci95"]), None, None, None]]
    rows += [[f"control: {name}", c["lss"], None, None, c["margin"], *_pair(c["margin_ci95"])]
             for name, c in pooled["controls"].items()]
    return {"cells": cells, "pooled": rows}


def sweep_tables(run: Path, label: str, doc) -> dict:
    curve = [[p["recipe"], p["factor"], p["mean_lss"], p["pooled_lss"], *_pair(p["pooled_lss_ci95"]), p["mean_d0"]]
             for p in doc["curve"]]
    settings = []
    for p in doc["curve"]:
        setting = load(run, str(Path(label).parent / p["folder"] / "lss.json"))
        settings += [[p["recipe"], c["lss"], *_pair(c["ci95"])] for c in setting["cells"]]
    return {"curve": curve, "settings": settings}


def steer_tables(doc) -> dict:
    return {"share": [[t["row"], t["k"], t["n"], t["share"], *t["ci95"], t["baseline"]["k"], t["baseline"]["n"],
                       t["baseline"]["share"], *t["baseline"]["ci95"]] for t in doc["table"]]}


def downstream_tables(doc) -> dict:
    scores = []
    for row in doc["rows"]:
        for lang in doc["languages"]:
            cell = doc["cells"][row][lang]
            change = None if row == "none" else doc["change"][row][lang]
            scores.append([row, cell["n"], cell["score"], *_pair(cell["ci95"]), change])
    summary = doc["summary"]
    per = [[row, v["self"], v["cross_mean"]] for row, v in summary["per_target"].items()]
    per.append(["all targets", summary["self_mean"], summary["cross_mean"]])
    return {"scores": scores, "summary": per}


def mask_tables(doc) -> dict:
    cells = []
    for c in doc["cells"]:
        if c["group"] == "all":
            cells.append([c["condition"], c["n"], c["accuracy"], *c["ci95"], c.get("change"),
                          *_pair(c.get("change_ci95")), c.get("random_change"), c.get("margin_over_random"),
                          *_pair(c.get("margin_ci95"))])
    keys = list(dict.fromkeys(k for entry in doc["summary"] for k in entry if k != "condition"))
    out = {"cells": cells, "summary": [[e["condition"], *[e.get(k) for k in keys]] for e in doc["summary"]]}
    rules = [[c["condition"], c["rules"]["full_vocabulary"]["accuracy"], c["rules"]["letters_only"]["accuracy"],
              c["non_letter_share"]] for c in doc["cells"] if c["group"] == "all" and "rules" in c]
    if rules:
        out["rules"] = rules
    for benchmark, matrix in doc["related"].items():
        columns = list(dict.fromkeys(g for row in matrix.values() for g in row))
        out[f"related-{benchmark}"] = [[c, *[row.get(g) for g in columns]] for c, row in matrix.items()]
    return out


def finetune_tables(doc) -> dict:
    return {"evaluation": [[name, e["after"]["n"], e["before"]["accuracy"], *e["before"]["ci95"],
                            e["after"]["accuracy"], *e["after"]["ci95"], e["change"]]
                           for name, e in doc["evaluation"].items()]}


def expected_tables(run: Path) -> dict[tuple[str, str], list[list]]:
    """(artifact label, table id) -> rows: the row's label, then every numeric (or missing) cell in order."""
    out = {}
    kinds = {"neurospec.neuronset": neuron_tables, "neurospec.ppl_matrix": ppl_tables,
             "neurospec.lss_matrix": lss_tables, "neurospec.steering": steer_tables,
             "neurospec.downstream": downstream_tables, "neurospec.mask_eval": mask_tables,
             "neurospec.finetune": finetune_tables}
    for label in SECTION_ORDER:
        doc = load(run, label)
        tables = sweep_tables(run, label, doc) if doc["format"] == "neurospec.sweep" else kinds[doc["format"]](doc)
        out.update({(label, table): rows for table, rows in tables.items()})
    study = load(run, "study.json")
    settings = len(load(run, "sweep/sweep.json")["curve"])  # the sweep step also wrote one lss.json per setting
    found = {"lape.json": 2, "ppl": 1, "steer": 1, "lss": 1, "sweep": 1 + settings, "xwinograd": 1, "culture.json": 2,
             "mask": 1, "ft": 1, "missing": 0}
    out[("study.json", "steps")] = [[s["name"], found[s["out"]]] for s in study["steps"]]
    return out


# ------------------------------------------------------------------------------------------------
# reading the page


class _Tables(HTMLParser):
    """Every <table data-artifact data-table>: rows of cells (tag, text, data-value or None)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: dict[tuple[str, str], list[list[tuple[str, str, str | None]]]] = {}
        self._key = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "data-table" in attrs:
            self._key = (attrs["data-artifact"], attrs["data-table"])
            assert self._key not in self.tables, f"table {self._key} appears twice"
            self.tables[self._key] = []
        elif self._key and tag == "tr":
            self.tables[self._key].append([])
        elif self._key and tag in ("td", "th"):
            self._cell = [tag, "", attrs.get("data-value")]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._key][-1].append(tuple(self._cell))
            self._cell = None
        elif tag == "table":
            self._key = None


def page_tables(html: str) -> dict:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def table_rows(rows) -> list[list]:
    """Body rows as [first cell text, numbers (or None for a dash) of the other cells]; text cells dropped."""
    out = []
    for row in rows:
        if all(tag == "th" for tag, _, _ in row):
            continue  # the header row
        values = []
        for _tag, text, value in row[1:]:
            if value is not None:
                values.append(value)
            elif text.strip() == "\u2014":
                values.append(None)
        out.append([row[0][1], *values])
    return out


def assert_same_rows(key, got: list[list], want: list[list]) -> None:
    assert len(got) == len(want), f"{key}: {len(got)} rows on the page, {len(want)} in the JSON"
    for g, w in zip(got, want):
        assert g[0] == w[0], f"{key}: row {g[0]!r} where the JSON has {w[0]!r}"
        assert len(g) == len(w), f"{key}, row {w[0]}: {len(g) - 1} numbers on the page, {len(w) - 1} in the JSON"
        for shown, value in zip(g[1:], w[1:]):
            if value is None:
                assert shown is None, f"{key}, row {w[0]}: {shown} where the JSON has no value"
            else:
                assert shown == repr(value), f"{key}, row {w[0]}: data-value {shown} but the JSON has {value!r}"


def png_is_drawn(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, f"{path} is missing or tiny"
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, f"{path}: {pixels.shape}"
    assert pixels.std() > 5, f"{path} is blank (pixel standard deviation {pixels.std():.2f})"
    assert (pixels < 200).mean() > 0.01, f"{path} has almost nothing drawn"


def external_references(html: str) -> list[str]:
    """Anything on the page that could make the browser fetch something."""
    problems = re.findall(r"https?:", html, flags=re.I)
    stripped = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    problems += re.findall(r".{0,30}//.{0,30}", stripped)
    problems += [s for s in re.findall(r"""\bsrc\s*=\s*["']?([^"'\s>]*)""", html, flags=re.I)
                 if not s.startswith("data:")]
    problems += [h for h in re.findall(r"""\bhref\s*=\s*["']?([^"'\s>]*)""", html, flags=re.I)
                 if not (h.startswith("#") or h == "data:,")]
    problems += re.findall(r"url\(|@import|<script|<iframe|<object|<embed", html, flags=re.I)
    return problems


# ------------------------------------------------------------------------------------------------
# tests


def test_every_expected_figure_is_a_drawn_png(report):
    run, html_path = report
    figures = html_path.parent / "figures"
    expected = {slug for slugs in FIGURES.values() for slug in slugs}
    assert {p.stem for p in figures.glob("*.png")} == expected
    for slug in sorted(expected):
        png_is_drawn(figures / f"{slug}.png")
    html = html_path.read_text(encoding="utf-8")
    on_page = re.findall(r'<figure data-figure="([^"]+)"><img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert {slug for slug, _ in on_page} == expected
    import base64

    for slug, data in on_page:  # the embedded image is the written file
        assert base64.b64decode(data) == (figures / f"{slug}.png").read_bytes(), slug


def test_page_references_nothing_outside(report):
    html = report[1].read_text(encoding="utf-8")
    assert external_references(html) == []
    assert "<b>escaped</b>" not in html and "&lt;b&gt;escaped&lt;/b&gt;" in html  # config.yaml, escaped


def test_tables_equal_the_json(report):
    run, html_path = report
    tables = page_tables(html_path.read_text(encoding="utf-8"))
    want = expected_tables(run)
    assert set(tables) == set(want), f"page tables differ: {set(tables) ^ set(want)}"
    for key, rows in want.items():
        assert_same_rows(key, table_rows(tables[key]), rows)


def test_sections_follow_study_steps_and_skip_non_artifacts(report):
    run, html_path = report
    html = html_path.read_text(encoding="utf-8")
    order = re.findall(r'<section class="artifact" id="[^"]+" data-kind="[^"]+" data-artifact="([^"]+)"', html)
    assert order == SECTION_ORDER
    for name in ("stats.json", "notes.json", "sweep/00-set_p_max/lss.json"):
        assert f'data-artifact="{name}"' not in html.replace("stats_work/stats/", "")
    assert "scratch.json" in html and "not valid JSON" in html  # listed as left out
    assert "tests/tiny-llama" in html and "never-ran" in html
    for label in SECTION_ORDER:
        assert f"<code>{label}</code>" in html.split("<main")[0]  # table of contents


def test_groups_without_neurons_are_named_where_they_are_missing(report):
    run, html_path = report
    html = html_path.read_text(encoding="utf-8")
    warnings_of = {label: re.findall(r'<p class="warning">([^<]*)</p>', section)
                   for label, section in re.findall(r'data-artifact="([^"]+)">(.*?)</section>', html, flags=re.S)}
    assert load(run, "mask/mask_eval.json")["empty_groups"] == {"Spain": "no neurons selected by union"}
    assert warnings_of["mask/mask_eval.json"] == ["Spain: no neurons selected by union"]
    assert warnings_of["culture.json"] == ["Spain: no neurons selected by union"]
    assert warnings_of["lape.json"] == [] and warnings_of["ppl/ppl.json"] == []


def test_matplotlib_state_is_left_alone(report, tmp_path):
    import matplotlib

    from neurospec.report import write_report

    backend, params = matplotlib.get_backend(), dict(matplotlib.rcParams)
    shutil.copy(report[0] / "lape.json", tmp_path / "lape.json")
    write_report(tmp_path)
    assert matplotlib.get_backend() == backend and dict(matplotlib.rcParams) == params


def test_partial_run_with_only_a_neuron_set(report, tmp_path):
    from neurospec.report import write_report

    run = tmp_path / "partial"
    (run / "sets").mkdir(parents=True)
    shutil.copy(report[0] / "lape.json", run / "sets" / "lape.json")
    out = write_report(run, out=tmp_path / "out")
    assert out == tmp_path / "out" / "report.html"
    html = out.read_text(encoding="utf-8")
    tables = page_tables(html)
    want = neuron_tables(load(run, "sets/lape.json"))
    assert set(tables) == {("sets/lape.json", t) for t in want}
    for table, rows in want.items():
        assert_same_rows(table, table_rows(tables[("sets/lape.json", table)]), rows)
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == ["sets-lape-overlap.png",
                                                                                 "sets-lape-per-layer.png"]
    assert external_references(html) == []


def test_empty_folder_says_so(tmp_path):
    from neurospec.report import write_report

    (tmp_path / "empty").mkdir()
    html = write_report(tmp_path / "empty").read_text(encoding="utf-8")
    assert "No neurospec artifact was found" in html
    assert "<table" not in html and "<img" not in html
    assert list((tmp_path / "empty" / "report" / "figures").iterdir()) == []


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["truncated", "missing-field", "wrong-type"])
def test_corrupt_artifact_is_named_and_leaves_no_report(report, tmp_path, damage):
    from neurospec.report import write_report
    from neurospec.util.errors import NeurospecError

    run = tmp_path / "run"
    (run / "ppl").mkdir(parents=True)
    shutil.copy(report[0] / "lape.json", run / "lape.json")
    text = (report[0] / "ppl" / "ppl.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    if damage == "truncated":
        text = text[: len(text) // 2]
        needle = "not valid JSON"
    elif damage == "missing-field":
        del doc["change_ppl"]
        text, needle = json.dumps(doc), "change_ppl"
    else:
        first = doc["languages"][0]
        doc["cells"]["none"][first]["ppl"] = "many"
        text, needle = json.dumps(doc), f"cells.none.{first}.ppl"
    (run / "ppl" / "ppl.json").write_text(text, encoding="utf-8")
    with pytest.raises(NeurospecError) as caught:
        write_report(run)
    message = str(caught.value)
    assert str(run / "ppl" / "ppl.json") in message and needle in message
    assert "regenerate" in message
    assert not (run / "report").exists()
    # an earlier report in the output folder stays exactly as it was
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(report[0] / "lape.json", good / "lape.json")
    write_report(good, out=tmp_path / "out")
    before = _files(tmp_path / "out")
    with pytest.raises(NeurospecError):
        write_report(run, out=tmp_path / "out")
    assert _files(tmp_path / "out") == before
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]


def test_run_folder_errors_are_clear(tmp_path):
    from neurospec.report import write_report
    from neurospec.util.errors import NeurospecError

    with pytest.raises(NeurospecError, match="does not exist"):
        write_report(tmp_path / "nowhere")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "study.json").write_text(json.dumps({"steps": [{"name": "ppl"}]}))
    with pytest.raises(NeurospecError, match=r"study\.json.*steps\[0\].*out"):
        write_report(tmp_path / "run")


def test_numbers_shown_match_their_values(report):
    """The formatted text of every numeric cell is its data-value, rounded."""
    tables = page_tables(report[1].read_text(encoding="utf-8"))
    for key, rows in tables.items():
        for row in rows:
            for _tag, text, value in row:
                if value is None:
                    continue
                shown = float(text.replace("\u2212", "-").replace("+", ""))
                assert math.isclose(shown, float(value), rel_tol=1e-3, abs_tol=1e-3), (key, text, value)
