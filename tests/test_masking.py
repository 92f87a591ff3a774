"""Masking evaluation: the hook edits equal edited weights, and every table equals a recount of the predictions."""

from __future__ import annotations

import copy
import csv
import json

import pytest
import torch
from interventions_common import tiny_llama, tok

from neurospec.data.items import MCItem
from neurospec.evaluate.masking import mask_eval, masking_conditions, random_group
from neurospec.evaluate.scoring import choose_by_letter, lettered_prompt
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.select.culture import select_random_pooled
from neurospec.util.errors import NeurospecError

QUESTIONS = [
    ("Which city is the capital of France?", ("Paris", "Rome", "Berlin", "Madrid")),
    ("The cat sat on the mat because", ("it was warm", "it was cold")),
    ("She went to the market and bought", ("bread", "a car", "trains")),
    ("Trains leave", ("every hour", "never", "at noon", "soon")),
    ("The man broke his toe.", ("yes", "no")),
    ("Le chat dort sur le tapis parce qu'il fait", ("chaud", "froid", "beau")),
]
ITEMS = [MCItem(q, opts, (k * 7) % len(opts), ["France", "Spain", "UK"][k % 3], f"i{k}")
         for k, (q, opts) in enumerate(QUESTIONS * 3)]
NLU = [MCItem(f"Is sentence {k} about trains?", ("yes", "no"), k % 2, "qnli", f"n{k}") for k in range(8)]


def short_prompt(item):
    return item.question + "\n" + " ".join(f"{letter}) {o}" for letter, o in zip("ABCD", item.options)) + "\nAnswer:"


def neurons(model, per_group=40):
    width = model.config.intermediate_size
    gen = torch.Generator().manual_seed(7)
    data = {}
    for name in ("France", "Spain"):
        data[name] = {"gate_pre": {layer: torch.randperm(width, generator=gen)[:per_group]
                                   for layer in range(model.config.num_hidden_layers)}}
    return NeuronSet(data, NeuronSetMeta(num_layers=model.config.num_hidden_layers, widths={"gate_pre": width}))


def with_gate_rows(model, chosen: NeuronSet, group: str, factor: float):
    edited = copy.deepcopy(model)
    for _, _site, layer, idx in chosen.entries([group]):
        with torch.no_grad():
            edited.model.layers[layer].mlp.gate_proj.weight[idx] *= factor
    return edited


@pytest.mark.parametrize("mode,factor", [("suppress", 0.0), ("enhance", 2.0)])
def test_hook_edits_equal_edited_gate_rows(mode, factor):
    model, tokenizer = tiny_llama(), tok()
    chosen = neurons(model)
    conditions = masking_conditions(chosen, ["France"], mode=mode)
    result = mask_eval(model, tokenizer, {"items": ITEMS}, conditions, templates=[lettered_prompt, short_prompt],
                       batch_size=4, quiet=True)
    edited = with_gate_rows(model, chosen, "France", factor)
    for t, template in enumerate([lettered_prompt, short_prompt]):
        hooked = choose_by_letter(model, tokenizer, ITEMS, prompt=template, intervention=conditions["France"])
        direct = choose_by_letter(edited, tokenizer, ITEMS, prompt=template)
        for a, b in zip(hooked, direct):
            assert a.scores == pytest.approx(b.scores, rel=1e-4, abs=1e-7)
        assert result.correct["France"]["items"][t].tolist() == [p.correct_vocab for p in direct]
        assert result.by_rule["letters_only"]["France"]["items"][t].tolist() == [p.correct for p in direct]
        plain = choose_by_letter(model, tokenizer, ITEMS, prompt=template)
        assert result.correct["none"]["items"][t].tolist() == [p.correct_vocab for p in plain]
    # the edit changed the model's letter probabilities
    assert any(a.scores != b.scores for a, b in zip(choose_by_letter(model, tokenizer, ITEMS),
                                                     choose_by_letter(edited, tokenizer, ITEMS)))


def _with_logit_bonus(model, token_id: int, bonus: float = 1e4):
    """A hook on the output head that makes ``token_id`` the argmax over the whole vocabulary everywhere."""
    extra = torch.zeros(model.config.vocab_size)
    extra[token_id] = bonus
    return model.lm_head.register_forward_hook(lambda module, args, output: output + extra.to(output.dtype))


def _by_hand(model, tokenizer, items, template) -> list[tuple[str, int]]:
    """(decoded full-vocabulary argmax, argmax over the option letters' tokens) per item, one at a time."""
    out = []
    with torch.no_grad():
        for item in items:
            prompt = template(item)
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
            logits = model(input_ids=ids).logits[0, -1]
            letter_ids = [tokenizer(prompt + " " + letter, add_special_tokens=False)["input_ids"][-1]
                          for letter in "ABCD"[:len(item.options)]]
            out.append((tokenizer.decode([int(logits.argmax())]).strip(), int(logits[letter_ids].argmax())))
    return out


def test_full_vocabulary_accuracy_is_the_papers_decoded_argmax():
    """The paper's rule (decode the argmax over the whole vocabulary, compare with the gold letter), computed
    by hand, against mask_eval's default; a model made to say a non-letter token scores 0 under it while
    the letters-only rule does not see the damage, and one made to say "B" is right exactly on gold B."""
    model, tokenizer = tiny_llama(), tok()
    benchmarks = {"items": ITEMS}
    hand = _by_hand(model, tokenizer, ITEMS, lettered_prompt)
    result = mask_eval(model, tokenizer, benchmarks, {}, batch_size=4, quiet=True)
    assert result.correct["none"]["items"][0].tolist() == [said == "ABCD"[i.gold] for (said, _), i in zip(hand, ITEMS)]
    assert result.by_rule["letters_only"]["none"]["items"][0].tolist() == [
        chosen == i.gold for (_, chosen), i in zip(hand, ITEMS)]

    non_letter = tokenizer("Paris", add_special_tokens=False)["input_ids"][0]
    assert tokenizer.decode([non_letter]).strip() not in "ABCD"
    handle = _with_logit_bonus(model, non_letter)
    try:
        damaged = mask_eval(model, tokenizer, benchmarks, {}, batch_size=4, quiet=True)
        letters = mask_eval(model, tokenizer, benchmarks, {}, scoring="letter", batch_size=4, quiet=True)
    finally:
        handle.remove()
    cell = damaged.cell("none", "items")
    assert cell["accuracy"] == 0.0 and cell["non_letter_share"] == 1.0
    assert cell["rules"]["letters_only"]["accuracy"] == pytest.approx(result.cell("none", "items")["rules"][
        "letters_only"]["accuracy"])  # the letters-only rule does not see that the model stopped answering
    assert letters.cell("none", "items")["accuracy"] == cell["rules"]["letters_only"]["accuracy"] > 0

    handle = _with_logit_bonus(model, tokenizer(" B", add_special_tokens=False)["input_ids"][-1])
    try:
        says_b = mask_eval(model, tokenizer, benchmarks, {}, batch_size=4, quiet=True)
    finally:
        handle.remove()
    assert says_b.correct["none"]["items"][0].tolist() == [i.gold == 1 for i in ITEMS]
    assert says_b.cell("none", "items")["non_letter_share"] == 0.0


def test_cells_summary_and_related_equal_a_recount(tmp_path):
    model, tokenizer = tiny_llama(), tok()
    chosen = neurons(model)
    random = select_random_pooled(chosen, seeds=range(2))
    conditions = masking_conditions(chosen, mode="suppress", random=random)
    assert list(conditions) == ["none", "France", "Spain", "random0:France", "random1:France", "random0:Spain",
                                "random1:Spain"]
    assert random_group("random1:Spain") == "Spain" and random_group("Spain") is None
    result = mask_eval(model, tokenizer, {"blend": ITEMS, "qnli": NLU}, conditions,
                       templates=[lettered_prompt, short_prompt], kinds={"qnli": "nlu"}, batch_size=4, quiet=True)

    def item_means(condition, benchmark, group=None):
        items = {"blend": ITEMS, "qnli": NLU}[benchmark]
        rows = result.correct[condition][benchmark].double()
        keep = [i for i, item in enumerate(items) if group in (None, item.group)]
        return rows[:, keep].mean(0)

    for condition in conditions:
        for group in ("France", "UK"):
            cell = result.cell(condition, "blend", group)
            assert cell["accuracy"] == pytest.approx(float(item_means(condition, "blend", group).mean()))
            assert cell["n"] == 6
            assert cell["ci95"][0] <= cell["accuracy"] <= cell["ci95"][1]
            if condition != "none":
                change = item_means(condition, "blend", group) - item_means("none", "blend", group)
                assert cell["change"] == pytest.approx(float(change.mean()))
    cell = result.cell("Spain", "qnli")
    randoms = torch.stack([item_means(f"random{s}:Spain", "qnli") for s in range(2)]).mean(0)
    assert cell["margin_over_random"] == pytest.approx(float((item_means("Spain", "qnli") - randoms).mean()))
    summary = {row["condition"]: row for row in result.summary()}
    assert summary["France"]["nlu_change"] == pytest.approx(result.cell("France", "qnli")["change"])
    assert summary["France"]["cultural_change"] == pytest.approx(result.cell("France", "blend")["change"])
    related = result.related("blend")
    assert set(related) == {"France", "Spain"} and set(related["France"]) == {"France", "Spain", "UK"}
    for masked in related:
        for evaluated in related[masked]:
            expected = (item_means(masked, "blend", evaluated) - item_means("none", "blend", evaluated)).mean()
            assert related[masked][evaluated] == pytest.approx(float(expected))

    result.save(tmp_path)
    document = json.loads((tmp_path / "mask_eval.json").read_text())
    with open(tmp_path / "accuracy.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(document["cells"])
    for row, cell in zip(rows, document["cells"]):
        assert (row["condition"], row["benchmark"], row["group"]) == (cell["condition"], cell["benchmark"], cell["group"])
        assert float(row["accuracy"]) == pytest.approx(cell["accuracy"], rel=1e-5)
    with open(tmp_path / "related_blend.csv", newline="") as handle:
        matrix = list(csv.reader(handle))
    assert matrix[0][1:] == ["France", "Spain", "UK"]
    assert float(matrix[1][3]) == pytest.approx(related["France"]["UK"], abs=1e-6)


def test_loglik_scoring_and_bad_input():
    model, tokenizer = tiny_llama(), tok()
    chosen = neurons(model)
    result = mask_eval(model, tokenizer, {"blend": ITEMS}, masking_conditions(chosen, ["Spain"]), scoring="loglik",
                       quiet=True)
    assert result.templates == ["question"] and result.correct["Spain"]["blend"].shape == (1, len(ITEMS))
    with pytest.raises(NeurospecError, match="not in the neuron set"):
        masking_conditions(chosen, ["Japan"])
    empty = NeuronSet({"Empty": {}}, NeuronSetMeta(num_layers=2, widths={"gate_pre": 10}))
    with pytest.raises(NeurospecError, match="every group asked for has no neurons"):
        masking_conditions(empty, ["Empty"])
    with pytest.raises(NeurospecError, match="no items"):
        mask_eval(model, tokenizer, {"blend": []}, {}, quiet=True)
    with pytest.raises(NeurospecError, match="mode"):
        masking_conditions(chosen, mode="amplify")
