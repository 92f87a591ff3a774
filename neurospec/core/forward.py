"""What feeding a model batches takes: where its inputs go, which keyword arguments its forward accepts, and
batches of prompts of similar length.

    from neurospec.core.forward import accepts, length_sorted_chunks, model_device
    device = model_device(model)                                   # the input embeddings' device
    extra = {"use_cache": False} if accepts(model, "use_cache") else {}
    for chunk in length_sorted_chunks([len(ids) for ids in encoded], batch_size=8):   # indices, longest first
        ...
"""

from __future__ import annotations

import inspect
from typing import Iterator, Sequence

import torch

from neurospec.util.errors import NeurospecError


def model_device(model) -> torch.device:
    """``model_device(model)``: where inputs go, the device of the input embeddings (the first device under
    ``device_map``)."""
    return model.get_input_embeddings().weight.device


def accepts(model, name: str) -> bool:
    """``accepts(model, "logits_to_keep")``: whether ``model.forward`` takes the keyword argument ``name``."""
    return name in inspect.signature(model.forward).parameters


def length_sorted_chunks(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """``length_sorted_chunks([3, 9, 5], 2)`` -> ``[1, 2], [0]``: indices in chunks of similar length (longest
    first), so batches carry little padding."""
    if batch_size < 1:
        raise NeurospecError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]
