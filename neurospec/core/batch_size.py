"""The largest batch that fits: tried on a GPU, estimated against the free memory on a CPU.

    batch_size(model, "auto", tokens=512)              # 8 on a CPU with room for it; on a GPU, the largest tried
    batch_size(model, "16", tokens=512)                # 16: a number is taken as it is
    batch_size(model, "auto", tokens=256, backward=True)   # attribution and training keep every layer's activations

On CUDA, batches of ``tokens`` tokens are run from ``GPU_LIMIT`` rows down, halving on out-of-memory
(accelerate's ``find_executable_batch_size``). On a CPU, a batch's memory is estimated from the model's
shape (hidden states, MLP activations and attention scores of one layer at a time, of every layer with
``backward``) and the batch kept within a quarter of the available memory; it is at most ``CPU_LIMIT``,
since larger batches do not run faster there. The answer is remembered per model and shape.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from neurospec.core.forward import model_device
from neurospec.util.errors import NeurospecError

AUTO = "auto"
CPU_LIMIT = 8
GPU_LIMIT = 256
CPU_SHARE = 0.25          # of the available memory


def parse(value: int | str, flag: str = "--batch-size") -> int | None:
    """``"8"`` / 8 -> 8, ``"auto"`` -> None; anything else is an error naming ``flag``."""
    if isinstance(value, bool):
        raise NeurospecError(f"{flag} {value!r}: give a whole number of sequences, or auto")
    if isinstance(value, int):
        number = value
    elif str(value).strip().lower() == AUTO:
        return None
    elif str(value).strip().isdigit():
        number = int(str(value).strip())
    else:
        raise NeurospecError(f"{flag} {value!r}: give a whole number of sequences (e.g. 8), or auto")
    if number < 1:
        raise NeurospecError(f"{flag} {value!r}: give at least 1 sequence, or auto")
    return number


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable on Linux; else the physical total)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def sequence_bytes(model: nn.Module, tokens: int, backward: bool = False) -> int:
    """Estimated bytes one sequence of ``tokens`` tokens takes in a forward pass (with ``backward``, kept for it)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 1024)
    inner = int(getattr(config, "intermediate_size", 0) or getattr(config, "n_inner", 0) or 4 * hidden)
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0) or 8)
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 1)
    element = next(model.parameters()).element_size()
    one_layer = tokens * (6 * hidden + 3 * inner) + heads * tokens * tokens
    return element * one_layer * (2 * layers if backward else 2)


def _cpu(model: nn.Module, tokens: int, backward: bool) -> int:
    fits = int(available_memory() * CPU_SHARE // max(sequence_bytes(model, tokens, backward), 1))
    return max(1, min(CPU_LIMIT, fits))


def _cuda(model: nn.Module, tokens: int, backward: bool) -> int:
    from accelerate.utils import find_executable_batch_size

    device = model_device(model)
    vocab = model.get_input_embeddings().weight.shape[0]

    @find_executable_batch_size(starting_batch_size=GPU_LIMIT)
    def largest(size: int) -> int:
        ids = torch.randint(3, vocab, (size, tokens), device=device)
        with torch.set_grad_enabled(backward):
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
            if backward:
                out.logits[:, -1].float().sum().backward()
                model.zero_grad(set_to_none=True)
        del out, ids
        return size

    return largest()


def batch_size(model: nn.Module, value: int | str, *, tokens: int, backward: bool = False,
               flag: str = "--batch-size") -> int:
    """The batch size ``value`` asks for: a number as it is, ``auto`` the largest that fits (see the module)."""
    number = parse(value, flag)
    if number is not None:
        return number
    key = (int(tokens), bool(backward))
    remembered = model.__dict__.setdefault("_neurospec_batch_sizes", {})
    if key not in remembered:
        on_gpu = model_device(model).type == "cuda"
        remembered[key] = _cuda(model, tokens, backward) if on_gpu else _cpu(model, tokens, backward)
    return remembered[key]
