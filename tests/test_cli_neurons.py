"""``neurospec neurons show / import / export``: output, exit codes, no partial files.

    python -m pytest -q tests/test_cli_neurons.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.data.locate import mirror_root
from neurospec.neurons.neuron_set import NeuronSet

LAPE_DIR = mirror_root() / "lape_reference"
LANGS = "en,zh,fr,es,vi,id,ja"
LLAMA2_COUNTS = {"en": 95, "zh": 583, "fr": 1022, "es": 838, "vi": 836, "id": 1068, "ja": 582}

runner = CliRunner()


def reference_file(name: str) -> Path:
    path = LAPE_DIR / f"{name}.neuron.pth"
    if not path.is_file():
        pytest.skip(f"LAPE reference file {path} is absent (expected in the data mirror, NEUROSPEC_DATA)")
    return path


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *words: str) -> None:
    """Exit code 2, one red line on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture(scope="module")
def llama_like_config(tmp_path_factory) -> Path:
    """A local model folder with LLaMA-2-7B's shape (32 layers, FFN 11008) and nothing else: config only."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("llama2-shaped")
    transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=2, num_key_value_heads=2,
    ).save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------------------------
# show


def test_show_lape_file_json_counts():
    result = run("neurons", "show", reference_file("LLaMA-2-7B"), "--groups", LANGS, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {g: v["count"] for g, v in summary["groups"].items()} == LLAMA2_COUNTS
    assert summary["unique_total"] == 3523 and summary["num_layers"] == 32
    raw = torch.load(reference_file("LLaMA-2-7B"), weights_only=True)
    for i, group in enumerate(LLAMA2_COUNTS):
        per_layer = summary["groups"][group]["sites"]["act"]["per_layer"]
        assert per_layer == [t.numel() for t in raw[i]]


def test_show_tables_and_histogram(tmp_path):
    NeuronSet.from_lape(reference_file("LLaMA-2-7B"), LANGS.split(",")).save(tmp_path / "lape.json")
    result = run("neurons", "show", tmp_path / "lape.json")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for group, count in LLAMA2_COUNTS.items():
        assert any(line.split("│")[1:2] == [f" {group:<20} "] and f" {count} " in line for line in lines), group
    assert any("distinct, all groups" in line and "3523" in line for line in lines)
    # histogram: a header row, then one row per layer: layer number, 7 group counts, their sum, a bar
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["layer"])
    assert lines[header].split()[1:9] == LANGS.split(",") + ["sum"]
    rows = [line.split() for line in lines[header + 1 : header + 33]]
    assert [int(row[0]) for row in rows] == list(range(32))
    raw = torch.load(reference_file("LLaMA-2-7B"), weights_only=True)
    for layer, row in enumerate(rows):
        expected = [raw[i][layer].numel() for i in range(7)]
        assert [int(c) if c != "." else 0 for c in row[1:8]] == expected
        assert int(row[8]) == sum(expected)
        assert (len(row) == 10 and set(row[9]) <= set("█▏")) == (sum(expected) > 0)


def test_show_lape_file_without_groups_is_a_clear_error():
    assert_user_error(run("neurons", "show", reference_file("BLOOM-7B")), "--groups")


def test_show_broken_json_is_a_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text('{"format": "neurospec.neuronset", "version": 7, "meta": {}, "groups": {}}')
    assert_user_error(run("neurons", "show", tmp_path / "bad.json"), "bad.json", "version 7")


# --------------------------------------------------------------------------------------------
# import


def test_import_without_model_then_export_round_trips(tmp_path):
    out = tmp_path / "mistral.json"
    result = run("neurons", "import", reference_file("Mistral-7B"), "--groups", LANGS, "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "4588 distinct" in result.stdout
    neurons = NeuronSet.load(out)
    assert neurons.groups == tuple(LANGS.split(",")) and neurons.num_layers == 32
    assert neurons.meta.widths == {} and neurons.is_empty("ja")

    back = tmp_path / "back.pth"
    result = run("neurons", "export", out, "--format", "lape-pth", "--out", back)
    assert result.exit_code == 0, result.output
    raw = torch.load(reference_file("Mistral-7B"), weights_only=True)
    got = torch.load(back, weights_only=True)
    assert len(got) == len(raw) == 6
    assert all(torch.equal(a, b) and a.dtype == b.dtype for la, lb in zip(got, raw) for a, b in zip(la, lb))


def test_import_with_model_records_and_checks_the_shape(tmp_path, llama_like_config):
    out = tmp_path / "llama.json"
    result = run("neurons", "import", reference_file("LLaMA-2-7B"), "--groups", LANGS, "--model", llama_like_config, "--out", out)
    assert result.exit_code == 0, result.output
    neurons = NeuronSet.load(out)
    assert neurons.meta.widths == {"act": 11008} and neurons.meta.model_id == str(llama_like_config)
    assert {g: neurons.count(g) for g in neurons.groups} == LLAMA2_COUNTS


def test_import_for_another_model_fails_without_writing(tmp_path, llama_like_config):
    out = tmp_path / "wrong.json"
    result = run("neurons", "import", reference_file("Mistral-7B"), "--groups", LANGS, "--model", llama_like_config, "--out", out)
    assert_user_error(result, "does not exist", "11008", "another model", "Mistral-7B.neuron.pth'")
    assert "Mistral-7B.neuron.pth' (model" not in result.stderr  # the file is not said to be made for that model
    result = run("neurons", "import", reference_file("BLOOM-7B"), "--groups", LANGS, "--model", llama_like_config, "--out", out)
    assert_user_error(result, "30 layers", "32 layers", "another model")
    assert list(tmp_path.iterdir()) == []


def test_import_with_too_few_group_names(tmp_path):
    out = tmp_path / "x.json"
    result = run("neurons", "import", reference_file("LLaMA-2-7B"), "--groups", "en,zh", "--out", out)
    assert_user_error(result, "7 language lists", "2 group names")
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# export


def test_export_selected_groups_and_refusals(tmp_path):
    NeuronSet({"a": {"act": {0: [1]}, "q": {1: [2]}}, "b": {"act": {1: [4, 3]}}}, num_layers=2).save(tmp_path / "s.json")
    out = tmp_path / "s.pth"
    assert_user_error(run("neurons", "export", tmp_path / "s.json", "--format", "lape-pth", "--out", out), "one site")
    assert not out.exists()
    result = run("neurons", "export", tmp_path / "s.json", "--format", "lape-pth", "--site", "act", "--groups", "b,a",
                 "--out", out)
    assert result.exit_code == 0, result.output
    got = torch.load(out, weights_only=True)
    assert [[t.tolist() for t in lang] for lang in got] == [[[], [3, 4]], [[1], []]]
    assert_user_error(run("neurons", "export", tmp_path / "s.json", "--format", "lape-pth", "--groups", "c",
                          "--out", tmp_path / "c.pth"), "unknown group 'c'", "'a', 'b'")
    assert not (tmp_path / "c.pth").exists()


def test_export_needs_a_json_neuron_file(tmp_path):
    result = run("neurons", "export", reference_file("BLOOM-7B"), "--format", "lape-pth", "--out", tmp_path / "x.pth")
    assert_user_error(result, "not JSON", "neurons import")
    assert list(tmp_path.iterdir()) == []


def test_help_and_version():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith("neurospec ")
    result = run("neurons", "--help")
    assert result.exit_code == 0 and all(verb in result.stdout for verb in ("show", "import", "export"))
