"""Model loading options: dtype defaults, device_map, clear errors."""

from __future__ import annotations

import pytest
import torch
from families import family

from neurospec.core.models import load_model, parse_dtype
from neurospec.util.errors import NeurospecError


def test_dtype_defaults():
    assert parse_dtype("auto", on_cpu=True) is torch.float32  # bf16 is many times slower on CPU
    assert parse_dtype("auto", on_cpu=False) == "auto"        # the checkpoint's dtype on accelerators
    assert parse_dtype("bf16", on_cpu=True) is torch.bfloat16
    with pytest.raises(NeurospecError, match="unknown dtype 'fp8'"):
        parse_dtype("fp8", on_cpu=True)


def test_device_map_load_resolves_sites(tmp_path):
    model = family("llama").build()
    model.save_pretrained(tmp_path / "m")
    lm = load_model(tmp_path / "m", device_map="auto", tokenizer=False)
    assert next(lm.model.parameters()).dtype is torch.float32
    assert all(p.device.type == "cpu" for p in lm.model.parameters())
    assert lm.sites.width("act") == family("llama").widths(model)["act"]
    with pytest.raises(NeurospecError, match="model folder .*missing' does not exist"):
        load_model(tmp_path / "missing", tokenizer=False)
