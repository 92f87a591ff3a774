"""Perplexity and the perplexity matrix against the model's own loss on unpadded single sequences."""

from __future__ import annotations

import copy
import csv
import json
import math

import pytest
import torch
from interventions_common import TEXTS, neuron_set, tiny_llama, tok

from neurospec.core.edits import Edit
from neurospec.evaluate.perplexity import perplexity, perplexity_matrix
from neurospec.interventions.recipes import Recipe
from neurospec.util.errors import NeurospecError


def independent_ppl(model, texts, bos=True) -> tuple[float, int]:
    """exp(mean token NLL) from the model's own loss, one text at a time, no padding."""
    t = tok()
    total, count = 0.0, 0
    for text in texts:
        ids = ([t.bos_token_id] if bos else []) + t(text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([ids])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss
        total += float(loss) * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    return math.exp(total / count), count


def zeroed_copy(model, neurons: dict[int, list[int]]):
    """The model with the down-projection columns of the given act neurons zeroed (same as zeroing act)."""
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for layer, idx in neurons.items():
            clone.model.layers[layer].mlp.down_proj.weight[:, idx] = 0
    return clone


@pytest.mark.parametrize("batch_size", [1, 3])
def test_perplexity_equals_the_models_own_loss_on_single_sequences(batch_size):
    model = tiny_llama()
    texts = TEXTS["eng_Latn"] + TEXTS["fra_Latn"]  # unequal lengths: padded batches
    expected, count = independent_ppl(model, texts)
    result = perplexity(model, tok(), texts, batch_size=batch_size)
    assert result.tokens == count
    assert result.ppl == pytest.approx(expected, rel=1e-5)


def test_perplexity_under_an_intervention_equals_the_zeroed_model():
    model = tiny_llama()
    chosen = {0: [1, 5, 9], 1: [2, 3]}
    with torch.no_grad():  # make the chosen neurons matter in a random model
        for layer, idx in chosen.items():
            model.model.layers[layer].mlp.down_proj.weight[:, idx] *= 200
    edit = Edit.zero({"act": {layer: torch.tensor(idx) for layer, idx in chosen.items()}})
    expected, _ = independent_ppl(zeroed_copy(model, chosen), TEXTS["deu_Latn"])
    plain, _ = independent_ppl(model, TEXTS["deu_Latn"])
    result = perplexity(model, tok(), TEXTS["deu_Latn"], intervention=edit, batch_size=2)
    assert result.ppl == pytest.approx(expected, rel=1e-5)
    assert abs(result.ppl - plain) > 0.01 * plain  # the edit did something


def test_without_bos_the_first_token_is_not_scored_and_long_texts_are_windowed():
    model = tiny_llama()
    expected, count = independent_ppl(model, TEXTS["eng_Latn"], bos=False)
    result = perplexity(model, tok(), TEXTS["eng_Latn"], bos="never")
    assert (result.tokens, result.ppl) == (count, pytest.approx(expected, rel=1e-5))
    long = " ".join(TEXTS["eng_Latn"])
    n = len(tok()(long, add_special_tokens=False)["input_ids"])
    windowed = perplexity(model, tok(), [long], max_length=9)  # BOS + 8 tokens per window
    assert windowed.tokens == n


def test_matrix_rows_columns_changes_and_files(tmp_path):
    model = tiny_llama()
    neurons = neuron_set(model)
    matrix = perplexity_matrix(model, tok(), TEXTS, neurons, random_seeds=(0,), batch_size=4)
    names = [row.name for row in matrix.rows]
    assert names == ["none", *TEXTS, *(f"random0:{g}" for g in TEXTS)]
    fr_edit = Recipe.zero().edit(neurons, "fra_Latn")
    direct = perplexity(model, tok(), TEXTS["deu_Latn"], intervention=fr_edit)
    assert matrix.cells["fra_Latn"]["deu_Latn"].ppl == pytest.approx(direct.ppl, rel=1e-6)
    base = perplexity(model, tok(), TEXTS["deu_Latn"]).ppl
    assert matrix.change()["fra_Latn"]["deu_Latn"] == pytest.approx(direct.ppl - base, rel=1e-5, abs=1e-9)
    summary = matrix.summary()["fra_Latn"]
    changes = matrix.change()["fra_Latn"]
    others = [changes["eng_Latn"], changes["deu_Latn"]]
    assert summary["neurons"]["ppl"]["mean_other"] == pytest.approx(sum(others) / 2)
    assert "random0:fra_Latn" in summary
    matrix.save(tmp_path)
    saved = json.loads((tmp_path / "ppl.json").read_text())
    with open(tmp_path / "ppl.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["row", *TEXTS]
    for row in rows[1:]:
        for lang, value in zip(rows[0][1:], row[1:]):
            assert float(value) == pytest.approx(saved["cells"][row[0]][lang]["ppl"], rel=1e-5)


def test_bad_inputs_are_refused():
    model = tiny_llama()
    with pytest.raises(NeurospecError, match="text 1 is empty"):
        perplexity(model, tok(), ["fine", "  "])
    with pytest.raises(NeurospecError, match="no texts"):
        perplexity(model, tok(), [])
    with pytest.raises(NeurospecError, match="no group 'Klingon'"):
        perplexity_matrix(model, tok(), TEXTS, neuron_set(model), groups=["Klingon"])
    other = tiny_llama()
    other.config.intermediate_size += 1  # shape check reads the config
    from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
    wrong = NeuronSet({"fra_Latn": {"act": {0: [1]}}}, NeuronSetMeta(num_layers=7, widths={"act": 5}))
    with pytest.raises(NeurospecError, match="layer|width|7"):
        perplexity_matrix(model, tok(), TEXTS, wrong)


def test_a_row_that_changes_no_other_language_saves_with_an_undefined_selectivity(tmp_path):
    """Neurons that only matter to their own language leave the other columns unchanged: the ratio has no
    value, and ppl.json (which refuses infinities) must still be written."""
    from neurospec.evaluate.perplexity import Perplexity, PerplexityMatrix, Row

    def cell(nll: float) -> Perplexity:
        return Perplexity(nll=nll * 10, tokens=10, texts=2)

    rows = [Row("none", "none"), Row("eng_Latn", "group", "eng_Latn", neurons=3)]
    cells = {"none": {"eng_Latn": cell(2.0), "fra_Latn": cell(3.0)},
             "eng_Latn": {"eng_Latn": cell(2.5), "fra_Latn": cell(3.0)}}
    matrix = PerplexityMatrix(rows, ["eng_Latn", "fra_Latn"], cells, Recipe.parse("zero"))
    saved = json.loads(matrix.save(tmp_path).read_text())
    entry = saved["summary"]["eng_Latn"]["neurons"]["nll"]
    assert entry["own"] == pytest.approx(0.5) and entry["mean_other"] == 0 and entry["selectivity"] is None
