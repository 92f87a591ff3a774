"""Scoring primitives: batched, padding-correct, under any intervention.

    from neurospec.evaluate.scoring import score_continuations, choose_by_loglikelihood, choose_by_letter, generate_texts
    score_continuations(model, tok, ["The capital of France is"], [" Paris"])      # summed log-probs
    choose_by_loglikelihood(model, tok, items)                                       # MCItem -> option
    choose_by_letter(model, tok, items, fmt=PromptFormat.chat(prefill='{"answer_choice":"'))
    generate_texts(model, tok, prompts, max_new_tokens=50, intervention=Edit.set(...))

``intervention`` is anything :func:`neurospec.core.hooks.intervene` takes (an Edit, a list of them, an
InterventionSpec). Every forward runs inside ``prompt_boundary``, so an edit restricted to prompt or
continuation tokens means the same here as in generation. Padding never changes a score: rows are
scored exactly as they would be alone (position ids come from the attention mask).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence

import torch

from neurospec.core.forward import length_sorted_chunks, model_device
from neurospec.core.head import logits_at
from neurospec.core.hooks import generate, intervene, prompt_boundary
from neurospec.data.items import MCItem
from neurospec.data.lettered import bare_question, encode_lettered, letter_token_ids, lettered_prompt
from neurospec.data.prompts import PLAIN, Batch, EncodedPrompt, PromptFormat, collate, encode_many, ensure_pad_token
from neurospec.util.errors import NeurospecError

__all__ = [  # the prompt helpers and model_device live lower (data.lettered, core.forward); they are scoring's API too
    "ContinuationScore", "Generation", "MCPrediction", "applied", "bare_question", "choose_by_letter",
    "choose_by_loglikelihood", "default_pairs", "encode_lettered", "forward_logits", "generate_texts",
    "letter_token_ids", "lettered_prompt", "model_device", "partial_scoring_pair", "score_continuations",
    "score_encoded",
]

# --------------------------------------------------------------------------------------------
# Shared plumbing


@contextlib.contextmanager
def applied(model, intervention) -> Iterator[None]:
    """``with applied(model, edit_or_spec_or_None):`` the intervention, or nothing when None."""
    if intervention is None:
        yield
        return
    items = intervention if isinstance(intervention, (list, tuple)) else [intervention]
    with intervene(model, *items):
        yield




def forward_logits(model, batch: Batch) -> torch.Tensor:
    """Logits of a collated batch, with its prompt boundary set for position modes."""
    with prompt_boundary(model, batch.continuation_start):
        return model(**batch.model_inputs(model)).logits


def scored_logits(model, batch: Batch, where: torch.Tensor) -> torch.Tensor:
    """``forward_logits(model, batch)[where]`` (``where``: a B x T bool mask), the output head run at those
    positions only (:func:`neurospec.core.head.logits_at`)."""
    with prompt_boundary(model, batch.continuation_start):
        return logits_at(model, batch.model_inputs(model), where)


def predicting(scored: torch.Tensor) -> torch.Tensor:
    """The B x T positions that predict the tokens ``scored`` marks among columns 1.. (a B x (T - 1) mask):
    token t is predicted at position t - 1."""
    where = torch.zeros(scored.shape[0], scored.shape[1] + 1, dtype=torch.bool, device=scored.device)
    where[:, :-1] = scored
    return where


# --------------------------------------------------------------------------------------------
# Continuation log-probabilities


@dataclass(frozen=True)
class ContinuationScore:
    """Summed log-probability of a continuation, its token count, and whether greedy decoding gives it."""

    logprob: float
    num_tokens: int
    greedy: bool
    token_logprobs: tuple[float, ...]


def score_encoded(model, encoded: Sequence[EncodedPrompt], pad_id: int, *, batch_size: int = 8,
                  side: Literal["left", "right"] = "right", intervention=None) -> list[ContinuationScore]:
    """:func:`score_continuations` on prompts already encoded with a continuation."""
    for i, item in enumerate(encoded):
        if item.prompt_length == len(item):
            raise NeurospecError(f"request {i} has an empty continuation: nothing to score")
        if item.prompt_length == 0:
            raise NeurospecError(f"request {i} has an empty prompt: the first continuation token has no context")
    results: list[ContinuationScore | None] = [None] * len(encoded)
    device = model_device(model)
    with torch.no_grad(), applied(model, intervention):
        for chunk in length_sorted_chunks([len(e) for e in encoded], batch_size):
            batch = collate([encoded[i] for i in chunk], pad_id, side).to(device)
            scored = batch.role_mask("continuation")[:, 1:]  # token t is predicted at position t - 1
            rows = scored_logits(model, batch, predicting(scored)).float()
            targets = batch.input_ids[:, 1:][scored]
            token_logprobs = rows.log_softmax(-1).gather(-1, targets[:, None])[:, 0]
            greedy = rows.argmax(-1) == targets
            counts = scored.sum(-1).tolist()
            for i, lp, gr in zip(chunk, token_logprobs.split(counts), greedy.split(counts)):
                results[i] = ContinuationScore(float(lp.sum()), len(lp), bool(gr.all()), tuple(lp.tolist()))
    return results  # type: ignore[return-value]


def score_continuations(model, tokenizer, prompts: Sequence[str], continuations: Sequence[str], *,
                        fmt: PromptFormat = PLAIN, batch_size: int = 8, side: Literal["left", "right"] = "right",
                        intervention=None) -> list[ContinuationScore]:
    """Summed log-probability of each continuation given its prompt (prompt in ``fmt``)."""
    encoded = encode_many(tokenizer, prompts, fmt, continuations)
    return score_encoded(model, encoded, ensure_pad_token(tokenizer), batch_size=batch_size, side=side,
                         intervention=intervention)


def partial_scoring_pair(sentence: str, option: str, placeholder: str = "_") -> tuple[str, str]:
    """XWinograd-style partial scoring: ``option`` replaces ``placeholder``; the text after it is scored.

    ``partial_scoring_pair("The trophy doesn't fit because _ is too big.", "the trophy")``
    -> ``("The trophy doesn't fit because the trophy", " is too big.")``
    """
    if sentence.count(placeholder) != 1:
        raise NeurospecError(f"expected exactly one {placeholder!r} in {sentence!r}")
    before, _, after = sentence.partition(placeholder)
    if not after.strip():
        raise NeurospecError(f"nothing follows {placeholder!r} in {sentence!r}: partial scoring needs a continuation")
    return before + option, after


# --------------------------------------------------------------------------------------------
# Multiple choice


@dataclass(frozen=True)
class MCPrediction:
    """Per option: a score (higher is better); ``chosen`` is the argmax, ``correct`` against gold.

    Letter scoring also keeps what the model said with no restriction: ``answer``, the decoded argmax over
    the whole vocabulary at the answer position, and ``vocab_choice``, the option whose letter that is
    (None when it is no option's letter). ``correct_vocab`` is the culture paper's accuracy rule.
    """

    scores: tuple[float, ...]
    chosen: int
    gold: int
    item: MCItem
    answer: str | None = None
    vocab_choice: int | None = None

    @property
    def correct(self) -> bool:
        return self.chosen == self.gold

    @property
    def correct_vocab(self) -> bool:
        return self.vocab_choice == self.gold


def default_pairs(item: MCItem) -> list[tuple[str, str]]:
    """(context, continuation) per option: the question, then a space and the option (lm-eval's convention)."""
    return [(item.question, " " + option) for option in item.options]


def choose_by_loglikelihood(model, tokenizer, items: Sequence[MCItem], *,
                            pairs: Callable[[MCItem], list[tuple[str, str]]] = default_pairs,
                            normalize: Literal["none", "tokens", "chars"] = "none", fmt: PromptFormat = PLAIN,
                            batch_size: int = 8, intervention=None) -> list[MCPrediction]:
    """Pick the option whose continuation is most likely (summed log-prob, or per token / per character)."""
    if normalize not in ("none", "tokens", "chars"):
        raise NeurospecError(f"normalize must be none, tokens or chars, not {normalize!r}")
    requests = []
    for i, item in enumerate(items):
        item_pairs = pairs(item)
        if len(item_pairs) != len(item.options):
            raise NeurospecError(f"pairs() gave {len(item_pairs)} pairs for item {i}, which has {len(item.options)} options")
        requests.extend(item_pairs)
    scored = score_continuations(model, tokenizer, [r[0] for r in requests], [r[1] for r in requests], fmt=fmt,
                                 batch_size=batch_size, intervention=intervention)
    predictions, cursor = [], 0
    for item in items:
        scores = []
        for k in range(len(item.options)):
            score, continuation = scored[cursor + k], requests[cursor + k][1]
            divisor = {"none": 1, "tokens": score.num_tokens, "chars": max(len(continuation), 1)}[normalize]
            scores.append(score.logprob / divisor)
        cursor += len(item.options)
        predictions.append(MCPrediction(tuple(scores), max(range(len(scores)), key=scores.__getitem__), item.gold, item))
    return predictions


def choose_by_letter(model, tokenizer, items: Sequence[MCItem], *, fmt: PromptFormat = PLAIN,
                     prompt: Callable[[MCItem], str] = lettered_prompt, letters: str = "ABCDEFGHIJ",
                     form: Literal["auto", "bare", "space"] = "auto", batch_size: int = 8,
                     intervention=None) -> list[MCPrediction]:
    """Pick the option whose letter has the highest next-token probability at the answer position.

    Scores are the letters' probabilities over the whole vocabulary (they need not sum to 1). Each
    prediction also records the unrestricted argmax token, decoded (``answer``, ``vocab_choice``).
    """
    pad_id = ensure_pad_token(tokenizer)
    pairs = encode_lettered(tokenizer, items, fmt=fmt, prompt=prompt, letters=letters, form=form)
    encoded, letter_ids = [e for e, _ in pairs], [ids for _, ids in pairs]
    predictions: list[MCPrediction | None] = [None] * len(items)
    device = model_device(model)
    with torch.no_grad(), applied(model, intervention):
        for chunk in length_sorted_chunks([len(e) for e in encoded], batch_size):
            batch = collate([encoded[i] for i in chunk], pad_id, "left").to(device)
            last = torch.zeros_like(batch.attention_mask, dtype=torch.bool)
            last[:, -1] = True                                     # left padding: the answer position is last
            logits = scored_logits(model, batch, last).float()
            probs = logits.softmax(-1)
            top = logits.argmax(-1).tolist()
            for row, i in enumerate(chunk):
                scores = probs[row, letter_ids[i]].tolist()
                letter_logits = logits[row, letter_ids[i]].tolist()  # no ties where probabilities underflow to 0
                chosen = max(range(len(scores)), key=letter_logits.__getitem__)
                answer = tokenizer.decode([top[row]])
                said = answer.strip()
                options = list(letters[:len(items[i].options)])
                vocab_choice = options.index(said) if said in options else None
                predictions[i] = MCPrediction(tuple(scores), chosen, items[i].gold, items[i], answer, vocab_choice)
    return predictions  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Generation


@dataclass(frozen=True)
class Generation:
    """A prompt and what the model wrote after it."""

    prompt: str
    text: str
    token_ids: tuple[int, ...]


def generate_texts(model, tokenizer, prompts: Sequence[str], *, fmt: PromptFormat = PLAIN, max_new_tokens: int = 50,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                   batch_size: int = 8, intervention=None, stop_strings: Sequence[str] = (),
                   **generate_kwargs) -> list[Generation]:
    """Greedy (default) or sampled continuations of each prompt; every batch row is edited alike.

    Prompts are left-padded; the prompt boundary is the input width, so an edit with
    ``positions="prompt"`` or ``"continuation"`` applies where it says, with or without a KV cache.
    With ``stop_strings`` (e.g. ``["\n"]``) a row stops at the token that completes one of them (kept in its
    text), and the batch stops when every row has: what a caller cuts off there is never generated.
    """
    pad_id = ensure_pad_token(tokenizer)
    encoded = encode_many(tokenizer, prompts, fmt)
    sampling = {"do_sample": do_sample}
    if do_sample:
        sampling.update(temperature=temperature, top_p=top_p)
        if seed is not None:
            torch.manual_seed(seed)
    outputs: list[Generation | None] = [None] * len(prompts)
    device = model_device(model)
    with torch.no_grad(), applied(model, intervention):
        for chunk in length_sorted_chunks([len(e) for e in encoded], batch_size):
            batch = collate([encoded[i] for i in chunk], pad_id, "left").to(device)
            stops = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
            sequences = generate(model, batch.input_ids, batch.attention_mask, max_new_tokens=max_new_tokens,
                                 pad_token_id=pad_id, **sampling, **stops, **generate_kwargs)
            new = sequences[:, batch.input_ids.shape[1]:]
            for row, i in enumerate(chunk):
                ids = new[row].tolist()
                if tokenizer.eos_token_id is not None and tokenizer.eos_token_id in ids:
                    ids = ids[:ids.index(tokenizer.eos_token_id)]
                while ids and ids[-1] == pad_id:
                    ids.pop()
                outputs[i] = Generation(prompts[i], tokenizer.decode(ids, skip_special_tokens=True), tuple(ids))
    return outputs  # type: ignore[return-value]
