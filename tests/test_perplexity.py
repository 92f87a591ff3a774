"""Perplexity and the perplexity matrix against the model's own loss on unpadded single sequences."""

from __future__ import annotations

import copy
import csv
import json
import math

import numpy as np
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


# ------------------------------------------------------------------------------------------------
# intervals: a paired bootstrap over texts


def test_each_text_keeps_its_own_nll_and_tokens():
    model = tiny_llama()
    long = " ".join(TEXTS["eng_Latn"])
    texts = [*TEXTS["fra_Latn"], long]
    result = perplexity(model, tok(), texts, batch_size=2, max_length=9)  # the long text spans several windows
    assert len(result.text_nll) == len(result.text_tokens) == len(texts)
    assert sum(result.text_nll) == pytest.approx(result.nll, rel=1e-12) and sum(result.text_tokens) == result.tokens
    for text, nll, tokens in zip(texts, result.text_nll, result.text_tokens):
        alone = perplexity(model, tok(), [text], max_length=9)
        assert (nll, tokens) == (pytest.approx(alone.nll, rel=1e-6), alone.tokens)
    whole = perplexity(model, tok(), TEXTS["fra_Latn"], batch_size=3)  # one window a text: the model's own loss
    for text, nll, tokens in zip(TEXTS["fra_Latn"], whole.text_nll, whole.text_tokens):
        ppl, count = independent_ppl(model, [text])
        assert tokens == count and nll == pytest.approx(math.log(ppl) * count, rel=1e-5)


def brute_force_changes(matrix, resamples: int, seed: int) -> dict[str, dict[str, list[float]]]:
    """Per row and language, every resample's PPL change, resampling texts one index at a time with the draws a
    generator seeded with ``seed`` makes language after language."""
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, list[float]]] = {row.name: {} for row in matrix.rows}
    for language in matrix.languages:
        n = matrix.cells["none"][language].texts
        picks = torch.randint(0, n, (resamples, n), generator=generator).tolist()
        tokens = matrix.cells["none"][language].text_tokens
        for row in matrix.rows:
            nll, none = matrix.cells[row.name][language].text_nll, matrix.cells["none"][language].text_nll
            out[row.name][language] = [pooled_ppl(nll, tokens, drawn) - pooled_ppl(none, tokens, drawn)
                                       for drawn in picks]
    return out


def pooled_ppl(nll, tokens, drawn) -> float:
    """exp(summed NLL / summed tokens) of the drawn texts (indices, repeats counted)."""
    return math.exp(sum(nll[i] for i in drawn) / sum(tokens[i] for i in drawn))


def test_matrix_intervals_equal_a_brute_force_paired_bootstrap_over_texts():
    model = tiny_llama()
    matrix = perplexity_matrix(model, tok(), TEXTS, neuron_set(model), random_seeds=(0,), bootstrap=300, seed=7)
    intervals = matrix.intervals
    assert (intervals.bootstrap, intervals.seed, intervals.confidence) == (300, 7, 0.95)
    assert intervals.texts == {lang: len(texts) for lang, texts in TEXTS.items()}
    changes = brute_force_changes(matrix, 300, 7)
    for row in matrix.rows:
        for language in TEXTS:
            got = intervals.change["ppl"][row.name][language]
            if row.kind == "none":
                assert got is None
                continue
            assert got == pytest.approx(tuple(np.percentile(changes[row.name][language], [2.5, 97.5])), rel=1e-9)
    entry = matrix.summary()["fra_Latn"]["neurons"]["ppl"]
    own = np.array(changes["fra_Latn"]["fra_Latn"])
    other = (np.array(changes["fra_Latn"]["eng_Latn"]) + np.array(changes["fra_Latn"]["deu_Latn"])) / 2
    assert entry["own_ci"] == pytest.approx(list(intervals.change["ppl"]["fra_Latn"]["fra_Latn"]), rel=1e-12)
    assert entry["mean_other_ci"] == pytest.approx(list(np.percentile(other, [2.5, 97.5])), rel=1e-9)
    assert entry["difference"] == pytest.approx(entry["own"] - entry["mean_other"])
    assert entry["difference_ci"] == pytest.approx(list(np.percentile(own - other, [2.5, 97.5])), rel=1e-9)
    low, high = entry["difference_ci"]
    assert low <= entry["difference"] <= high


def synthetic_matrix(other_rise: float, spread: float, texts: int = 40):
    """A matrix of three languages whose fra_Latn row raises each fra_Latn text's NLL by 1 nat per token and
    every other text's by ``other_rise`` plus noise of size ``spread`` (per token), with 10 tokens a text."""
    from neurospec.evaluate.perplexity import Perplexity, PerplexityMatrix, Row

    generator = torch.Generator().manual_seed(0)
    languages = ["eng_Latn", "fra_Latn", "deu_Latn"]

    def cell(values):
        nll = [10 * float(v) for v in values]
        return Perplexity(sum(nll), 10 * texts, texts, tuple(nll), (10,) * texts)

    base = {lang: 2.0 + torch.rand(texts, generator=generator, dtype=torch.float64) for lang in languages}
    noise = {lang: spread * torch.randn(texts, generator=generator, dtype=torch.float64) for lang in languages}
    rows = [Row("none", "none"), Row("fra_Latn", "group", "fra_Latn", neurons=5)]
    cells = {"none": {lang: cell(base[lang]) for lang in languages},
             "fra_Latn": {lang: cell(base[lang] + (1.0 if lang == "fra_Latn" else other_rise + noise[lang]))
                          for lang in languages}}
    return PerplexityMatrix(rows, languages, cells, Recipe.parse("zero"))


@pytest.mark.parametrize("other_rise,spread,reported,note", [
    (0.1, 0.01, True, None),                # others rise a little, clearly: a ratio means something
    (-0.1, 0.01, False, "not positive"),    # others fall: own / mean other would be negative
    (0.001, 0.2, False, "reaches 0"),       # others' mean change is about 0: the ratio is unbounded
])
def test_the_ratio_is_given_only_where_its_denominator_is_meaningful(other_rise, spread, reported, note):
    from neurospec.evaluate.perplexity import matrix_intervals

    matrix = synthetic_matrix(other_rise, spread)
    matrix.intervals = matrix_intervals(matrix, bootstrap=500)
    entry = matrix.summary()["fra_Latn"]["neurons"]["nll"]
    assert entry["own"] == pytest.approx(1.0) and entry["difference"] == pytest.approx(1.0 - entry["mean_other"])
    low, high = entry["difference_ci"]
    assert low <= entry["difference"] <= high and low > 0.5
    if reported:
        assert entry["selectivity"] == pytest.approx(entry["own"] / entry["mean_other"])
        assert entry["selectivity_ci"][0] <= entry["selectivity"] <= entry["selectivity_ci"][1]
        assert entry["selectivity_note"] is None and entry["mean_other_ci"][0] > 0
    else:
        assert entry["selectivity"] is None and entry["selectivity_ci"] is None and note in entry["selectivity_note"]
    raw = synthetic_matrix(other_rise, spread).summary()["fra_Latn"]["neurons"]["nll"]   # without intervals
    assert raw == {"own": entry["own"], "mean_other": entry["mean_other"],
                   "selectivity": entry["own"] / entry["mean_other"]}


def test_files_with_and_without_intervals_read_back(tmp_path):
    from neurospec.evaluate.perplexity import PerplexityMatrix

    model = tiny_llama()
    matrix = perplexity_matrix(model, tok(), TEXTS, neuron_set(model), bootstrap=100)
    saved = json.loads(matrix.save(tmp_path).read_text())
    assert list(saved)[-1] == "intervals" and saved["intervals"]["method"] == "paired percentile bootstrap over texts"
    again = PerplexityMatrix.from_json(saved, "ppl.json")
    assert again.to_json() == saved and again.intervals.change == matrix.intervals.change
    older = copy.deepcopy(saved)  # as written before intervals: no intervals, the summary's first three keys
    del older["intervals"]
    for entry in older["summary"].values():
        for label, kinds in entry.items():
            if label != "language":
                for kind, values in kinds.items():
                    kinds[kind] = {"own": values["own"], "mean_other": values["mean_other"],
                                   "selectivity": values["own"] / values["mean_other"]}
    assert PerplexityMatrix.from_json(older, "ppl.json").intervals is None
    off = perplexity_matrix(model, tok(), TEXTS, neuron_set(model), bootstrap=0)
    assert off.intervals is None and "intervals" not in off.to_json()
    with pytest.warns(UserWarning, match="fewer than 2 texts"):
        single = perplexity_matrix(model, tok(), {"eng_Latn": TEXTS["eng_Latn"], "fra_Latn": TEXTS["fra_Latn"][:1]},
                                   neuron_set(model))
    assert single.intervals is None
    with pytest.raises(NeurospecError, match="bootstrap must be 0"):
        perplexity_matrix(model, tok(), TEXTS, bootstrap=-1)
