"""Prompt layer: token roles from plain text and chat templates, padding, pad tokens."""

from __future__ import annotations

import pytest
from tiny_tokenizer import NO_SYSTEM_TEMPLATE, tiny_tokenizer

from neurospec.data.prompts import ROLES, PromptFormat, collate, encode, ensure_pad_token
from neurospec.util.errors import NeurospecError

TEXT = "The cat sat on the mat."


def special(tok, token: str) -> int:
    return tok.convert_tokens_to_ids(token)


def test_plain_text_roles_bos_is_wrapper():
    tok = tiny_tokenizer()
    item = encode(tok, TEXT)
    sentence = tok(TEXT, add_special_tokens=False)["input_ids"]
    assert item.input_ids == [tok.bos_token_id] + sentence
    assert item.roles == ["wrapper"] + ["text"] * len(sentence)
    assert item.span("text") == (1, 1 + len(sentence))
    assert item.answer_position == len(sentence)
    bare = encode(tok, TEXT, PromptFormat(add_special_tokens=False))
    assert bare.input_ids == sentence and set(bare.roles) == {"text"}


def test_chat_template_spans_are_exact():
    tok = tiny_tokenizer()
    fmt = PromptFormat.chat(system="Be brief.", prefill='{"answer_choice":"')
    item = encode(tok, TEXT, fmt)
    ids = item.input_ids
    # independent reading of the template: <bos><|system|>...<|end|>\n<|user|> TEXT <|end|>\n<|assistant|><think></think> PREFILL
    user_at = ids.index(special(tok, "<|user|>"))
    end_at = ids.index(special(tok, "<|end|>"), user_at)
    sentence = tok(TEXT, add_special_tokens=False)["input_ids"]
    assert ids[user_at + 1:end_at] == sentence
    assert item.span("text") == (user_at + 1, end_at)
    prefill = tok('{"answer_choice":"', add_special_tokens=False)["input_ids"]
    assert ids[-len(prefill):] == prefill
    assert item.span("prefill") == (len(ids) - len(prefill), len(ids))
    assert item.answer_position == len(ids) - 1
    assert all(r == "wrapper" for r in item.roles[:user_at + 1] + item.roles[end_at:len(ids) - len(prefill)])
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1  # the template's BOS, not a second one
    assert "<think></think>" in item.text and "Be brief." in item.text
    assert item.straddling == 0


def test_template_that_rejects_system_turns():
    tok = tiny_tokenizer()
    tok.chat_template = NO_SYSTEM_TEMPLATE
    item = encode(tok, TEXT, PromptFormat.chat(system="Be brief."))  # auto: the system text joins the user turn
    assert item.text.startswith("<bos><|user|>Be brief.\n\n" + TEXT)
    start, end = item.span("text")
    assert tok.decode(item.input_ids[start:end]) == TEXT
    with pytest.raises(NeurospecError, match="failed to render.*System role not supported"):
        encode(tok, TEXT, PromptFormat.chat(system="Be brief.", system_policy="keep"))
    dropped = encode(tok, TEXT, PromptFormat.chat(system="Be brief.", system_policy="drop"))
    assert "Be brief." not in dropped.text


def test_thinking_switch_and_no_generation_prompt():
    tok = tiny_tokenizer()
    assert "<think></think>" not in encode(tok, TEXT, PromptFormat.chat(thinking=None)).text
    no_prompt = encode(tok, TEXT, PromptFormat.chat(add_generation_prompt=False))
    assert not no_prompt.text.rstrip().endswith("<|assistant|>")


def test_continuation_is_encoded_alone_and_takes_trailing_spaces():
    tok = tiny_tokenizer()
    item = encode(tok, "The capital of France is ", continuation="Paris")
    continuation = tok(" Paris", add_special_tokens=False)["input_ids"]
    assert item.input_ids[-len(continuation):] == continuation
    assert item.roles[-len(continuation):] == ["continuation"] * len(continuation)
    assert item.prompt_length == len(item) - len(continuation)
    assert item.text == "The capital of France is Paris"


def test_collate_left_and_right():
    tok = tiny_tokenizer()
    short, long = encode(tok, "A cat.", continuation=" B"), encode(tok, TEXT, continuation=" C D")
    for side in ("left", "right"):
        batch = collate([short, long], pad_id=0, side=side)
        assert batch.input_ids.shape == (2, len(long))
        row = batch.input_ids[0]
        kept = row[batch.attention_mask[0].bool()].tolist()
        assert kept == short.input_ids
        offset = len(long) - len(short) if side == "left" else 0
        assert int(batch.continuation_start[0]) == offset + short.prompt_length
        assert batch.role_mask("continuation")[0].sum() == 1
        assert (batch.roles[0] == 0).sum() == len(long) - len(short)
        assert ROLES[int(batch.roles[0, offset])] == "wrapper"  # BOS


def test_pad_token_falls_back_to_eos_and_errors_without():
    tok = tiny_tokenizer()
    tok.pad_token = None
    assert ensure_pad_token(tok) == tok.eos_token_id
    assert tok.pad_token == "<eos>"


def test_bad_formats_are_clear_errors():
    tok = tiny_tokenizer()
    with pytest.raises(NeurospecError, match="needs a chat template"):
        PromptFormat(system="x")
    tok.chat_template = None
    with pytest.raises(NeurospecError, match="no chat template"):
        encode(tok, TEXT, PromptFormat.chat())
    tok = tiny_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{{ m['content'] }}{% endfor %}"
    with pytest.raises(NeurospecError, match="repeats or rewrites"):
        encode(tok, TEXT, PromptFormat.chat())
    with pytest.raises(NeurospecError, match="no 'continuation' tokens"):
        encode(tiny_tokenizer(), TEXT).span("continuation")
