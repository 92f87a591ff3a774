"""GGUF files and built-in names wherever a model is named: dequantized once, cached by sha256, recorded.

The real model (`gemma-3-270m`, from the PyPI package of the `demo` extra) is converted on first use
(about a minute on 2 cores, then cached under ~/.cache/neurospec/gguf): those tests are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import neurospec.core.model_sources as sources
from neurospec.cli.main import app
from neurospec.core.model_sources import BUILTIN_MODELS, check_tensor_types, resolve_source
from neurospec.util.errors import NeurospecError

runner = CliRunner()
GEMMA = "gemma-3-270m"


def write_gguf(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_tensor_type_gguf_cannot_dequantize_is_named_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path / "cache"))
    path = write_gguf(tmp_path / "odd.gguf", {"blk.0.ffn_up.weight": np.ones((4, 8), np.float32),
                                              "blk.0.ffn_down.weight": np.ones((8, 4), np.float64)})
    with pytest.raises(NeurospecError, match="type F64, which the gguf package cannot dequantize.*types in this file: "
                                             "F32, F64"):
        check_tensor_types(path)
    result = runner.invoke(app, ["sites", str(path)])
    assert result.exit_code == 2 and "F64" in result.output
    assert not list((tmp_path / "cache" / "gguf").glob("[0-9a-f]*"))  # nothing half-made left in the cache


def test_bad_gguf_names_fail_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path / "cache"))
    with pytest.raises(NeurospecError, match="not found"):
        resolve_source(tmp_path / "missing.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(NeurospecError, match="not a readable GGUF file"):
        resolve_source(tmp_path / "junk.gguf")


def test_a_missing_demo_package_says_which_extra_to_install(monkeypatch):
    def missing(name, *args, **kwargs):
        raise ImportError(name)

    monkeypatch.setattr(sources.importlib, "import_module", missing)
    with pytest.raises(NeurospecError, match=r'pip install -e "\.\[demo\]"'):
        resolve_source(GEMMA)


def test_other_names_pass_through_unchanged():
    assert resolve_source("Qwen/Qwen2.5-0.5B").folder == "Qwen/Qwen2.5-0.5B"
    assert resolve_source("./some/folder").provenance == {"source": "./some/folder"}


def test_a_study_on_the_builtin_model_is_fingerprinted_by_its_pinned_hash(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("model: gemma-3-270m\nsteps:\n  sites_free:\n    verb: select random\n    like: like.json\n",
                     encoding="utf-8")
    from neurospec.neurons.neuron_set import NeuronSet

    NeuronSet({"x": {"act": {0: [1]}}}, num_layers=18).save(tmp_path / "like.json")
    from neurospec.pipeline.config import load_study
    from neurospec.pipeline.fingerprints import model_fingerprint

    loaded = load_study(study)
    assert loaded.model.kind == "builtin"
    assert model_fingerprint(loaded.model, None) == f"builtin:{GEMMA}:{BUILTIN_MODELS[GEMMA].sha256()}"


# ------------------------------------------------------------------------------------------------
# the real model (slow on first use: the conversion)


@pytest.fixture(scope="module")
def gemma():
    from neurospec.core.models import load_model

    return load_model(GEMMA, device="cpu")


@pytest.mark.slow
def test_the_builtin_model_is_the_gguf_file_dequantized(gemma):
    """Weights equal the gguf package's own dequantization of the file's tensors, type by type."""
    import gguf

    provenance = gemma.model.neurospec_source
    assert provenance["builtin"] == GEMMA and provenance["gguf"]["sha256"] == BUILTIN_MODELS[GEMMA].sha256()
    reader = gguf.GGUFReader(provenance["gguf"]["file"])
    tensors = {t.name: t for t in reader.tensors}
    state = gemma.model.state_dict()
    checked = set()
    for name, key in [("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"),
                      ("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight"),
                      ("blk.5.attn_v.weight", "model.layers.5.self_attn.v_proj.weight"),
                      ("blk.17.attn_output.weight", "model.layers.17.self_attn.o_proj.weight")]:
        tensor = tensors[name]
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(state[key].shape)
        np.testing.assert_array_equal(state[key].numpy(), expected)
        checked.add(tensor.tensor_type.name)
    assert len(checked) >= 3, checked  # several quantization types, not one
    assert gemma.sites.num_layers == 18 and gemma.sites.width("act") == 2048


@pytest.mark.slow
def test_the_second_load_reads_the_cache_and_results_record_the_source(gemma, tmp_path, monkeypatch):
    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the cache holds the model")

    monkeypatch.setattr(sources, "_convert", no_conversion)
    cache = Path(gemma.model.neurospec_source["gguf"]["cache"])
    facts = json.loads((cache / "gguf.json").read_text())
    assert facts["sha256"] == cache.name and {"Q4_K", "Q6_K"} <= set(facts["tensor_types"])
    corpus = tmp_path / "fr.txt"
    corpus.write_text("Le chat dort sur le tapis.\nIl fait chaud aujourd'hui.\n", encoding="utf-8")
    result = runner.invoke(app, ["collect", "--model", GEMMA, "--corpus", f"fr={corpus}", "--out", str(tmp_path / "stats"),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "stats" / "stats.json").read_text())["model"]["source"]
    assert recorded == json.loads(json.dumps(gemma.model.neurospec_source))
