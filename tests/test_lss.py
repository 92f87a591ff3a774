"""Language Steering Shift: known-answer cases, paired controls, the parallel cut and the item files."""

from __future__ import annotations

import json

import pytest
import torch
from interventions_common import TEXTS, neuron_set, sentence_stats, tiny_llama, tok

from neurospec.core.edits import Edit
from neurospec.data.lss_items import ParallelItem, cut_sentence, items_from_parallel, load_lss_items, parallel_sentences
from neurospec.evaluate.intervals import newcombe_paired, wilson, wilson_share
from neurospec.evaluate.lss import lss_matrix, steering_shift
from neurospec.evaluate.scoring import score_continuations
from neurospec.interventions.recipes import Recipe
from neurospec.select import select_random
from neurospec.util.errors import NeurospecError

PROMPTS = {"eng_Latn": ["The cat sat on the", "Which city is the", "She went to the market and", "The man broke his"],
           "fra_Latn": ["Le chat dort sur le", "Elle est allée au", "Le marché ouvre", "Les trains partent"]}


def letter_items() -> list[ParallelItem]:
    """Every English answer is " B", every French one " A": single, distinct tokens."""
    return [ParallelItem(str(i), {"eng_Latn": en, "fra_Latn": fr}, {"eng_Latn": " B", "fra_Latn": " A"})
            for i, (en, fr) in enumerate(zip(PROMPTS["eng_Latn"], PROMPTS["fra_Latn"]))]


def token(text: str) -> int:
    ids = tok()(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1
    return ids[0]


def steerable_model():
    """A tiny Llama where down_in neuron 0 of the last layer writes toward " A" and away from " B", and
    down_in neuron 1 writes nothing (its down-projection column is zero)."""
    model = tiny_llama()
    a, b = token(" A"), token(" B")
    with torch.no_grad():
        head = model.lm_head.weight
        head[a] = 0
        head[b] = 0
        head[a, 0], head[b, 0] = 5.0, -5.0
        down = model.model.layers[-1].mlp.down_proj.weight
        down[:, 0] = 0
        down[0, 0] = 1.0
        down[:, 1] = 0
    return model


def test_an_intervention_that_raises_the_target_answer_shifts_every_item():
    model = steerable_model()
    push = Edit.set({"down_in": {1: torch.tensor([0])}}, 1000.0)
    cell = steering_shift(model, tok(), letter_items(), "eng_Latn", "fra_Latn", intervention=push, bootstrap=200)
    assert cell.n == 4 and cell.excluded == 0
    z = 1.959963984540054
    assert cell.lss == 1.0 and cell.ci95 == pytest.approx((4 / (4 + z * z), 1.0))  # Wilson at 4 of 4: no collapse
    # D0 and DI equal an independent scoring of the two answers
    t = tok()
    prompts = PROMPTS["eng_Latn"]
    for edit, values in ((None, cell.d0), (push, cell.di)):
        to_t = score_continuations(model, t, prompts, [" A"] * 4, intervention=edit)
        to_s = score_continuations(model, t, prompts, [" B"] * 4, intervention=edit)
        assert values.tolist() == pytest.approx([x.logprob - y.logprob for x, y in zip(to_t, to_s)], abs=1e-5)


def test_an_intervention_that_cannot_change_the_answer_shifts_nothing():
    model = steerable_model()
    inert = Edit.set({"down_in": {1: torch.tensor([1])}}, 1000.0)  # its down-projection column is zero
    cell = steering_shift(model, tok(), letter_items(), "eng_Latn", "fra_Latn", intervention=inert, bootstrap=200)
    assert torch.equal(cell.di, cell.d0)
    assert cell.lss == 0.0


def test_identical_answers_are_excluded_and_counted():
    items = letter_items() + [ParallelItem("same", {"eng_Latn": "In the year"}, {"eng_Latn": " 2019", "fra_Latn": " 2019"})]
    cell = steering_shift(tiny_llama(), tok(), items, "eng_Latn", "fra_Latn",
                          intervention=Edit.scale({"act": {0: torch.tensor([0])}}, 2.0), bootstrap=100)
    assert (cell.n, cell.excluded) == (4, 1)
    with pytest.raises(NeurospecError, match="no usable item"):
        steering_shift(tiny_llama(), tok(), items[-1:], "eng_Latn", "fra_Latn", intervention=None)


def parallel_items():
    sentences = {lang: list(enumerate(lines)) for lang, lines in TEXTS.items()}
    n = min(len(v) for v in sentences.values())
    return items_from_parallel({lang: rows[:n] for lang, rows in sentences.items()})


def test_matrix_cells_and_paired_random_control_equal_direct_computations(tmp_path):
    model = tiny_llama()
    neurons = neuron_set(model)
    stats = sentence_stats(model, tmp_path)
    items = parallel_items()
    matrix = lss_matrix(model, tok(), items, neurons, recipe="set:p_max*5", stats=stats, controls=("random", "other"),
                        random_seeds=(3,), bootstrap=200)
    assert set(matrix.cells) == {(s, t) for s in TEXTS for t in TEXTS if s != t}
    recipe = Recipe.parse("set:p_max*5")
    cell = matrix.cells[("eng_Latn", "fra_Latn")]
    direct = steering_shift(model, tok(), items, "eng_Latn", "fra_Latn", intervention=recipe.edit(neurons, "fra_Latn", stats))
    assert torch.allclose(cell.di, direct.di) and cell.lss == direct.lss
    control = select_random(neurons, seed=3)
    rand = steering_shift(model, tok(), items, "eng_Latn", "fra_Latn", intervention=recipe.edit(control, "fra_Latn", stats))
    info = cell.controls["random"]
    assert info["lss"] == rand.lss
    assert info["margin"] == pytest.approx(cell.lss - rand.lss)
    other = cell.controls["other"]
    assert other["group"] == "deu_Latn"  # the next group that is neither source nor target
    matrix.save(tmp_path / "lss")
    saved = json.loads((tmp_path / "lss" / "lss.json").read_text())
    assert saved["lss"]["eng_Latn"]["fra_Latn"] == cell.lss
    assert (tmp_path / "lss" / "lss_margin_random.csv").exists()
    # pooled: a recount over every saved cell's items
    shifted, margins = [], []
    for entry in saved["cells"]:
        ours = [di - d0 > 0 for d0, di in zip(entry["d0"], entry["di"])]
        theirs = [di - d0 > 0 for d0, di in zip(entry["d0"], entry["controls"]["random"]["di"])]
        shifted += ours
        margins += [float(a) - float(b) for a, b in zip(ours, theirs)]
    pooled = saved["pooled"]
    assert pooled["n"] == len(shifted) and pooled["items"] == len(items)
    assert pooled["lss"] == pytest.approx(sum(shifted) / len(shifted))
    assert pooled["controls"]["random"]["margin"] == pytest.approx(sum(margins) / len(margins))
    low, high = pooled["controls"]["random"]["margin_ci95"]
    assert low <= pooled["controls"]["random"]["margin"] <= high


def test_intervals_are_wilson_for_shares_newcombe_for_margins_and_named(tmp_path):
    """Shares of items get Wilson intervals, a cell's margin over a control Newcombe's paired interval, the pooled
    LSS a Wilson interval over the distinct items; lss.json names each method."""
    model = tiny_llama()
    items = parallel_items()
    matrix = lss_matrix(model, tok(), items, neuron_set(model), recipe="set:p_max*5", stats=sentence_stats(model, tmp_path),
                        controls=("random",), bootstrap=200)
    for cell in matrix.cells.values():
        ours = [float(di - d0 > 0) for d0, di in zip(cell.d0.tolist(), cell.di.tolist())]
        assert cell.ci95 == wilson(int(sum(ours)), len(ours))
        control = cell.control_records["random"]
        theirs = [float(di - d0 > 0) for d0, di in zip(cell.d0.tolist(), control.di)]
        assert control.ci95 == wilson(int(sum(theirs)), len(theirs))
        assert control.margin_ci95 == newcombe_paired(ours, theirs)
        assert control.margin_ci95[0] < control.margin_ci95[1]   # a width even where every item agrees
    pooled = matrix.pooled_record()
    assert pooled.items == len(items) < pooled.n
    assert pooled.ci95 == wilson_share(pooled.lss, len(items))  # conservative: an item's cells count once
    saved = json.loads(matrix.save(tmp_path / "lss").read_text())
    assert saved["interval_method"] == {"lss": "wilson", "margin": "newcombe paired score",
                                        "pooled_lss": "wilson over distinct items",
                                        "pooled_margin": "clustered percentile bootstrap over items"}


def test_the_cut_of_a_parallel_sentence():
    assert cut_sentence("Le chat dort sur le tapis.", "fr") == ("Le chat dort sur le ", "tapis")
    assert cut_sentence("Le chat dort.", "fr", answer_words=2) == ("Le ", "chat dort")
    assert cut_sentence("猫はマットの上で寝ている。", "ja") == ("猫はマットの上で寝て", "いる")
    assert cut_sentence("Bonjour !", "fr") is None
    items = items_from_parallel({"en": [(0, "One two three."), (1, "Hi.")], "fr": [(0, "Un deux trois."), (1, "Salut.")],
                                 "de": [(0, "Eins zwei drei."), (2, "Hallo.")]})
    assert [item.id for item in items] == ["0"]
    assert items[0].answers == {"eng_Latn": "three", "fra_Latn": "trois", "deu_Latn": "drei"}
    real = items_from_parallel(parallel_sentences("ntrex", ["en", "zh", "th"]), limit=5)
    assert len(real) == 5 and all(len(item.languages) == 3 for item in real)


def test_lss_item_files(tmp_path):
    path = tmp_path / "mlama.jsonl"
    rows = [
        {"id": "a", "prompt": {"en": "Dante was born in", "fr": "Dante est né à"},
         "answer": {"en": "Florence", "fr": "Florence"}},
        {"id": "b", "template": {"en": "[X] was born in [Y].", "de": "[X] wurde in [Y] geboren."},
         "subject": {"en": "Goethe", "de": "Goethe"}, "answer": {"en": "Frankfurt", "de": "Frankfurt am Main"}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    items = load_lss_items(path)
    assert items[1].prompts == {"eng_Latn": "Goethe was born in ", "deu_Latn": "Goethe wurde in "}
    assert items[0].answers["fra_Latn"] == "Florence"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "answer": {"en": "x"}}\n', encoding="utf-8")
    with pytest.raises(NeurospecError, match="bad.jsonl, line 1: an item needs"):
        load_lss_items(bad)
    bad.write_text('{"prompt": {"xx-nowhere": "a"}, "answer": {"en": "x"}}\n', encoding="utf-8")
    with pytest.raises(NeurospecError, match="line 1"):
        load_lss_items(bad)
    with pytest.raises(NeurospecError, match="does not exist"):
        load_lss_items(tmp_path / "missing.jsonl")


def test_a_target_missing_from_the_statistics_or_the_items_is_refused(tmp_path):
    model = tiny_llama()
    neurons = neuron_set(model)
    stats = sentence_stats(model, tmp_path)
    with pytest.raises(NeurospecError, match="not in the items"):
        lss_matrix(model, tok(), parallel_items(), neurons, stats=stats, targets=["jpn_Jpan"])
    with pytest.raises(NeurospecError, match="pass stats="):
        lss_matrix(model, tok(), parallel_items(), neurons, recipe="set:p_max")
    renamed = neurons.rename({"deu_Latn": "spa_Latn"})
    items = [ParallelItem(i.id, {**i.prompts, "spa_Latn": i.prompts["deu_Latn"]},
                          {**i.answers, "spa_Latn": i.answers["deu_Latn"]})
             for i in parallel_items()]
    with pytest.raises(NeurospecError, match="spa"):
        lss_matrix(model, tok(), items, renamed, stats=stats, targets=["spa_Latn"], sources=["eng_Latn"])
