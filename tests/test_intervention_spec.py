"""One rule set for an operation (op, value, factor, positions): an Edit, a recipe and an intervention file refuse
the same input with the same message, and each form's JSON reads back to itself."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from neurospec.core.edits import Edit
from neurospec.core.operations import OpSpec, RuntimeStatistic, ValuesRef, check_operation, operation_from_json
from neurospec.interventions.files import EditSpec, InterventionSpec
from neurospec.interventions.recipes import Recipe
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.util.errors import FileFormatError, NeurospecError

NEURONS = {"act": {0: torch.tensor([1, 3]), 1: torch.tensor([2])}}
INF = math.inf
HINT = "(NaN or infinity would make every logit NaN)"
NEEDS_VALUE = ("needs a value: a number, per-neuron values (p_max, p_median, mean) or a run-time statistic "
               "(max, min, mean, median, percentile)")

# Each case: the message every form gives after the prefix that names its input, written out here by hand; how
# an Edit (label "sel"), the short form of a recipe, the JSON form of a recipe and an intervention file's edit
# spell that input (None: the form cannot spell it).
CASES = {
    "unknown-op": (
        "unknown operation 'mute': use one of zero, scale, set, add",
        lambda: Edit.make("mute", NEURONS, label="sel"), "mute", {"op": "mute"}, {"op": "mute"}),
    "unknown-positions": (
        "unknown positions 'first': use one of all, prompt, continuation",
        lambda: Edit.zero(NEURONS, positions="first", label="sel"), "zero@first",
        {"op": "zero", "positions": "first"}, {"positions": "first"}),
    "set-without-value": (
        f"'set' {NEEDS_VALUE}",
        lambda: Edit.set(NEURONS, None, label="sel"), "set", {"op": "set"}, {"op": "set"}),
    "zero-with-value": (
        "'zero' takes no value; leave it out (scale multiplies by the factor)",
        lambda: Edit.make("zero", NEURONS, 0.5, label="sel"), "zero:0.5", {"op": "zero", "value": 0.5},
        {"op": "zero", "value": 0.5}),
    "infinite-value": (
        f"value inf is not a finite number; give a real number such as 0.5 {HINT}",
        lambda: Edit.add(NEURONS, INF, label="sel"), "add:1e999", {"op": "add", "value": INF},
        {"op": "add", "value": INF}),
    "minus-infinite-value": (
        f"value -inf is not a finite number; give a real number such as 0.5 {HINT}",
        lambda: Edit.set(NEURONS, torch.tensor(-INF), label="sel"), "set:-1e999", {"op": "set", "value": -INF},
        {"op": "set", "value": -INF}),
    "infinite-factor": (
        f"factor inf is not a finite number; give a real number such as 2 {HINT}",
        lambda: Edit.scale(NEURONS, INF, label="sel"), "scale*1e999", {"op": "scale", "factor": INF},
        {"op": "scale", "factor": INF}),
    "text-factor": (
        "factor 'x' is not a number; give a real number such as 2",
        lambda: Edit.scale(NEURONS, "x", label="sel"), "scale*x", {"op": "scale", "factor": "x"},
        {"op": "scale", "factor": "x"}),
    "bool-factor": (
        "factor True is not a number; give a real number such as 2",
        lambda: Edit.scale(NEURONS, True, label="sel"), None, {"op": "scale", "factor": True},
        {"op": "scale", "factor": True}),
}

# Errors of a run-time statistic come from RuntimeStatistic itself, built before an Edit sees it: no prefix there.
RUNTIME_CASES = {
    "unknown-statistic": (
        "unknown run-time statistic 'mode': use one of max, min, mean, median, percentile",
        lambda: RuntimeStatistic("mode"), "set:runtime:mode", {"runtime": "mode"}),
    "percentile-without-q": (
        "run-time statistic percentile needs a number q in [0, 100] (90 for the 90th percentile), got None",
        lambda: RuntimeStatistic("percentile"), "set:runtime:percentile", {"runtime": "percentile"}),
    "percentile-out-of-range": (
        "run-time statistic percentile needs a number q in [0, 100] (90 for the 90th percentile), got 150.0",
        lambda: RuntimeStatistic("percentile", 150.0), "set:runtime:percentile150", {"runtime": "percentile", "q": 150.0}),
    "q-of-max": (
        "run-time statistic 'max' takes no q (q 3.0); q belongs to percentile only",
        lambda: RuntimeStatistic("max", 3.0), None, {"runtime": "max", "q": 3.0}),
}


def message(make) -> tuple[type, str]:
    with pytest.raises(NeurospecError) as caught:
        make()
    return type(caught.value), str(caught.value)


def file_message(tmp_path, edit: dict) -> tuple[type, str, str]:
    """The error of loading an intervention file with this one edit, and the prefix it should carry."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"format": "neurospec.intervention", "version": 1,
                                "edits": [{"neurons": "lape.json", **edit}]}))
    kind, text = message(lambda: InterventionSpec.load(path))
    return kind, text, f"{path}, edit 0: "


@pytest.mark.parametrize("case", list(CASES))
def test_every_form_refuses_the_same_input_with_the_same_message(tmp_path, case):
    expected, edit, short, recipe_json, file_edit = CASES[case]
    assert message(edit) == (NeurospecError, f"sel: {expected}")
    if short is not None:
        assert message(lambda: Recipe.parse(short)) == (NeurospecError, f"intervention recipe {short!r}: {expected}")
        assert message(lambda: Recipe.parse(short, "--recipe")) == (NeurospecError, f"--recipe {short!r}: {expected}")
    assert message(lambda: Recipe.from_json(recipe_json)) == (NeurospecError, expected)
    kind, text, prefix = file_message(tmp_path, file_edit)
    assert (kind, text) == (FileFormatError, prefix + expected)
    assert message(lambda: EditSpec("lape.json", **file_edit)) == (NeurospecError, expected)  # built in Python


@pytest.mark.parametrize("case", list(RUNTIME_CASES))
def test_every_form_refuses_the_same_run_time_statistic_with_the_same_message(tmp_path, case):
    expected, build, short, value = RUNTIME_CASES[case]
    assert message(build) == (NeurospecError, expected)
    if short is not None:
        assert message(lambda: Recipe.parse(short)) == (NeurospecError, f"intervention recipe {short!r}: {expected}")
    assert message(lambda: Recipe.from_json({"op": "set", "value": value})) == (NeurospecError, expected)
    kind, text, prefix = file_message(tmp_path, {"op": "set", "value": value})
    assert (kind, text) == (FileFormatError, prefix + expected)


def test_a_value_of_no_kind_is_refused_with_what_that_form_takes(tmp_path):
    kind, text, prefix = file_message(tmp_path, {"op": "set", "value": "p_max"})  # a name means nothing in a file
    assert text == prefix + ("value 'p_max' is not a number, {'file': ..., 'key': ...} (a ValuesRef) or "
                             "{'runtime': 'max', ...} (a RuntimeStatistic)")
    assert message(lambda: Edit.set(NEURONS, "p_max", label="sel"))[1] == (
        "sel: value 'p_max' is not a number, per-neuron values (a (layers, width) tensor or {layer: tensor}) or a "
        "RuntimeStatistic")
    assert message(lambda: Recipe.parse("set:p_mean"))[1] == (
        "intervention recipe 'set:p_mean': unknown corpus statistic 'p_mean': use one of p_max, p_median, mean")
    assert message(lambda: Recipe("set", [1.0]))[1].startswith("value [1.0] is not a number, a corpus statistic")
    # what a value is comes before whether the op takes one: zero with a bad value names the value
    assert "value 'high' is not a number" in file_message(tmp_path, {"value": "high"})[1]


def test_the_same_inputs_are_accepted_and_normalised_alike():
    """Integers, numpy and 0-d tensor numbers become floats in every form; the defaults agree."""
    edit = Edit.make("add", NEURONS, np.float32(0.5), torch.tensor(2), "prompt", label="sel")
    recipe = Recipe("add", 1, np.float64(2.0), "prompt")
    spec = EditSpec("lape.json", op="add", value=1, factor=2, positions="prompt")
    assert (edit.value, edit.factor) == (0.5, 2.0) and type(edit.value) is float and type(edit.factor) is float
    for form in (recipe, spec):
        assert (form.value, form.factor) == (1.0, 2.0) and type(form.value) is float and type(form.factor) is float
    assert operation_from_json({}, per_neuron="file") == OpSpec("zero", None, 1.0, "all")
    assert Recipe.from_json({}) == Recipe.zero() and EditSpec.from_json({"neurons": "n.json"}).operation == \
        OpSpec("zero", None, 1.0, "all")


OPERATIONS_JSON = [
    {"op": "zero", "factor": 1.0, "positions": "all"},
    {"op": "scale", "factor": -2.5, "positions": "continuation"},
    {"op": "set", "value": 0.25, "factor": 3.0, "positions": "prompt"},
    {"op": "add", "value": {"runtime": "percentile", "q": 37.5}, "factor": 1.0, "positions": "all"},
    {"op": "set", "value": {"runtime": "median"}, "factor": 0.5, "positions": "all"},
]
PER_NEURON_JSON = {
    "corpus": {"op": "set", "value": "p_median", "factor": 10.0, "positions": "continuation"},
    "file": {"op": "set", "value": {"file": "stats.safetensors", "key": "p_max.fr", "file_sha256": "sha256:00"},
             "factor": 2.0, "positions": "all"},
}


@pytest.mark.parametrize("raw", OPERATIONS_JSON + list(PER_NEURON_JSON.values()), ids=lambda raw: json.dumps(raw))
def test_operation_json_round_trips(raw):
    forms = [form for form, only in PER_NEURON_JSON.items() if only is raw] or ["corpus", "file", "tensor"]
    for form in forms:
        spec = operation_from_json(json.loads(json.dumps(raw)), per_neuron=form)
        assert json.dumps(spec.to_json()) == json.dumps(raw)
        assert check_operation(spec.op, spec.value, spec.factor, spec.positions, per_neuron=form) == spec


@pytest.mark.parametrize("raw", OPERATIONS_JSON + [PER_NEURON_JSON["corpus"]], ids=lambda raw: raw["op"])
def test_recipe_json_round_trips(raw):
    recipe = Recipe.from_json(raw)
    written = recipe.to_json()
    assert list(written) == ["name", "op", "value", "kind", "factor", "positions"]
    assert {key: written[key] for key in raw} == raw and written.get("value", "absent") == raw.get("value")
    assert json.dumps(Recipe.from_json(json.loads(json.dumps(written))).to_json()) == json.dumps(written)
    assert Recipe.parse(recipe.name) == recipe


def test_recipe_names_read_back_exactly():
    recipe = Recipe("add", 0.123456789, 1 / 3, "prompt")
    assert Recipe.parse(recipe.name) == recipe
    assert Recipe("set", "p_max", 2.0).name == "set:p_max*2" and Recipe.parse("scale*2").name == "scale*2"


@pytest.mark.parametrize("raw", OPERATIONS_JSON + [PER_NEURON_JSON["file"]], ids=lambda raw: raw["op"])
def test_edit_spec_json_round_trips(raw):
    row = {"neurons": "lape.json", "neurons_sha256": "sha256:11", "groups": ["fr"], "sites": ["act"], **raw}
    edit = EditSpec.from_json(json.loads(json.dumps(row)))
    assert json.dumps(edit.to_json()) == json.dumps(row)


@pytest.mark.parametrize("raw", OPERATIONS_JSON, ids=lambda raw: raw["op"])
def test_edit_operation_json_round_trips(raw):
    spec = operation_from_json(raw, per_neuron="tensor")
    edit = Edit.make(spec.op, NEURONS, spec.value, spec.factor, spec.positions)
    assert json.dumps(edit.operation.to_json()) == json.dumps(raw)
    with pytest.raises(NeurospecError, match="no JSON form"):
        Edit.set(NEURONS, torch.ones(2, 4)).operation.to_json()


def test_intervention_file_round_trips(tmp_path):
    neurons = NeuronSet({"fr": {"act": {0: [1, 2]}}, "de": {"act": {1: [3]}}}, num_layers=2)
    neurons.save(tmp_path / "lape.json")
    save_file({"p_max.fr": torch.rand(2, 8)}, str(tmp_path / "stats.safetensors"))
    InterventionSpec([
        EditSpec("lape.json", groups=["fr"], op="set", value=ValuesRef("stats.safetensors", "p_max.fr"), factor=2.0),
        EditSpec("lape.json", groups=["de"], sites=["act"], op="add", value=RuntimeStatistic("percentile", 90.0),
                 positions="continuation"),
        EditSpec("lape.json", op="scale", factor=-1.0), EditSpec("lape.json", op="add", value=0.5),
    ], tmp_path).save(tmp_path / "first.json")
    first = (tmp_path / "first.json").read_text()
    InterventionSpec.load(tmp_path / "first.json").save(tmp_path / "second.json")
    assert (tmp_path / "second.json").read_text() == first
    edits = json.loads(first)["edits"]
    assert edits[1]["value"] == {"runtime": "percentile", "q": 90.0} and "value" not in edits[2]
    assert edits[0]["value"]["file_sha256"].startswith("sha256:")
