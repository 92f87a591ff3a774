"""Tidy tables: ``<name>.tidy.csv`` beside every result and ``neurospec.results.load(run_dir)``.

The run folder is test_report.py's (:func:`test_report.build_run`: every artifact kind on a tiny Llama; the
``eval xwinograd`` table through the CLI, so its CSV is the verb's own). Each kind's rows are checked against an
independent reading of the raw JSON: every number of a cell is in exactly one row, with the right condition,
languages, n and interval. ``load`` must give the columns docs/artifacts.md documents, the same frame from the CSV
as from the JSON, and a one-line error without pandas.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from neurospec.results import load, write_tidy_csv
from neurospec.results.tidy import Estimate, estimates, tidy_path, tidy_table
from neurospec.util.errors import NeurospecError
from neurospec.verbs.base import VerbOptions, stamp_result

DOCS = Path(__file__).resolve().parents[1] / "docs" / "artifacts.md"

RESULTS = {  # label in the run folder -> the kind load() files it under
    "ppl/ppl.json": "ppl",
    "lss/lss.json": "lss",
    "sweep/sweep.json": "sweep",
    "sweep/01-set_p_max_x4/lss.json": "lss",
    "steer/steer.json": "steer",
    "xwinograd/xwinograd.json": "downstream",
    "mask/mask_eval.json": "mask_eval",
    "ft/finetune.json": "finetune",
    "stats_work/stats/stats.json": "stats",
    "attr/attribution.json": "attribution",
    "lape.json": "neurons",
    "culture.json": "neurons",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from test_report import build_run

    return build_run(tmp_path_factory.mktemp("tidy"))


def document(run: Path, label: str) -> dict:
    return json.loads((run / label).read_text(encoding="utf-8"))


def rows_of(run: Path, label: str) -> list[dict[str, Any]]:
    table = tidy_table(run / label)
    assert table is not None and table.kind == RESULTS[label]
    return table.rows


def expect(rows: list[dict], metric: str, estimate: Any, *, lo: Any = None, hi: Any = None, n: Any = "any",
           **where: Any) -> dict:
    """The one row of ``metric`` at ``where`` (condition, languages...), holding ``estimate`` and its bounds."""
    found = [r for r in rows if r["metric"] == metric and all(r[k] == v for k, v in where.items())]
    assert len(found) == 1, f"{metric} at {where}: {len(found)} rows"
    row = found[0]
    assert row["estimate"] == estimate, (metric, where, row["estimate"], estimate)
    assert (row["lo"], row["hi"]) == (lo, hi), (metric, where)
    if n != "any":
        assert row["n"] == n, (metric, where, row["n"], n)
    return row


def pair(value) -> tuple:
    return (None, None) if value is None else (value[0], value[1])


# ------------------------------------------------------------------------------------------------
# each kind against the raw JSON


def test_perplexity_rows(run):
    doc, rows = document(run, "ppl/ppl.json"), rows_of(run, "ppl/ppl.json")
    intervals = doc.get("intervals") or {}
    for spec in doc["rows"]:
        row = spec["name"]
        expect(rows, "neurons", spec["neurons"], condition=row, language=None)
        for lang in doc["languages"]:
            cell = doc["cells"][row][lang]
            for key in ("ppl", "mean_nll", "nll", "tokens", "texts"):
                got = expect(rows, key, cell[key], n=cell["texts"], condition=row, language=lang)
                assert (got["group"], got["seed"]) == (spec["group"], spec["seed"])
                assert got["recipe"] == (None if row == "none" else doc["recipe"]["name"])
            for kind in ("ppl", "nll"):
                lo, hi = pair((intervals.get(f"change_{kind}") or {}).get(row, {}).get(lang))
                expect(rows, f"change_{kind}", doc[f"change_{kind}"][row][lang], lo=lo, hi=hi, n=cell["texts"],
                       condition=row, language=lang)
    for group, entry in doc["summary"].items():
        for label, kinds in entry.items():
            if label == "language":
                continue
            for kind, numbers in kinds.items():
                for key in ("own", "mean_other", "selectivity", "difference"):
                    if key in numbers:
                        lo, hi = pair(numbers.get(f"{key}_ci"))
                        expect(rows, f"summary.{kind}.{key}", numbers[key], lo=lo, hi=hi,
                               n=doc["cells"]["none"][entry["language"]]["texts"],
                               condition=group if label == "neurons" else label, group=group,
                               language=entry["language"])


def lss_checks(doc: dict, rows: list[dict]) -> None:
    for cell in doc["cells"]:
        where = dict(source=cell["source"], language=cell["target"])
        lo, hi = pair(cell["ci95"])
        expect(rows, "lss", cell["lss"], lo=lo, hi=hi, n=cell["n"], condition=cell["target"], **where)
        for key in ("mean_d0", "mean_di", "excluded_identical", "missing"):
            expect(rows, key, cell[key], n=cell["n"], condition=cell["target"], **where)
        for name, control in cell["controls"].items():
            condition = f"random{control['seed']}:{cell['target']}" if name == "random" else f"other:{control['group']}"
            expect(rows, "lss", control["lss"], lo=control["ci95"][0], hi=control["ci95"][1], n=cell["n"],
                   condition=condition, **where)
            got = expect(rows, "margin", control["margin"], lo=control["margin_ci95"][0],
                         hi=control["margin_ci95"][1], n=cell["n"], condition=condition, **where)
            assert got["seed"] == control.get("seed")
    pooled = doc["pooled"]
    expect(rows, "lss", pooled["lss"], lo=pooled["ci95"][0], hi=pooled["ci95"][1], n=pooled["n"],
           condition="targets", subset="pooled")
    expect(rows, "mean_offdiagonal", doc["mean_offdiagonal"], n=None, condition="targets", subset="pooled")
    for name, control in pooled["controls"].items():
        expect(rows, "margin", control["margin"], lo=control["margin_ci95"][0], hi=control["margin_ci95"][1],
               condition=name, subset="pooled")


def test_lss_rows(run):
    lss_checks(document(run, "lss/lss.json"), rows_of(run, "lss/lss.json"))


def test_sweep_rows_and_each_setting(run):
    doc, rows = document(run, "sweep/sweep.json"), rows_of(run, "sweep/sweep.json")
    for point in doc["curve"]:
        expect(rows, "mean_lss", point["mean_lss"], condition=point["recipe"], recipe=point["recipe"])
        expect(rows, "pooled_lss", point["pooled_lss"], lo=point["pooled_lss_ci95"][0],
               hi=point["pooled_lss_ci95"][1], condition=point["recipe"])
    assert {r["metric"] for r in rows} >= {"mean_lss", "pooled_lss", "mean_d0"}
    lss_checks(document(run, "sweep/01-set_p_max_x4/lss.json"), rows_of(run, "sweep/01-set_p_max_x4/lss.json"))


def test_steering_rows(run):
    doc, rows = document(run, "steer/steer.json"), rows_of(run, "steer/steer.json")
    methods = doc.get("interval_method") or {}
    for line in doc["table"]:
        where = dict(condition=line["row"], source=line["source"], language=line["target"])
        got = expect(rows, "share", line["share"], lo=line["ci95"][0], hi=line["ci95"][1], n=line["n"], **where)
        assert got["interval"] == methods.get("share", "ci95")
        expect(rows, "k", line["k"], n=line["n"], **where)
        base = line["baseline"]
        expect(rows, "baseline.share", base["share"], lo=base["ci95"][0], hi=base["ci95"][1], n=base["n"], **where)
        if "change" in line:
            expect(rows, "change", line["change"], lo=line["change_ci95"][0], hi=line["change_ci95"][1], **where)
        assert line["fluency"]  # steer.json now always has fluency: its rows are checked
        fluency_checks(rows, line["fluency"], methods, "", **where)
    assert not [r for r in rows if r["metric"].endswith((".value", ".interval"))]  # no half-read fluency object


def fluency_checks(rows: list[dict], fluency: dict, methods: dict, prefix: str, **where) -> None:
    """Per measure: its value, the unmodified model's and the change, each with its interval and method."""
    for name, measure in fluency.items():
        metric, base = f"{prefix}fluency.{name}", measure["baseline"]
        got = expect(rows, metric, measure["value"], lo=measure["ci95"][0], hi=measure["ci95"][1], n=measure["n"],
                     **where)
        assert got["interval"] == methods["fluency"]
        expect(rows, f"{metric}.baseline", base["value"], lo=base["ci95"][0], hi=base["ci95"][1], n=base["n"],
               **where)
        got = expect(rows, f"{metric}.change", measure["change"], lo=measure["change_ci95"][0],
                     hi=measure["change_ci95"][1], **where)
        assert got["interval"] == methods["fluency_change"]


def test_rows_of_a_sweep_that_generated(tmp_path):
    from interventions_common import TEXTS, neuron_set, sentence_stats, tiny_llama, tok

    from neurospec.data.lss_items import items_from_parallel
    from neurospec.evaluate.fluent_sweep import SteeringPlan, fluency_bound
    from neurospec.evaluate.sweep import sweep

    model = tiny_llama()
    items = items_from_parallel({lang: list(enumerate(lines))[:3] for lang, lines in TEXTS.items()})
    plan = SteeringPlan({lang: lines[:2] for lang, lines in TEXTS.items()}, 4, fluency_bound("perplexity"))
    path = sweep(model, tok(), items, neuron_set(model), ["set:p_max", "set:p_max*3"], bootstrap=100, steering=plan,
                 stats=sentence_stats(model, tmp_path)).save(tmp_path / "sweep")
    doc, table = json.loads(path.read_text()), tidy_table(path)
    methods = doc["settings"]["generation"]["interval_method"]
    for point in doc["curve"]:
        where, steering = dict(condition=point["recipe"], recipe=point["recipe"]), point["steering"]
        expect(table.rows, "mean_lss", point["mean_lss"], **where)
        got = expect(table.rows, "steering.share", steering["share"], lo=steering["ci95"][0], hi=steering["ci95"][1],
                     n=steering["n"], **where)
        assert got["interval"] == methods["share"]
        expect(table.rows, "steering.k", steering["k"], n=steering["n"], **where)
        base = steering["baseline"]
        expect(table.rows, "steering.baseline.share", base["share"], lo=base["ci95"][0], hi=base["ci95"][1],
               n=base["n"], **where)
        expect(table.rows, "steering.change", steering["change"], lo=steering["change_ci95"][0],
               hi=steering["change_ci95"][1], **where)
        expect(table.rows, "steering.degradation", steering["degradation"], **where)
        fluency_checks(table.rows, steering["fluency"], methods, "steering.", **where)


def test_downstream_rows_written_by_the_verb(run):
    label = "xwinograd/xwinograd.json"
    doc, rows = document(run, label), rows_of(run, label)
    for row in doc["rows"]:
        for lang in doc["languages"]:
            cell = doc["cells"][row][lang]
            got = expect(rows, cell["metric"], cell["score"], lo=cell["ci95"][0], hi=cell["ci95"][1], n=cell["n"],
                         condition=row, language=lang, dataset="xwinograd")
            assert got["group"] == (None if row == "none" else row)
            if row != "none":
                lo, hi = doc["change_ci95"][row][lang]
                expect(rows, "change", doc["change"][row][lang], lo=lo, hi=hi, n=cell["n"], condition=row,
                       language=lang)
    for row, entry in doc["summary"]["per_target"].items():
        expect(rows, "summary.cross_mean", entry["cross_mean"], lo=entry["cross_mean_ci95"][0],
               hi=entry["cross_mean_ci95"][1], condition=row)
    # the CLI verb wrote the same table beside its JSON, after it
    written = run / "xwinograd" / "xwinograd.tidy.csv"
    assert written.read_text(encoding="utf-8") == tidy_table(run / label).csv_text()
    assert written.stat().st_mtime >= (run / label).stat().st_mtime


def test_masking_and_finetune_rows(run):
    doc, rows = document(run, "mask/mask_eval.json"), rows_of(run, "mask/mask_eval.json")
    for cell in doc["cells"]:
        where = dict(condition=cell["condition"], dataset=cell["benchmark"], subset=cell["group"])
        expect(rows, "accuracy", cell["accuracy"], lo=cell["ci95"][0], hi=cell["ci95"][1], n=cell["n"], **where)
        for template, value in cell["per_template"].items():
            expect(rows, f"per_template.{template}", value, n=cell["n"], **where)
        for rule, numbers in cell.get("rules", {}).items():
            expect(rows, f"rules.{rule}.accuracy", numbers["accuracy"], **where)
        if "change" in cell:
            expect(rows, "change", cell["change"], lo=cell["change_ci95"][0], hi=cell["change_ci95"][1], **where)
        if "margin_over_random" in cell:
            expect(rows, "margin_over_random", cell["margin_over_random"], lo=cell["margin_ci95"][0],
                   hi=cell["margin_ci95"][1], **where)
    random_rows = [r for r in rows if r["condition"].startswith("random")]
    assert random_rows and all(r["seed"] == 0 and r["group"] == r["condition"].split(":", 1)[1] for r in random_rows)
    doc, rows = document(run, "ft/finetune.json"), rows_of(run, "ft/finetune.json")
    for name, entry in doc["evaluation"].items():
        for phase in ("before", "after"):
            cell = entry[phase]
            expect(rows, "accuracy", cell["accuracy"], lo=cell["ci95"][0], hi=cell["ci95"][1], n=cell["n"],
                   condition=phase, dataset=name, group=doc["group"])
        expect(rows, "change", entry["change"], condition="after", dataset=name)


def test_stats_attribution_and_neuron_rows(run):
    doc, rows = document(run, "stats_work/stats/stats.json"), rows_of(run, "stats_work/stats/stats.json")
    for lang, tokens in doc["tokens"].items():
        expect(rows, "tokens", tokens, language=lang)
    for label in ("lape.json", "culture.json"):
        doc, rows = document(run, label), rows_of(run, label)
        counted = {(r["group"], r["site"], r["layer"]): r["neurons"] for r in rows}
        wanted = {(group, site, int(layer)): len(indices) for group, sites in doc["groups"].items()
                  for site, layers in sites.items() for layer, indices in layers.items() if indices}
        wanted |= {(group, None, None): 0 for group, sites in doc["groups"].items()
                   if not any(any(layers.values()) for layers in sites.values())}
        assert counted == wanted
    assert counted[("Spain", None, None)] == 0   # culture.json's group without neurons is a row of 0
    doc, rows = document(run, "attr/attribution.json"), rows_of(run, "attr/attribution.json")
    for group in doc["groups"]:
        for key in ("counts", "prob_sums", "accuracy"):
            expect(rows, key, doc[key][group], n=doc["counts"][group], group=group)


def test_lmeval_rows():
    from neurospec.results.lmeval import LmevalCell, LmevalCondition, LmevalResult

    conditions = [LmevalCondition("none", "none", None, None, None, 0, "none.json"),
                  LmevalCondition("fra_Latn", "target", "fra_Latn", None, "fra_Latn", 8, "fra.json"),
                  LmevalCondition("random0:fra_Latn", "random", "fra_Latn", 0, "fra_Latn", 8, "r.json")]
    cells = [LmevalCell(name, "xnli_fr", "acc", "none", value, 0.05, 40, True)
             for name, value in (("none", 0.5), ("fra_Latn", 0.25), ("random0:fra_Latn", 0.475))]
    result = LmevalResult(["xnli_fr"], None, conditions, cells)
    rows = tidy_table("lmeval.json", result.to_json()).rows
    for cell in result.cells:
        where = dict(condition=cell.condition, dataset="xnli_fr", subset="none")
        expect(rows, "acc", cell.value, n=40, **where)
        expect(rows, "acc_stderr", cell.stderr, n=40, **where)
        if cell.change is not None:
            expect(rows, "acc_change", cell.change, **where)
    assert expect(rows, "acc", 0.475, condition="random0:fra_Latn")["seed"] == 0


# ------------------------------------------------------------------------------------------------
# how a cell's keys are read


def test_estimates_read_intervals_by_their_keys():
    found = estimates({"n": 5, "lss": 0.2, "ci95": [0.0, 0.6], "margin": 0.1, "margin_ci95": [-0.2, 0.4],
                       "difference": {"estimate": 1.5, "lo": 0.5, "hi": 2.5, "n": 9, "interval_method": "boot"},
                       "own": 3.0, "own_ci": [2.0, 4.0], "d0": [1.0, 2.0], "note": "text", "flag": True,
                       "mean_di": None}, primary="lss", methods={"lss": "wilson"})
    assert found == [Estimate("lss", 0.2, 5, 0.0, 0.6, "wilson"), Estimate("margin", 0.1, 5, -0.2, 0.4, "ci95"),
                     Estimate("difference", 1.5, 9, 0.5, 2.5, "boot"), Estimate("own", 3.0, 5, 2.0, 4.0, "ci"),
                     Estimate("mean_di", None, 5)]
    split = estimates({"accuracy": 0.5, "accuracy_ci95_lo": 0.1, "accuracy_ci95_hi": 0.9})
    assert split == [Estimate("accuracy", 0.5, None, 0.1, 0.9, None)]
    orphan = estimates({"change_ci": [1.0, 2.0]})   # an interval without its estimate keeps its numbers
    assert orphan == [Estimate("change", None, None, 1.0, 2.0, "ci")]


# ------------------------------------------------------------------------------------------------
# files and load()


def documented_columns() -> list[str]:
    """The column names of the tidy-table section of docs/artifacts.md, in table order."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Tidy tables", 1)[1].split("\n## ", 1)[0]
    table = section.split("| column | holds |", 1)[1].split("\n\n", 1)[0]
    return [name for line in table.splitlines()[2:] for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])]


def test_load_gives_a_frame_per_kind_with_the_documented_columns(run):
    tables = load(run)
    assert set(tables) == set(RESULTS.values())
    columns = documented_columns()
    assert columns[:3] == ["kind", "file", "condition"] and "estimate" in columns
    for kind, table in tables.items():
        if kind != "neurons":
            assert list(table.columns) == columns, kind
            assert set(table["kind"]) == {kind}
            assert str(table["estimate"].dtype) == "float64" and str(table["n"].dtype) == "Int64"
    assert list(tables["neurons"].columns) == ["kind", "file", "group", "site", "layer", "neurons"]
    lss = tables["lss"]
    assert set(lss["file"]) == {"lss/lss.json"} | {f"sweep/{p['folder']}/lss.json"
                                                   for p in document(run, "sweep/sweep.json")["curve"]}
    one = lss[(lss.file == "lss/lss.json") & (lss.metric == "lss") & (lss.source == "eng_Latn")
              & (lss.language == "fra_Latn") & (lss.condition == "fra_Latn")]
    assert one["estimate"].tolist() == [document(run, "lss/lss.json")["lss"]["eng_Latn"]["fra_Latn"]]
    assert load(run / "lss").keys() == {"lss"} and len(load(run / "lss")["lss"]) == (lss.file == "lss/lss.json").sum()
    assert load(run / "ppl" / "ppl.json")["ppl"]["file"].unique().tolist() == ["ppl.json"]


def test_load_reads_a_fresh_csv_and_rebuilds_a_missing_or_stale_one(run, tmp_path):
    import pandas

    folder = tmp_path / "ppl"
    shutil.copytree(run / "ppl", folder)
    built = load(folder)["ppl"]                     # no CSV: from the JSON (an older run)
    assert not tidy_path(folder / "ppl.json").exists()
    assert write_tidy_csv(folder / "ppl.json") == [folder / "ppl.tidy.csv"]
    pandas.testing.assert_frame_equal(load(folder)["ppl"], built)   # the same frame from the CSV
    csv_file = folder / "ppl.tidy.csv"
    lines = csv_file.read_text(encoding="utf-8").splitlines()
    first = lines[1].split(",")
    first[COLUMN_ESTIMATE] = "12345.5"
    csv_file.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n", encoding="utf-8")
    assert load(folder)["ppl"]["estimate"].iloc[0] == 12345.5     # a CSV as new as the JSON is what load reads
    old = (folder / "ppl.json").stat().st_mtime
    os.utime(csv_file, (old - 10, old - 10))
    pandas.testing.assert_frame_equal(load(folder)["ppl"], built)   # an older CSV is rebuilt from the JSON


COLUMN_ESTIMATE = 12


def test_without_pandas_load_says_which_extra(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(NeurospecError) as err:
        load(run)
    message = str(err.value)
    assert "\n" not in message and "'pandas'" in message and "neurospec[tables]" in message
    assert tidy_table(run / "ppl" / "ppl.json").rows   # the rows need no pandas


def test_load_refuses_a_missing_path_and_a_file_that_is_no_artifact(run, tmp_path):
    with pytest.raises(NeurospecError, match="does not exist"):
        load(tmp_path / "nothing")
    with pytest.raises(NeurospecError, match="no artifact with a table") as err:
        load(run / "notes.json")
    assert "\n" not in str(err.value)
    assert load(tmp_path) == {}


@dataclasses.dataclass
class StampOptions(VerbOptions):
    out: Path


def stamp(json_file: Path, verb: str, main: str | None) -> None:
    """What a verb does last: ``stamp_result`` on its JSON (given as ``folder`` + ``main``, or as the file)."""
    options = StampOptions(json_file.parent)
    if main:
        stamp_result(json_file.parent, verb, options, None, main)
    else:
        stamp_result(json_file, verb, options)


def test_the_verbs_hook_writes_the_csv_atomically_beside_the_json(run, tmp_path, monkeypatch):
    import neurospec.results.tidy as tidy

    calls: list[Path] = []
    real = tidy.atomic_write_text
    monkeypatch.setattr(tidy, "atomic_write_text", lambda path, text: calls.append(Path(path)) or real(path, text))
    for name, verb, main in (("ppl", "ppl", None), ("mask", "mask-eval", "mask_eval.json"), ("sweep", "sweep", None)):
        shutil.copytree(run / name, tmp_path / name)
        json_file = tmp_path / name / (main or f"{name}.json")
        stamp(json_file, verb, main)
        csv_file = json_file.with_name(json_file.stem + ".tidy.csv")
        assert csv_file in calls, name                       # through the atomic writer
        assert csv_file.read_text(encoding="utf-8") == tidy_table(json_file).csv_text()
        assert json.loads(json_file.read_text(encoding="utf-8"))["provenance"]["command"].startswith("neurospec")
    for point in document(run, "sweep/sweep.json")["curve"]:           # each setting of a sweep too
        assert tmp_path / "sweep" / point["folder"] / "lss.tidy.csv" in calls
    assert not list(tmp_path.rglob(".*.tmp"))
    stats = shutil.copytree(run / "stats_work" / "stats", tmp_path / "stats")   # a statistics folder holds
    listed = sorted(p.name for p in stats.iterdir())                            # only what its manifest lists
    stamp(stats / "stats.json", "collect", "stats.json")
    assert sorted(p.name for p in stats.iterdir()) == listed
    tokens = load(stats)["stats"].query("metric == 'tokens'")       # read from its JSON
    assert tokens["language"].tolist() == document(run, "stats_work/stats/stats.json")["languages"]
