"""Scoring primitives against direct computations on single unpadded sequences."""

from __future__ import annotations

import pytest
import torch
from families import family
from tiny_tokenizer import tiny_tokenizer

from neurospec.core.edits import Edit
from neurospec.core.hooks import intervene, prompt_boundary
from neurospec.core.sites import site_map
from neurospec.data.items import MCItem
from neurospec.data.prompts import PromptFormat, encode
from neurospec.evaluate.scoring import (
    choose_by_letter,
    choose_by_loglikelihood,
    generate_texts,
    letter_token_ids,
    lettered_prompt,
    partial_scoring_pair,
    score_continuations,
)
from neurospec.util.errors import NeurospecError

PROMPTS = ["The cat sat on", "Which city is the capital of France?", "Le chat", "She went to the market, and she"]
CONTINUATIONS = [" the mat because it was warm.", " Paris", " dort sur le tapis.", " bought"]


def model_for(name: str, tok):
    return family(name).build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                              eos_token_id=tok.eos_token_id)


def direct_score(model, tok, prompt: str, continuation: str, edit=None) -> float:
    """One unpadded sequence, logits straight from the model, log-softmax by hand."""
    item = encode(tok, prompt, continuation=continuation)
    ids = torch.tensor([item.input_ids])
    with torch.no_grad():
        if edit is None:
            logits = model(input_ids=ids).logits[0]
        else:
            with intervene(model, edit), prompt_boundary(model, item.prompt_length):
                logits = model(input_ids=ids).logits[0]
    logprobs = torch.log_softmax(logits.double(), -1)
    return sum(float(logprobs[t - 1, ids[0, t]]) for t in range(item.prompt_length, len(item)))


def edit_for(model, positions):
    width = site_map(model).width("act")
    return Edit.set({"act": {0: torch.tensor([1, width // 2]), 1: torch.tensor([3])}}, 2.5, positions=positions)


@pytest.mark.parametrize("positions", [None, "all", "prompt", "continuation"])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", ["llama", "gpt2", "opt", "bloom", "phi3"])
def test_continuation_logprobs_equal_direct_computation(name, side, positions):
    tok = tiny_tokenizer()
    model = model_for(name, tok)
    edit = None if positions is None else edit_for(model, positions)
    scores = score_continuations(model, tok, PROMPTS, CONTINUATIONS, side=side, batch_size=3, intervention=edit)
    for prompt, continuation, score in zip(PROMPTS, CONTINUATIONS, scores):
        assert score.logprob == pytest.approx(direct_score(model, tok, prompt, continuation, edit), abs=1e-4)
        assert score.num_tokens == len(tok(continuation, add_special_tokens=False)["input_ids"])
    if edit is not None:  # the edit changed something
        plain = score_continuations(model, tok, PROMPTS, CONTINUATIONS, side=side)
        assert max(abs(a.logprob - b.logprob) for a, b in zip(scores, plain)) > 1e-4


def test_chat_format_scores_and_greedy_flag():
    tok = tiny_tokenizer()
    model = model_for("llama", tok)
    fmt = PromptFormat.chat(prefill='{"answer_choice":"')
    [score] = score_continuations(model, tok, ["Pick one."], ["A"], fmt=fmt)
    item = encode(tok, "Pick one.", fmt, continuation="A")
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([item.input_ids])).logits[0]
    target = item.input_ids[-1]
    assert score.num_tokens == 1
    assert score.logprob == pytest.approx(float(torch.log_softmax(logits[-2], -1)[target]), abs=1e-5)
    assert score.greedy == (int(logits[-2].argmax()) == target)


def test_partial_scoring_pair():
    assert partial_scoring_pair("The trophy doesn't fit because _ is too big.", "the trophy") == (
        "The trophy doesn't fit because the trophy", " is too big.")
    with pytest.raises(NeurospecError, match="exactly one"):
        partial_scoring_pair("no placeholder here", "x")


ITEMS = [
    MCItem("The cat sat on", ("the mat.", "the moon.", "a bus."), gold=0, group="eng_Latn"),
    MCItem("Which city is the capital of France?", ("Paris", "Berlin"), gold=0, group="eng_Latn"),
    MCItem("Le chat dort sur", ("le tapis.", "la table.", "le toit.", "le lit."), gold=0, group="fra_Latn"),
]


def test_loglikelihood_choice_is_argmax_of_scores():
    tok = tiny_tokenizer()
    model = model_for("qwen2", tok)
    predictions = choose_by_loglikelihood(model, tok, ITEMS, batch_size=2)
    for item, prediction in zip(ITEMS, predictions):
        direct = [direct_score(model, tok, item.question, " " + option) for option in item.options]
        assert prediction.scores == pytest.approx(direct, abs=1e-4)
        assert prediction.chosen == max(range(len(direct)), key=direct.__getitem__)
    per_token = choose_by_loglikelihood(model, tok, ITEMS, normalize="tokens")
    counts = [len(tok(" " + o, add_special_tokens=False)["input_ids"]) for o in ITEMS[0].options]
    assert per_token[0].scores == pytest.approx([s / n for s, n in zip(predictions[0].scores, counts)], abs=1e-6)


@pytest.mark.parametrize("fmt", [PromptFormat(), PromptFormat.chat(prefill='{"answer_choice":"')], ids=["plain", "chat"])
def test_letter_choice_matches_hand_computation(fmt):
    tok = tiny_tokenizer()
    model = model_for("llama", tok)
    predictions = choose_by_letter(model, tok, ITEMS, fmt=fmt, batch_size=2)
    for item, prediction in zip(ITEMS, predictions):
        enc = encode(tok, lettered_prompt(item), fmt)
        # by hand: the letter a reader would write next: " A" after "Answer:", "A" after the prefill's quote
        letter_form = "{}" if fmt.kind == "chat" else " {}"
        letter_ids = []
        for letter in "ABCD"[:len(item.options)]:
            ids = tok(letter_form.format(letter), add_special_tokens=False)["input_ids"]
            assert len(ids) == 1
            letter_ids.append(ids[0])
        with torch.no_grad():
            probs = model(input_ids=torch.tensor([enc.input_ids])).logits[0, -1].softmax(-1)
        expected = probs[letter_ids]
        assert prediction.scores == pytest.approx(expected.tolist(), abs=1e-5)
        assert prediction.chosen == int(expected.argmax())


def test_letters_that_are_not_single_tokens_fail_clearly():
    tok = tiny_tokenizer()
    assert letter_token_ids(tok, "Answer:", "AB") == [tok.convert_tokens_to_ids("ĠA"), tok.convert_tokens_to_ids("ĠB")]
    with pytest.raises(NeurospecError, match="not single tokens"):
        letter_token_ids(tok, "Answer:", ["①", "②"])
    model = model_for("llama", tok)
    with pytest.raises(NeurospecError, match="not single tokens"):
        choose_by_letter(model, tok, ITEMS[:1], letters="①②③")


def greedy_by_hand(model, tok, prompt: str, steps: int, edit=None) -> list[int]:
    ids = encode(tok, prompt).input_ids
    start = len(ids)
    for _ in range(steps):
        with torch.no_grad():
            if edit is None:
                logits = model(input_ids=torch.tensor([ids])).logits
            else:
                with intervene(model, edit), prompt_boundary(model, start):
                    logits = model(input_ids=torch.tensor([ids])).logits
        ids.append(int(logits[0, -1].argmax()))
    return ids[start:]


@pytest.mark.parametrize("positions", [None, "prompt", "continuation"])
def test_greedy_generation_equals_hand_loop(positions):
    tok = tiny_tokenizer()
    model = model_for("llama", tok)
    edit = None if positions is None else edit_for(model, positions)
    outputs = generate_texts(model, tok, PROMPTS[:3], max_new_tokens=6, batch_size=2, intervention=edit)
    for prompt, output in zip(PROMPTS[:3], outputs):
        expected = greedy_by_hand(model, tok, prompt, 6, edit)
        expected = expected[:expected.index(tok.eos_token_id)] if tok.eos_token_id in expected else expected
        assert list(output.token_ids) == expected
        assert output.text == tok.decode(expected, skip_special_tokens=True)


def test_sampled_generation_is_seeded():
    tok = tiny_tokenizer()
    model = model_for("llama", tok)
    runs = [generate_texts(model, tok, PROMPTS[:2], max_new_tokens=8, do_sample=True, temperature=1.5, seed=7)
            for _ in range(2)]
    assert [g.token_ids for g in runs[0]] == [g.token_ids for g in runs[1]]
    other = generate_texts(model, tok, PROMPTS[:2], max_new_tokens=8, do_sample=True, temperature=1.5, seed=8)
    assert [g.token_ids for g in other] != [g.token_ids for g in runs[0]]


def test_items_and_requests_are_validated():
    with pytest.raises(NeurospecError, match="gold index 3"):
        MCItem("q", ("a", "b"), gold=3)
    with pytest.raises(NeurospecError, match="2\\+"):
        MCItem("q", ("a",), gold=0)
    tok = tiny_tokenizer()
    model = model_for("llama", tok)
    with pytest.raises(NeurospecError, match="empty continuation"):
        score_continuations(model, tok, ["The cat"], [""])
