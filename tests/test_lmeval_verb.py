"""`neurospec lmeval`: an lm-eval task under each condition, on a tiny Llama and a local task over XCOPA (Italian).

The task YAML reads the shared data's XCOPA file; the verb runs it unmodified, under the French and German neurons,
their size-matched random controls and the other-language controls. Every accuracy (and every per-choice
log-likelihood lm-eval logs) must equal neurospec's own scorer under the same edit, built here from the neuron file
and the recipe; the typed result must hold lm-eval's values, its stderr and the changes, and read back byte for byte;
the report must show one table per task with those numbers; the pipeline must know the step.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from pathlib import Path

import pytest
from interventions_common import neuron_set, saved_study
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.core.edits import Edit
from neurospec.core.models import load_model
from neurospec.evaluate.scoring import score_continuations
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.results import LmevalResult, read
from neurospec.util.errors import NeurospecError
from neurospec.util.io import json_text

pytest.importorskip("lm_eval")

XCOPA = Path(os.environ["NEUROSPEC_DATA"]) / "xcopa" / "it" / "val.it.jsonl"
pytestmark = pytest.mark.skipif(not XCOPA.is_file(), reason=f"XCOPA not staged at {XCOPA} (set NEUROSPEC_DATA)")
LIMIT = 20
FACTOR = -20.0  # --recipe scale*-20: on this tiny model it changes the French and German rows' accuracy
TASK_YAML = """task: tiny_xcopa_it
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{premise}}}}"
doc_to_choice: "{{{{[choice1, choice2]}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
CONDITIONS = ["none", "fra_Latn", "deu_Latn", "random0:fra_Latn", "random0:deu_Latn", "other:deu_Latn",
              "other:eng_Latn"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A saved tiny Llama, 40 neurons per language (eng, fra, deu), the task folder and the verb's output."""
    root = saved_study(tmp_path_factory.mktemp("lmeval_verb"), lambda m: {"neurons.json": neuron_set(m, per_group=40)})
    (root / "tasks").mkdir()
    (root / "tasks" / "tiny_xcopa_it.yaml").write_text(TASK_YAML.format(data=XCOPA), encoding="utf-8")
    with contextlib.chdir(root):  # lm-eval runs `git describe` in the working directory: not in the repository
        result = CliRunner().invoke(app, [str(a) for a in (
            "lmeval", "--model", root / "model", "--neurons", root / "neurons.json", "--groups", "fr,de",
            "--recipe", f"scale*{FACTOR:g}", "--tasks", "tiny_xcopa_it", "--include-path", root / "tasks",
            "--limit", LIMIT, "--random-seeds", "0", "--controls", "random,other", "--log-samples",
            "--batch-size", 4, "--device", "cpu", "--quiet", "--out", root / "out")])
    assert result.exit_code == 0, result.output
    return root


def items() -> list[dict]:
    lines = XCOPA.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:LIMIT]]


def native_scores(study: Path, edit) -> list[float]:
    """neurospec's log-likelihood of every choice (" " + choice after the premise), in item order."""
    lm = load_model(study / "model", device="cpu")
    contexts = [item["premise"] for item in items() for _ in range(2)]
    continuations = [" " + item[key] for item in items() for key in ("choice1", "choice2")]
    intervention = None if edit is None else edit(lm.model)
    return [s.logprob for s in score_continuations(lm.model, lm.tokenizer, contexts, continuations,
                                                   intervention=intervention)]


def accuracy(scores: list[float]) -> float:
    right = [(scores[2 * i + 1] > scores[2 * i]) == bool(item["label"]) for i, item in enumerate(items())]
    return sum(right) / len(right)


def group_edit(study: Path, group: str):
    """The recipe's edit on ``group``'s neurons, built here from the file (not by the verb's code path)."""
    return lambda model: Edit.scale(NeuronSet.load(study / "neurons.json"), FACTOR, groups=[group])


def logged_scores(study: Path, output: str) -> list[float]:
    """Every choice's log-likelihood lm-eval logged in a run's results file, in item order."""
    results = json.loads((study / "out" / output).read_text(encoding="utf-8"))
    samples = sorted(results["samples"]["tiny_xcopa_it"], key=lambda s: s["doc_id"])
    return [float(resp[0]) for sample in samples for resp in sample["filtered_resps"]]


def test_conditions_and_lm_evals_own_files(study):
    result = read(study / "out" / "lmeval.json")
    assert isinstance(result, LmevalResult)
    assert result.condition_names == CONDITIONS
    kinds = {c.name: (c.kind, c.group, c.seed, c.target) for c in result.conditions}
    assert kinds["random0:fra_Latn"] == ("random", "fra_Latn", 0, "fra_Latn")
    assert kinds["other:deu_Latn"] == ("other", "deu_Latn", None, "fra_Latn")   # the control of French
    assert kinds["other:eng_Latn"] == ("other", "eng_Latn", None, "deu_Latn")   # the control of German
    sizes = {c.name: c.neurons for c in result.conditions}
    assert sizes["none"] == 0 and sizes["fra_Latn"] == sizes["random0:fra_Latn"] == 40
    outputs = {c.name: c.output for c in result.conditions}
    assert outputs["other:deu_Latn"] == outputs["deu_Latn"]   # the same edit runs once
    assert len(set(outputs.values())) == len(CONDITIONS) - 1
    for name, output in outputs.items():
        written = json.loads((study / "out" / output).read_text(encoding="utf-8"))
        recorded = written["config"]["neurospec_intervention"]
        assert (recorded is None) == (name == "none"), name
        assert written["results"]["tiny_xcopa_it"]["acc,none"] == result.cell(name, "tiny_xcopa_it", "acc").value


def test_accuracy_equals_native_scoring_unmodified_and_under_the_target(study):
    result = read(study / "out" / "lmeval.json")
    outputs = {c.name: c.output for c in result.conditions}
    for name, edit in (("none", None), ("fra_Latn", group_edit(study, "fra_Latn")),
                       ("deu_Latn", group_edit(study, "deu_Latn"))):
        mine = native_scores(study, edit)
        theirs = logged_scores(study, outputs[name])
        assert theirs == pytest.approx(mine, abs=1e-4), name
        cell = result.cell(name, "tiny_xcopa_it", "acc")
        p = accuracy(mine)
        assert cell.value == pytest.approx(p) and cell.n == LIMIT
        assert cell.stderr == pytest.approx(math.sqrt(p * (1 - p) / (LIMIT - 1)))  # the sample stderr of a mean
    none, french = (result.cell(n, "tiny_xcopa_it", "acc") for n in ("none", "fra_Latn"))
    assert french.change == pytest.approx(french.value - none.value) and french.change != 0
    assert none.change is None
    assert logged_scores(study, outputs["random0:fra_Latn"]) != logged_scores(study, outputs["none"])


def test_result_file_round_trips_and_csv_is_one_row_per_cell(study):
    path = study / "out" / "lmeval.json"
    result = read(path)
    assert json_text(result.to_json()) == path.read_text(encoding="utf-8")
    assert result.provenance["command"].startswith("neurospec lmeval")
    assert result.settings["controls"] == ["random", "other"] and result.settings["limit"] == LIMIT
    with (study / "out" / "lmeval.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["condition"], r["task"], r["metric"]) for r in rows] == [c.key[:3] for c in result.cells]
    assert float(rows[1]["change"]) == pytest.approx(result.cells[1].change, rel=1e-5)
    edited = json.loads(path.read_text(encoding="utf-8"))
    edited["cells"][1]["change"] = 0.5
    with pytest.raises(NeurospecError, match=r"cells\.1\.change .*computed from"):
        LmevalResult.from_json(edited, str(path))


def test_report_has_a_table_per_task(study, tmp_path):
    from test_report import page_tables, table_rows

    from neurospec.report import write_report

    html = write_report(study / "out", out=tmp_path / "report").read_text(encoding="utf-8")
    tables = page_tables(html)
    assert list(tables) == [("lmeval.json", "task-0")]
    result = read(study / "out" / "lmeval.json")
    rows = table_rows(tables[("lmeval.json", "task-0")])
    assert [row[0] for row in rows] == CONDITIONS
    for row, cell in zip(rows, result.cells):
        assert float(row[1]) == cell.n
        assert float(row[2]) == pytest.approx(cell.value) and float(row[3]) == pytest.approx(cell.stderr)
        assert (row[4] is None) if cell.change is None else float(row[4]) == pytest.approx(cell.change)


def test_pipeline_step_and_bad_input(study, tmp_path):
    from neurospec.pipeline.config import datasets_in_config
    from neurospec.pipeline.verbs import step_verb
    from neurospec.verbs.lmeval import LmevalOptions, lmeval

    verb = step_verb("lmeval")
    options = verb.check({"model": "m", "tasks": ["xcopa_it", "xnli_fr"], "groups": "fr", "limit": "5"},
                         out=Path("runs/x/lmeval"))
    assert options.tasks == "xcopa_it,xnli_fr" and options.limit == 5 and options.recipe == "zero"
    assert "neurospec lmeval" in verb.shell({"tasks": "xcopa"}, out=Path("o")) and "--tasks xcopa" in \
        verb.shell({"tasks": "xcopa"}, out=Path("o"))
    config = tmp_path / "study.yaml"
    config.write_text("model: m\nsteps:\n  lmeval:\n    tasks: xcopa,belebele\n  ppl:\n    corpus_dir: ntrex128\n",
                      encoding="utf-8")
    assert datasets_in_config(config) == ["ntrex128"]   # lm-eval's tasks are not neurospec's data sets

    base = dict(model=str(study / "model"), out=tmp_path / "bad", include_path=study / "tasks", device="cpu")
    with pytest.raises(NeurospecError, match=r"--tasks: lm-eval knows no task 'tiny_xcopa_itt'.*tiny_xcopa_it"):
        lmeval(LmevalOptions(tasks="tiny_xcopa_itt", **base))
    with pytest.raises(NeurospecError, match=r"--controls 'random,others': unknown control\(s\) others"):
        lmeval(LmevalOptions(tasks="tiny_xcopa_it", controls="random,others", **base))
    with pytest.raises(NeurospecError, match=r"--groups names groups of --neurons"):
        lmeval(LmevalOptions(tasks="tiny_xcopa_it", groups="fr", **base))
