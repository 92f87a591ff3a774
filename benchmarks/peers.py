"""The statistic ``neurospec collect`` gathers at site ``act``, gathered with two peer libraries.

    import peers
    tl = peers.transformerlens_counts("path/to/llama", batches)          # loads its own copy
    nn = peers.nnsight_counts(model, batches, tokenizer=tok)              # wraps a loaded HF model
    bare = peers.bare_forward_seconds(model, batches, head=False)         # the floor: no statistic

``batches`` is a list of dicts with ``input_ids`` (B, T) and ``attention_mask`` (B, T) (other keys,
such as ``position_ids``, are passed on to the model). Site ``act`` is the output of every layer's
``mlp.act_fn``, i.e. act(gate(x)), shape (B, T, intermediate). The peers return

    {"active": int64 (L, W)  count of value > 0 over non-padding tokens,
     "sum": float64 (L, W), "sum_sq": float64 (L, W), "max": float32 (L, W),
     "tokens": int, "seconds": float}

The statistic is computed on the model's device, batch by batch, as neurospec does (values cast to
float32, sums in float64). ``seconds`` is the wall time of the loop over ``batches`` (moving the
batch to the device included); model loading and one warm-up batch (``batches[0]``) are not timed.

Hook names used:
  * TransformerLens 4.3 (``TransformerBridge``): the bridge has no hook on the output of
    ``act_fn``. ``blocks.{i}.mlp.hook_post`` (= ``mlp.out.hook_in``) is the down-projection input,
    act(gate(x)) * up(x), which is NOT site ``act``. We cache ``blocks.{i}.mlp.hook_pre``
    (alias of ``blocks.{i}.mlp.gate.hook_out``, the gate projection's output gate(x)) and apply the
    layer's own ``act_fn`` module to it before counting.
  * nnsight 0.8.1 (``LanguageModel``): ``model.layers[i].mlp.act_fn.output``, exactly site ``act``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


class _Tally:
    """Per-layer, per-neuron running statistics over non-padding tokens, kept on one device."""

    def __init__(self, layers: int):
        self.layers = layers
        self.parts: dict[str, torch.Tensor] | None = None  # allocated at the first batch (width known)

    def add(self, layer: int, values: torch.Tensor, mask: torch.Tensor) -> None:
        flat = values[mask.to(values.device).bool()].float()  # (non-padding tokens, W)
        if self.parts is None:
            shape, device = (self.layers, flat.shape[-1]), flat.device
            self.parts = {"active": torch.zeros(shape, dtype=torch.int64, device=device),
                          "sum": torch.zeros(shape, dtype=torch.float64, device=device),
                          "sum_sq": torch.zeros(shape, dtype=torch.float64, device=device),
                          "max": torch.full(shape, float("-inf"), dtype=torch.float32, device=device)}
        p = self.parts
        p["active"][layer] += (flat > 0).sum(0)
        p["sum"][layer] += flat.sum(0, dtype=torch.float64)
        p["sum_sq"][layer] += (flat * flat).sum(0, dtype=torch.float64)
        torch.maximum(p["max"][layer], flat.amax(0), out=p["max"][layer])

    def result(self) -> dict:
        return {name: tensor.cpu() for name, tensor in self.parts.items()}


def _to(batch: dict, device) -> dict:
    return {name: value.to(device) for name, value in batch.items()}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: Callable[[dict], None], batches: list[dict], device, warmup: Callable | None = None) -> float:
    """Run ``warmup`` (default ``step``) once on ``batches[0]`` untimed, then time ``step`` over all batches."""
    (warmup or step)(batches[0])
    _sync(device)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    _sync(device)
    return time.perf_counter() - start


def _tokens(batches: list[dict]) -> int:
    return sum(int(batch["attention_mask"].sum()) for batch in batches)


def _counts(layers: int, step: Callable[[dict, _Tally], None], batches: list[dict], device) -> dict:
    """Warm up into a throw-away tally, then time the real one."""
    tally = _Tally(layers)
    seconds = _timed(lambda batch: step(batch, tally), batches, device,
                     warmup=lambda batch: step(batch, _Tally(layers)))
    return {**tally.result(), "tokens": _tokens(batches), "seconds": seconds}


# ------------------------------------------------------------------------------------------------
# TransformerLens


def transformerlens_counts(model_dir: str, batches: list[dict], *, device: str | None = None,
                           dtype: torch.dtype = torch.float32) -> dict:
    """Site ``act`` statistics with ``TransformerBridge.run_with_cache`` (the bridge loads ``model_dir``)."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # TL 4.3 reads ``name_or_path`` from the tokenizer's init kwargs: load it from the folder
    # (a tokenizer built in memory raises KeyError 'name_or_path' in boot_transformers).
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    bridge = TransformerBridge.boot_transformers(model_dir, tokenizer=tokenizer, device=device, dtype=dtype)
    bridge.eval()
    layers = len(bridge.blocks)
    names = [f"blocks.{i}.mlp.hook_pre" for i in range(layers)]  # gate(x); no hook on act(gate(x))
    acts = [bridge.blocks[i].mlp.original_component.act_fn for i in range(layers)]  # the HF act_fn

    def step(batch: dict, tally: _Tally) -> None:
        batch = _to(batch, device)
        extra = {k: v for k, v in batch.items() if k != "input_ids"}  # attention_mask, position_ids
        with torch.no_grad():
            _, cache = bridge.run_with_cache(batch["input_ids"], names_filter=names,
                                             return_cache_object=False, **extra)
            for i, name in enumerate(names):
                tally.add(i, acts[i](cache[name]), batch["attention_mask"])

    return _counts(layers, step, batches, device)


# ------------------------------------------------------------------------------------------------
# nnsight


def nnsight_counts(model, batches: list[dict], *, tokenizer=None) -> dict:
    """Site ``act`` statistics with ``LanguageModel(model).trace`` and ``act_fn.output.save()``."""
    from nnsight import LanguageModel

    if tokenizer is None:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(model.name_or_path)
    lm = LanguageModel(model, tokenizer=tokenizer)  # nnsight 0.8.1 warns: prefers TransformersModel
    device = model.get_input_embeddings().weight.device
    layers = len(model.model.layers)

    def step(batch: dict, tally: _Tally) -> None:
        batch = _to(batch, device)
        saved = []
        with torch.no_grad():
            with lm.trace(batch, use_cache=False):
                for i in range(layers):
                    saved.append(lm.model.layers[i].mlp.act_fn.output.save())
            for i, values in enumerate(saved):
                tally.add(i, values, batch["attention_mask"])

    return _counts(layers, step, batches, device)


# ------------------------------------------------------------------------------------------------
# The floor


def bare_forward_seconds(model, batches: list[dict], head: bool) -> float:
    """Seconds of a plain forward over ``batches`` (after one untimed warm-up), no statistic:
    ``model(**batch)`` (with logits) when ``head``, else the decoder only, ``model.model(**batch)``.
    ``use_cache=False`` as neurospec's collect passes it."""
    device = model.get_input_embeddings().weight.device
    forward = model if head else model.model

    def step(batch: dict) -> None:
        with torch.no_grad():
            forward(**_to(batch, device), use_cache=False)

    return _timed(step, batches, device)
