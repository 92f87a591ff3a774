"""A study of several models (``models:``): every step runs per model into RUN_DIR/<name>, each model's folder
equal to the single-model study run alone; the config's mistakes are refused naming the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from interventions_common import TEXTS, tiny_llama, tok

from neurospec.pipeline import ConfigError, load_study, run_study
from neurospec.util.errors import NeurospecError

STEPS = """\
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
  lape:
    verb: select lape
    stats: $collect
    top_rate: 0.2
  ppl:
    neurons: $lape
    corpus:
      eng_Latn: texts/eng_Latn.txt
      fra_Latn: texts/fra_Latn.txt
    random_seeds: ''
"""
TWO = "title: two models\nmodels:\n  first: model_a\n  second: model_b\n" + STEPS


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Two tiny Llamas of different weights, corpora and the study configs."""
    root = tmp_path_factory.mktemp("models")
    for name, seed in (("model_a", 0), ("model_b", 1)):
        tiny_llama(seed).save_pretrained(root / name)
        tok().save_pretrained(root / name)
    (root / "texts").mkdir()
    for lang, lines in TEXTS.items():
        (root / "texts" / f"{lang}.txt").write_text("\n".join(lines * 5) + "\n", encoding="utf-8")
    (root / "two.yaml").write_text(TWO, encoding="utf-8")
    (root / "second.yaml").write_text("model: model_b\n" + STEPS, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def finished(project, tmp_path_factory) -> Path:
    lines: list[str] = []
    run_dir = run_study(project / "two.yaml", tmp_path_factory.mktemp("runs") / "two", echo=lines.append)
    assert lines[-1].startswith("study of 2 models complete"), lines
    return run_dir


def _results(run_dir: Path) -> dict:
    """What the steps found: the neuron groups and every perplexity cell."""
    lape = json.loads((run_dir / "lape.json").read_text())
    ppl = json.loads((run_dir / "ppl" / "ppl.json").read_text())
    return {"groups": lape["groups"], "cells": ppl["cells"]}


def test_each_model_runs_every_step_in_its_own_folder_as_its_study_alone(project, finished, tmp_path):
    record = json.loads((finished / "study.json").read_text())
    assert record["status"] == "complete" and record["steps"] == []
    assert record["models"] == [{"name": "first", "model": str(project / "model_a"), "out": "first"},
                                {"name": "second", "model": str(project / "model_b"), "out": "second"}]
    for name in ("first", "second"):
        steps = json.loads((finished / name / "study.json").read_text())["steps"]
        assert [s["name"] for s in steps] == ["collect", "lape", "ppl"]
        assert all(s["status"] == "complete" for s in steps)
    alone = run_study(project / "second.yaml", tmp_path / "alone", echo=lambda line: None)
    assert _results(finished / "second") == _results(alone)
    # two models of different weights: different perplexities (the folders are not one model's twice)
    assert _results(finished / "first")["cells"] != _results(finished / "second")["cells"]


def test_a_second_run_skips_every_step_of_every_model(project, finished):
    lines: list[str] = []
    run_study(project / "two.yaml", finished, echo=lines.append)
    steps = [line for line in lines if ": up to date, skipped" in line or "running (" in line]
    assert len(steps) == 6 and all("skipped" in line for line in steps), lines
    assert {line.split()[0] for line in steps} == {"first", "second"}


def test_dry_run_prints_each_models_plan(project, tmp_path):
    lines: list[str] = []
    run_study(project / "two.yaml", tmp_path / "dry", dry_run=True, echo=lines.append)
    assert not (tmp_path / "dry").exists()
    assert sum(line.startswith("model ") for line in lines) == 2
    assert sum("collect: run" in line for line in lines) == 2


def test_one_model_and_several_do_not_share_a_run_folder(project, finished, tmp_path):
    single = run_study(project / "second.yaml", tmp_path / "single", echo=lambda line: None)
    with pytest.raises(NeurospecError, match="holds a study of one model"):
        run_study(project / "two.yaml", single, echo=lambda line: None)
    with pytest.raises(NeurospecError, match="holds a study of several models"):
        run_study(project / "second.yaml", finished, echo=lambda line: None)


@pytest.mark.parametrize(("head", "message"), [
    ("model: model_a\nmodels: {a: model_a, b: model_b}\n", "not both"),
    ("models: {a: model_a}\n", "two or more models"),
    ("models: {1a: model_a, b: model_b}\n", "model name '1a'"),
    ("models: [model_a, ./model_a]\n", "the same name"),
    ("models: {a: model_a, b: ./nowhere}\n", "model folder ./nowhere not found"),
])
def test_a_wrong_models_entry_is_refused_naming_the_line(project, head, message):
    path = project / "wrong.yaml"
    path.write_text(head + STEPS, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as error:
        load_study(path)
    assert str(error.value).startswith(f"{path}:")


def test_a_list_of_models_names_each_after_its_model(project):
    path = project / "listed.yaml"
    path.write_text("models: [model_a, model_b]\n" + STEPS, encoding="utf-8")
    study = load_study(path)
    assert list(study.per_model) == ["model_a", "model_b"]
    assert [s.name for s in study.per_model["model_b"].steps] == ["collect", "lape", "ppl"]
    assert study.per_model["model_b"].steps[0].values["model"].value == str(project / "model_b")


def test_a_damaged_study_record_is_refused_in_one_line_and_left_as_it_was(project, tmp_path):
    run_dir = tmp_path / "damaged"
    run_dir.mkdir()
    (run_dir / "study.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(NeurospecError, match="study.json") as error:
        run_study(project / "two.yaml", run_dir, echo=lambda line: None)
    assert "\n" not in str(error.value)
    assert (run_dir / "study.json").read_text(encoding="utf-8") == "{not json"
    assert sorted(p.name for p in run_dir.iterdir()) == ["study.json"]
