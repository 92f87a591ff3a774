"""Each neuron's top-K activating contexts per language, kept while collecting, and a reader for them.

    from neurospec.measure.contexts import TopContexts
    contexts = TopContexts.load("runs/stats")                 # the tokenizer of the model the stats record
    for context in contexts.neuron("fr", layer=3, neuron=117):
        print(f"{context.value:.3f}  {context.left}[[{context.token}]]{context.right}")
    contexts.kept(3, 117), contexts.kept_neurons()             # selected mode: which neurons have contexts

``collect --top-contexts K`` keeps, for every neuron of the site and every language, the K counted tokens with
the largest value, in a bounded structure of O(layers x neurons x K) per language (only the language being
collected is held in memory). ``--context-neurons lape.json [--context-sample N]`` bounds it further: only the
neurons of that neuron set at the collected site, plus N other neurons drawn at random (``--seed``, default 0:
``torch.randperm`` of the (layer, neuron) grid with a generator seeded so), keep contexts; ``--context-sample N``
alone keeps only the sample. Ties are broken by corpus order: of equal values, the earlier token wins (the
exact rule of a brute-force sort by (-value, position)). Each batch is reduced to its own top-K first
(:func:`batch_top_k`), then merged into the kept top-K (:func:`merge`) in batch order, so one process, several
processes under torchrun and a resumed run keep the same contexts.

What a batch costs: only values that can enter are looked at. Per layer, the maximum of every block of
:data:`BLOCK` tokens is taken (:func:`block_maxima`, at the cost of the neuron maximum the statistics need
anyway); only neurons whose batch maximum beats their kept K-th value, and in them only blocks whose maximum
does, are read (:func:`sparse_entries`; before anything is kept, or while the kept K-th values are low, the
blocks must also reach the K-th largest block maximum of the batch, which the batch's K-th largest value
always does). The few entries found in all layers are sorted once per batch (:func:`top_k_of_entries`), the
windows of text gathered for the chosen tokens only, and the merge touches only the neurons that gain. When
too many values pass (many ties, e.g. a ReLU's zeros), a top-k of every value is taken (:func:`dense_top_k`).

Files (listed in ``stats.json`` under ``context_files``, fingerprinted like every tensor file)::

    contexts/<language>.safetensors                       every neuron (no --context-neurons / --context-sample)
        values    (L, W, K) float32, largest first (-inf in slots a short language never filled)
        positions (L, W, K) int64, row * seq_len + token index of the row (-1 in empty slots); rows are numbered
                  in corpus order (batch number x batch size + row in batch)
        windows   (L, W, K, 2 * CONTEXT_WINDOW + 1) int32: the token ids around the token, which sits in the middle;
                  -1 outside its row (packed) or its sentence (sentence mode)

    contexts/<language>.safetensors                       selected neurons
        neurons   (M, 2) int64: (layer, neuron) of each kept neuron, sorted
        values, positions (M, K); windows (M, K, 2 * CONTEXT_WINDOW + 1): as above, one row per kept neuron

The selection is recorded in ``stats.json`` options: ``context_neurons`` (the file as given, its fingerprint and
its neuron count at the site; null for a sample alone), ``context_sample`` and ``seed``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from neurospec.measure.stats import CONTEXT_DIR
from neurospec.util.errors import NeurospecError

CONTEXT_WINDOW = 8  # tokens kept on each side of a top token
CONTEXT_TENSORS = ("values", "positions", "windows")
NEURONS = "neurons"  # the (M, 2) index tensor of a file of selected neurons
#: Above this share of candidates (values in blocks whose maximum beats the kept K-th value) a batch takes a plain
#: top-k instead.
DENSE_SHARE = 1 / 4
BLOCK = 16  # rows per block of :func:`block_maxima`


def context_file(language: str) -> str:
    """``contexts/<language>.safetensors``: the final name of ``language``'s top contexts in a statistics folder."""
    return f"{CONTEXT_DIR}/{language}.safetensors"


# --------------------------------------------------------------------------------------------
# Which neurons keep contexts


class ContextLayout:
    """``ContextLayout(L, W)`` (every neuron) or ``ContextLayout(L, W, neurons)`` ((M, 2) sorted (layer, neuron)):
    the rows of the kept tensors. ``shape`` is their leading shape, (L, W) or (M,); row ``r`` of the flattened
    tensors is neuron ``(r // W, r % W)`` of the grid, or ``neurons[r]``."""

    def __init__(self, num_layers: int, width: int, neurons: torch.Tensor | None = None) -> None:
        self.num_layers, self.width, self.neurons = num_layers, width, neurons
        if neurons is None:
            self.shape: tuple[int, ...] = (num_layers, width)
            self.bounds = [layer * width for layer in range(num_layers + 1)]
        else:
            self.shape = (int(neurons.shape[0]),)
            self.bounds = torch.searchsorted(neurons[:, 0].contiguous(), torch.arange(num_layers + 1)).tolist()

    @property
    def size(self) -> int:
        """The number of neurons that keep contexts."""
        return self.bounds[-1]

    def rows(self, layer: int) -> slice:
        """``layout.rows(3)``: the flattened rows of ``layer``'s kept neurons."""
        return slice(self.bounds[layer], self.bounds[layer + 1])

    def columns(self, layer: int) -> torch.Tensor | None:
        """``layout.columns(3)``: the neuron indices of ``layer`` that keep contexts, in row order; None: all."""
        return None if self.neurons is None else self.neurons[self.rows(layer), 1]

    def empty(self, k: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """No context yet for any kept neuron (with the ``neurons`` index of a selection)."""
        kept = empty_contexts(self.shape, k, device)
        if self.neurons is not None:
            kept[NEURONS] = self.neurons.to(device)
        return kept


def select_context_neurons(path: str | Path | None, sample: int, seed: int, site: str,
                           shape: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """``select_context_neurons("lape.json", 1000, 0, "act", sites)`` -> ((M, 2) sorted (layer, neuron), what
    stats.json records): the neurons of the set at ``site`` (checked against ``shape``, a SiteMap or ModelShape)
    plus ``sample`` others drawn at random with ``seed``."""
    from neurospec.core.sites import ModelShape

    dims = shape if isinstance(shape, ModelShape) else shape.shape
    num_layers, width = dims.num_layers, dims.widths[site]
    chosen, record = torch.empty(0, dtype=torch.int64), None
    if path is not None:
        chosen, record = _set_neurons(Path(path), site, shape, width)
    others = _random_others(chosen, sample, seed, num_layers * width)
    keys = torch.cat([chosen, others]).sort().values
    neurons = torch.stack([keys // width, keys % width], dim=1)
    return neurons, {"context_neurons": record, "context_sample": sample, "seed": seed}


def _set_neurons(path: Path, site: str, shape: Any, width: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """The grid keys (layer * width + neuron) of the neuron file's neurons at ``site``, and its record."""
    from neurospec.neurons.neuron_set import NeuronSet
    from neurospec.util.io import file_fingerprint

    try:
        neuron_set = NeuronSet.load(path, shape=shape)
    except NeurospecError as err:
        raise type(err)(f"--context-neurons: {err}") from None
    layers = neuron_set.layer_indices(None, site)
    if not layers:
        raise NeurospecError(f"--context-neurons {path} holds no neuron at site {site!r}, the site being collected; "
                             "give a neuron file of this site (or collect at its site with --site)")
    keys = torch.cat([layer * width + indices for layer, indices in layers.items()])
    return keys, {"file": str(path), "fingerprint": file_fingerprint(path), "neurons": int(keys.numel())}


def _random_others(chosen: torch.Tensor, sample: int, seed: int, grid: int) -> torch.Tensor:
    """``sample`` grid keys not in ``chosen``, drawn with ``seed`` (the first of a seeded random permutation)."""
    if sample > grid - chosen.numel():
        raise NeurospecError(f"--context-sample {sample} is more than the {grid - chosen.numel()} neurons outside "
                             "--context-neurons; give a smaller sample")
    if not sample:
        return torch.empty(0, dtype=torch.int64)
    order = torch.randperm(grid, generator=torch.Generator().manual_seed(seed))
    return order[~torch.isin(order, chosen)][:sample]


# --------------------------------------------------------------------------------------------
# Keeping the top K


def empty_contexts(shape: tuple[int, ...], k: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """``empty_contexts((L, W), K)``: no context yet (values -inf, positions -1, windows -1) for rows of ``shape``."""
    span = 2 * CONTEXT_WINDOW + 1
    return {"values": torch.full((*shape, k), float("-inf"), dtype=torch.float32, device=device),
            "positions": torch.full((*shape, k), -1, dtype=torch.int64, device=device),
            "windows": torch.full((*shape, k, span), -1, dtype=torch.int32, device=device)}


def top_k_earliest(values: torch.Tensor, k: int) -> torch.Tensor:
    """``top_k_earliest(values (N, W), k)`` -> (k, W) row indices: per column, the k largest values, largest first,
    ties by the smaller row index (``k <= N``). torch.topk alone leaves the choice among ties unspecified: it is
    trusted for the columns whose k-th and (k+1)-th values differ (the set is then unique); the columns with a tie
    there take the earliest of the tied rows (:func:`_earliest_rows`)."""
    columns = values.t().contiguous()  # (W, N): one neuron per row; every reduction below runs along memory
    n = columns.shape[1]
    top = torch.topk(columns, min(k + 1, n), dim=1)
    rows = top.indices[:, :k]
    if n > k:
        tied = (top.values[:, k] == top.values[:, k - 1]).nonzero().squeeze(1)
        if tied.numel():  # ties at the k-th value beyond the room left: the earliest of them, column by column
            rows = rows.clone()
            rows[tied] = _earliest_rows(columns[tied], top.values[tied, k - 1:k], k)
    rows = rows.sort(dim=1).values
    order = torch.sort(columns.gather(1, rows), dim=1, descending=True, stable=True).indices  # ties: earlier row
    return rows.gather(1, order).t()


def _earliest_rows(columns: torch.Tensor, kth: torch.Tensor, k: int) -> torch.Tensor:
    """(C, k) ascending row indices: per row of ``columns`` (C, N), those above ``kth`` (C, 1) and the earliest of
    those equal to it, k in all."""
    above = columns > kth
    equal = (columns == kth) & ((columns == kth).cumsum(1, dtype=torch.int32) <= k - above.sum(1, keepdim=True))
    return (above | equal).nonzero()[:, 1].view(columns.shape[0], k)


def block_maxima(values: torch.Tensor) -> torch.Tensor:
    """``block_maxima(values (N, W))`` -> (ceil(N / BLOCK), W): the maximum of every :data:`BLOCK` consecutive rows
    (the last block may be shorter). Their maximum is ``values.amax(0)``, for about the cost of that pass alone."""
    n = values.shape[0]
    whole = n // BLOCK * BLOCK
    parts = [values[:whole].view(whole // BLOCK, BLOCK, values.shape[1]).amax(1)] if whole else []
    if whole < n:
        parts.append(values[whole:].amax(0, keepdim=True))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def entries_above(values: torch.Tensor, floor: torch.Tensor | None, columns: torch.Tensor | None = None,
                  blocks: torch.Tensor | None = None,
                  at_least: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``entries_above(values (N, W), floor (C,), columns (C,))`` -> (rows, positions in ``columns``, values) of
    every entry strictly above its column's ``floor`` (and, given ``at_least`` (C,), not below it), rows ascending
    within each column. Only the blocks of :func:`block_maxima` (``blocks``, computed when not given) whose
    maximum passes are looked into."""
    blocks = block_maxima(values) if blocks is None else blocks
    return _entries_in(values, blocks if columns is None else blocks[:, columns], floor, columns, at_least)


def _entries_in(values: torch.Tensor, blocks: torch.Tensor, floor: torch.Tensor | None, columns: torch.Tensor | None,
                at_least: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`entries_above` given the block maxima of ``columns`` only."""
    n = values.shape[0]
    block, column = _passing(blocks, floor, at_least).nonzero(as_tuple=True)  # blocks ascending within a column
    source = column if columns is None else columns[column]
    rows = block[:, None] * BLOCK + torch.arange(BLOCK, device=values.device)
    found = values[rows.clamp(max=n - 1), source[:, None]]
    hit = (rows < n) & _passing(found, None if floor is None else floor[column][:, None],
                                None if at_least is None else at_least[column][:, None])
    entry, offset = hit.nonzero(as_tuple=True)
    return rows[entry, offset], column[entry], found[entry, offset]


def _passing(values: torch.Tensor, floor: torch.Tensor | None, at_least: torch.Tensor | None) -> torch.Tensor:
    """``values > floor`` and ``values >= at_least`` (either bound may be None, not both)."""
    if at_least is None:
        return values > floor
    return values >= at_least if floor is None else (values > floor) & (values >= at_least)


def batch_floor(blocks: torch.Tensor, k: int) -> torch.Tensor | None:
    """(C,) the k-th largest of each column's block maxima (``blocks`` (B, C)): the k largest values of a column lie in
    k different blocks or fewer, so the column's own k-th largest value is at least this; None with fewer than k
    blocks."""
    if blocks.shape[0] < k or not k:
        return None
    return torch.topk(blocks, k, dim=0).values[-1]


def top_k_above(values: torch.Tensor, k: int, floor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``top_k_above(values (N, W), k, floor (W,))`` -> (W, k) values and (W, k) row indices: per column, the k
    largest values strictly above ``floor``, largest first, ties by the earlier row; -inf / -1 in slots left over.
    Only the entries above the floor are sorted: cheap once the floor is the kept K-th value."""
    return top_k_of_entries(*entries_above(values, floor), k, values.shape[1])


def top_k_of_entries(rows: torch.Tensor, columns: torch.Tensor, found: torch.Tensor, k: int,
                     width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(width, k) values and rows: per column, the k largest of the entries (``rows``, ``columns``, ``found``
    values; rows ascending within each column), ties by the earlier row; -inf / -1 in slots left over. One stable
    sort by (column, value descending): equal values keep their order, the earlier row first."""
    order = torch.sort(columns * 2 ** 32 + descending_key(found), stable=True).indices
    rows, columns, found = rows[order], columns[order], found[order]
    counts = torch.bincount(columns, minlength=width)
    rank = torch.arange(columns.numel(), device=columns.device) - (counts.cumsum(0) - counts)[columns]
    keep = rank < k
    top_values = torch.full((width, k), float("-inf"), dtype=found.dtype, device=found.device)
    top_rows = torch.full((width, k), -1, dtype=torch.int64, device=found.device)
    top_values[columns[keep], rank[keep]] = found[keep]
    top_rows[columns[keep], rank[keep]] = rows[keep]
    return top_values, top_rows


def descending_key(values: torch.Tensor) -> torch.Tensor:
    """int64 keys in [0, 2**32) that sort float32 ``values`` largest first, equal values (-0.0 and 0.0 too) equal."""
    bits = (values.float() + 0.0).view(torch.int32).long()  # + 0.0 turns -0.0 into 0.0
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # increasing with the value, in [-2**31, 2**31)
    return 2 ** 31 - 1 - ordered


def sparse_entries(values: torch.Tensor, floor: torch.Tensor | None, k: int, columns: torch.Tensor | None = None,
                   blocks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The entries of ``columns`` (None: all) of ``values`` that can be among a column's top ``k`` and beat its kept
    ``floor`` (None before any is kept): above ``floor`` and, when that leaves many blocks to look into (more than k
    a column, or no floor), not below the k-th largest block maximum (:func:`batch_floor`); None when a plain
    top-k of every value is cheaper (more than :data:`DENSE_SHARE` of the values to look at, or no floor and fewer
    than k blocks)."""
    n = values.shape[0]
    width = values.shape[1] if columns is None else columns.numel()
    blocks = block_maxima(values) if blocks is None else blocks
    chosen = blocks if columns is None else blocks[:, columns]
    at_least, passing = None, None if floor is None else int((chosen > floor).sum())
    if passing is None or passing > k * width:  # no kept floor yet, or a low one: bound by the batch's own
        at_least = batch_floor(chosen, k)
        if at_least is None and floor is None:
            return None
        passing = passing if at_least is None else int(_passing(chosen, floor, at_least).sum())
    if not n or passing * BLOCK > DENSE_SHARE * n * width:
        return None
    return _entries_in(values, chosen, floor, columns, at_least)


def dense_top_k(values: torch.Tensor, k: int, columns: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, k) values and row indices of the k largest values of each of ``columns`` (None: all) of ``values`` (N, W),
    largest first, ties by the earlier row (:func:`top_k_earliest`); -inf / -1 in slots beyond N."""
    if columns is not None:
        values = values.index_select(1, columns)
    n, width = values.shape
    take = min(k, n)
    rows = top_k_earliest(values, take).t() if take else values.new_zeros((width, 0), dtype=torch.long)
    top_values = values.t().gather(1, rows)
    if take < k:
        top_values = F.pad(top_values, (0, k - take), value=float("-inf"))
        rows = F.pad(rows, (0, k - take), value=-1)
    return top_values, rows


def batch_top_k(values: torch.Tensor, k: int, floor: torch.Tensor | None = None, *,
                columns: torch.Tensor | None = None,
                blocks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer of one batch: ``values`` (N, W) of the counted tokens in corpus order -> (C, k) values and (C, k)
    row indices (-inf / -1 in empty slots) of its ``columns`` (C of them; None: all W), the same top K for every
    entry that can beat ``floor`` (C,) (the kept K-th values; an entry not above it never enters the kept top K).
    Usually only the few entries that can be among the top K are sorted (:func:`sparse_entries`, with the batch's
    ``blocks`` maxima when known); else a top-k of every value (:func:`dense_top_k`)."""
    entries = sparse_entries(values, floor, k, columns, blocks)
    if entries is None:
        return dense_top_k(values, k, columns)
    return top_k_of_entries(*entries, k, values.shape[1] if columns is None else columns.numel())


def merge(kept: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``merge(kept, batch)``: the top K of both, written into ``kept`` and returned; ``kept`` holds earlier tokens
    than ``batch`` (ties: ``kept`` first). Both hold :data:`CONTEXT_TENSORS` with the same leading shape, (..., K)
    (windows (..., K, S)); only the rows whose batch maximum beats the kept K-th value change."""
    k = kept["values"].shape[-1]
    values = kept["values"].view(-1, k)
    incoming = batch["values"].to(values.device).reshape(-1, k)
    changed = (incoming[:, 0] > values[:, -1]).nonzero().squeeze(1)
    if not changed.numel():
        return kept
    both = torch.cat([values[changed], incoming[changed]], dim=1)
    order = torch.sort(both, dim=1, descending=True, stable=True).indices[:, :k]
    values[changed] = both.gather(1, order)
    positions = kept["positions"].view(-1, k)
    both = torch.cat([positions[changed], batch["positions"].to(positions.device).reshape(-1, k)[changed]], dim=1)
    positions[changed] = both.gather(1, order)
    windows = kept["windows"].view(-1, k, kept["windows"].shape[-1])
    both = torch.cat([windows[changed], batch["windows"].to(windows.device).reshape(windows.shape)[changed]], dim=1)
    windows[changed] = both.gather(1, order[..., None].expand(*order.shape, windows.shape[-1]))
    return kept


class TokenWindows:
    """``TokenWindows(input_ids (B, T), segment (B, T))``, then ``windows.at(tokens)``: for flat token indices
    (``b * T + t``) of any shape, the ids ``CONTEXT_WINDOW`` on each side (the token in the middle), -1 where a
    neighbour lies outside the row or in another ``segment`` (sentence; -1 marks padding) and for index -1."""

    def __init__(self, input_ids: torch.Tensor, segment: torch.Tensor) -> None:
        w = CONTEXT_WINDOW
        self.length = input_ids.shape[1]
        self.ids = F.pad(input_ids.to(torch.int32), (w, w), value=-1)
        self.segments = F.pad(segment, (w, w), value=-2)
        self.segment = segment
        self.offsets = torch.arange(2 * w + 1, device=input_ids.device)

    def at(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.to(self.ids.device)
        windows = torch.full((*tokens.shape, self.offsets.numel()), -1, dtype=torch.int32, device=self.ids.device)
        present = tokens >= 0
        found = tokens[present]  # only the filled slots: most are empty once a language's floor is high
        row, column = found.div(self.length, rounding_mode="floor"), found % self.length
        spans = column[:, None] + self.offsets
        ids = self.ids[row[:, None], spans]
        windows[present] = ids.masked_fill(self.segments[row[:, None], spans] != self.segment[row, column][:, None], -1)
        return windows


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
    _rows: dict[tuple[int, int], int] | None = field(default=None, init=False, repr=False)

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
                   model_tokenizer(meta))

    def _first(self) -> dict[str, torch.Tensor]:
        return self.tensors[self.languages[0]] if self.languages else next(iter(self.tensors.values()))

    def _row(self, layer: int, neuron: int) -> int | None:
        """The row of ``(layer, neuron)`` in a file of selected neurons (the same in every language); None when it
        keeps no contexts."""
        if self._rows is None:
            self._rows = {(int(a), int(b)): r for r, (a, b) in enumerate(self._first()[NEURONS].tolist())}
        return self._rows.get((layer, neuron))

    def kept(self, layer: int, neuron: int) -> bool:
        """``contexts.kept(3, 117)``: whether that neuron's contexts were kept (always, without a selection)."""
        first = self._first()
        if NEURONS in first:
            return self._row(layer, neuron) is not None
        num_layers, width = first["values"].shape[:2]
        return 0 <= layer < num_layers and 0 <= neuron < width

    def kept_neurons(self) -> torch.Tensor:
        """``contexts.kept_neurons()`` -> (M, 2) int64 (layer, neuron) of the neurons whose contexts were kept, sorted
        (every neuron of the grid without a selection)."""
        first = self._first()
        if NEURONS in first:
            return first[NEURONS].clone()
        num_layers, width = first["values"].shape[:2]
        return torch.cartesian_prod(torch.arange(num_layers), torch.arange(width)).view(-1, 2)

    def neuron(self, language: str, layer: int, neuron: int) -> list[Context]:
        """``contexts.neuron("fr", 3, 117)``: the kept contexts of one neuron in ``language``, largest value first
        ([] for a neuron whose contexts were not kept)."""
        if language not in self.tensors:
            raise NeurospecError(f"no top contexts for language {language!r}; these hold {', '.join(self.languages)}")
        kept = self.tensors[language]
        if NEURONS in kept:
            row = self._row(layer, neuron)
            if row is None:
                return []
            where: tuple[int, ...] = (row,)
        else:
            where = (layer, neuron)
        found = []
        for value, position, window in zip(kept["values"][where].tolist(), kept["positions"][where].tolist(),
                                           kept["windows"][where]):
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


def tokenizer_folders(model: dict[str, Any]) -> list[str]:
    """Where the tokenizer of the model a ``stats.json`` ``model`` record describes can be read, most local first:
    the dequantized cache folder of a GGUF file or built-in model (:mod:`neurospec.core.model_sources`; found by
    the file's sha256, without reading or converting anything), then what the model's name resolves to (a folder,
    a hub id, or a GGUF file / built-in name dequantized as ``load_model`` would)."""
    from neurospec.core.model_sources import BUILTIN_MODELS, cache_root, resolve_source

    model_id = model.get("model_id")
    source = model.get("source") or {}
    gguf = source.get("gguf") or {}
    hashes = [gguf.get("sha256")]
    builtin = BUILTIN_MODELS.get(source.get("builtin") or model_id or "")
    if builtin is not None:
        with contextlib.suppress(NeurospecError):  # its package is not installed: only a recorded sha256 finds it
            hashes.append(builtin.sha256())
    try:
        folders = [str(cache_root() / sha) for sha in hashes if sha] + ([gguf["cache"]] if gguf.get("cache") else [])
        folders = [folder for folder in folders if (Path(folder) / "gguf.json").is_file()]
        if folders or not model_id:
            return folders[:1]
        return [resolve_source(model_id).folder]
    except Exception:  # an uninstalled built-in model, a missing GGUF file: no tokenizer
        return []


def model_tokenizer(meta: dict[str, Any]) -> Any:
    """``model_tokenizer(stats.json)``: the tokenizer of the model the statistics record (built-in, GGUF, hub or
    local, see :func:`tokenizer_folders`); None (ids shown as numbers) when it cannot be had offline."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return None
    for folder in tokenizer_folders(meta.get("model") or {}):
        try:
            return AutoTokenizer.from_pretrained(folder)
        except Exception:  # an offline machine or a model without a tokenizer: ids still show
            continue
    return None
