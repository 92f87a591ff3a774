"""The brute force the statistics tests compare against: every layer's activations from plain torch hooks.

    from plain_hooks import act_values
    layers = act_values(model, input_ids, attention_mask)   # [(B, T, W) per layer]
"""

from __future__ import annotations

import torch


def act_values(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Each layer's ``act_fn`` output, with a plain torch forward hook (no neurospec code)."""
    seen: list[torch.Tensor] = []
    handles = [layer.mlp.act_fn.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
               for layer in model.model.layers]
    try:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    return seen
