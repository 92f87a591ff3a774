"""Self- vs cross-language downstream tables: cells equal the task under each target's edit."""

from __future__ import annotations

import json

import pytest
from interventions_common import neuron_set, tiny_llama, tok

from neurospec.evaluate.downstream import self_cross
from neurospec.evaluate.tasks import get_task
from neurospec.interventions.recipes import Recipe
from neurospec.util.errors import NeurospecError


def test_cells_changes_and_self_cross_summary(tmp_path):
    model = tiny_llama()
    neurons = neuron_set(model, per_group=30).rename({"eng_Latn": "ita_Latn", "deu_Latn": "est_Latn"})
    recipe = Recipe.parse("scale*3")
    table = self_cross(model, tok(), "xcopa", ["it", "et"], neurons, recipe=recipe, limit=6, batch_size=4)
    assert table.rows == ["none", "ita_Latn", "est_Latn"] and table.languages == ["ita_Latn", "est_Latn"]
    xcopa = get_task("xcopa")
    direct = xcopa.evaluate(model, tok(), "et", intervention=recipe.edit(neurons, "ita_Latn"), limit=6)
    assert table.cells["ita_Latn"]["est_Latn"].score == direct.score
    change = table.change()
    base = table.cells["none"]
    assert change["est_Latn"]["ita_Latn"] == table.cells["est_Latn"]["ita_Latn"].score - base["ita_Latn"].score
    summary = table.summary()
    assert summary["self_mean"] == pytest.approx((change["ita_Latn"]["ita_Latn"] + change["est_Latn"]["est_Latn"]) / 2)
    assert summary["cross_mean"] == pytest.approx((change["ita_Latn"]["est_Latn"] + change["est_Latn"]["ita_Latn"]) / 2)
    table.save(tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "xcopa.json").read_text())
    assert saved["cells"]["none"]["ita_Latn"]["n"] == 6
    with pytest.raises(NeurospecError, match="none of the neuron set's groups"):
        self_cross(model, tok(), "xcopa", ["sw"], neurons, recipe=recipe, limit=2)
