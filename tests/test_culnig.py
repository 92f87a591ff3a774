"""Neuron lists in the culture paper's code format: read, named, written back, used by any neuron-file reader."""

from __future__ import annotations

import json

import pytest
import torch

from neurospec.core.sites import ModelShape
from neurospec.neurons.formats import load_neuron_file
from neurospec.neurons.formats.culture import load_culnig, save_culnig
from neurospec.util.errors import FileFormatError, NeurospecError

ENTRIES = [("mlp.gate_proj", 3, 17), ("mlp.gate_proj", 0, 5), ("self_attn.q_proj", 1, 2), ("self_attn.v_proj", 3, 0),
           ("mlp.gate_proj", 3, 4)]


def write(path, entries, **extra):
    path.write_text(json.dumps({"model_name": "google/gemma-3-12b-it", "dataset_ids": {"blend": ["1"]},
                                "top_neurons": [{"module_name": m, "layer_idx": layer, "neuron_idx": i,
                                                 "attribute_score": 0.5, **extra} for m, layer, i in entries]}))
    return path


def test_read_name_and_write_back(tmp_path):
    general = write(tmp_path / "all_neurons_blend_max.json", ENTRIES)
    korea = write(tmp_path / "SouthKorea_neurons_blend_all.json", ENTRIES[:2], scores={"China": 1.0})
    rand = write(tmp_path / "all_neurons_random3.json", ENTRIES[2:])
    neurons = load_culnig([general, korea, rand], num_layers=4)
    assert neurons.groups == ("culture-general", "South_Korea", "random3:culture-general")
    assert neurons.indices("culture-general", "gate_pre", 3).tolist() == [4, 17]
    assert neurons.indices("culture-general", "q", 1).tolist() == [2]
    assert neurons.indices("culture-general", "v", 3).tolist() == [0]
    assert neurons.count("South_Korea") == 2 and neurons.num_layers == 4
    out = save_culnig(neurons, "culture-general", tmp_path / "back.json")
    again = load_culnig(out, groups=["culture-general"], num_layers=4)
    assert again.indices("culture-general", "gate_pre", 3).tolist() == [4, 17]
    assert again.count("culture-general") == len(ENTRIES)
    via_reader = load_neuron_file(korea)
    assert via_reader.groups == ("South_Korea",) and via_reader.num_layers == 4


def test_shape_checks_and_errors(tmp_path):
    path = write(tmp_path / "China_neurons_blend_all.json", ENTRIES)
    shape = ModelShape(num_layers=4, widths={"gate_pre": 18, "q": 8, "v": 4})
    assert load_culnig(path, shape=shape).groups == ("China",)
    with pytest.raises(NeurospecError):
        load_culnig(path, shape=ModelShape(num_layers=4, widths={"gate_pre": 10, "q": 8, "v": 4}))
    with pytest.raises(NeurospecError, match="layer 3"):
        load_culnig(path, num_layers=2)
    bad = write(tmp_path / "bad.json", [("mlp.down_proj", 0, 1)])
    with pytest.raises(FileFormatError, match="unknown module"):
        load_culnig(bad)
    (tmp_path / "x.json").write_text('{"top_neurons": [{"module_name": "mlp.gate_proj"}]}')
    with pytest.raises(FileFormatError, match="layer_idx"):
        load_culnig(tmp_path / "x.json")
    with pytest.raises(NeurospecError, match="same group"):
        load_culnig([path, path])
    assert torch.is_tensor(load_culnig(path).indices("China", "gate_pre", 0))
