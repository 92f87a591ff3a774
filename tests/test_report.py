"""`neurospec.report.write_report` on artifacts made by the real verbs on a tiny random model.

The run folder (built once per session, shared with test_report_browser.py through :func:`shared_run`)
holds a language neuron set and its random baseline, ppl, lss, a sweep, steer, an `eval xwinograd`
table, a culture neuron set with attention sites and its random baseline, mask-eval and finetune, a
statistics folder and an attribution run, plus a study.json, a config.yaml and unrelated JSON (which
must be left out).
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

from neurospec.data.items import MCItem
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

DONE = {"status": "complete", "this_run": "ran"}
STEP_RECORDS = {"finetune": {"status": "complete", "this_run": "skipped"}, "never-ran": {"status": "pending"}}

# section order the page must follow (study.json steps; culture.json's step owns culture.random.json)
SECTION_ORDER = ["lape.json", "lape.random.json", "ppl/ppl.json", "steer/steer.json", "lss/lss.json",
                 "sweep/sweep.json", "xwinograd/xwinograd.json", "culture.json", "culture.random.json",
                 "mask/mask_eval.json", "ft/finetune.json",
                 "attr/attribution.json", "stats_work/stats/stats.json"]  # no step owns these two: by path

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
    "attr/attribution.json": ["attr-attribution-scores"],
    "stats_work/stats/stats.json": ["stats-work-stats-distribution", "stats-work-stats-languages"],
}

_RUN: dict[str, Path] = {}

ATTRIBUTION_ITEMS = [
    MCItem("Which city is the capital of France?", ("Paris", "Rome", "Berlin", "Madrid"), 0, "France", "q1"),
    MCItem("She went to the market and bought", ("bread", "a car", "trains"), 2, "Spain", "q2"),
    MCItem("Trains leave", ("every hour", "never", "at noon", "soon"), 3, "Spain", "q3"),
    MCItem("The man broke his toe.", ("yes", "no"), 0, "UK", "q4"),
]


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
    from neurospec.measure.attribution import attribute
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
    stats = sentence_stats(model, run / "stats_work")  # statistics: drawn in a section of their own
    attribute(model, tokenizer, ATTRIBUTION_ITEMS, sites=("gate_pre", "q"), batch_size=3, quiet=True,
              out=run / "attr")  # attribution scores: drawn in a section of their own
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
    (run / "study.json").write_text(json.dumps(  # what `neurospec run` records: the last step never ran
        {"model": "tests/tiny-llama", "steps": [{"name": n, "verb": v, "out": o, **STEP_RECORDS.get(n, DONE)}
                                                for n, v, o in STEPS]}))
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
    if "intervals" in doc:  # every change with its paired bootstrap interval, a row per (row, language)
        ci = doc["intervals"]
        out["change-intervals"] = [[n, ci["texts"][lang], doc["change_ppl"][n][lang], *ci["change_ppl"][n][lang],
                                    doc["change_nll"][n][lang], *ci["change_nll"][n][lang]]
                                   for n in names if n != "none" for lang in languages]
    for kind in ("ppl", "nll"):  # own versus other: the difference, and the ratio only where the file gives one
        out[f"contrast-{kind}"] = [
            [group, v["own"], *_pair(v.get("own_ci")), v["mean_other"], *_pair(v.get("mean_other_ci")),
             v["own"] - v["mean_other"], *_pair(v.get("difference_ci")),
             v["selectivity"] if "selectivity_ci" in v else None, *_pair(v.get("selectivity_ci"))]
            for group, entry in doc["summary"].items() for which, values in entry.items() if which != "language"
            for v in [values[kind]]]
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


FLUENCY = ("distinct_1", "distinct_2", "repeated_token_share", "perplexity")


def steer_tables(doc) -> dict:
    def fluency_cells(line):
        return [value for name in FLUENCY for value in (line["fluency"][name]["value"], line["fluency"][name]["change"])]

    tables = {"share": [[t["row"], t["k"], t["n"], t["share"], *t["ci95"], t["baseline"]["k"], t["baseline"]["n"],
                         t["baseline"]["share"], *t["baseline"]["ci95"], t["change"], *t["change_ci95"],
                         *(fluency_cells(t) if "fluency" in t else [])] for t in doc["table"]]}
    if any("fluency" in t for t in doc["table"]):
        tables["fluency"] = [[t["row"], m["value"], *_pair(m["ci95"]), m["baseline"]["value"],
                              *_pair(m["baseline"]["ci95"]), m["change"], *_pair(m["change_ci95"])]
                             for t in doc["table"] for m in t.get("fluency", {}).values()]
    return tables


def downstream_tables(doc) -> dict:
    scores = []
    for row in doc["rows"]:
        for lang in doc["languages"]:
            cell = doc["cells"][row][lang]
            change = None if row == "none" else doc["change"][row][lang]
            change_ci = None if row == "none" else doc.get("change_ci95", {}).get(row, {}).get(lang)
            scores.append([row, cell["n"], cell["score"], *_pair(cell["ci95"]), change, *_pair(change_ci)])
    summary = doc["summary"]
    per = [[row, v["self"], *_pair(v.get("self_ci95")), v["cross_mean"], *_pair(v.get("cross_mean_ci95"))]
           for row, v in summary["per_target"].items()]
    per.append(["all targets", summary["self_mean"], *_pair(summary.get("self_mean_ci95")), summary["cross_mean"],
                *_pair(summary.get("cross_mean_ci95"))])
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


class Near:
    """A number computed here in another order of operations than the report's: equal to within ``rel``."""

    def __init__(self, value: float, rel: float = 1e-5):
        self.value, self.rel = float(value), rel

    def holds(self, shown: float) -> bool:
        return math.isclose(shown, self.value, rel_tol=self.rel, abs_tol=1e-12)

    def __repr__(self) -> str:
        return f"Near({self.value!r})"


def lape_entropy_numpy(p: np.ndarray) -> np.ndarray:
    """LAPE per neuron (layers, width) from probabilities (languages, layers, width) float32, as METHODS.md
    defines it: q = p / sum_k p, H = -sum q ln q, +inf where no p_k exceeds the 95% rank of all p."""
    flat = np.sort(p.reshape(-1), kind="stable")
    tau = flat[round(0.95 * flat.size) - 1]
    total = p.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(total > 0, p / total, 0).astype(np.float32)
        entropy = -np.where(q > 0, q * np.log(q), 0).sum(axis=0)
    entropy[(p > tau).sum(axis=0) == 0] = np.inf
    return entropy.astype(np.float64)


def stats_tables(path: Path) -> dict:
    from safetensors.numpy import load_file

    doc = json.loads(path.read_text(encoding="utf-8"))
    tensors = load_file(path.parent / doc["tensor_file"])
    tokens, counted = tensors["tokens"], np.flatnonzero(tensors["tokens"] > 0)
    p32 = tensors["active"][counted].astype(np.float32) / tokens[counted].astype(np.float32)[:, None, None]
    p = p32.astype(np.float64)
    entropy = lape_entropy_numpy(p32)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    layers = []
    for layer in range(doc["num_layers"]):
        finite = entropy[layer][np.isfinite(entropy[layer])]
        spread = [Near(v) for v in np.quantile(finite, (0.0, *qs))] if finite.size else [None] * (len(qs) + 1)
        layers.append([f"L{layer}", *[float(v) for v in np.quantile(p[:, layer, :], qs)], *spread,
                       int((~np.isfinite(entropy[layer])).sum())])
    languages = [[doc["languages"][i], int(tokens[i]), *[float(v) for v in p[row].mean(axis=1)]]
                 for row, i in enumerate(counted)]
    return {"layers": layers, "languages": languages}


def attribution_tables(path: Path) -> dict:
    from safetensors.numpy import load_file

    doc = json.loads(path.read_text(encoding="utf-8"))
    tensors = load_file(path.parent / doc["tensor_file"])
    examples = sum(doc["counts"].values())
    rows = []
    for site in doc["sites"]:
        per_example = tensors[f"scores.{site}"].sum(axis=0) / examples  # (layers, width)
        for layer in range(doc["num_layers"]):
            values = per_example[layer]
            rows.append([site, *[Near(v, 1e-9) for v in np.quantile(values, (0.05, 0.25, 0.5, 0.75, 0.95, 0.99))],
                         Near(values.max(), 1e-9)])
    return {"layers": rows}


def expected_tables(run: Path) -> dict[tuple[str, str], list[list]]:
    """(artifact label, table id) -> rows: the row's label, then every numeric (or missing) cell in order."""
    out = {}
    kinds = {"neurospec.neuronset": neuron_tables, "neurospec.ppl_matrix": ppl_tables,
             "neurospec.lss_matrix": lss_tables, "neurospec.steering": steer_tables,
             "neurospec.downstream": downstream_tables, "neurospec.mask_eval": mask_tables,
             "neurospec.finetune": finetune_tables}
    folders = {"neurospec.stats": stats_tables, "neurospec.attribution": attribution_tables}
    for label in SECTION_ORDER:
        doc = load(run, label)
        if doc["format"] in folders:
            tables = folders[doc["format"]](run / label)
        else:
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
            elif isinstance(value, Near):
                assert shown is not None and value.holds(float(shown)), f"{key}, row {w[0]}: {shown} is not {value}"
            else:
                assert shown == repr(value), f"{key}, row {w[0]}: data-value {shown} but the JSON has {value!r}"


def png_is_drawn(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, f"{path} is missing or tiny"
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, f"{path}: {pixels.shape}"
    assert pixels.std() > 5, f"{path} is blank (pixel standard deviation {pixels.std():.2f})"
    assert (pixels < 200).mean() > 0.01, f"{path} has almost nothing drawn"


FIGURE_LINK = re.compile(r"figures/[a-z0-9-]+\.png")  # each figure's PNG file beside the page: a link, never loaded


def external_references(html: str) -> list[str]:
    """Anything on the page that could make the browser fetch something."""
    problems = re.findall(r"https?:", html, flags=re.I)
    stripped = re.sub(r"data:image/(png|svg\+xml);base64,[A-Za-z0-9+/=]+", "", html)
    problems += re.findall(r".{0,30}//.{0,30}", stripped)
    problems += [s for s in re.findall(r"""\bsrc\s*=\s*["']?([^"'\s>]*)""", html, flags=re.I)
                 if not s.startswith("data:")]
    problems += [h for h in re.findall(r"""\bhref\s*=\s*["']?([^"'\s>]*)""", html, flags=re.I)
                 if not (h.startswith("#") or h == "data:," or FIGURE_LINK.fullmatch(h))]
    problems += re.findall(r"url\(|@import|<script|<iframe|<object|<embed", html, flags=re.I)
    return problems


def svg_references(svg: str) -> list[str]:
    """Anything in an SVG figure that could make the browser fetch something (its xmlns names are not fetched)."""
    stripped = re.sub(r'\bxmlns(:\w+)?="[^"]*"', "", svg)
    problems = re.findall(r".{0,30}https?:.{0,30}", stripped, flags=re.I)
    problems += [h[:40] for h in re.findall(r"""\bhref\s*=\s*["']([^"']*)""", stripped) if not h.startswith(("#", "data:"))]
    problems += re.findall(r"url\((?!#)|@import|<script|<foreignObject|<iframe", stripped, flags=re.I)
    return problems


def page_figures(html: str) -> dict[str, tuple[str, bytes, int, int]]:
    """figure slug -> (image type, the embedded bytes, width and height attributes) of every figure on the page."""
    import base64

    found = re.findall(r'<figure data-figure="([^"]+)"[^>]*><img src="data:image/([a-z+]+);base64,([A-Za-z0-9+/=]+)" '
                       r'width="(\d+)" height="(\d+)"', html)
    return {slug: (kind, base64.b64decode(data), int(w), int(h)) for slug, kind, data, w, h in found}


def svg_texts(svg: bytes) -> list[str]:
    """The texts drawn in a matplotlib SVG (it writes each as a comment before its glyphs)."""
    return re.findall(r"<!-- (.*?) -->", svg.decode("utf-8"), flags=re.S)


# ------------------------------------------------------------------------------------------------
# tests


def test_every_expected_figure_is_a_drawn_png(report):
    run, html_path = report
    figures = html_path.parent / "figures"
    expected = {slug for slugs in FIGURES.values() for slug in slugs}
    assert {p.stem for p in figures.glob("*.png")} == expected
    for slug in sorted(expected):
        png_is_drawn(figures / f"{slug}.png")
    on_page = page_figures(html_path.read_text(encoding="utf-8"))
    assert set(on_page) == expected
    for slug, (kind, svg, width, height) in on_page.items():  # the page shows an SVG; the file is its 200-dpi PNG
        assert kind == "svg+xml", slug
        text = svg.decode("utf-8")
        assert text.lstrip().startswith(("<?xml", "<svg")) and text.rstrip().endswith("</svg>"), slug
        assert svg_references(text) == [], slug
        size = re.search(r'<svg[^>]*?width="([0-9.]+)pt" height="([0-9.]+)pt"', text)
        inches = float(size.group(1)) / 72, float(size.group(2)) / 72
        with Image.open(figures / f"{slug}.png") as png:
            assert abs(png.width - inches[0] * 200) <= 2 and abs(png.height - inches[1] * 200) <= 2, (slug, png.size)
        assert (width, height) == (round(inches[0] * 112), round(inches[1] * 112)), slug  # 112 CSS px per inch


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
    for name in ("notes.json", "sweep/00-set_p_max/lss.json"):  # statistics and attribution runs are drawn
        assert f'data-artifact="{name}"' not in html
    assert "scratch.json" in html and "not valid JSON" in html  # listed as left out
    assert "tests/tiny-llama" in html and "never-ran" in html
    for label in SECTION_ORDER:
        assert f"<code>{label}</code>" in html.split("<main")[0]  # table of contents


def test_every_step_shows_what_the_latest_run_did_with_it(report):
    top = report[1].read_text(encoding="utf-8").split("<main")[0]
    steps = re.findall(r'<tr><th scope="row">([^<]+)</th><td>[^<]*</td><td><code>[^<]*</code></td>'
                       r'<td class="status [^"]+">([^<]+)</td>', top)
    words = {"finetune": "skipped (unchanged)", "never-ran": "not run"}
    assert steps == [(name, words.get(name, "done")) for name, _, _ in STEPS]


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


# ------------------------------------------------------------------------------------------------
# figures: what they leave out, their colour scales, their titles


def test_figures_leave_out_groups_without_neurons_while_the_tables_keep_them(report):
    run, html_path = report
    html = html_path.read_text(encoding="utf-8")
    figures = page_figures(html)
    assert load(run, "culture.json")["groups"]["Spain"] == {}
    for slug in ("culture-per-layer", "culture-overlap"):
        drawn = svg_texts(figures[slug][1])
        assert "Spain" not in drawn and "China" in drawn and "Iran" in drawn, (slug, drawn)
    tables = page_tables(html)
    assert "Spain" in [row[0] for row in table_rows(tables[("culture.json", "overlap-shared")])]


def test_steering_draws_a_panel_per_target_with_its_lines(report):
    run, html_path = report
    table = load(run, "steer/steer.json")["table"]
    drawn = svg_texts(page_figures(html_path.read_text(encoding="utf-8"))["steer-share"][1])
    targets = list(dict.fromkeys(line["target"] for line in table))
    assert [text for text in drawn if text.startswith("target ")] == [f"target {t}" for t in targets]
    assert any(line["k"] == 0 for line in table)  # a share of 0 is drawn (a dot at 0), not an empty bar


def test_perplexity_heatmap_states_its_colour_scale_and_writes_one_precision(report):
    run, html_path = report
    doc = load(run, "ppl/ppl.json")
    changes = [doc["change_ppl"][row["name"]][lang] for row in doc["rows"] if row["kind"] != "none"
               for lang in doc["languages"]]
    largest = max(abs(v) for v in changes)
    decimals = max(0, min(4, 2 - math.floor(math.log10(largest))))
    drawn = svg_texts(page_figures(html_path.read_text(encoding="utf-8"))["ppl-change"][1])
    written = [text for text in drawn if re.fullmatch(r"[+-]\d+\.\d+", text)]  # the cells, then the colour bar's
    assert written[:len(changes)] == [f"{v:+.{decimals}f}" for v in changes]
    assert "PPL change" in drawn
    assert any(re.fullmatch(r"\((symmetric log colour scale, linear within ±[0-9.e-]+|linear colour scale)\)", t)
               for t in drawn), drawn


def test_change_scale_is_symmetric_log_when_one_cell_dominates():
    from matplotlib.colors import SymLogNorm

    from neurospec.report.plots import change_scale, fixed_decimals

    values = [[50.0, 0.1, -0.2], [0.05, -0.3, None], [0.02, 0.4, -0.06]]
    norm, words = change_scale(values)
    assert isinstance(norm, SymLogNorm) and words.startswith("symmetric log colour scale")
    quartile = np.quantile([abs(v) for row in values for v in row if v], 0.25)
    assert quartile / 10 < norm.linthresh <= quartile  # linear within the smallest quarter of the changes
    assert norm(0.0) == pytest.approx(0.5) and norm(50.0) == pytest.approx(1.0) and norm(-50.0) == pytest.approx(0)
    for v in (0.1, 0.3, 5.0):
        assert norm(v) + norm(-v) == pytest.approx(1.0)
    assert norm(0.1) - 0.5 > 0.1  # a linear scale to 50 would put it 0.001 from white
    even, words = change_scale([[0.2, -0.3], [0.25, 0.1]])
    assert not isinstance(even, SymLogNorm) and words == "linear colour scale"
    assert fixed_decimals(values) == 1 and fixed_decimals([[0.43, -0.001]]) == 3


def test_long_titles_wrap_inside_the_figure(tmp_path):
    from neurospec.report.plots import PAD_INCHES, draw

    title = ("Overlap between groups: colour = Jaccard index, numbers = shared neurons, for every pair of the "
             "twenty languages of this study, drawn on a narrow figure")
    figure = draw("t", title, lambda fig: fig.add_subplot().plot([0, 1], [0, 1]), size=(3.0, 2.5), alt="a line")
    lines = [t for t in svg_texts(figure.svg) if t in title]
    assert len(lines) > 1 and " ".join(lines) == title  # every word drawn, on several lines
    width_pt = float(re.search(r'<svg[^>]*?width="([0-9.]+)pt"', figure.svg.decode()).group(1))
    assert width_pt <= (3.0 + 2 * PAD_INCHES) * 72 + 1  # the title did not widen the figure


def _neuron_file(source: Path, target: Path, model_id: str, fingerprint: str | None = None) -> None:
    doc = json.loads(source.read_text(encoding="utf-8"))
    doc["meta"]["model_id"] = model_id
    if fingerprint:
        doc["meta"]["source"] = {"provenance": {"model": {"id": model_id, "fingerprint": fingerprint}}}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(doc), encoding="utf-8")


def _model_fact(html: str) -> tuple[str, str]:
    found = re.search(r'<dt>model</dt><dd(?: title="([^"]*)")?>([^<]*)</dd>', html.split("<main")[0])
    return found.group(2), found.group(1) or ""


@pytest.mark.parametrize("recorded, shown", [
    ("/root/.cache/huggingface/hub/models--google--gemma-3-270m/snapshots/0123abc", "google/gemma-3-270m"),
    ("/home/me/.cache/neurospec/toy/small-bae15ab65ef3", "toy:small"),
    ("runs/my-model", "runs/my-model"),
])
def test_model_is_named_as_given_with_the_fingerprint_in_a_tooltip(report, tmp_path, recorded, shown):
    from neurospec.report import write_report

    run = tmp_path / "run"
    _neuron_file(report[0] / "lape.json", run / "lape.json", recorded, "sha256:feedbeef")
    name, tooltip = _model_fact(write_report(run).read_text(encoding="utf-8"))
    assert name == shown and "sha256:feedbeef" in tooltip
    assert (f"recorded as: {recorded}" in tooltip) == (recorded != shown)
    (run / "config.yaml").write_text("model: gemma-3-270m\n", encoding="utf-8")  # what the user wrote wins
    name, tooltip = _model_fact(write_report(run).read_text(encoding="utf-8"))
    assert name == "gemma-3-270m" and "sha256:feedbeef" in tooltip and f"recorded as: {recorded}" in tooltip


def test_unfinished_statistics_are_named_not_drawn(report, tmp_path):
    from neurospec.report import write_report

    run = tmp_path / "run"
    shutil.copytree(report[0] / "stats_work" / "stats", run / "stats")
    doc = json.loads((run / "stats" / "stats.json").read_text(encoding="utf-8"))
    (run / "stats" / "stats.json").write_text(json.dumps({**doc, "complete": False}), encoding="utf-8")
    html = write_report(run).read_text(encoding="utf-8")
    assert 'data-artifact="stats/stats.json"' in html and "unfinished" in html
    assert "<img" not in html


def test_a_cached_copy_is_named_after_the_model_another_artifact_says_it_copies(report, tmp_path):
    from neurospec.report import write_report

    cache = "/home/me/.cache/neurospec/gguf/a5fd3b62"
    run = tmp_path / "run"
    _neuron_file(report[0] / "lape.json", run / "old.json", cache)  # records only the cache folder
    doc = json.loads((report[0] / "lape.json").read_text(encoding="utf-8"))
    doc["meta"]["model_id"] = cache
    doc["meta"]["source"] = {"provenance": {"model": {"id": cache, "fingerprint": "sha256:beef", "source": {
        "builtin": "gemma-3-270m", "gguf": {"file": "/models/gemma.gguf", "cache": cache}}}}}
    (run / "new.json").write_text(json.dumps(doc), encoding="utf-8")
    html = write_report(run).read_text(encoding="utf-8")
    assert _model_fact(html) == ("gemma-3-270m", f"model fingerprint: sha256:beef\nrecorded as: {cache}")
    shown = re.findall(r'<dt>model</dt><dd(?: title="([^"]*)")?>([^<]*)</dd>', html.split("<main")[1])
    assert [name for _, name in shown] == ["gemma-3-270m", "gemma-3-270m"]  # both neuron sets' sections
    assert all(f"recorded as: {cache}" in tooltip for tooltip, _ in shown)
