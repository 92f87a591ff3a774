"""Each neuron's top-K activating contexts per language, kept while collecting, and a reader for them.

    from neurospec.measure.contexts import TopContexts
    contexts = TopContexts.load("runs/stats")                 # the tokenizer of the model the stats record
    for context in contexts.neuron("fr", layer=3, neuron=117):
        print(f"{context.value:.3f}  {context.left}[[{context.token}]]{context.right}")

``collect --top-contexts K`` keeps, for every neuron of the site and every language, the K counted tokens with
the largest value, in a bounded structure of O(layers x neurons x K) per language (only the language being
collected is held in memory). Ties are broken by corpus order: of equal values, the earlier token wins (the
exact rule of a brute-force sort by (-value, position)). Each batch is reduced to its own top-K first
(:func:`batch_top_k`), then merged into the kept top-K (:func:`merge`) in batch order, so one process, several
processes under torchrun and a resumed run keep the same contexts.

Files (listed in ``stats.json`` under ``context_files``, fingerprinted like every tensor file)::

    contexts/<language>.safetensors
        values    (L, W, K) float32, largest first (-inf in slots a short language never filled)
        positions (L, W, K) int64, row * seq_len + token index of the row (-1 in empty slots); rows are numbered
                  in corpus order (batch number x batch size + row in batch)
        windows   (L, W, K, 2 * CONTEXT_WINDOW + 1) int32: the token ids around the token, which sits in the middle;
                  -1 outside its row (packed) or its sentence (sentence mode)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from neurospec.measure.stats import CONTEXT_DIR
from neurospec.util.errors import NeurospecError

CONTEXT_WINDOW = 8  # tokens kept on each side of a top token
CONTEXT_TENSORS = ("values", "positions", "windows")


def context_file(language: str) -> str:
    """``contexts/<language>.safetensors``: the final name of ``language``'s top contexts in a statistics folder."""
    return f"{CONTEXT_DIR}/{language}.safetensors"


# --------------------------------------------------------------------------------------------
# Keeping the top K


def empty_contexts(num_layers: int, width: int, k: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """``empty_contexts(L, W, K)``: no context yet (values -inf, positions -1, windows -1)."""
    span = 2 * CONTEXT_WINDOW + 1
    return {"values": torch.full((num_layers, width, k), float("-inf"), dtype=torch.float32, device=device),
            "positions": torch.full((num_layers, width, k), -1, dtype=torch.int64, device=device),
            "windows": torch.full((num_layers, width, k, span), -1, dtype=torch.int32, device=device)}


def top_k_earliest(values: torch.Tensor, k: int) -> torch.Tensor:
    """``top_k_earliest(values (N, W), k)`` -> (k, W) row indices: per column, the k largest values, largest first,
    ties by the smaller row index (``k <= N``). torch.topk alone leaves the choice among ties unspecified."""
    columns = values.t().contiguous()  # (W, N): one neuron per row; every reduction below runs along memory
    top = torch.topk(columns, k, dim=1)
    kth = top.values[:, -1:]  # (W, 1) the k-th largest value: deterministic, unlike topk's choice among ties
    if bool(((columns >= kth).sum(1) > k).any()):  # ties at kth beyond the room left: take the earliest ones
        above = columns > kth
        equal = (columns == kth) & ((columns == kth).cumsum(1, dtype=torch.int32) <= k - above.sum(1, keepdim=True))
        rows = (above | equal).nonzero()[:, 1].view(columns.shape[0], k)  # exactly k per neuron, ascending
    else:  # topk's set is the only one: put it in ascending row order
        rows = top.indices.sort(dim=1).values
    order = torch.sort(columns.gather(1, rows), dim=1, descending=True, stable=True).indices  # ties: earlier row
    return rows.gather(1, order).t()


def batch_top_k(values: torch.Tensor, positions: torch.Tensor, windows: torch.Tensor,
                k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer of one batch: ``values`` (N, W) of the counted tokens in corpus order, their ``positions`` (N,) and
    ``windows`` (N, S) -> (W, k) values, (W, k) positions, (W, k, S) windows, padded with empty slots when N < k."""
    n, width = values.shape
    take = min(k, n)
    rows = top_k_earliest(values, take) if take else values.new_zeros((0, width), dtype=torch.long)
    top_values = values.gather(0, rows).t()
    top_positions = positions[rows].t()
    top_windows = windows[rows].transpose(0, 1)
    if take < k:
        pad = k - take
        top_values = F.pad(top_values, (0, pad), value=float("-inf"))
        top_positions = F.pad(top_positions, (0, pad), value=-1)
        top_windows = F.pad(top_windows, (0, 0, 0, pad), value=-1)
    return top_values, top_positions, top_windows


def merge(kept: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``merge(kept, batch)``: the top K of both, ``kept`` holding earlier tokens than ``batch`` (ties: ``kept``
    first). Both are dicts of :data:`CONTEXT_TENSORS` of shape (L, W, K) (windows (L, W, K, S))."""
    k = kept["values"].shape[-1]
    values = torch.cat([kept["values"], batch["values"].to(kept["values"].device)], dim=-1)
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices[..., :k]
    positions = torch.cat([kept["positions"], batch["positions"].to(kept["positions"].device)], dim=-1)
    windows = torch.cat([kept["windows"], batch["windows"].to(kept["windows"].device)], dim=-2)
    return {"values": values.gather(-1, order), "positions": positions.gather(-1, order),
            "windows": windows.gather(-2, order[..., None].expand(*order.shape, windows.shape[-1]))}


def token_windows(input_ids: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """(B, T, S) int32: for every token, the ids ``CONTEXT_WINDOW`` on each side (itself in the middle), -1 where a
    neighbour lies outside the row or in another ``segment`` (sentence; -1 marks padding)."""
    w = CONTEXT_WINDOW
    ids = F.pad(input_ids.to(torch.int32), (w, w), value=-1).unfold(1, 2 * w + 1, 1)
    segments = F.pad(segment, (w, w), value=-2).unfold(1, 2 * w + 1, 1)
    return ids.masked_fill(segments != segment[..., None], -1)


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class Context:
    """One kept context: the neuron's ``value`` at ``token``, with the text on its ``left`` and ``right``."""

    value: float
    token: str
    left: str
    right: str
    row: int
    index: int  # the token's index in its row


@dataclass
class TopContexts:
    """The top contexts of a statistics folder, per language (see the module docstring)."""

    languages: list[str]
    tensors: dict[str, dict[str, torch.Tensor]]
    seq_len: int
    tokenizer: Any = None

    @classmethod
    def load(cls, folder: str | Path, tokenizer: Any = None) -> "TopContexts":
        """``TopContexts.load("runs/stats")``: every language's contexts, checked against ``stats.json``'s
        fingerprints; ``tokenizer`` decodes them (None: the tokenizer of the model the statistics record)."""
        from neurospec.measure.run_folder import RunFolder
        from neurospec.measure.stats import STATS_RUN

        run = RunFolder(folder, STATS_RUN)
        meta = run.read_manifest()
        if not meta.get("complete"):
            raise NeurospecError(f"{folder} holds unfinished statistics; finish them with `neurospec collect ... "
                                 "--resume`")
        names = meta.get("context_files") or {}
        if not names:
            raise NeurospecError(f"{folder} holds no top contexts: collect the statistics with --top-contexts K")
        files = meta.get("files") or {}
        tensors = {language: run.load_tensors(name, files.get(name)) for language, name in names.items()}
        seq_len = int((meta.get("options") or {}).get("seq_len") or 0)
        return cls([lang for lang in meta["languages"] if lang in tensors], tensors, seq_len, tokenizer or
                   _model_tokenizer(meta))

    def neuron(self, language: str, layer: int, neuron: int) -> list[Context]:
        """``contexts.neuron("fr", 3, 117)``: the kept contexts of one neuron in ``language``, largest value first."""
        if language not in self.tensors:
            raise NeurospecError(f"no top contexts for language {language!r}; these hold {', '.join(self.languages)}")
        kept = self.tensors[language]
        found = []
        for value, position, window in zip(kept["values"][layer, neuron].tolist(),
                                           kept["positions"][layer, neuron].tolist(), kept["windows"][layer, neuron]):
            if position < 0:
                continue
            ids = [int(i) for i in window.tolist()]
            middle = CONTEXT_WINDOW
            found.append(Context(value, self._text(ids[middle:middle + 1]), self._text(ids[:middle]),
                                 self._text(ids[middle + 1:]), *divmod(position, self.seq_len or 1)))
        return found

    def _text(self, ids: list[int]) -> str:
        ids = [i for i in ids if i >= 0]
        if self.tokenizer is None:
            return " ".join(str(i) for i in ids)
        return self.tokenizer.decode(ids, skip_special_tokens=False)


def _model_tokenizer(meta: dict[str, Any]) -> Any:
    """The tokenizer of the model ``stats.json`` records; None (ids shown as numbers) when it cannot be loaded."""
    model_id = (meta.get("model") or {}).get("model_id")
    if not model_id:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_id)
    except Exception:  # an offline machine or a model without a tokenizer: ids still show
        return None
