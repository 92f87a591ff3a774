"""Intervention files: written once, loaded by any command, validated against the model they are used with."""

from __future__ import annotations

import json

import pytest
import torch
from families import PAD, VOCAB, family
from safetensors.torch import save_file
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.core.edits import Edit, RuntimeStatistic
from neurospec.core.hooks import intervene
from neurospec.core.sites import site_map
from neurospec.interventions.files import EditSpec, InterventionSpec, ValuesRef
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.util.errors import FileFormatError, NeurospecError, ShapeMismatchError


@pytest.fixture()
def llama():
    return family("llama").build()


@pytest.fixture()
def batch():
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(3, VOCAB, (2, 6), generator=generator)
    mask = torch.ones_like(ids)
    ids[0, :2], mask[0, :2] = PAD, 0
    return {"input_ids": ids, "attention_mask": mask}


def neuron_file(tmp_path, model, name="lape.json", groups=None):
    shape = site_map(model).shape
    groups = groups or {"fr": {"act": {0: [1, 7], 1: [3]}}, "de": {"act": {1: [5, 9]}}, "none": {}}
    neurons = NeuronSet(groups, num_layers=shape.num_layers)
    neurons.meta.widths = dict(shape.widths)
    path = tmp_path / name
    neurons.save(path)
    return path, neurons


def run(model, batch, *edits):
    with torch.no_grad(), intervene(model, *edits):
        return model(**batch).logits


def test_file_round_trip_and_same_effect_as_direct_edits(tmp_path, llama, batch):
    path, neurons = neuron_file(tmp_path, llama)
    width = site_map(llama).width("act")
    table = torch.randn(2, width)
    save_file({"p_max.fr": table}, str(tmp_path / "stats.safetensors"))
    spec = InterventionSpec([
        EditSpec(str(path), groups=["fr"], op="set", value=ValuesRef(str(tmp_path / "stats.safetensors"), "p_max.fr")),
        EditSpec(str(path), groups=["de"], op="scale", factor=2.5, positions="all"),
        EditSpec(str(path), groups=["fr", "de"], op="add", value=RuntimeStatistic("percentile", 75), factor=0.5),
    ])
    out = tmp_path / "sub" / "steer.json"
    spec.save(out)
    raw = json.loads(out.read_text())
    assert raw["format"] == "neurospec.intervention" and raw["edits"][0]["neurons"] == "../lape.json"
    assert raw["edits"][0]["neurons_sha256"].startswith("sha256:")
    assert raw["edits"][2]["value"] == {"runtime": "percentile", "q": 75}

    direct = [
        Edit.set(neurons, table, groups=["fr"]),
        Edit.scale(neurons, 2.5, groups=["de"]),
        Edit.add(neurons, RuntimeStatistic("percentile", 75), factor=0.5, groups=["fr", "de"]),
    ]
    from_file = run(llama, batch, InterventionSpec.load(out))
    assert torch.equal(from_file, run(llama, batch, *direct))
    assert (from_file - run(llama, batch, Edit.zero({"act": {0: torch.tensor([0])}}))).abs().max() > 1e-4


def test_changed_referenced_file_is_refused(tmp_path, llama):
    path, _ = neuron_file(tmp_path, llama)
    InterventionSpec([EditSpec(str(path), groups=["fr"])]).save(tmp_path / "zero.json")
    neuron_file(tmp_path, llama, groups={"fr": {"act": {0: [2]}}})  # same path, new content
    with pytest.raises(FileFormatError, match="changed since"):
        InterventionSpec.load(tmp_path / "zero.json").edits_for(llama)


def test_neuron_file_for_another_model_is_refused(tmp_path, llama):
    other = family("llama").build(intermediate_size=80)  # 2 layers too, but another MLP width
    path, _ = neuron_file(tmp_path, other)
    InterventionSpec([EditSpec(str(path), groups=["fr"])]).save(tmp_path / "zero.json")
    with pytest.raises(ShapeMismatchError, match="another model"):
        InterventionSpec.load(tmp_path / "zero.json").edits_for(llama)


def test_empty_group_and_bad_values_are_clear_errors(tmp_path, llama):
    path, _ = neuron_file(tmp_path, llama)
    with pytest.raises(NeurospecError, match="empty selection.*none"):
        InterventionSpec([EditSpec(str(path), groups=["none"])], tmp_path).edits_for(llama)
    save_file({"wrong": torch.zeros(2, 3)}, str(tmp_path / "bad.safetensors"))
    spec = InterventionSpec([EditSpec(str(path), groups=["fr"], op="set", value=ValuesRef("bad.safetensors", "p_max"))],
                            tmp_path)
    with pytest.raises(NeurospecError, match="no tensor 'p_max'.*wrong"):
        spec.edits_for(llama)
    spec.edits[0].value = ValuesRef("bad.safetensors", "wrong")
    with pytest.raises(ShapeMismatchError, match=r"\(layers, width\)"):
        with intervene(llama, spec):
            pass


@pytest.mark.parametrize("document, message", [
    ({"format": "other"}, "not an intervention file"),
    ({"format": "neurospec.intervention", "version": 9, "edits": []}, "version 9"),
    ({"format": "neurospec.intervention", "version": 1, "edits": []}, "non-empty list"),
    ({"format": "neurospec.intervention", "version": 1, "edits": [{"neurons": "a.json", "op": "mute"}]}, "unknown op"),
    ({"format": "neurospec.intervention", "version": 1, "edits": [{"neurons": "a.json", "positions": "first"}]},
     "unknown positions"),
    ({"format": "neurospec.intervention", "version": 1, "edits": [{"neurons": "a.json", "value": "high"}]},
     "not a number"),
    ({"format": "neurospec.intervention", "version": 1, "edits": [{"op": "zero"}]}, "needs 'neurons'"),
])
def test_malformed_files_name_the_problem(tmp_path, document, message):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(document))
    with pytest.raises(FileFormatError, match=message):
        InterventionSpec.load(path)


def test_cli_check_and_sites(tmp_path, llama):
    folder = tmp_path / "model"
    llama.save_pretrained(folder)
    path, _ = neuron_file(tmp_path, llama)
    InterventionSpec([EditSpec(str(path), groups=["fr", "de"], op="scale", factor=2)]).save(tmp_path / "x2.json")
    runner = CliRunner()
    result = runner.invoke(app, ["intervention", "check", str(tmp_path / "x2.json"), "--model", str(folder)])
    assert result.exit_code == 0, result.output
    assert "valid for" in result.output and "scale" in result.output and " 5 " in result.output  # 3 + 2 neurons
    result = runner.invoke(app, ["sites", str(folder)])
    assert result.exit_code == 0, result.output
    assert "model.layers.0.mlp.act_fn" in result.output and str(site_map(llama).width("act")) in result.output
    result = runner.invoke(app, ["intervention", "check", str(tmp_path / "x2.json"), "--model", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "error:" in result.output
