"""Logits only where they are scored: the decoder runs on the whole batch, the output head on a few positions.

    logits = logits_at(model, inputs, where)           # (N, V): the rows of model(**inputs).logits[where]
    total, count = summed_nll(model, inputs, where, targets)   # cross-entropy at every True of ``where``, chunked
    with full_logits():                                # the plain path: model(**inputs).logits, for comparisons
        ...

A real model's output head can cost more than all its layers (Gemma 3 270M: 262,144 x 640), and a float32
B x T x V logits tensor of 8 x 512 positions takes 4.3 GB. Scoring a continuation, a letter or a next token
needs the head at a few positions; perplexity needs it everywhere but never all at once.

The head is the model's output embedding applied to the decoder's last hidden states (the decoder applies the
final norm), followed by the family's logit soft-capping (``final_logit_softcapping``, Gemma 2) or scaling
(``logit_scale``, Cohere; ``logits_scaling``, Granite). Whether that reproduces the model's own logits is
checked once per model on a short probe (relative difference 1e-5 in float32, 1e-2 in half precision); a
model whose head does something else gets the plain path, with full logits, and the same numbers.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

import torch
from torch import nn

from neurospec.core.forward import accepts, model_device

PROBE_TOKENS = 6
CHUNK_LOGITS = 2 ** 25      # logits per head call in summed_nll (128 MB in float32): 128 positions of Gemma 3's
                            # 262,144-token vocabulary, 2,048 of a 16,384-token one

_FULL = contextvars.ContextVar("neurospec_full_logits", default=False)
_UNCHECKED = object()


@contextlib.contextmanager
def full_logits() -> Iterator[None]:
    """``with full_logits():`` every scoring function computes the model's full logits (the plain path)."""
    token = _FULL.set(True)
    try:
        yield
    finally:
        _FULL.reset(token)


def _text_config(model: nn.Module):
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _post_processing(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the family does to ``lm_head``'s output before returning logits."""
    config = _text_config(model)
    cap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        scale = getattr(config, "logit_scale", None)
    divide = getattr(config, "logits_scaling", None)

    def apply(logits: torch.Tensor) -> torch.Tensor:
        if isinstance(scale, (int, float)) and scale != 1:
            logits = logits * scale
        if isinstance(divide, (int, float)) and divide != 1:
            logits = logits / divide
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits
    return apply


def decoder_hidden(model: nn.Module, inputs: dict) -> torch.Tensor:
    """The decoder's last hidden states (B x T x H, final norm applied) for ``inputs``, without the head."""
    decoder = model.get_decoder()
    extra = {"use_cache": False} if accepts(decoder, "use_cache") else {}
    return decoder(**inputs, **extra)[0]


def _make_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if not hasattr(model, "get_decoder") or model.get_output_embeddings() is None:
        return None
    try:
        model.get_decoder()
    except (AttributeError, NotImplementedError):
        return None
    embedding, post = model.get_output_embeddings(), _post_processing(model)
    return lambda hidden: post(embedding(hidden))


def _reproduces_logits(model: nn.Module, head: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """Whether ``head(decoder_hidden(...))`` equals ``model(...).logits`` on a short probe."""
    from neurospec.core.hooks import prompt_boundary

    vocab = model.get_output_embeddings().weight.shape[0]
    ids = (torch.arange(PROBE_TOKENS) * 7919 + 3) % vocab
    inputs = {"input_ids": ids[None].to(model_device(model)),
              "attention_mask": torch.ones(1, PROBE_TOKENS, dtype=torch.long, device=model_device(model))}
    with torch.no_grad(), prompt_boundary(model, PROBE_TOKENS - 2):
        try:
            plain = model(**inputs).logits.float()
            fast = head(decoder_hidden(model, inputs)).float()
        except (TypeError, ValueError, AttributeError, RuntimeError):
            return False
    if plain.shape != fast.shape:
        return False
    tolerance = 1e-5 if plain.dtype == torch.float32 and model.get_output_embeddings().weight.dtype == torch.float32 \
        else 1e-2
    scale = plain.abs().max().clamp_min(1e-6)
    return bool(((plain - fast).abs().max() / scale) <= tolerance)


def output_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The function from last hidden states to logits, or None when this model's own logits differ from it
    (checked once, remembered on the model) or inside :func:`full_logits`."""
    if _FULL.get():
        return None
    head = model.__dict__.get("_neurospec_head", _UNCHECKED)
    if head is _UNCHECKED:
        head = _make_head(model)
        if head is not None and not _reproduces_logits(model, head):
            head = None
        model.__dict__["_neurospec_head"] = head
    return head


def logits_at(model: nn.Module, inputs: dict, where: torch.Tensor) -> torch.Tensor:
    """``model(**inputs).logits[where]`` (``where``: a B x T bool mask), computing the head at those rows only."""
    head = output_head(model)
    if head is None:
        return model(**inputs).logits[where]
    return head(decoder_hidden(model, inputs)[where])


def token_nlls(model: nn.Module, inputs: dict, where: torch.Tensor, targets: torch.Tensor,
               chunk: int | None = None) -> torch.Tensor:
    """The negative log-likelihood of each of ``targets`` (one per True of ``where``, row-major) predicted at the
    positions ``where``; the head and its log-softmax run on ``chunk`` positions at a time (default: as many as
    make ``CHUNK_LOGITS`` logits), so no B x T x V tensor is made."""
    head = output_head(model)
    if head is None:
        return torch.nn.functional.cross_entropy(model(**inputs).logits[where].float(), targets, reduction="none")
    hidden = decoder_hidden(model, inputs)[where]
    chunk = chunk or max(1, CHUNK_LOGITS // model.get_output_embeddings().weight.shape[0])
    parts = [torch.nn.functional.cross_entropy(head(hidden[start:start + chunk]).float(), targets[start:start + chunk],
                                               reduction="none") for start in range(0, hidden.shape[0], chunk)]
    return torch.cat(parts) if parts else torch.zeros(0)


def summed_nll(model: nn.Module, inputs: dict, where: torch.Tensor, targets: torch.Tensor,
               chunk: int | None = None) -> float:
    """The sum of :func:`token_nlls` (in float64)."""
    return float(token_nlls(model, inputs, where, targets, chunk).double().sum())
