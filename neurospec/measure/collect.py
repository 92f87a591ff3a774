"""Collect activation statistics per language, streaming, resumable, on one process or many.

    from neurospec.measure.collect import collect, CollectOptions
    from neurospec.data.corpora import open_corpus
    corpora = [open_corpus("fr", "fr.txt"), open_corpus("de", "ntrex128")]
    stats = collect(lm.model, lm.tokenizer, corpora, "runs/stats", CollectOptions(max_tokens=10_000_000))

Two ways to cut text into rows (``CollectOptions.mode``):

- ``packed`` (LAPE, Tang et al. 2024): every text is tokenised without special tokens, the ids are
  concatenated into one stream and cut into rows of ``seq_len`` tokens (default
  ``min(max_position, 4096)``); every token counts. The last, shorter row is kept (the reference
  drops it), so a small corpus is not lost.
- ``sentence`` (Rahmanisa et al. 2025): every text is one sentence, tokenised with the tokenizer's
  own special tokens (BOS; kept by default because Gemma degrades badly without it; ``bos=False``
  leaves them out, as the reference does); only the sentence's own tokens count. Sentences are
  packed several to a row of ``seq_len`` tokens (default ``min(max_position, 512)``) with a block-diagonal attention mask
  and positions restarting at 0, so that no compute goes to padding; each sentence sees exactly what
  it would see alone. That is checked on the model before collecting (a two-sentence probe); a
  family where it does not hold (position from the 2-D mask: OPT, ALiBi: BLOOM, ...) falls back to
  one padded sentence per row. The mean value of every neuron over each of the first
  ``sample_sentences`` sentences is kept (``p_max`` / ``p_median``; see :mod:`neurospec.measure.stats`).

``max_tokens`` caps the counted tokens of each language exactly (the last row or sentence is cut).
The decoder runs without its output head and stops right after the last layer's site: nothing the
statistics do not need is computed.

Resumption and scale-out. Rows form batches numbered in corpus order; batch ``b`` runs on rank
``b % world_size`` (``torchrun``), and every rank receives every batch's partial statistics and
adds them in batch order, so any number of processes, and a run resumed from a checkpoint
(``checkpoint_every`` tokens, and at the end of each language), end with bit-identical files.
"""

from __future__ import annotations

import errno
import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from neurospec.core.forward import model_device
from neurospec.core.hooks import SiteBatch, record
from neurospec.core.sites import SITES, site_map
from neurospec.data.corpora import Corpus, check_corpus
from neurospec.measure.contexts import (
    CONTEXT_TENSORS,
    CONTEXT_WINDOW,
    ContextLayout,
    TokenWindows,
    block_maxima,
    dense_top_k,
    empty_contexts,
    merge,
    select_context_neurons,
    sparse_entries,
    top_k_of_entries,
)
from neurospec.measure.run_folder import Resumed, RunFolder
from neurospec.measure.stats import META_FILE, STATS_RUN, ActivationStats
from neurospec.util.distributed import Ranks
from neurospec.util.errors import NeurospecError
from neurospec.util.progress import progress

MODES = ("packed", "sentence")
_TOKENIZE_CHUNK = 256  # texts per tokenizer call


@dataclass
class CollectOptions:
    """How statistics are collected; every field is recorded in ``stats.json``."""

    site: str = "act"
    mode: str = "packed"
    seq_len: int | None = None  # packed: min(max_position, 4096); sentence: min(max_position, 512)
    max_tokens: int | None = None  # counted tokens per language; None = the whole corpus
    batch_size: int = 8
    sample_sentences: int = 100  # sentence mode: per-sentence means kept for the first K sentences
    pack_sentences: bool = True  # sentence mode: several sentences per row (block-diagonal mask)
    bos: bool = True  # sentence mode: sentences start with the tokenizer's special tokens (False: none, as reference)
    checkpoint_every: int | None = 10_000_000  # counted tokens between checkpoints (None: per language only)
    top_contexts: int = 0  # K > 0: keep every neuron's K top activating contexts per language (neurospec.measure.contexts)
    context_neurons: str | Path | None = None  # with top_contexts: only this neuron file's neurons at the site ...
    context_sample: int = 0  # ... plus this many other neurons drawn at random with ``seed``
    seed: int = 0  # the seed of the context sample

    def check(self) -> None:
        if self.site not in SITES:
            raise NeurospecError(f"unknown site {self.site!r}: choose one of {', '.join(SITES)}")
        if self.mode not in MODES:
            raise NeurospecError(f"unknown mode {self.mode!r}: use packed or sentence")
        for name in ("seq_len", "max_tokens", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise NeurospecError(f"{name} must be a positive number of tokens, not {value}")
        if self.batch_size < 1:
            raise NeurospecError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.sample_sentences < 0:
            raise NeurospecError(f"sample_sentences must be 0 or more, not {self.sample_sentences}")
        if self.top_contexts < 0:
            raise NeurospecError(f"top_contexts must be 0 (off) or more, not {self.top_contexts}")
        self.check_context_selection()

    def check_context_selection(self) -> None:
        """The --context-neurons / --context-sample inputs that need no model: with --top-contexts, a file that exists."""
        if self.context_sample < 0:
            raise NeurospecError(f"--context-sample must be 0 or more, not {self.context_sample}")
        if (self.context_neurons is not None or self.context_sample) and not self.top_contexts:
            given = "--context-neurons" if self.context_neurons is not None else "--context-sample"
            raise NeurospecError(f"{given} chooses the neurons whose top contexts are kept: add --top-contexts K")
        if self.context_neurons is not None and not Path(self.context_neurons).is_file():
            raise NeurospecError(f"--context-neurons {self.context_neurons}: no such file; give a neuron file such as "
                                 "the lape.json of `neurospec select lape`")

    def context_layout(self, sites, num_layers: int, width: int) -> tuple[ContextLayout | None, dict[str, Any]]:
        """Which neurons keep contexts (None: contexts off) and what stats.json records of the selection."""
        if not self.top_contexts:
            return None, {}
        if self.context_neurons is None and not self.context_sample:
            return ContextLayout(num_layers, width), {}
        neurons, record = select_context_neurons(self.context_neurons, self.context_sample, self.seed, self.site,
                                                 sites)
        return ContextLayout(num_layers, width, neurons), record


# --------------------------------------------------------------------------------------------
# Rows and batches


@dataclass
class Batch:
    """Rows for one forward call. ``counted`` marks tokens whose values count; ``sentence`` numbers
    each token's sentence within its language (-1 outside sentences or in packed mode)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor  # 2-D padding mask, or 4-D additive block mask (sentence packing)
    position_ids: torch.Tensor | None
    counted: torch.Tensor
    sentence: torch.Tensor


POSITION_FIELDS = ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length")


def max_positions(model) -> tuple[int, str] | None:
    """(the longest sequence ``model`` takes, the config field saying so): the first of :data:`POSITION_FIELDS` its
    (text) config declares; None when it declares none."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for name in POSITION_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, (getattr(config, "attribute_map", None) or {}).get(name, name)  # GPT-2: n_positions
    return None


def check_length(model, length: int | None, option: str) -> None:
    """Refuse a sequence ``length`` beyond the model's positions (:func:`max_positions`; unchecked when the config
    declares none). ``option`` names the input: ``--seq-len`` (a command's flag) or ``seq_len`` (an argument)."""
    limit = max_positions(model)
    if length is None or limit is None or length <= limit[0]:
        return
    flag = option.startswith("--")
    given, fix = (f"{option} {length}", f"{option} {limit[0]}") if flag else (f"{option}={length}", f"{option}={limit[0]}")
    raise NeurospecError(f"{given} is longer than the model's {limit[0]} positions (its config's {limit[1]}); "
                         f"use {fix} or less")


def default_seq_len(model, mode: str) -> int:
    """``min(max_position, 4096)`` for packed rows, ``min(max_position, 512)`` for sentence rows."""
    limit = max_positions(model)
    cap = 4096 if mode == "packed" else 512
    return min(limit[0], cap) if limit else cap


def _chunks(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def packed_rows(tokenizer, texts: Iterator[str], seq_len: int, max_tokens: int | None) -> Iterator[list[int]]:
    """Rows of ``seq_len`` ids from the concatenated token stream (no special tokens); the last may be shorter."""
    buffer: list[int] = []
    remaining = max_tokens
    for chunk in _chunks(texts, _TOKENIZE_CHUNK):
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            if remaining is not None:
                ids = ids[:remaining]
                remaining -= len(ids)
            buffer.extend(ids)
            while len(buffer) >= seq_len:
                yield buffer[:seq_len]
                buffer = buffer[seq_len:]
            if remaining == 0:
                break
        if remaining == 0:
            break
    if buffer:
        yield buffer


@dataclass
class Sentence:
    ids: list[int]
    counted: list[bool]  # False at the tokenizer's special tokens (BOS/EOS)
    number: int = 0  # position in the language's corpus order


def sentences(tokenizer, texts: Iterator[str], seq_len: int, max_tokens: int | None,
              truncated: list[int] | None = None, *, bos: bool = True) -> Iterator[Sentence]:
    """Each text tokenised with the tokenizer's special tokens (none with ``bos=False``), cut to ``seq_len``;
    special tokens (BOS, EOS, and any written in the text) never count. The token cap counts sentence tokens
    only and cuts the last sentence. ``truncated`` (a one-item list) counts cut sentences."""
    remaining, number = max_tokens, 0
    special = set(tokenizer.all_special_ids)
    for chunk in _chunks(texts, _TOKENIZE_CHUNK):
        for ids in tokenizer(chunk, add_special_tokens=bos)["input_ids"]:
            counted = [i not in special for i in ids]
            if len(ids) > seq_len:
                ids, counted = ids[:seq_len], counted[:seq_len]
                if truncated is not None:
                    truncated[0] += 1
            if remaining is not None:
                keep, seen = 0, 0
                while keep < len(ids) and seen < remaining:
                    seen += counted[keep]
                    keep += 1
                ids, counted = ids[:keep], counted[:keep]
                remaining -= seen
            if any(counted):
                yield Sentence(ids, counted, number)
                number += 1
            if remaining == 0:
                return


def _packed_batches(rows: Iterator[list[int]], batch_size: int, pad_id: int) -> Iterator[Batch]:
    for group in _chunks(rows, batch_size):
        width = max(len(row) for row in group)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for i, row in enumerate(group):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        yield Batch(ids, mask, None, mask.bool(), torch.full_like(ids, -1))


def _sentence_rows(items: Iterator[Sentence], seq_len: int, pack: bool, window: int = 1024) -> Iterator[list[Sentence]]:
    """Rows of whole sentences. Packed: each ``window`` of sentences is placed first-fit, longest first,
    into rows of ``seq_len`` tokens (rows come out about 99% full; a sentence keeps its number, so the
    sample still follows corpus order). Unpacked: one sentence per row."""
    if not pack:
        for sentence in items:
            yield [sentence]
        return
    for group in _chunks(items, window):
        rows: list[list[Sentence]] = []
        free: list[int] = []
        for sentence in sorted(group, key=lambda s: -len(s.ids)):
            for r, room in enumerate(free):
                if len(sentence.ids) <= room:
                    rows[r].append(sentence)
                    free[r] -= len(sentence.ids)
                    break
            else:
                rows.append([sentence])
                free.append(seq_len - len(sentence.ids))
        yield from rows


def _sentence_batches(rows: Iterator[list[Sentence]], batch_size: int, pad_id: int, pack: bool,
                      dtype: torch.dtype) -> Iterator[Batch]:
    for group in _chunks(rows, batch_size):
        width = max(sum(len(s.ids) for s in row) for row in group)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        segment = torch.full((len(group), width), -1, dtype=torch.long)  # sentence within the row; -1 = padding
        positions = torch.zeros((len(group), width), dtype=torch.long)
        counted = torch.zeros((len(group), width), dtype=torch.bool)
        sentence = torch.full((len(group), width), -1, dtype=torch.long)
        for i, row in enumerate(group):
            start = 0
            for k, item in enumerate(row):
                end = start + len(item.ids)
                ids[i, start:end] = torch.tensor(item.ids)
                segment[i, start:end] = k
                positions[i, start:end] = torch.arange(len(item.ids))
                counted[i, start:end] = torch.tensor(item.counted)
                sentence[i, start:end] = item.number
                start = end
        if pack:
            same = segment[:, :, None] == segment[:, None, :]
            causal = torch.ones(width, width, dtype=torch.bool).tril()
            allowed = same & causal & (segment[:, :, None] >= 0)
            allowed |= torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves (never NaN)
            mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]
            yield Batch(ids, mask, positions, counted, sentence)
        else:
            yield Batch(ids, (segment >= 0).long(), None, counted, sentence)


def language_batches(tokenizer, corpus: Corpus, options: CollectOptions, seq_len: int, *, pack: bool,
                     dtype: torch.dtype, truncated: list[int] | None = None) -> Iterator[Batch]:
    """The batches of one language, in corpus order (identical on every rank and on every run)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if options.mode == "packed":
        rows = packed_rows(tokenizer, corpus.texts(), seq_len, options.max_tokens)
        return _packed_batches(rows, options.batch_size, pad_id)
    items = sentences(tokenizer, corpus.texts(), seq_len, options.max_tokens, truncated, bos=options.bos)
    return _sentence_batches(_sentence_rows(items, seq_len, pack), options.batch_size, pad_id, pack, dtype)


# --------------------------------------------------------------------------------------------
# One forward call: partial statistics of every layer


class _Stop(Exception):
    """Raised after the last hooked site: the rest of the model is not needed."""


@dataclass
class _Partial:
    """Statistics of one batch over all layers (on the statistics device)."""

    tokens: int
    sentences: int
    active: torch.Tensor
    sum: torch.Tensor
    sum_sq: torch.Tensor
    max: torch.Tensor
    sample_ids: torch.Tensor  # sentence numbers (within the language) of the sampled sentences in this batch
    sample: torch.Tensor  # (n, L, W) float32 per-sentence means
    contexts: dict[str, torch.Tensor] | None = None  # --top-contexts: this batch's own top K (neurospec.measure.contexts)

    def pack(self) -> torch.Tensor:
        """All fixed-size statistics in one float64 vector (counts per batch are exact in float64)."""
        head = torch.tensor([float(self.tokens), float(self.sentences)], dtype=torch.float64, device=self.sum.device)
        return torch.cat([head,
                          self.active.double().flatten(), self.sum.flatten(), self.sum_sq.flatten(),
                          self.max.double().flatten()])

    @classmethod
    def unpack(cls, vector: torch.Tensor, shape: tuple[int, int]) -> "_Partial":
        n = shape[0] * shape[1]
        parts = vector[2:].split(n)
        return cls(int(vector[0]), int(vector[1]), parts[0].round().long().view(shape), parts[1].view(shape).clone(),
                   parts[2].view(shape).clone(), parts[3].float().view(shape), torch.empty(0, dtype=torch.long),
                   torch.empty(0))


class _BatchObserver:
    """The :func:`record` callback: reduces each layer's values over the batch's counted tokens."""

    def __init__(self, num_layers: int, width: int, device: torch.device, sample_limit: int, top_k: int = 0,
                 seq_len: int = 0, layout: ContextLayout | None = None) -> None:
        self.shape = (num_layers, width)
        self.device = device
        self.sample_limit = sample_limit
        self.last_layer = num_layers - 1
        self.top_k = top_k
        self.seq_len = seq_len
        self.layout = layout or ContextLayout(num_layers, width)  # which neurons keep contexts (with top_k)
        self.row_base = 0  # the batch's first row number within its language (set before each batch)
        self.floor: torch.Tensor | None = None  # (rows of layout,) the kept K-th values: only a larger value can enter
        self._columns: dict = {}  # (layer, device) -> the layer's neurons that keep contexts

    @property
    def context_slots(self) -> tuple[tuple[int, ...], int] | None:
        """(the leading shape of the kept contexts, K); None when contexts are off."""
        return (self.layout.shape, self.top_k) if self.top_k else None

    def start(self, batch: Batch) -> None:
        counted = batch.counted.reshape(-1)
        self.rows = None if bool(counted.all()) else counted.nonzero().squeeze(1)
        sentence = batch.sentence.reshape(-1)[counted]
        sentences = int(torch.unique(sentence[sentence >= 0]).numel())
        sampled = (sentence >= 0) & (sentence < self.sample_limit)
        self.sample_ids = torch.unique(sentence[sampled])
        if self.sample_ids.numel():
            self.sample_rows = sampled.nonzero().squeeze(1)
            slot = torch.searchsorted(self.sample_ids, sentence[sampled])
            self.sample_slot = slot
            self.sample_count = torch.bincount(slot, minlength=self.sample_ids.numel()).to(torch.float32)
        shape = self.shape
        self.partial = _Partial(
            int(counted.sum()), sentences,
            torch.zeros(shape, dtype=torch.int64, device=self.device),
            torch.zeros(shape, dtype=torch.float64, device=self.device),
            torch.zeros(shape, dtype=torch.float64, device=self.device),
            torch.full(shape, float("-inf"), dtype=torch.float32, device=self.device),
            self.sample_ids,
            torch.zeros((self.sample_ids.numel(), *shape), dtype=torch.float32),
        )
        self._cache: dict = {}
        if self.top_k:
            self._start_contexts(batch, counted)

    def _start_contexts(self, batch: Batch, counted: torch.Tensor) -> None:
        """Where the batch's counted tokens sit (their windows are gathered later, for the chosen ones only), and
        an empty top K for the batch."""
        width = batch.input_ids.shape[1]
        segment = torch.where(batch.sentence >= 0, batch.sentence, torch.where(batch.counted, 0, -1))
        self.tokens = counted.nonzero().squeeze(1).to(self.device)  # b * T + t of each counted token, in order
        self.positions = (self.row_base + self.tokens // width) * self.seq_len + self.tokens % width
        self.windows = TokenWindows(batch.input_ids.to(self.device), segment.to(self.device))
        self.partial.contexts = empty_contexts(self.layout.shape, self.top_k, device=self.device)
        self._entries: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _scratch(self, like: torch.Tensor) -> torch.Tensor:
        """A float32 buffer of ``like``'s shape, reused across layers and batches."""
        buffer = getattr(self, "_buffer", None)
        if buffer is None or buffer.shape != like.shape or buffer.device != like.device:
            buffer = self._buffer = torch.empty(like.shape, dtype=torch.float32, device=like.device)
        return buffer

    def _on(self, tensor: torch.Tensor | None, device: torch.device, name: str) -> torch.Tensor | None:
        if tensor is None:
            return None
        key = (name, device)
        if key not in self._cache:
            self._cache[key] = tensor.to(device)
        return self._cache[key]

    def __call__(self, batch: SiteBatch) -> None:
        values = batch.values
        flat = values.reshape(-1, values.shape[-1])
        rows = self._on(self.rows, flat.device, "rows")
        if rows is not None:
            flat = flat.index_select(0, rows)
        if flat.dtype != torch.float32:
            flat = flat.float()
        layer, part, device = batch.layer, self.partial, self.device
        # Per-batch partials in float32 (BLAS-speed column sums), accumulated across batches in float64.
        # Counts of value > 0 are summed as 0/1 floats: exact below 2**24 tokens per batch.
        scratch = self._scratch(flat)
        if flat.shape[0] < 2 ** 24:
            part.active[layer] = torch.gt(flat, 0, out=scratch).sum(0).to(device=device, dtype=torch.int64)
        else:
            part.active[layer] = (flat > 0).sum(0).to(device)
        part.sum[layer] = flat.sum(0).to(device)
        part.sum_sq[layer] = torch.mul(flat, flat, out=scratch).sum(0).to(device)
        blocks = block_maxima(flat) if self.top_k else None  # their maximum is the max, at about its cost
        peak = flat.amax(0) if blocks is None else blocks.amax(0)
        part.max[layer] = peak.to(device)
        if self.sample_ids.numel():
            sample_rows = self._on(self.sample_rows, flat.device, "sample_rows")
            slot = self._on(self.sample_slot, flat.device, "sample_slot")
            count = self._on(self.sample_count, flat.device, "sample_count")
            sums = torch.zeros((self.sample_ids.numel(), flat.shape[1]), dtype=torch.float32, device=flat.device)
            sums.index_add_(0, slot, flat.index_select(0, sample_rows))
            part.sample[:, layer] = (sums / count[:, None]).cpu()
        if self.top_k:
            self._top_contexts(flat, blocks, peak, layer)
        if layer == self.last_layer:
            raise _Stop


    def _top_contexts(self, flat: torch.Tensor, blocks: torch.Tensor, peak: torch.Tensor, layer: int) -> None:
        """This batch's own top K of ``layer``'s neurons that keep contexts, for those whose ``peak`` beats the kept
        K-th value (the others keep empty slots: nothing of theirs could enter, a tie going to the kept, earlier
        token). The few entries that can enter are set aside and reduced for all layers at once
        (:meth:`finish_contexts`); when they are many, a top-k of every value is written here."""
        rows = self.layout.rows(layer)
        columns = self._layer_columns(layer, flat.device)
        if columns is not None and not columns.numel():
            return
        floor, target = None, torch.arange(rows.start, rows.stop, device=flat.device)
        if self.floor is not None:
            floor = self._on(self.floor, flat.device, "floor")[rows]
            live = ((peak if columns is None else peak[columns]) > floor).nonzero().squeeze(1)
            if not live.numel():
                return
            columns, floor, target = (live if columns is None else columns[live]), floor[live], rows.start + live
        entries = sparse_entries(flat, floor, self.top_k, columns, blocks)
        if entries is None:  # too many values above the floor: a top-k of every value of these neurons
            self._write_contexts(*dense_top_k(flat, self.top_k, columns), target.to(self.device))
            return
        token_rows, column, values = entries
        self._entries.append((token_rows.to(self.device), target[column].to(self.device), values.to(self.device)))

    def finish_contexts(self) -> None:
        """Reduce the entries set aside by every layer to the batch's top K of the neurons they belong to (one sort
        for the whole batch) and write them, with their positions and windows."""
        if not self._entries:
            return
        token_rows, rows, values = (torch.cat(parts) for parts in zip(*self._entries))
        self._entries = []
        top_values, top_rows = top_k_of_entries(token_rows, rows, values, self.top_k, self.layout.size)
        touched = torch.bincount(rows, minlength=self.layout.size).nonzero().squeeze(1)
        self._write_contexts(top_values[touched], top_rows[touched], touched)

    def _write_contexts(self, values: torch.Tensor, chosen: torch.Tensor, target: slice | torch.Tensor) -> None:
        """Write (C, K) ``values`` of the batch's token rows ``chosen`` (-1: empty) to the kept rows ``target``, with
        their positions and windows."""
        chosen = chosen.to(self.device)
        tokens = torch.where(chosen >= 0, self.tokens[chosen.clamp(min=0)], -1)
        found = {"values": values.to(self.device), "positions": torch.where(chosen >= 0, self.positions[
                 chosen.clamp(min=0)], -1), "windows": self.windows.at(tokens)}
        for name, tensor in found.items():
            kept = self.partial.contexts[name]
            kept.view(self.layout.size, *kept.shape[len(self.layout.shape):])[target] = tensor

    def _layer_columns(self, layer: int, device: torch.device) -> torch.Tensor | None:
        """The neuron indices of ``layer`` that keep contexts, on ``device`` (None: every neuron)."""
        key = (layer, device)
        if key not in self._columns:
            columns = self.layout.columns(layer)
            self._columns[key] = None if columns is None else columns.to(device)
        return self._columns[key]


def _decoder(model):
    return model.get_submodule(site_map(model).layers_path.rpartition(".")[0])


def _run(model, observer: _BatchObserver, batch: Batch) -> _Partial:
    observer.start(batch)
    device = model_device(model)
    inputs = {"input_ids": batch.input_ids.to(device), "attention_mask": batch.attention_mask.to(device),
              "use_cache": False}
    if batch.position_ids is not None:
        inputs["position_ids"] = batch.position_ids.to(device)
    try:
        _decoder(model)(**inputs)
    except _Stop:
        pass
    if observer.top_k:
        observer.finish_contexts()
    return observer.partial


# --------------------------------------------------------------------------------------------
# Checking that a family runs packed sentences exactly as it runs them alone


def sentence_packing_works(model, tokenizer, texts: Sequence[str], site: str = "act", *, tolerance: float = 1e-3,
                           bos: bool = True) -> bool:
    """True when two sentences packed in one row (block mask, restarted positions) give the site values
    each gives alone, at every layer, within ``tolerance`` of the values' scale (``bos`` as in :func:`sentences`)."""
    dtype = next(model.parameters()).dtype
    items = list(sentences(tokenizer, iter(texts[:2]), 24, None, bos=bos))
    if len(items) < 2:
        return True
    packed = next(_sentence_batches(iter([items]), 1, 0, True, dtype))
    alone = next(_sentence_batches(iter([[item] for item in items]), 2, 0, False, dtype))
    got: dict[str, list] = {"packed": [], "alone": []}
    with record(model, site, keep=True) as kept:
        with torch.no_grad():
            for name, batch in (("packed", packed), ("alone", alone)):
                kept.values.clear()
                device = model_device(model)
                inputs = {k: v.to(device) for k, v in (("input_ids", batch.input_ids),
                                                       ("attention_mask", batch.attention_mask),
                                                       ("position_ids", batch.position_ids)) if v is not None}
                try:
                    _decoder(model)(**inputs, use_cache=False)
                except Exception:  # a family that refuses 4-D masks or position ids
                    return False
                got[name] = [kept.values[key][0].float().cpu() for key in sorted(kept.values)]
    first = len(items[0].ids)
    for packed_values, alone_values in zip(got["packed"], got["alone"]):
        expected = torch.cat([alone_values[0, :first], alone_values[1, : len(items[1].ids)]])
        scale = expected.abs().max().clamp_min(1e-6)
        if ((packed_values[0, : expected.shape[0]] - expected).abs().max() / scale) > tolerance:
            return False
    return True


# --------------------------------------------------------------------------------------------
# The run


def model_description(model, site: str) -> dict[str, Any]:
    """What stats.json records of the model; ``config_fingerprint`` ignores names, dtype and versions;
    ``weights_fingerprint`` is its weights' (:mod:`neurospec.core.provenance`); ``source`` is where
    :func:`~neurospec.core.models.load_model` got it (a GGUF file's path, sha256 and cache folder)."""
    from neurospec.core.provenance import config_fingerprint, weights_fingerprint

    sites = site_map(model)
    return {"model_id": getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None),
            "model_type": model.config.model_type, "num_layers": sites.num_layers, "width": sites.width(site),
            "config_fingerprint": config_fingerprint(model), "weights_fingerprint": weights_fingerprint(model),
            "source": getattr(model, "neurospec_source", None)}


#: The stats.json keys a resumed collection must share with the folder (the model is checked on its own).
RESUME_KEYS = ("site", "languages", "options", "corpora")


def _as_collected_now(key: str, recorded: Any) -> Any:
    """A recorded stats.json value as this neurospec records it: options without what collecting fills in, and
    ``bos=True`` for folders from before the bos option (they were collected with BOS)."""
    if key != "options" or not isinstance(recorded, dict):
        return recorded
    derived = ("truncated_sentences",)
    return {"bos": True, **{k: v for k, v in recorded.items() if k not in derived}}


def _first_counted_token(tokenizer, corpus: Corpus, options: CollectOptions, seq_len: int) -> None:
    rows = (packed_rows(tokenizer, corpus.texts(), seq_len, 1) if options.mode == "packed"
            else sentences(tokenizer, corpus.texts(), seq_len, 1, bos=options.bos))
    if next(iter(rows), None) is None:
        raise NeurospecError(
            f"corpus {corpus.source} ({corpus.language}) has no tokens after tokenisation: check the file holds text "
            "in that language and that the tokenizer is the model's"
        )


def collect(
    model,
    tokenizer,
    corpora: Sequence[Corpus],
    out: str | Path,
    options: CollectOptions | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    after_batch: Callable[[str, int], None] | None = None,
) -> ActivationStats:
    """Statistics of ``options.site`` for every corpus (one per language), written to ``out``.

    Everything about the input is checked before anything is written. ``resume`` continues an
    unfinished folder (same model, corpora and options); ``overwrite`` replaces a statistics folder (never
    another folder: see :meth:`neurospec.measure.run_folder.RunFolder.start`); ``after_batch(language,
    batch_number)`` is called after each batch is added (tests use it to interrupt a run).
    """
    options = options or CollectOptions()
    options.check()
    out = Path(out)
    languages = [c.language for c in corpora]
    if not corpora:
        raise NeurospecError("no corpus given: pass at least one LANGUAGE=PATH")
    if len(set(languages)) != len(languages):
        raise NeurospecError(f"two corpora for the same language among {', '.join(languages)}: give one per language")
    sites = site_map(model)
    sites.check_site(options.site)
    device = model_device(model)
    ranks = Ranks.from_environment(device)
    dtype = next(model.parameters()).dtype
    check_length(model, options.seq_len, "seq_len")
    seq_len = options.seq_len or default_seq_len(model, options.mode)
    for corpus in corpora:
        check_corpus(corpus)
        _first_counted_token(tokenizer, corpus, options, seq_len)
    pack = options.mode == "sentence" and options.pack_sentences and sentence_packing_works(
        model, tokenizer, list(itertools.islice(corpora[0].texts(), 2)), options.site, bos=options.bos)
    layout, selection = options.context_layout(sites, sites.num_layers, sites.width(options.site))
    recorded = {**asdict(options), "seq_len": seq_len, "packed_sentences": pack}
    for key in ("context_neurons", "context_sample", "seed"):  # recorded only with a selection (below)
        del recorded[key]
    if options.top_contexts:  # recorded only when on: other folders keep their exact stats.json
        recorded.update({"context_window": CONTEXT_WINDOW, **selection})
    else:
        del recorded["top_contexts"]
    description = {"site": options.site, "languages": languages, "options": recorded,
                   "corpora": {c.language: c.describe() for c in corpora},
                   "model": model_description(model, options.site)}

    inputs = [path for corpus in corpora for path in corpus.files] + [_model_folder(model)]
    previous = RunFolder(out, STATS_RUN, inputs=inputs).start(
        {key: description[key] for key in RESUME_KEYS}, resume=resume, overwrite=overwrite,
        normalise=_as_collected_now, model=description["model"])
    if previous is not None and previous.complete:
        return ActivationStats.load(out)
    stats, position = (_from_checkpoint(out, previous, languages, device) if previous is not None
                       else (_fresh_stats(description, sites, device), {"language": 0, "batch": 0}))
    observer = _BatchObserver(sites.num_layers, sites.width(options.site), device,
                              options.sample_sentences if options.mode == "sentence" else 0, options.top_contexts,
                              seq_len, layout)
    since_checkpoint = 0
    with record(model, options.site, callback=observer), torch.no_grad():
        for g, corpus in enumerate(corpora):
            if g < position["language"]:
                continue
            start = position["batch"] if g == position["language"] else 0
            truncated = [position.get("truncated", 0) if g == position["language"] else 0]
            batches = language_batches(tokenizer, corpus, options, seq_len, pack=pack, dtype=dtype, truncated=truncated)
            total = options.max_tokens
            with progress(f"{options.site} {corpus.language}", total=total, unit="tokens",
                          quiet=quiet or not ranks.is_main) as bar:
                bar.advance(int(stats.tokens[g]), tokens=0)
                for step in _steps(batches, ranks, start):
                    mine = step.batches.get(ranks.rank)
                    observer.row_base = step.numbers.get(ranks.rank, 0) * options.batch_size
                    observer.floor = _floor(stats, corpus.language)
                    partial = _run(model, observer, mine) if mine is not None else None
                    for number, part in _exchange(partial, step, ranks, observer.shape, device, observer.context_slots):
                        _add(stats, g, part, corpus.language, options.sample_sentences, observer.layout)
                        bar.advance(part.tokens, tokens=part.tokens)
                        since_checkpoint += part.tokens
                        if after_batch is not None:
                            after_batch(corpus.language, number)
                    if options.checkpoint_every and since_checkpoint >= options.checkpoint_every:
                        _checkpoint(stats, out, ranks, {"language": g, "batch": step.next, "truncated": truncated[0]})
                        since_checkpoint = 0
            if options.mode == "sentence":
                stats.options = {**stats.options, "truncated_sentences": {
                    **stats.options.get("truncated_sentences", {}), corpus.language: truncated[0]}}
                _finish_sample(stats, corpus.language)
            _checkpoint(stats, out, ranks, {"language": g + 1, "batch": 0, "truncated": 0})
            stats.samples.pop(corpus.language, None)
            stats.contexts.pop(corpus.language, None)
    empty = [lang for lang, n in zip(languages, stats.tokens.tolist()) if n == 0]
    if empty:
        raise NeurospecError(f"no tokens were counted for {', '.join(empty)}; check those corpora")
    if ranks.is_main:
        _save(stats, out, complete=True)
    ranks.barrier()
    return ActivationStats.load(out)


def _model_folder(model) -> Path | None:
    """The local folder the model was loaded from (an input collect must never delete), if any."""
    name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    return Path(name) if name and Path(name).is_dir() else None


def _fresh_stats(description: dict, sites, device) -> ActivationStats:
    """Zero statistics of the run ``description`` (stats.json's site, languages, model, corpora, options)."""
    site = description["site"]
    return ActivationStats.empty(site, description["languages"], sites.num_layers, sites.width(site), device=device,
                                 model=description["model"], corpora=description["corpora"],
                                 options=description["options"])


def _from_checkpoint(out: Path, previous: Resumed, languages: Sequence[str], device) -> tuple[ActivationStats, dict]:
    """The statistics of the unfinished folder ``out`` (on ``device``, with the sample of the language it stopped
    in) and the position it stopped at."""
    stats = ActivationStats.load(out, allow_incomplete=True)
    for name in ("tokens", "active", "sum", "sum_sq", "max"):
        setattr(stats, name, getattr(stats, name).to(device))
    position = previous.progress
    if position["language"] < len(languages):
        language = languages[position["language"]]
        if language in stats.sample_files:
            stats.samples[language] = stats.sentence_means(language)
        if language in stats.context_files:
            name = stats.context_files[language]
            kept = RunFolder(out, STATS_RUN).load_tensors(name, stats.files.get(name))
            stats.contexts[language] = {key: tensor.to(device).clone() for key, tensor in kept.items()}
    return stats, position


@dataclass
class _Step:
    """Up to ``world_size`` consecutive batches, one per rank; ``next`` is the first batch after them."""

    batches: dict[int, Batch] = field(default_factory=dict)
    numbers: dict[int, int] = field(default_factory=dict)
    next: int = 0
    last: bool = False


def _steps(batches: Iterator[Batch], ranks: Ranks, start: int) -> Iterator[_Step]:
    """Group the language's batches by ``world_size``, skipping the first ``start`` (already counted).

    Every rank walks the same batch stream; the last step tells all ranks the language is over."""
    number = 0
    step = _Step()
    iterator = iter(batches)
    pending = next(iterator, None)
    while pending is not None:
        if number >= start:
            rank = (number - start) % ranks.size
            step.batches[rank], step.numbers[rank] = pending, number
        number += 1
        pending = next(iterator, None)
        if number > start and ((number - start) % ranks.size == 0 or pending is None):
            step.next, step.last = number, pending is None
            yield step
            step = _Step()


def _exchange(partial: _Partial | None, step: _Step, ranks: Ranks, shape: tuple[int, int], device,
              context_slots: tuple[tuple[int, ...], int] | None = None) -> Iterator[tuple[int, _Partial]]:
    """Every batch's partial statistics of this step, on every rank, in batch order (with each batch's own top K
    contexts when on: ``context_slots`` is (their leading shape, K))."""
    if ranks.size == 1:
        if partial is not None:
            yield step.numbers[0], partial
        return
    size = 2 + 4 * shape[0] * shape[1]
    vector = partial.pack() if partial is not None else torch.zeros(size, dtype=torch.float64, device=device)
    vectors = ranks.gather(vector)
    counts = ranks.gather_sizes(partial.sample.shape[0] if partial is not None else 0, device)
    longest = max(counts)
    samples = ids = [None] * ranks.size
    if longest:
        mine = torch.zeros((longest, *shape), dtype=torch.float32, device=device)
        mine_ids = torch.full((longest,), -1, dtype=torch.long, device=device)
        if partial is not None and partial.sample.shape[0]:
            mine[: partial.sample.shape[0]] = partial.sample.to(device)
            mine_ids[: partial.sample.shape[0]] = partial.sample_ids.to(device)
        samples, ids = ranks.gather(mine), ranks.gather(mine_ids)
    contexts = _gather_contexts(partial, ranks, device, context_slots) if context_slots else None
    for rank in range(ranks.size):
        if rank not in step.numbers:
            continue
        part = _Partial.unpack(vectors[rank], shape)
        if contexts is not None:
            part.contexts = {name: gathered[rank] for name, gathered in contexts.items()}
        if counts[rank]:
            part.sample = samples[rank][: counts[rank]].cpu()
            part.sample_ids = ids[rank][: counts[rank]].cpu()
        yield step.numbers[rank], part


def _floor(stats: ActivationStats, language: str) -> torch.Tensor | None:
    """The K-th value each neuron that keeps contexts keeps for ``language``, one per row of the layout (the same on
    every rank); None before any batch."""
    kept = stats.contexts.get(language)
    return None if kept is None else kept["values"][..., -1].reshape(-1).contiguous()


def _gather_contexts(partial: _Partial | None, ranks: Ranks, device,
                     context_slots: tuple[tuple[int, ...], int]) -> dict[str, list[torch.Tensor]]:
    """Every rank's batch top K (empty where a rank had no batch this step), per tensor, in rank order."""
    mine = partial.contexts if partial is not None else empty_contexts(*context_slots, device=device)
    return {name: ranks.gather(mine[name].to(device)) for name in CONTEXT_TENSORS}


def _add(stats: ActivationStats, g: int, part: _Partial, language: str, sample_limit: int,
         layout: ContextLayout) -> None:
    stats.tokens[g] += part.tokens
    stats.sentences[language] = stats.sentences.get(language, 0) + part.sentences
    stats.active[g] += part.active
    stats.sum[g] += part.sum
    stats.sum_sq[g] += part.sum_sq
    torch.maximum(stats.max[g], part.max, out=stats.max[g])
    if part.sample_ids.numel():
        if language not in stats.samples:
            stats.samples[language] = torch.full((sample_limit, *part.max.shape), float("nan"), dtype=torch.float32)
        stats.samples[language][part.sample_ids.cpu()] = part.sample.cpu()
    if part.contexts is not None:
        kept = stats.contexts.get(language)
        if kept is None:
            kept = layout.empty(part.contexts["values"].shape[-1], device=part.max.device)
        stats.contexts[language] = merge(kept, part.contexts)


def _finish_sample(stats: ActivationStats, language: str) -> None:
    """Trim the sample to the sentences the language had (fewer than K when the corpus is short)."""
    sample = stats.samples.get(language)
    if sample is not None:
        stats.samples[language] = sample[~sample[:, 0, 0].isnan()].contiguous()


def _checkpoint(stats: ActivationStats, out: Path, ranks: Ranks, position: dict) -> None:
    if ranks.is_main:
        _save(stats, out, complete=False, progress=position)
    ranks.barrier()


def _save(stats: ActivationStats, out: Path, **how: Any) -> None:
    """``stats.save``; a full disk becomes one error saying what is kept (each file is replaced whole, so the
    previous checkpoint stays valid) and how to go on."""
    had_checkpoint = (out / META_FILE).exists()
    try:
        stats.save(out, **how)
    except Exception as err:  # OSError from Python's writes, safetensors' own error type from its writer
        text = str(err)
        full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or \
            "No space left on device" in text or "StorageFull" in text or "os error 28" in text
        if not full:
            raise
        kept = ("its last checkpoint is kept: free space and run the same command with --resume (collect(..., "
                "resume=True)) to continue from it") if had_checkpoint else "nothing was kept: free space and run again"
        raise NeurospecError(f"the disk is full: cannot write the statistics in {out}; {kept}") from None
