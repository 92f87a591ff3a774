"""The one benchmark registry (neurospec.data.benchmarks): the old registries TASKS and MC_SETS are views of
it, tasks and multiple-choice sets load through its entries, and the data layer imports nothing above it."""

from __future__ import annotations

import ast
import csv
import dataclasses
import json
from pathlib import Path

import pytest

from neurospec.data.benchmarks import BENCHMARKS, KINDS, Benchmark, benchmark, benchmark_names
from neurospec.data.items import MCItem
from neurospec.data.locate import mirror_root
from neurospec.data.mc_sets import MC_SETS, MCSetInfo, load_mc_set, mc_set_names
from neurospec.data.registry import DATASETS, dataset
from neurospec.evaluate.tasks import TASKS, get_task
from neurospec.evaluate.tasks.xcopa import load_xcopa
from neurospec.util.errors import NeurospecError

DATA = mirror_root()
needs_data = pytest.mark.skipif(not (DATA / "xcopa").is_dir() or not (DATA / "glue_qnli").is_dir(),
                                reason=f"shared data not found at {DATA}")

OLD_TASKS = ["xcopa", "xwinograd", "belebele", "include", "flores", "ntrex"]
OLD_MC_SETS = ["blend", "blend-control", "countryrc", "culturalbench", "normad", "worldvaluesbench",
               "qnli", "mrpc", "commonsenseqa"]
DATA_PACKAGE = Path(__file__).resolve().parents[1] / "neurospec" / "data"
HIGHER_LAYERS = ("neurospec.evaluate", "neurospec.select", "neurospec.measure", "neurospec.cli", "neurospec.pipeline")


# ---- the old registries are views of the new one


def test_every_old_name_resolves_to_its_entry():
    assert list(TASKS) == OLD_TASKS and list(MC_SETS) == OLD_MC_SETS
    for name in OLD_TASKS:
        assert benchmark(name) is TASKS[name].benchmark is BENCHMARKS[name]
        assert benchmark(name).kind == "downstream" and get_task(name) is TASKS[name]
    for name in OLD_MC_SETS:
        assert benchmark(name) is MC_SETS[name] is BENCHMARKS[name]
        assert benchmark(name).kind in ("cultural", "nlu")


def test_the_old_views_equal_the_registry():
    downstream = [name for name, entry in BENCHMARKS.items() if entry.kind == "downstream"]
    multiple_choice = {name: entry for name, entry in BENCHMARKS.items() if entry.kind in ("cultural", "nlu")}
    assert list(TASKS) == downstream == benchmark_names("downstream")
    assert dict(MC_SETS) == multiple_choice and list(MC_SETS) == list(multiple_choice)
    assert set(TASKS) | set(MC_SETS) == set(BENCHMARKS) and not set(TASKS) & set(MC_SETS)
    assert mc_set_names("nlu") == benchmark_names("nlu") == ["qnli", "mrpc", "commonsenseqa"]
    assert MCSetInfo is Benchmark


def test_tasks_take_their_data_side_from_the_entries():
    """Splits and the default data folder are the entry's; the folders are what the tasks used before."""
    before = {"xcopa": ("xcopa", ("test", "val")), "xwinograd": ("xwinograd", ("test",)),
              "belebele": ("belebele_en_de", ("test",)), "include": ("include", ("test",)),
              "flores": ("sib200_flores", ("test", "dev", "train", "all", "devtest")), "ntrex": ("ntrex128", ("test",))}
    for name, task in TASKS.items():
        entry = BENCHMARKS[name]
        assert (task.data_folder, task.splits) == before[name]
        assert task.data_folder == DATASETS[entry.dataset].folder and task.splits == entry.splits
    assert TASKS["xcopa"].split_name("dev") == BENCHMARKS["xcopa"].split_name("dev") == "val"


def test_every_entry_is_complete():
    for name, entry in BENCHMARKS.items():
        assert entry.name == name and entry.kind in KINDS and entry.description and entry.source and entry.coverage
        assert callable(entry.load)
        assert entry.dataset is None or entry.dataset in DATASETS, f"{name}: {entry.dataset} is not registered"
        assert entry.needs_path == (entry.dataset is None or dataset(entry.dataset).source == "manual"), name
        assert (entry.list_languages is not None) == (entry.kind == "downstream") == (entry.grouped_by == "language")


# ---- unknown names


def test_an_unknown_name_is_one_line_listing_the_known_ones():
    with pytest.raises(NeurospecError) as caught:
        benchmark("xnli")
    message = str(caught.value)
    assert "\n" not in message and "'xnli'" in message
    assert message.endswith(", ".join(BENCHMARKS))
    assert benchmark(" Blend_Control ") is BENCHMARKS["blend-control"]
    with pytest.raises(NeurospecError, match="unknown benchmark kind.*downstream, cultural, nlu"):
        benchmark_names("culture")
    with pytest.raises(NeurospecError, match="grouped by country, not by language"):
        benchmark("blend").languages()
    with pytest.raises(NeurospecError, match="xcopa has no split 'train': use one of test, val, dev, validation"):
        benchmark("xcopa").split_name("train")
    # the old entry points keep their own messages
    with pytest.raises(NeurospecError, match="unknown task 'copa'.*xcopa, xwinograd, belebele, include, flores, ntrex"):
        get_task("copa")
    with pytest.raises(NeurospecError, match="Unknown multiple-choice set 'xnli'.*blend, blend-control, countryrc"):
        load_mc_set("xnli")


# ---- loading goes through the entries


def test_tasks_and_load_mc_set_load_through_the_registry(monkeypatch):
    """Swap an entry's loader: the task and load_mc_set return what the new loader gives."""
    calls = []

    def fake_task_loader(**kwargs):
        calls.append(kwargs)
        return [MCItem("q", ("a", "b"), 0, group=kwargs["language"], id="fake-0")]

    def fake_set_loader(**kwargs):
        calls.append(kwargs)
        return [MCItem(f"q{k}", ("yes", "no"), 0, group="qnli", id=f"fake-{k}") for k in range(5)]

    monkeypatch.setitem(BENCHMARKS, "xwinograd", dataclasses.replace(BENCHMARKS["xwinograd"], load=fake_task_loader))
    monkeypatch.setitem(BENCHMARKS, "qnli", dataclasses.replace(BENCHMARKS["qnli"], load=fake_set_loader))
    assert [i.id for i in TASKS["xwinograd"].load("en")] == ["fake-0"]
    assert [i.id for i in load_mc_set("qnli", limit=2)] == ["fake-0", "fake-1"]
    assert calls == [{"language": "en", "path": None, "split": "test"},
                     {"path": None, "countries": None, "split": None, "seed": 0}]


@needs_data
def test_xcopa_entry_task_and_loader_read_the_same_items():
    """Against the raw file: every row of val.et.jsonl, in order, whichever way it is loaded."""
    path = DATA / "xcopa" / "et" / "val.et.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    expected = [(r["premise"], (r["choice1"], r["choice2"]), int(r["label"]), r["question"]) for r in rows]
    for items in (BENCHMARKS["xcopa"].load(language="est_Latn", split="val"), TASKS["xcopa"].load("et", split="dev"),
                  load_xcopa("Estonian", "val")):
        assert [(i.question, i.options, i.gold, i.metadata["question"]) for i in items] == expected
        assert {i.group for i in items} == {"est_Latn"}
    assert "est_Latn" in BENCHMARKS["xcopa"].languages() == TASKS["xcopa"].languages()


@needs_data
def test_qnli_entry_and_load_mc_set_read_the_same_items():
    """Against the raw GLUE file: one item per row of dev.tsv, gold "yes" for entailment."""
    with open(DATA / "glue_qnli" / "dev.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    items = BENCHMARKS["qnli"].load()
    assert len(items) == len(rows) == len(load_mc_set("qnli"))
    assert [i.options[i.gold] for i in items[:50]] == [
        "yes" if r["label"] == "entailment" else "no" for r in rows[:50]]
    assert load_mc_set("qnli", limit=7) == items[:7]


# ---- the data layer imports nothing above it


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_data_layer_imports_no_higher_layer():
    climbing = {path.name: sorted(m for m in imported_modules(path) if m.startswith(HIGHER_LAYERS))
                for path in sorted(DATA_PACKAGE.glob("*.py"))}
    assert {name: mods for name, mods in climbing.items() if mods} == {}
