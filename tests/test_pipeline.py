"""`neurospec run STUDY.yaml` on a tiny model: outputs equal the verbs run by hand; unchanged steps are
skipped; a killed run finishes without redoing finished steps and ends with the same artifacts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from interventions_common import TEXTS, tiny_llama, tok
from safetensors.torch import load_file
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.pipeline import run_study

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]

STUDY = """\
title: tiny study
model: model
defaults:
  quiet: true
  batch_size: 4
steps:
  collect:
    corpus:
      eng_Latn: texts/eng_Latn.txt
      fra_Latn: texts/fra_Latn.txt
      deu_Latn: texts/deu_Latn.txt
    mode: sentence
    checkpoint_every: 400
  lape:
    verb: select lape
    stats: $collect
    top_rate: 0.2
  random:
    verb: select random
    like: $lape
    seed: 0
  ppl:
    neurons: $lape
    corpus:
      eng_Latn: texts/eng_Latn.txt
      fra_Latn: texts/fra_Latn.txt
    random_seeds: 0
  lss:
    neurons: $lape
    stats: $collect
    parallel: ntrex
    languages: [en, fr, de]
    limit: 6
    bootstrap: 50
"""
STEPS = ["collect", "lape", "random", "ppl", "lss"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A folder with a saved tiny Llama, corpora (repeated so collect checkpoints a few times) and study.yaml."""
    root = tmp_path_factory.mktemp("project")
    model = tiny_llama()
    model.save_pretrained(root / "model")
    tok().save_pretrained(root / "model")
    (root / "texts").mkdir()
    for lang, lines in TEXTS.items():
        (root / "texts" / f"{lang}.txt").write_text("\n".join(lines * 40) + "\n", encoding="utf-8")
    (root / "study.yaml").write_text(STUDY, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def finished(project, tmp_path_factory) -> Path:
    """An uninterrupted run of the study."""
    lines: list[str] = []
    run_dir = run_study(project / "study.yaml", tmp_path_factory.mktemp("runs") / "whole", echo=lines.append)
    assert lines[-1].startswith("study complete"), lines
    return run_dir


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "study.json").read_text())


def _artifacts(run_dir: Path, copied_from: Path | None = None) -> dict[str, object]:
    """Every JSON, CSV and safetensors file the steps wrote; JSON without its creation time and provenance, the
    run folder named RUN_DIR wherever a file records a path (also the folder it was ``copied_from``)."""
    found: dict[str, object] = {}
    for name in STEPS:
        for path in sorted([*(run_dir / name).rglob("*")] if (run_dir / name).is_dir() else [run_dir / f"{name}.json"]):
            key = str(path.relative_to(run_dir))
            if path.suffix == ".json":
                text = path.read_text().replace(str(run_dir), "RUN_DIR")
                document = json.loads(text.replace(str(copied_from), "RUN_DIR") if copied_from else text)
                document.get("meta", {}).pop("created", None)
                document.pop("provenance", None)   # who ran it when, with which options: not the result
                (document.get("meta", {}).get("source") or {}).pop("provenance", None)
                found[key] = document
            elif path.suffix == ".safetensors":
                found[key] = {k: v.tolist() for k, v in load_file(path).items()}
            elif path.suffix == ".csv":
                found[key] = path.read_text()
    return found


def test_each_step_writes_what_its_verb_writes_by_hand(project, finished, tmp_path):
    record = _record(finished)
    assert [s["name"] for s in record["steps"]] == STEPS
    assert all(s["status"] == "complete" for s in record["steps"])
    assert (finished / "config.yaml").read_text() == STUDY
    assert record["versions"]["neurospec"] and record["versions"]["torch"]
    assert all(s["versions"]["transformers"] for s in record["steps"])
    # The recorded command of `ppl`, run by hand into another folder, gives the same matrix.
    command = next(s["command"] for s in record["steps"] if s["name"] == "ppl").split()
    assert command[:2] == ["neurospec", "ppl"]
    out = command.index("--out")
    command[out + 1] = str(tmp_path / "ppl")
    result = runner.invoke(app, command[1:])
    assert result.exit_code == 0, result.output
    by_hand = json.loads((tmp_path / "ppl" / "ppl.json").read_text())
    assert by_hand["cells"] == json.loads((finished / "ppl" / "ppl.json").read_text())["cells"]
    lape = json.loads((finished / "lape.json").read_text())
    assert lape["format"] == "neurospec.neuronset" and set(lape["groups"]) == set(TEXTS)


def test_the_study_loads_its_model_once_and_a_step_after_others_gives_what_it_gives_alone(project, finished,
                                                                                       tmp_path, monkeypatch):
    """collect, ppl and lss share one loaded model; lss run alone (a fresh model, its recorded command) gives
    the matrix it gave after collect, lape, random and ppl had used that model."""
    import neurospec.core.models as models

    loads: list[str] = []
    real = models.load_model

    def counting(name, *args, **kwargs):
        loads.append(str(name))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(models, "load_model", counting)
    run_dir = run_study(project / "study.yaml", tmp_path / "again", echo=lambda line: None)
    assert len(loads) == 1, loads
    assert _artifacts(run_dir) == _artifacts(finished)
    command = next(s["command"] for s in _record(finished)["steps"] if s["name"] == "lss").split()
    command[command.index("--out") + 1] = str(tmp_path / "lss")
    result = runner.invoke(app, command[1:])
    assert result.exit_code == 0, result.output
    alone = json.loads((tmp_path / "lss" / "lss.json").read_text())
    after_others = json.loads((finished / "lss" / "lss.json").read_text())
    assert alone["cells"] == after_others["cells"]


def _copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_a_second_run_skips_every_step_and_touches_no_file(finished, project, tmp_path):
    run_dir = _copy_run(finished, tmp_path / "again")
    kept = {"study.json", ".lock"}  # the run's record and its lock (which names the pid holding it)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name not in kept}
    lines: list[str] = []
    run_study(project / "study.yaml", run_dir, echo=lines.append)
    assert [line.split(": ", 1)[1] for line in lines[:-1]] == ["up to date, skipped"] * len(STEPS)
    after = {p: p.stat().st_mtime_ns for p in before}
    assert [p for p in before if before[p] != after[p]] == []


def _actions(lines: list[str]) -> dict[str, str]:
    """{step: 'skipped' | 'running' | 'resuming'} from the run's progress lines."""
    actions = {}
    for line in lines:
        if line.startswith("["):
            name, rest = line.split("] ", 1)[1].split(": ", 1)
            actions.setdefault(name, rest.split(" ")[0].rstrip(","))
    return {name: {"up": "skipped"}.get(action, action) for name, action in actions.items()}


def test_a_changed_option_or_input_runs_that_step_and_the_steps_reading_it(finished, project, tmp_path):
    run_dir = _copy_run(finished, tmp_path / "changed")
    changed = tmp_path / "changed-project"
    _copy_run(project, changed)
    (changed / "study.yaml").write_text(STUDY.replace("top_rate: 0.2", "top_rate: 0.3"), encoding="utf-8")
    lines: list[str] = []
    run_study(changed / "study.yaml", run_dir, echo=lines.append)
    assert _actions(lines) == {"collect": "skipped", "lape": "running", "random": "running", "ppl": "running",
                               "lss": "running"}
    assert "inputs changed" in next(line for line in lines if "] lape:" in line)
    # A corpus file's content (not its name) changes: collect and everything after it run again, but
    # ppl reads the file too; the random set only depends on lape.
    with open(changed / "texts" / "deu_Latn.txt", "a", encoding="utf-8") as handle:
        handle.write("Ein neuer Satz.\n")
    lines = []
    run_study(changed / "study.yaml", run_dir, echo=lines.append)
    assert set(_actions(lines).values()) == {"running"}
    lines = []
    run_study(changed / "study.yaml", run_dir, force=["random"], echo=lines.append)
    assert _actions(lines) == {"collect": "skipped", "lape": "skipped", "random": "running", "ppl": "skipped",
                               "lss": "skipped"}


def _kill_when_running(process: subprocess.Popen, run_dir: Path, step: str, ready=lambda: True) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the run ended before step {step} was seen running:\n{process.stdout.read()}")
        try:
            status = {s["name"]: s["status"] for s in _record(run_dir)["steps"]}
        except (FileNotFoundError, ValueError, KeyError):
            status = {}
        if status.get(step) == "running" and ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.005)
    process.kill()
    raise AssertionError(f"step {step} was never seen running")


@pytest.mark.parametrize("step", ["collect", "ppl"])
def test_a_killed_run_finishes_without_redoing_steps_and_equals_an_uninterrupted_one(finished, project, tmp_path,
                                                                                     step):
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "neurospec.cli.main", "run", str(project / "study.yaml"), "--run-dir", str(run_dir)]
    process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    # collect is killed once it has checkpointed at least once, so there is something to resume.
    ready = (lambda: (run_dir / "collect" / "stats.json").exists()) if step == "collect" else (lambda: True)
    _kill_when_running(process, run_dir, step, ready)
    killed = {s["name"]: s["status"] for s in _record(run_dir)["steps"]}
    assert killed[step] == "running"
    assert all(killed[name] == "complete" for name in STEPS[:STEPS.index(step)])
    lines: list[str] = []
    run_study(project / "study.yaml", run_dir, echo=lines.append)
    actions = _actions(lines)
    assert all(actions[name] == "skipped" for name in STEPS[:STEPS.index(step)])
    assert actions[step] == ("resuming" if step == "collect" else "running")
    assert "(running before)" in next(line for line in lines if f"] {step}:" in line)
    assert _artifacts(run_dir) == _artifacts(finished)


def test_ctrl_c_marks_the_step_interrupted_and_the_next_run_goes_on(finished, project, tmp_path, monkeypatch):
    from neurospec.pipeline.verbs import Verb

    run_dir = _copy_run(finished, tmp_path / "interrupted")
    real_run = Verb.run

    def interrupted(self, options, **shared):
        if self.name == "ppl":
            raise KeyboardInterrupt
        return real_run(self, options, **shared)

    monkeypatch.setattr(Verb, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(project / "study.yaml", run_dir, force=["ppl"], echo=lambda line: None)
    assert {s["name"]: s["status"] for s in _record(run_dir)["steps"]}["ppl"] == "interrupted"
    monkeypatch.setattr(Verb, "run", real_run)
    lines: list[str] = []
    run_study(project / "study.yaml", run_dir, echo=lines.append)
    assert _actions(lines)["ppl"] == "running" and "(interrupted before)" in lines[3]
    assert _actions(lines)["lss"] == "skipped"   # it reads lape, not ppl
    assert _artifacts(run_dir, copied_from=finished) == _artifacts(finished)


def test_a_failing_step_stops_the_study_keeps_earlier_steps_and_the_report_says_so(project, tmp_path):
    bad = tmp_path / "bad"
    _copy_run(project, bad)
    (bad / "study.yaml").write_text(STUDY.replace("random_seeds: 0", "random_seeds: 0\n    recipe: set:p_nothing"),
                                    encoding="utf-8")
    for _attempt in range(2):  # the second run skips what finished and fails again
        result = runner.invoke(app, ["run", str(bad / "study.yaml"), "--run-dir", str(tmp_path / "run")])
        assert result.exit_code == 2
        assert "step 'ppl' (ppl) failed" in result.output
    record = _record(tmp_path / "run")
    assert record["status"] == "failed"
    assert {s["name"]: (s["status"], s["this_run"]) for s in record["steps"]} == {
        "collect": ("complete", "skipped"), "lape": ("complete", "skipped"), "random": ("complete", "skipped"),
        "ppl": ("failed", "ran"), "lss": ("pending", None)}
    result = runner.invoke(app, ["report", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "run" / "report" / "report.html").read_text(encoding="utf-8")
    top = html.split("<main")[0]
    assert "This study FAILED at step ppl." in top.split("<dl")[0]  # above everything else
    steps = re.findall(r'<tr><th scope="row">([^<]+)</th><td>[^<]*</td><td><code>[^<]*</code></td>'
                       r'<td class="status [^"]+">([^<]+)</td>', top)
    assert steps == [("collect", "skipped (unchanged)"), ("lape", "skipped (unchanged)"),
                     ("random", "skipped (unchanged)"), ("ppl", "failed"), ("lss", "not run")]


def test_a_finished_study_is_reported_done(finished):
    record = _record(finished)
    assert record["status"] == "complete" and {s["this_run"] for s in record["steps"]} == {"ran"}
    result = runner.invoke(app, ["report", str(finished), "--out", str(finished.parent / "report")])
    assert result.exit_code == 0, result.output
    html = (finished.parent / "report" / "report.html").read_text(encoding="utf-8")
    assert 'class="outcome"' not in html and html.count('<td class="status done">done</td>') == len(STEPS)


def test_dry_run_prints_the_plan_and_runs_nothing(project, finished, tmp_path):
    result = runner.invoke(app, ["run", str(project / "study.yaml"), "--run-dir", str(tmp_path / "new"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "new").exists()
    assert result.output.count(": run (new): neurospec ") == len(STEPS)
    result = runner.invoke(app, ["run", str(project / "study.yaml"), "--run-dir", str(finished), "--dry-run",
                                 "--force", "lape"])
    assert result.exit_code == 0, result.output
    plan = {line.split("] ")[1].split(":")[0]: line.split(": ")[1] for line in result.output.splitlines()
            if line.startswith("[")}
    assert plan == {"collect": "skip (up to date)", "lape": "run (forced)", "random": "run (forced)",
                    "ppl": "run (forced)", "lss": "run (forced)"}
