"""Sweeps: the grid, one LSS matrix per setting, and the choice by mean off-diagonal LSS."""

from __future__ import annotations

import json

import pytest
from interventions_common import TEXTS, neuron_set, sentence_stats, tiny_llama, tok

from neurospec.data.lss_items import items_from_parallel
from neurospec.evaluate.intervals import wilson
from neurospec.evaluate.lss import lss_matrix
from neurospec.evaluate.sweep import recipe_grid, sweep
from neurospec.util.errors import NeurospecError


def test_grid_order_and_names():
    names = [r.name for r in recipe_grid(values=["p_max", "p_median"], factors=[1, 2], positions=["all", "prompt"])]
    assert names == ["set:p_max", "set:p_max@prompt", "set:p_max*2", "set:p_max*2@prompt",
                     "set:p_median", "set:p_median@prompt", "set:p_median*2", "set:p_median*2@prompt"]


def test_sweep_picks_the_highest_mean_lss_and_saves_every_setting(tmp_path):
    model = tiny_llama()
    neurons = neuron_set(model, per_group=20)
    stats = sentence_stats(model, tmp_path)
    n = min(len(t) for t in TEXTS.values())
    items = items_from_parallel({lang: list(enumerate(lines))[:n] for lang, lines in TEXTS.items()})
    result = sweep(model, tok(), items, neurons, ["scale*1", "set:p_max*20", "scale*1@prompt"], stats=stats,
                   bootstrap=100)
    means = [m.mean_offdiagonal for m in result.matrices]
    assert means[0] == 0.0 and means[2] == 0.0  # multiplying by 1 changes nothing
    direct = lss_matrix(model, tok(), items, neurons, recipe="set:p_max*20", stats=stats, bootstrap=100)
    assert means[1] == direct.mean_offdiagonal
    assert result.best.name == ("set:p_max*20" if means[1] > 0 else "scale*1")
    result.save(tmp_path / "sweep")
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [c["mean_lss"] for c in saved["curve"]] == means
    for c in saved["curve"]:
        setting = json.loads((tmp_path / "sweep" / c["folder"] / "lss.json").read_text())
        assert c["pooled_lss"] == setting["pooled"]["lss"] and c["pooled_lss_ci95"] == setting["pooled"]["ci95"]
    # nothing shifted: a Wilson interval over the distinct items, not a bootstrap's collapsed [0, 0]
    assert saved["curve"][0]["pooled_lss"] == 0.0 and saved["curve"][0]["pooled_lss_ci95"] == list(wilson(0, n))
    assert saved["settings"]["interval_method"] == "wilson over distinct items"
    with pytest.raises(NeurospecError, match="pass stats="):
        sweep(model, tok(), items, neurons, ["set:p_max"])
