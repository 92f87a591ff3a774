"""Logits only where scored: the fast path gives the plain path's numbers (1e-5 relative in float32) on every
family, for continuation scoring, letters, perplexity and LSS, with and without an intervention."""

from __future__ import annotations

import pytest
import torch
from families import FAMILIES, build_odd, family, left_padded_batch
from interventions_common import neuron_set, tiny_llama, tok
from tiny_tokenizer import tiny_tokenizer

from neurospec.core.edits import Edit
from neurospec.core.head import full_logits, logits_at, output_head, summed_nll
from neurospec.data.items import MCItem
from neurospec.evaluate.perplexity import perplexity
from neurospec.evaluate.scoring import choose_by_letter, score_continuations

RELATIVE = 1e-5


def close(fast: float, plain: float) -> bool:
    return abs(fast - plain) <= RELATIVE * max(1.0, abs(plain))


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_the_head_at_chosen_positions_equals_the_models_logits(fam):
    model = fam.build()
    assert output_head(model) is not None, f"{fam.name}: the fast head does not reproduce this family's logits"
    batch = left_padded_batch()
    where = batch["attention_mask"].bool() & (torch.arange(batch["input_ids"].shape[1]) % 2 == 0)
    with torch.no_grad():
        plain = model(**batch).logits[where]
        fast = logits_at(model, batch, where)
        targets = batch["input_ids"].roll(-1, dims=1)[where]
        nll_plain = float(torch.nn.functional.cross_entropy(plain.float(), targets, reduction="sum"))
        nll_fast = summed_nll(model, batch, where, targets, chunk=3)      # several chunks
    assert fast.shape == plain.shape
    assert torch.allclose(fast, plain, rtol=RELATIVE, atol=RELATIVE * float(plain.abs().max()))
    assert close(nll_fast, nll_plain)


def test_soft_capping_is_applied():
    model = family("gemma2").build()
    assert model.config.final_logit_softcapping
    batch = left_padded_batch()
    where = batch["attention_mask"].bool()
    with torch.no_grad():
        raw = model.get_output_embeddings()(model.get_decoder()(**batch)[0][where])
        assert not torch.allclose(raw, model(**batch).logits[where])    # capping changes the numbers here
        assert torch.allclose(logits_at(model, batch, where), model(**batch).logits[where], rtol=1e-5, atol=1e-5)


def test_a_head_it_cannot_reproduce_falls_back_to_full_logits():
    class Doubled(torch.nn.Module):      # a model whose logits are twice its output embedding's
        def __init__(self):
            super().__init__()
            self.inner = family("llama").build()
            self.config = self.inner.config

        def get_decoder(self):
            return self.inner.get_decoder()

        def get_output_embeddings(self):
            return self.inner.get_output_embeddings()

        def get_input_embeddings(self):
            return self.inner.get_input_embeddings()

        def forward(self, **inputs):
            out = self.inner(**inputs)
            out.logits = out.logits * 2
            return out

    model = Doubled()
    assert output_head(model) is None
    batch = left_padded_batch()
    where = batch["attention_mask"].bool()
    with torch.no_grad():
        assert torch.equal(logits_at(model, batch, where), model(**batch).logits[where])
    assert output_head(build_odd()) is None      # no get_decoder: the plain path


def test_full_logits_switches_the_fast_path_off():
    model = tiny_llama()
    assert output_head(model) is not None
    with full_logits():
        assert output_head(model) is None
    assert output_head(model) is not None


@pytest.fixture(scope="module")
def llama_and_tok():
    return tiny_llama(), tok()


@pytest.mark.parametrize("edit", [False, True], ids=["unmodified", "intervened"])
def test_scoring_verbs_give_the_plain_numbers(llama_and_tok, edit):
    model, t = llama_and_tok
    intervention = Edit.zero(neuron_set(model), groups=["deu_Latn"]) if edit else None
    prompts = ["the cat sat on", "ein Hund", "le chat est"]
    continuations = [" the mat", " bellt laut", " noir"]
    items = [MCItem("Which one?", ("yes", "no", "maybe"), 1), MCItem("Pick one", ("a", "b"), 0)]
    texts = ["The quick brown fox jumps over the lazy dog. " * 3, "Der schnelle braune Fuchs springt."]

    def run():
        scores = score_continuations(model, t, prompts, continuations, batch_size=2, intervention=intervention)
        letters = choose_by_letter(model, t, items, batch_size=2, intervention=intervention)
        ppl = perplexity(model, t, texts, batch_size=2, intervention=intervention)
        return scores, letters, ppl

    fast_scores, fast_letters, fast_ppl = run()
    with full_logits():
        plain_scores, plain_letters, plain_ppl = run()
    for fast, plain in zip(fast_scores, plain_scores):
        assert close(fast.logprob, plain.logprob) and fast.greedy == plain.greedy
        assert all(close(a, b) for a, b in zip(fast.token_logprobs, plain.token_logprobs))
    for fast, plain in zip(fast_letters, plain_letters):
        assert fast.chosen == plain.chosen and all(close(a, b) for a, b in zip(fast.scores, plain.scores))
    assert close(fast_ppl.nll, plain_ppl.nll) and fast_ppl.tokens == plain_ppl.tokens


def test_gemma2_scoring_with_capping_gives_the_plain_numbers():
    t = tiny_tokenizer()
    model = family("gemma2").build(0, vocab_size=len(t), pad_token_id=t.pad_token_id, bos_token_id=t.bos_token_id,
                                   eos_token_id=t.eos_token_id)
    fast = perplexity(model, t, ["a small text to score", "another one, longer than the first"], batch_size=2)
    with full_logits():
        plain = perplexity(model, t, ["a small text to score", "another one, longer than the first"], batch_size=2)
    assert close(fast.nll, plain.nll)
