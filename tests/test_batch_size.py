"""--batch-size auto: a number is taken as given; auto is the largest batch that fits, on a CPU estimated from the
model's shape against the free memory (at most 8), remembered per model and shape, and recorded in results."""

from __future__ import annotations

import json

import pytest
from interventions_common import TEXTS, tiny_llama, tok

import neurospec.core.batch_size as batch_sizes
from neurospec.core.batch_size import CPU_LIMIT, batch_size, parse, sequence_bytes
from neurospec.util.errors import NeurospecError


def test_parse():
    assert parse("8") == 8 and parse(3) == 3 and parse(" auto ") is None and parse("AUTO") is None
    for bad in ("lots", "-1", "0", 0, "2.5", True):
        with pytest.raises(NeurospecError, match="--batch-size"):
            parse(bad)


def test_the_estimate_grows_with_length_and_keeps_every_layer_for_backward():
    model = tiny_llama()
    short, long = sequence_bytes(model, 64), sequence_bytes(model, 128)
    assert 2 * short <= long          # linear terms double, attention scores quadruple
    layers = model.config.num_hidden_layers
    assert sequence_bytes(model, 64, backward=True) == short * layers


def test_auto_on_cpu_fits_the_free_memory(monkeypatch):
    model = tiny_llama()
    per_sequence = sequence_bytes(model, 100)
    monkeypatch.setattr(batch_sizes, "available_memory", lambda: 10**12)
    assert batch_size(model, "auto", tokens=100) == CPU_LIMIT                 # room for more: the CPU limit
    fresh = tiny_llama()
    monkeypatch.setattr(batch_sizes, "available_memory", lambda: int(per_sequence * 3 / batch_sizes.CPU_SHARE))
    assert batch_size(fresh, "auto", tokens=100) == 3                         # a quarter of the memory holds 3
    monkeypatch.setattr(batch_sizes, "available_memory", lambda: 1)
    assert batch_size(fresh, "auto", tokens=100) == 3                         # remembered per model and shape
    assert batch_size(fresh, "auto", tokens=101) == 1                         # at least one
    assert batch_size(fresh, "5", tokens=100) == 5                            # a number is taken as it is


def test_ppl_with_auto_gives_the_numbers_of_batch_8_and_records_what_it_chose(tmp_path, monkeypatch):
    from neurospec.verbs.evaluate import PplOptions, ppl

    model_dir = tmp_path / "model"
    tiny_llama().save_pretrained(model_dir)
    tok().save_pretrained(model_dir)
    corpus = tmp_path / "en.txt"
    corpus.write_text("\n".join(TEXTS["eng_Latn"]) + "\n", encoding="utf-8")
    monkeypatch.setattr(batch_sizes, "available_memory", lambda: 10**12)
    auto = ppl(PplOptions(model=str(model_dir), corpus=[f"en={corpus}"], out=tmp_path / "auto", quiet=True))
    fixed = ppl(PplOptions(model=str(model_dir), corpus=[f"en={corpus}"], out=tmp_path / "eight", batch_size=8,
                           quiet=True))
    assert auto.to_json()["cells"] == fixed.to_json()["cells"]
    record = json.loads((tmp_path / "auto" / "ppl.json").read_text())["provenance"]["options"]
    assert record["batch_size"] == "auto" and record["batch_size_used"] == CPU_LIMIT
    with pytest.raises(NeurospecError, match="--batch-size 'many'"):
        PplOptions(model=str(model_dir), out=tmp_path / "x", batch_size="many")
