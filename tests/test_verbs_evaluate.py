"""The intervention verbs called from Python (neurospec.verbs.evaluate: steer, lss, sweep, eval): options built
from plain values, a shared loaded model, results and files equal to the engines' own, stamped with the verb's
provenance, and user errors that name the flag."""

from __future__ import annotations

import json

import pytest
from interventions_common import neuron_set, saved_study

from neurospec.core.models import load_model
from neurospec.core.provenance import describe_model
from neurospec.data.lss_items import items_from_parallel, parallel_sentences
from neurospec.evaluate.downstream import self_cross
from neurospec.evaluate.lss import lss_matrix
from neurospec.evaluate.steering import steer_generation
from neurospec.evaluate.sweep import recipe_grid
from neurospec.interventions.recipes import Recipe
from neurospec.measure.stats import ActivationStats
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.util.errors import NeurospecError
from neurospec.verbs.evaluate import (
    EvalOptions,
    LssOptions,
    SteerOptions,
    SweepOptions,
    evaluate_task,
    grid_factors,
    grid_values,
    langid_candidates,
    lss,
    steer,
    sweep,
    sweep_recipes,
)

LSS_VALUES = {"parallel": "ntrex", "languages": "en,fr,de", "limit": "3", "bootstrap": "20", "quiet": "true"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A saved tiny Llama with its neuron set (eng/fra/deu) and statistics, and the model loaded once."""
    root = saved_study(tmp_path_factory.mktemp("verbs-evaluate"), lambda model: {"neurons.json": neuron_set(model)})
    return root, load_model(root / "model", device="cpu")


def inputs(root, out) -> dict:
    return {"model": str(root / "model"), "neurons": str(root / "neurons.json"), "stats": str(root / "stats"),
            "out": str(out)}


def engine_inputs(root):
    return NeuronSet.load(root / "neurons.json"), ActivationStats.load(root / "stats")


def provenance_of(path) -> dict:
    return json.loads(path.read_text())["provenance"]


def test_steer_with_a_shared_model_equals_the_engine_and_is_stamped(study, tmp_path, capsys):
    root, lm = study
    prompts = tmp_path / "en.txt"
    prompts.write_text("The cat sat on\n\nShe went to\nA third one\n", encoding="utf-8")
    options = SteerOptions.from_values({**inputs(root, tmp_path / "steer"), "prompts": [f"en={prompts}"],
                                        "limit": "2", "groups": "fr", "max_new_tokens": "3",
                                        "candidates": "study", "random_seeds": "0", "quiet": "false"})
    result = steer(options, lm=lm)
    neurons, stats = engine_inputs(root)
    api = steer_generation(lm.model, lm.tokenizer, {"eng_Latn": ["The cat sat on", "She went to"]}, neurons,
                           recipe="set:p_max", stats=stats, targets=["fr"], random_seeds=(0,), max_new_tokens=3,
                           candidates=["eng_Latn", "fra_Latn"])
    assert result.to_json() == api.to_json()
    saved = json.loads((tmp_path / "steer" / "steer.json").read_text())
    assert {k: v for k, v in saved.items() if k != "provenance"} == json.loads(json.dumps(api.to_json()))
    printed = capsys.readouterr().out.splitlines()
    assert any(line.split()[:3] == ["eng_Latn", "->", "fra_Latn"] for line in printed), printed
    record = provenance_of(tmp_path / "steer" / "steer.json")
    assert record["command"] == "neurospec steer" and record["options"]["candidates"] == "study"
    assert set(record["inputs"]) == {"neurons", "stats", "prompts:en"} and "out" not in record["options"]
    assert record["model"]["weights_fingerprint"] == describe_model(lm.model)["weights_fingerprint"]


def test_lss_with_a_shared_model_equals_the_engine(study, tmp_path):
    root, lm = study
    matrix = lss(LssOptions.from_values({**inputs(root, tmp_path / "lss"), **LSS_VALUES, "recipe": "set:p_max*4",
                                         "controls": "random"}), lm=lm)
    neurons, stats = engine_inputs(root)
    items = items_from_parallel(parallel_sentences("ntrex", ["en", "fr", "de"]), limit=3)
    api = lss_matrix(lm.model, lm.tokenizer, items, neurons, recipe="set:p_max*4", stats=stats, controls=["random"],
                     bootstrap=20)
    assert matrix.lss == api.lss and matrix.mean_d0 == api.mean_d0
    saved = json.loads((tmp_path / "lss" / "lss.json").read_text())
    assert saved["lss"] == api.lss and set(saved["cells"][0]["controls"]) == {"random"}
    record = saved["provenance"]
    assert record["command"] == "neurospec lss" and record["options"]["controls"] == "random"


def test_sweep_runs_the_grid_and_records_its_values_option(study, tmp_path):
    root, lm = study
    options = SweepOptions.from_values({**inputs(root, tmp_path / "sweep"), **LSS_VALUES, "values": "p_max",
                                        "factors": "1,4"})
    assert sweep_recipes(options) == recipe_grid(op="set", values=["p_max"], factors=[1.0, 4.0])
    result = sweep(options, lm=lm)
    neurons, stats = engine_inputs(root)
    items = items_from_parallel(parallel_sentences("ntrex", ["en", "fr", "de"]), limit=3)
    api = lss_matrix(lm.model, lm.tokenizer, items, neurons, recipe="set:p_max*4", stats=stats, bootstrap=20)
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [c["recipe"] for c in saved["curve"]] == ["set:p_max", "set:p_max*4"]
    assert saved["curve"][1]["mean_lss"] == pytest.approx(api.mean_offdiagonal)
    assert result.best.name == max(saved["curve"], key=lambda c: c["mean_lss"])["recipe"]
    # the field 'values' hides VerbOptions.values(): the record still holds every option
    record = saved["provenance"]
    assert record["command"] == "neurospec sweep"
    assert record["options"]["values"] == "p_max" and record["options"]["factors"] == "1,4"


def test_eval_with_a_shared_model_equals_the_engine(study, tmp_path):
    root, lm = study
    table = evaluate_task(EvalOptions.from_values({**inputs(root, tmp_path / "xcopa"), "task": "xcopa",
                                                   "languages": "et,it", "groups": "fr", "limit": "3",
                                                   "quiet": "true"}), lm=lm)
    neurons, stats = engine_inputs(root)
    api = self_cross(lm.model, lm.tokenizer, "xcopa", ["et", "it"], neurons, stats=stats, targets=["fr"], limit=3)
    assert table.scores() == api.scores() and table.rows == ["none", "fra_Latn"]
    record = provenance_of(tmp_path / "xcopa" / "xcopa.json")
    assert record["command"] == "neurospec eval" and record["options"]["task"] == "xcopa"


def test_eval_refuses_an_unknown_task_before_loading_a_model(tmp_path):
    options = EvalOptions.from_values({"model": str(tmp_path / "no-model"), "task": "xcopa-nope", "languages": "et",
                                       "out": str(tmp_path / "out")})
    with pytest.raises(NeurospecError, match="unknown task 'xcopa-nope'"):
        evaluate_task(options)
    assert not (tmp_path / "out").exists()


def test_grid_options_are_parsed_and_refused_by_flag():
    assert grid_values("scale", "p_max,anything") == [None]
    assert grid_values("set", "p_max, 2") == [Recipe.parse("set:p_max").value, Recipe.parse("set:2").value]
    assert grid_factors("1, 2.5") == [1.0, 2.5]
    with pytest.raises(NeurospecError, match=r"^--factors '1,x': give numbers"):
        grid_factors("1,x")
    with pytest.raises(NeurospecError, match=r"^--factors '1,nan': factors must be finite"):
        grid_factors("1,nan")
    with pytest.raises(NeurospecError, match=r"^--values 'p_max,,p_median' has an empty item"):
        grid_values("set", "p_max,,p_median")


def test_langid_candidates():
    assert langid_candidates(None, ["eng_Latn"], ["fr"]) is None
    assert langid_candidates("study", ["en", "eng_Latn"], ["fr", "de"]) == ["eng_Latn", "fra_Latn", "deu_Latn"]
    assert langid_candidates("en,zh", ["en"], ["fr"]) == ["en", "zh"]
    with pytest.raises(NeurospecError, match="^--langid-languages 'en,,zh' has an empty item"):
        langid_candidates("en,,zh", ["en"], ["fr"])


def test_a_list_option_error_names_its_flag_outside_the_command_line(study, tmp_path):
    root, lm = study
    options = LssOptions.from_values({**inputs(root, tmp_path / "out"), **LSS_VALUES, "groups": "fr,,de"})
    with pytest.raises(NeurospecError, match="^--groups 'fr,,de' has an empty item"):
        lss(options, lm=lm)
    assert not (tmp_path / "out").exists()
