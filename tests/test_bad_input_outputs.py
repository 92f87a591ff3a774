"""Outputs (issue 21, items 1-3), as a user meets them: neurospec deletes or replaces only what it wrote itself
(never the current folder, a folder above it, an input or a folder of the user's), and one writer at a time holds
an output: a second gets one `error:` line "... is in use by pid N (...)", exit 2, and changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bad_input_common import ROOT, refuses, run_cli, tree_state
from interventions_common import neuron_set, saved_study

from neurospec.util.locks import exclusive, exclusive_file


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A saved tiny Llama (model/), lape.json, sentence statistics (stats/) and eng_Latn.txt, fra_Latn.txt, ..."""
    return saved_study(tmp_path_factory.mktemp("outputs"), lambda model: {"lape.json": neuron_set(model)})


def user_folder(path: Path, *, corpus: Path | None = None) -> Path:
    """A folder of the user's: notes, a sub-folder with a table and, with ``corpus``, a copy of it as eng.txt."""
    (path / "data").mkdir(parents=True)
    (path / "notes.txt").write_text("my notes\n", encoding="utf-8")
    (path / "data" / "table.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    if corpus is not None:
        shutil.copy(corpus, path / "eng.txt")
    return path


def collect_args(model: Path | str, corpus: Path | str, out: Path | str, *more: object) -> list[object]:
    return ["collect", "--model", model, "--corpus", f"en={corpus}", "--max-tokens", 200, "--seq-len", 16,
            "--batch-size", 2, "--quiet", "--out", out, *more]


def lock_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.name.endswith(".lock"))


# --------------------------------------------------------------------------------------------
# Item 1: collect --overwrite deletes only a statistics folder


def _cwd(study, tmp):       # cd dir-with-user-files && neurospec collect ... --corpus en=eng.txt --overwrite --out .
    user = user_folder(tmp / "user", corpus=study / "eng_Latn.txt")
    return dict(args=collect_args(study / "model", "eng.txt", ".", "--overwrite"), cwd=user, watch=user)


def _above_cwd(study, tmp):
    user = user_folder(tmp / "user")
    return dict(args=collect_args(study / "model", study / "eng_Latn.txt", "..", "--overwrite"), cwd=user / "data",
                watch=user)


def _model_folder(study, tmp, *more):
    model = shutil.copytree(study / "model", tmp / "model")
    return dict(args=collect_args(model, study / "eng_Latn.txt", model, *more), cwd=tmp, watch=model)


def _corpus_inside(study, tmp):
    user = user_folder(tmp / "user", corpus=study / "eng_Latn.txt")
    return dict(args=collect_args(study / "model", user / "eng.txt", user, "--overwrite"), cwd=tmp, watch=user)


def _not_statistics(study, tmp, *more):
    user = user_folder(tmp / "user")
    return dict(args=collect_args(study / "model", study / "eng_Latn.txt", user, *more), cwd=tmp, watch=user)


COLLECT_REFUSALS = {
    "out-is-cwd": (_cwd, r"\. is the current folder; neurospec never deletes it"),
    "out-above-cwd": (_above_cwd, r"\.\. is a folder above the current folder"),
    "out-is-the-model": (lambda s, t: _model_folder(s, t, "--overwrite"), r"model is an input of this command"),
    "out-is-the-model-no-overwrite": (_model_folder, r"not empty and holds no statistics"),
    "out-holds-the-corpus": (_corpus_inside, r"user holds .*eng\.txt, which is an input of this command"),
    "out-not-statistics": (lambda s, t: _not_statistics(s, t, "--overwrite"),
                           r"user was not written by neurospec collect \(it holds no stats\.json"),
    "out-not-statistics-no-overwrite": (_not_statistics, r"user is not empty and holds no statistics"),
}


@pytest.mark.parametrize("case", list(COLLECT_REFUSALS))
def test_collect_deletes_nothing_but_statistics(study, tmp_path, case):
    build, match = COLLECT_REFUSALS[case]
    setup = build(study, tmp_path)
    line = refuses(setup["args"], match=match, watch=setup["watch"], cwd=setup["cwd"])
    if "--overwrite" not in [str(a) for a in setup["args"]]:
        assert "overwrite" not in line  # never advise --overwrite for a folder holding no statistics
    assert lock_files(tmp_path) == []


def test_collect_overwrite_still_replaces_statistics(study, tmp_path):
    out = tmp_path / "stats"
    first = run_cli(collect_args(study / "model", study / "eng_Latn.txt", out))
    assert first.returncode == 0, first.stderr
    refuses(collect_args(study / "model", study / "eng_Latn.txt", out), watch=out,
            match=r"holds statistics already: add --resume to continue them, or pass --overwrite")
    again = run_cli(collect_args(study / "model", study / "fra_Latn.txt", out, "--overwrite"))
    assert again.returncode == 0, again.stderr
    meta = json.loads((out / "stats.json").read_text())
    assert meta["complete"] and meta["corpora"]["eng_Latn"]["source"].endswith("fra_Latn.txt")
    assert sorted(p.name for p in out.iterdir()) == sorted([*meta["files"], "stats.json"])  # no stray checkpoint
    assert lock_files(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Item 1 elsewhere: toy train --out, neurospec run --run-dir


def _study_yaml(study: Path, folder: Path, *, random_step: bool = False) -> Path:
    text = f"title: outputs\nsteps:\n  lape:\n    verb: select lape\n    stats: {study / 'stats'}\n    top_rate: 0.2\n"
    if random_step:
        text += "  random:\n    verb: select random\n    like: $lape\n"
    path = folder / ("study2.yaml" if random_step else "study.yaml")
    path.write_text(text, encoding="utf-8")
    return path


def test_toy_train_replaces_only_a_toy_folder(tmp_path):
    user = user_folder(tmp_path / "user")
    refuses(["toy", "train", "small", "--out", "."], cwd=user, watch=tmp_path, match=r"is the current folder")
    refuses(["toy", "train", "small", "--out", user], cwd=tmp_path, watch=tmp_path,
            match=r"user was not written by neurospec toy train \(it holds no training\.json")


def test_run_replaces_only_what_the_run_wrote(study, tmp_path):
    user = user_folder(tmp_path / "user")
    refuses(["run", _study_yaml(study, tmp_path), "--run-dir", user], cwd=tmp_path, watch=user,
            match=r"user is not empty and holds no study\.json of neurospec run")
    run_dir = tmp_path / "run"
    done = run_cli(["run", _study_yaml(study, tmp_path), "--run-dir", run_dir], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir / "random.json").write_text("{\"mine\": true}\n", encoding="utf-8")  # the user's, where a new step writes
    refuses(["run", _study_yaml(study, tmp_path, random_step=True), "--run-dir", run_dir], cwd=tmp_path,
            watch=run_dir, match=r"random\.json is in the way of step 'random'.*records no earlier run of it")
    assert lock_files(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Item 2: report --out DIR keeps the files of DIR/figures/ it did not write


def _run_folder(study: Path, folder: Path, label: str) -> Path:
    (folder / Path(label).parent).mkdir(parents=True, exist_ok=True)
    shutil.copy(study / "lape.json", folder / label)
    return folder


def _figure_names(run_dir: Path) -> set[str]:
    from neurospec.report.discover import discover
    from neurospec.report.page import build_page

    return {f"{figure.slug}.png" for figure in build_page(discover(run_dir)).figures}


def test_report_replaces_only_its_own_figures(study, tmp_path):
    paper = tmp_path / "paper"
    (paper / "figures").mkdir(parents=True)
    (paper / "figures" / "fig1.pdf").write_bytes(b"x")
    (paper / "paper.tex").write_text("\\documentclass{article}\n", encoding="utf-8")
    first = _run_folder(study, tmp_path / "run1", "lape.json")
    done = run_cli(["report", first, "--out", paper])
    assert done.returncode == 0, done.stderr
    drawn = _figure_names(first)
    assert json.loads((paper / "report.json").read_text())["figures"] == sorted(drawn)
    assert sorted(os.listdir(paper / "figures")) == sorted(drawn | {"fig1.pdf"})
    # a second report into the same folder replaces only what the first wrote
    second = _run_folder(study, tmp_path / "run2", "sets/lape.json")
    done = run_cli(["report", second, "--out", paper])
    assert done.returncode == 0, done.stderr
    again = _figure_names(second)
    assert again and not again & drawn
    assert sorted(os.listdir(paper / "figures")) == sorted(again | {"fig1.pdf"})
    assert (paper / "figures" / "fig1.pdf").read_bytes() == b"x" and (paper / "paper.tex").exists()
    assert sorted(os.listdir(paper)) == ["figures", "paper.tex", "report.html", "report.json"]


def _foreign_figure(study, paper):
    (paper / "figures").mkdir(parents=True)
    name = sorted(_figure_names(_run_folder(study, paper.parent / "run", "lape.json")))[0]
    (paper / "figures" / name).write_bytes(b"my own figure")


def _foreign_html(study, paper):
    paper.mkdir()
    (paper / "report.html").write_text("<html>my report</html>", encoding="utf-8")


def _foreign_manifest(study, paper):
    paper.mkdir()
    (paper / "report.json").write_text("{\"mine\": 1}", encoding="utf-8")


@pytest.mark.parametrize("make, match", [
    (_foreign_figure, r"figures/lape-.*\.png was not written by neurospec report"),
    (_foreign_html, r"report\.html was not written by neurospec report"),
    (_foreign_manifest, r"report\.json is not the manifest of a neurospec report"),
], ids=["figure", "report.html", "report.json"])
def test_report_refuses_to_replace_a_file_it_did_not_write(study, tmp_path, make, match):
    paper = tmp_path / "paper"
    make(study, paper)
    _run_folder(study, tmp_path / "run", "lape.json")
    refuses(["report", tmp_path / "run", "--out", paper], match=match, watch=tmp_path)


# --------------------------------------------------------------------------------------------
# Item 3: one writer per output


def _lock_cases(study: Path, tmp: Path) -> dict[str, tuple[list[object], Path, bool]]:
    """verb -> (arguments, output, whether the output is a file): every verb that writes."""
    model, lape, corpus = study / "model", study / "lape.json", study / "eng_Latn.txt"
    folder, file = tmp / "out", tmp / "out.json"
    return {
        "collect": (collect_args(model, corpus, folder), folder, False),
        "attribute": (["attribute", "--model", model, "--data", "blend", "--out", folder], folder, False),
        "ppl": (["ppl", "--model", model, "--neurons", lape, "--corpus", f"en={corpus}", "--out", folder], folder, False),
        "steer": (["steer", "--model", model, "--neurons", lape, "--out", folder], folder, False),
        "lss": (["lss", "--model", model, "--neurons", lape, "--out", folder], folder, False),
        "sweep": (["sweep", "--model", model, "--neurons", lape, "--out", folder], folder, False),
        "eval": (["eval", "xcopa", "--model", model, "--languages", "et", "--out", folder], folder, False),
        "mask-eval": (["mask-eval", "--model", model, "--neurons", lape, "--out", folder], folder, False),
        "finetune": (["finetune", "--model", model, "--layers", "0", "--out", folder], folder, False),
        "report": (["report", study, "--out", folder], folder, False),
        "run": (["run", _study_yaml(study, tmp), "--run-dir", folder], folder, False),
        "select lape": (["select", "lape", "--stats", study / "stats", "--out", file], file, True),
        "select all-active": (["select", "all-active", "--stats", study / "stats", "--out", file], file, True),
        "select top-mean": (["select", "top-mean", "--stats", study / "stats", "--k", 2, "--out", file], file, True),
        "select random": (["select", "random", "--like", lape, "--out", file], file, True),
        "select culture": (["select", "culture", "--blend", study, "--control", study, "--countryrc", study,
                            "--out", file], file, True),
        "neurons import": (["neurons", "import", lape, "--groups", "en", "--out", file], file, True),
        "neurons export": (["neurons", "export", lape, "--format", "lape-pth", "--out", file], file, True),
        "intervention make": (["intervention", "make", "--neurons", lape, "--group", "eng_Latn", "--recipe", "zero",
                               "--out", file], file, True),
        "toy train": (["toy", "train", "small", "--out", folder], folder, True),  # replaced whole: OUT.lock beside it
        "toy blend-accuracy": (["toy", "blend-accuracy", model, "--out", file], file, True),
    }


LOCKING_VERBS = ["collect", "attribute", "ppl", "steer", "lss", "sweep", "eval", "mask-eval", "finetune", "report", "run",
                 "select lape", "select all-active", "select top-mean", "select random", "select culture",
                 "neurons import", "neurons export", "intervention make", "toy train", "toy blend-accuracy"]


@pytest.mark.parametrize("verb", LOCKING_VERBS)
def test_a_second_writer_is_refused(study, tmp_path, verb):
    cases = _lock_cases(study, tmp_path)
    assert sorted(cases) == sorted(LOCKING_VERBS)
    args, out, is_file = cases[verb]
    with (exclusive_file(out, "the test") if is_file else exclusive(out, "the test")):
        refuses(args, match=rf"{out.name} is in use by pid {os.getpid()} \(neurospec {verb}", watch=tmp_path,
                cwd=tmp_path)
    assert not out.exists() and lock_files(tmp_path) == []  # the lock leaves nothing behind


def test_written_outputs_leave_no_lock_file(study, tmp_path):
    user = user_folder(tmp_path / "user")
    done = run_cli(["select", "lape", "--stats", study / "stats", "--out", "lape.json"], cwd=user)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(user)) == ["data", "lape.json", "notes.txt"]


GATED = """
import os, sys, time
from pathlib import Path
import neurospec.measure.collect as collect_module
real = collect_module.collect
def gated(*args, **kwargs):  # holds its --out (locked by the command) until the test says go
    while not Path(os.environ["GO_FILE"]).exists():
        time.sleep(0.05)
    return real(*args, **kwargs)
collect_module.collect = gated
from neurospec.cli.main import app
app(args=sys.argv[1:], prog_name="neurospec")
"""


def test_two_collects_on_one_folder(study, tmp_path):
    """The second of two concurrent collects is refused and changes nothing; the first completes; --resume after
    it finds the folder complete."""
    out, go = tmp_path / "stats", tmp_path / "go"
    args = [str(a) for a in collect_args(study / "model", study / "eng_Latn.txt", out)]
    env = {**os.environ, "GO_FILE": str(go), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    first = subprocess.Popen([sys.executable, "-c", GATED, *args], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ((out / ".lock").exists() and (out / ".lock").read_text() == f"pid {first.pid}"):
            assert first.poll() is None and time.monotonic() < deadline, "the first collect never locked its --out"
            time.sleep(0.1)
        refuses(args, match=rf"stats is in use by pid {first.pid} \(neurospec collect\)", watch=tmp_path)
        go.touch()
        _, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    meta = json.loads((out / "stats.json").read_text())
    assert meta["complete"] and sorted(p.name for p in out.iterdir()) == sorted([*meta["files"], "stats.json"])
    tensors = {k: v for k, v in tree_state([out]).items() if not k.endswith("stats.json")}
    resumed = run_cli(args + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads((out / "stats.json").read_text())
    assert again["complete"] and again["files"] == meta["files"]
    assert {k: v for k, v in tree_state([out]).items() if not k.endswith("stats.json")} == tensors
