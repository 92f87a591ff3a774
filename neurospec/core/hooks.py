"""Hooks: the only code in neurospec that touches module internals.

    from neurospec.core.hooks import record, intervene, capture_gradients, prompt_boundary, generate

    with record(model, sites=["act"], callback=lambda batch: ...):       # stream (batch, pos, neuron)
        model(**inputs)
    with intervene(model, Edit.zero(neurons)):                           # any Edit, any number
        logits = model(**inputs).logits
    with intervene(model, Edit.set(neurons, 5.0, positions="prompt")):
        out = generate(model, **inputs, max_new_tokens=20)              # prompt = the input tokens
    with capture_gradients(model, sites=["gate_pre", "q"]) as grads:
        model(**inputs).logits[:, -1, gold].sum().backward()
    grads.values[("q", 3)], grads.grads[("q", 3)]

How positions are told apart. Each forward call of the decoder is read by a pre-hook: its 2-D
attention mask (past + current columns, as ``generate`` passes it) says which tokens are padding,
and where the current tokens sit in the full sequence. A *prompt boundary* (a column index, or one per
row) splits non-padding tokens into prompt (before it) and continuation (from it on); it is set by
:func:`prompt_boundary` (teacher-forced scoring) or by :func:`generate` (the input width). The same
token therefore gets the same mask with or without a KV cache. Padding is never edited.

Composition order. Per module there is one torch hook, which runs the edits of every active
:func:`intervene` in the order the contexts were entered (outer first; within a context, in the
order given), then every observer (:func:`record`, :func:`capture_gradients`). Observers therefore
always see the value the model goes on to use. Every hook is removed when its context exits, also
after an exception.
"""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from neurospec.core.edits import Edit, Positions, RuntimeStatistic, check_positions
from neurospec.core.sites import Columns, SiteLocation, SiteMap, site_map
from neurospec.util.errors import NeurospecError, ShapeMismatchError

# --------------------------------------------------------------------------------------------
# Per forward call: which tokens are padding, prompt, continuation


class _CallState:
    """Token masks of the forward call in flight, read off the decoder's inputs by pre-hooks."""

    def __init__(self) -> None:
        self.boundary: int | torch.Tensor | None = None  # continuation starts at this column
        self.in_root_call = False
        self.generation_mask: torch.Tensor | None = None  # 2-D mask generate() held for its next call
        self.reset(None, 0, 0, 0)

    def reset(self, mask2d: torch.Tensor | None, batch: int, num_tokens: int, past: int) -> None:
        self.mask2d = mask2d
        self.batch = batch
        self.num_tokens = num_tokens
        self.past = past
        self._cache: dict = {}

    def as_batch_tokens(self, tensor: torch.Tensor, where: str) -> torch.Tensor:
        """``tensor`` as (batch, tokens, width); a (batch * tokens, width) tensor (OPT's MLP) as a view."""
        if tensor.dim() == 2 and tensor.shape[0] == self.batch * self.num_tokens:
            return tensor.view(self.batch, self.num_tokens, tensor.shape[1])
        if tensor.dim() != 3 or tensor.shape[1] != self.num_tokens:
            raise NeurospecError(
                f"{where}: expected a (batch, {self.num_tokens} tokens, width) tensor, got {tuple(tensor.shape)}; "
                "packed token layouts are not supported"
            )
        return tensor

    def _columns(self) -> torch.Tensor:
        """Absolute column of each current token in the full (padded) sequence."""
        start = self.mask2d.shape[1] - self.num_tokens if self.mask2d is not None else self.past
        return torch.arange(start, start + self.num_tokens)

    def valid(self, batch: int, device: torch.device) -> torch.Tensor:
        """(batch, tokens) True at non-padding tokens of this call."""
        key = ("valid", batch, device)
        if key not in self._cache:
            if self.mask2d is None:
                mask = torch.ones(batch, self.num_tokens, dtype=torch.bool, device=device)
            else:
                mask = self.mask2d[:, -self.num_tokens:].to(device=device, dtype=torch.bool)
                if mask.shape[0] != batch:
                    raise NeurospecError(f"attention mask has {mask.shape[0]} rows for a batch of {batch}")
            self._cache[key] = mask
        return self._cache[key]

    def mask(self, positions: Positions, batch: int, device: torch.device) -> torch.Tensor:
        """(batch, tokens) True where ``positions`` ("all", "prompt", "continuation") selects a token."""
        valid = self.valid(batch, device)
        if positions == "all":
            return valid
        key = (positions, batch, device)
        if key not in self._cache:
            if self.boundary is None:
                raise NeurospecError(
                    f"positions={positions!r} needs to know where the prompt ends: call neurospec.core.hooks.generate(...) "
                    "or wrap the forward pass in `with prompt_boundary(model, start):`"
                )
            boundary = torch.as_tensor(self.boundary, device=device).reshape(-1)
            if boundary.numel() not in (1, batch):
                if batch % boundary.numel():
                    raise NeurospecError(f"prompt boundary has {boundary.numel()} rows for a batch of {batch}")
                boundary = boundary.repeat_interleave(batch // boundary.numel())  # num_return_sequences / beams
            after = self._columns().to(device)[None, :] >= boundary[:, None]
            self._cache[key] = valid & (after if positions == "continuation" else ~after)
        return self._cache[key]

    def selects_every_token(self, positions: Positions, batch: int, device: torch.device) -> bool:
        """True when ``positions`` selects every token of this call (no padding, no excluded side); cached per call."""
        key = ("every", positions, batch, device)
        if key not in self._cache:
            if positions == "all" and self.mask2d is None:
                self._cache[key] = True
            else:
                self._cache[key] = bool(self.mask(positions, batch, device).all())
        return self._cache[key]


@functools.lru_cache(maxsize=256)
def _positional_names(forward) -> tuple[str, ...]:
    """Names of the parameters a forward function takes by position (read once per function)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in inspect.signature(forward).parameters.values() if p.kind in kinds)


def _bound_arguments(module: nn.Module, args: tuple, kwargs: dict) -> dict:
    """The call's arguments by name (positional ones named from the signature, cached per forward function)."""
    names = _positional_names(type(module).forward)[1:]  # the class's function: drop ``self``
    return {**dict(zip(names, args)), **kwargs}


def _read_call(module: nn.Module, args: tuple, kwargs: dict):
    arguments = _bound_arguments(module, args, kwargs)
    extra = arguments.get("kwargs")
    if isinstance(extra, dict):
        arguments = {**extra, **arguments}
    tokens = arguments.get("input_ids")
    if tokens is None:
        tokens = arguments.get("inputs_embeds")
    if tokens is None:
        raise NeurospecError(f"{type(module).__name__} was called without input_ids or inputs_embeds")
    mask = arguments.get("attention_mask")
    mask2d = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None
    return tokens.shape[0], tokens.shape[1], mask2d, _past_length(arguments)


_CACHE_ARGUMENTS = ("cache", "past_key_values", "cache_params")


def _past_length(arguments: dict) -> int:
    """Tokens already in the KV cache.

    ``cache_position`` when given (exact; the static and hybrid caches of transformers 4.x only
    estimate ``get_seq_length`` from non-zero keys of the first row), else the cache's own count; a
    legacy tuple cache (transformers 4.x) by its value tensors, whose next-to-last dimension is the
    sequence in every layout (BLOOM keeps keys transposed, not values). The cache argument is
    ``past_key_values`` up to transformers 5.24 and ``cache`` from 5.25 on (which renames the old
    name before the decoder sees it, and no longer passes ``cache_position``).
    """
    position = arguments.get("cache_position")
    if isinstance(position, torch.Tensor) and position.numel():
        return int(position.reshape(-1)[0])
    past = next((arguments[name] for name in _CACHE_ARGUMENTS if arguments.get(name) is not None), None)
    if past is None:
        return 0
    if hasattr(past, "get_seq_length"):
        return int(past.get_seq_length())
    if isinstance(past, (tuple, list)) and past and isinstance(past[0], (tuple, list)) and len(past[0]) >= 2:
        return int(past[0][1].shape[-2])
    return 0


# --------------------------------------------------------------------------------------------
# One torch hook per module, dispatching to the active handlers in a fixed order

Handler = Callable[[torch.Tensor, _CallState], "torch.Tensor | None"]


@dataclass
class _ModuleHooks:
    editors: list = field(default_factory=list)
    observers: list = field(default_factory=list)
    handle: object = None


class _Hub:
    """All neurospec hooks on one model."""

    def __init__(self, model: nn.Module, sites: SiteMap) -> None:
        self.model = model
        self.sites = sites
        self.state = _CallState()
        self.modules: dict[tuple[int, str], _ModuleHooks] = {}
        self.users = 0
        self._state_handles: list = []

    # state pre-hooks live while any context is active
    def acquire(self) -> None:
        if self.users == 0:
            decoder = self.model.get_submodule(self.sites.layers_path.rpartition(".")[0])
            self._state_handles.append(decoder.register_forward_pre_hook(self._on_decoder, with_kwargs=True))
            if decoder is not self.model:
                self._state_handles.append(self.model.register_forward_pre_hook(self._on_root, with_kwargs=True))
                self._state_handles.append(self.model.register_forward_hook(self._after_root))
            self._watch_generation()
        self.users += 1

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            for handle in self._state_handles:
                handle.remove()
            self._state_handles.clear()
            self.state.in_root_call = False
            self.state.generation_mask = None

    def _watch_generation(self) -> None:
        """Keep the 2-D mask ``generate`` hands ``prepare_inputs_for_generation`` for the call that follows.

        With a static or hybrid cache (Gemma-2's default), transformers 4.x turns it into a 4-D mask there,
        so the forward call itself no longer tells padding apart. The wrapper is an instance attribute,
        removed when the last context exits.
        """
        original = getattr(self.model, "prepare_inputs_for_generation", None)
        if not callable(original):
            return
        state, model = self.state, self.model
        had_own = "prepare_inputs_for_generation" in model.__dict__

        @functools.wraps(original)  # generate reads its signature to validate keyword arguments
        def prepare(*args, **kwargs):
            mask = kwargs.get("attention_mask")
            state.generation_mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None
            return original(*args, **kwargs)

        def restore() -> None:
            if had_own:
                model.__dict__["prepare_inputs_for_generation"] = original
            else:
                model.__dict__.pop("prepare_inputs_for_generation", None)

        model.__dict__["prepare_inputs_for_generation"] = prepare
        self._state_handles.append(SimpleNamespace(remove=restore))

    def _on_root(self, module, args, kwargs):
        batch, num_tokens, mask2d, past = _read_call(module, args, kwargs)
        pending, self.state.generation_mask = self.state.generation_mask, None
        if mask2d is None and pending is not None and pending.shape[0] == batch and pending.shape[1] >= num_tokens:
            mask2d = pending  # generate's own 2-D mask, made 4-D for a static or hybrid cache
        self.state.reset(mask2d, batch, num_tokens, past)
        self.state.in_root_call = True

    def _after_root(self, module, args, output):
        self.state.in_root_call = False

    def _on_decoder(self, module, args, kwargs):
        batch, num_tokens, mask2d, past = _read_call(module, args, kwargs)
        if mask2d is None and self.state.in_root_call:
            mask2d = self.state.mask2d  # a wrapper passed its decoder a 4-D or per-layer-type mask
        self.state.reset(mask2d, batch, num_tokens, past)

    def add(self, location: SiteLocation, handler: Handler, kind: str) -> Callable[[], None]:
        key = (id(location.module), location.hook)
        entry = self.modules.get(key)
        if entry is None:
            entry = self.modules[key] = _ModuleHooks()
            if location.hook == "output":
                entry.handle = location.module.register_forward_hook(self._output_hook(entry, location.module_name))
            else:
                entry.handle = location.module.register_forward_pre_hook(self._input_hook(entry, location.module_name))
        (entry.editors if kind == "editor" else entry.observers).append(handler)

        def remove() -> None:
            handlers = entry.editors if kind == "editor" else entry.observers
            handlers.remove(handler)
            if not entry.editors and not entry.observers:
                entry.handle.remove()
                del self.modules[key]

        return remove

    def _run(self, entry: _ModuleHooks, tensor: torch.Tensor, name: str) -> torch.Tensor | None:
        if not isinstance(tensor, torch.Tensor):
            raise NeurospecError(f"{name}: expected a tensor, got {type(tensor).__name__}")
        viewed = self.state.as_batch_tokens(tensor, name)
        for handler in (*entry.editors, *entry.observers):
            result = handler(viewed, self.state)
            if result is not None:
                viewed = result
        # a reshaped (batch * tokens) view is handed back too, so gradients flow through the hooked view
        return None if viewed is tensor else viewed.reshape(tensor.shape)

    def _output_hook(self, entry: _ModuleHooks, name: str):
        def hook(module, args, output):
            return self._run(entry, output, name)

        return hook

    def _input_hook(self, entry: _ModuleHooks, name: str):
        def hook(module, args):
            if not args:
                raise NeurospecError(f"{name} was called without a positional input; its input cannot be hooked")
            replaced = self._run(entry, args[0], name)
            return None if replaced is None else (replaced, *args[1:])

        return hook


def _hub(model: nn.Module) -> _Hub:
    """The model's hook hub, kept on the model itself so that it lives and dies with it."""
    hub = model.__dict__.get("_neurospec_hub")
    if hub is None:
        hub = model.__dict__["_neurospec_hub"] = _Hub(model, site_map(model))
    return hub


@contextmanager
def _handlers(model: nn.Module, registrations: Iterable[tuple[SiteLocation, Handler, str]]) -> Iterator[_Hub]:
    hub = _hub(model)
    removers = []
    hub.acquire()
    try:
        for location, handler, kind in registrations:
            removers.append(hub.add(location, handler, kind))
        yield hub
    finally:
        for remove in reversed(removers):
            remove()
        hub.release()


# --------------------------------------------------------------------------------------------
# Helpers on site columns


def _on_device(columns: Columns, device: torch.device, cache: dict) -> Columns:
    if isinstance(columns, slice):
        return columns
    if device not in cache:
        cache[device] = columns.to(device)
    return cache[device]


def _take(tensor: torch.Tensor, columns: Columns) -> torch.Tensor:
    return tensor[..., columns]


def _module_columns(location: SiteLocation, indices: torch.Tensor) -> torch.Tensor:
    """Map site coordinates (neuron indices) to columns of the hooked module's tensor."""
    columns = location.columns
    if isinstance(columns, slice):
        return indices + columns.start
    return columns[indices]


# --------------------------------------------------------------------------------------------
# Interventions


def _quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Linear-interpolated quantile of a 1-D tensor (like numpy), without torch.quantile's size limit."""
    position = q * (values.numel() - 1)
    low, high = int(position), min(int(position) + 1, values.numel() - 1)
    low_value = values.kthvalue(low + 1).values
    if high == low:
        return low_value
    return low_value + (values.kthvalue(high + 1).values - low_value) * (position - low)


def _quantile_rows(values: torch.Tensor, q: float) -> torch.Tensor:
    """:func:`_quantile` of each row of a 2-D tensor at once."""
    position = q * (values.shape[1] - 1)
    low, high = int(position), min(int(position) + 1, values.shape[1] - 1)
    low_value = values.kthvalue(low + 1, dim=1).values
    if high == low:
        return low_value
    return low_value + (values.kthvalue(high + 1, dim=1).values - low_value) * (position - low)


def runtime_statistic(values: torch.Tensor, valid: torch.Tensor, statistic: RuntimeStatistic) -> torch.Tensor:
    """Per sequence: the statistic over all neurons and all ``valid`` tokens. Returns shape (batch,)."""
    floats = values.float()
    if statistic.name in ("max", "min", "mean"):
        keep = valid[..., None].expand_as(floats)
        if statistic.name == "mean":
            total = torch.where(keep, floats, 0.0).sum(dim=(1, 2))
            return total / keep.sum(dim=(1, 2)).clamp(min=1)
        fill = float("-inf") if statistic.name == "max" else float("inf")
        reduced = torch.where(keep, floats, fill)
        return reduced.amax(dim=(1, 2)) if statistic.name == "max" else reduced.amin(dim=(1, 2))
    q = 0.5 if statistic.name == "median" else statistic.q / 100.0
    if bool(valid.all()):  # every row has the same count: one batched kthvalue (a decoding step, unpadded batches)
        return _quantile_rows(floats.reshape(floats.shape[0], -1), q)
    rows = []
    for row, row_valid in zip(floats, valid):
        chosen = row[row_valid].flatten()
        rows.append(_quantile(chosen, q) if chosen.numel() else chosen.new_tensor(float("nan")))
    return torch.stack(rows)


class _EditHandler:
    """Applies one Edit to one site of one layer."""

    def __init__(self, edit: Edit, location: SiteLocation, indices: torch.Tensor):
        self.edit = edit
        self.location = location
        self.columns = _module_columns(location, indices)
        if edit.value_kind == "per_neuron":
            self.values = edit.layer_values(location.layer)[indices].float()
        elif edit.value_kind == "constant":
            self.values = torch.full((indices.numel(),), float(edit.value))
        else:
            self.values = None
        self._prepared: dict = {}
        self._site_cache: dict = {}

    def _on(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The columns on ``device`` and, for a fixed value, ``factor * value`` per column in ``dtype`` (cached)."""
        key = (device, dtype)
        if key not in self._prepared:
            scaled = None if self.values is None else (self.edit.factor * self.values).to(device=device, dtype=dtype)
            self._prepared[key] = (self.columns.to(device), scaled)
        return self._prepared[key]

    def __call__(self, tensor: torch.Tensor, state: _CallState) -> torch.Tensor:
        edit, device = self.edit, tensor.device
        columns, fixed = self._on(device, tensor.dtype)
        in_place = not (tensor.requires_grad and torch.is_grad_enabled())
        if in_place and edit.op in ("zero", "set") and edit.value_kind != "runtime" and \
                state.selects_every_token(edit.positions, tensor.shape[0], device):
            if edit.op == "zero":  # the common decoding step: one kernel, no masks
                return tensor.index_fill_(-1, columns, 0)
            return tensor.index_copy_(-1, columns, fixed.expand(*tensor.shape[:-1], fixed.numel()))
        current = tensor.index_select(-1, columns)
        if edit.op == "zero":
            new = torch.zeros_like(current)
        elif edit.op == "scale":
            new = current * edit.factor
        else:
            if edit.value_kind == "runtime":
                site_values = _take(tensor, _on_device(self.location.columns, device, self._site_cache))
                stat = runtime_statistic(site_values, state.valid(tensor.shape[0], device), edit.value)
                value = edit.factor * stat.to(tensor.dtype)[:, None, None]
            else:
                value = fixed
            new = torch.broadcast_to(value, current.shape) if edit.op == "set" else current + value
        mask = state.mask(edit.positions, tensor.shape[0], device)[..., None]
        new = torch.where(mask, new.to(tensor.dtype), current)
        if not in_place:
            return tensor.index_copy(-1, columns, new)
        return tensor.index_copy_(-1, columns, new)


def _check_edit(edit: Edit, sites: SiteMap) -> None:
    """Refuse, before any forward pass, an edit that does not fit the model."""
    for site, layers in edit.neurons.items():
        sites.check_site(site)
        width = sites.width(site)
        for layer, indices in layers.items():
            sites.check_layer(layer)
            outside = indices[(indices < 0) | (indices >= width)]
            if outside.numel():
                raise ShapeMismatchError(
                    f"{edit.label}: neuron index {int(outside[0])} in layer {layer} is out of range for site "
                    f"{site!r}, which has {width} neurons in this model; was this neuron file made for another model?"
                )
    if edit.value_kind != "per_neuron":
        return
    if len(edit.neurons) != 1:
        raise NeurospecError(
            f"{edit.label}: per-neuron values fit one site, but the selection spans {sorted(edit.neurons)}; "
            "pass sites=[...] to choose one"
        )
    ((site, layers),) = edit.neurons.items()
    expected = (sites.num_layers, sites.width(site))
    if isinstance(edit.value, torch.Tensor):
        found = tuple(edit.value.shape)
    else:
        missing = sorted(set(layers) - set(edit.value))
        if missing:
            raise ShapeMismatchError(f"{edit.label}: per-neuron values are missing layer(s) {missing}")
        wrong = [int(edit.value[layer].numel()) for layer in layers if edit.value[layer].numel() != expected[1]]
        found = (sites.num_layers, wrong[0]) if wrong else expected
    if found != expected:
        raise ShapeMismatchError(
            f"{edit.label}: per-neuron values must be (layers, width) = {expected} for site {site!r}, got {found}; "
            "were these statistics computed on another model or site?"
        )


@contextmanager
def intervene(model: nn.Module, *edits) -> Iterator[None]:
    """Apply ``edits`` (in order) to every forward pass of ``model`` inside the block.

    ``with intervene(model, Edit.zero(lape, groups=["fr"])): model(**batch)``; each argument is an
    :class:`~neurospec.core.edits.Edit`, a list of them, or an intervention file loaded with
    ``InterventionSpec.load`` (validated against the model on entry).
    """
    flat: list[Edit] = []
    for item in edits:
        if hasattr(item, "edits_for"):  # an InterventionSpec: load and validate its files for this model
            flat.extend(item.edits_for(model))
        else:
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
    if not flat:
        raise NeurospecError("intervene() needs at least one Edit")
    sites = site_map(model)
    for edit in flat:
        _check_edit(edit, sites)
    registrations = [
        (location, _EditHandler(edit, location, indices), "editor")
        for edit in flat
        for site, layers in edit.neurons.items()
        for layer, indices in sorted(layers.items())
        for location in [sites.locate(site, layer)]
    ]
    with _handlers(model, registrations):
        yield


# --------------------------------------------------------------------------------------------
# Observation: recording and gradients


@dataclass
class SiteBatch:
    """Values of one site in one layer for one forward call.

    ``values`` is (batch, tokens, neurons); ``attention_mask`` is True at non-padding tokens;
    ``position_mask`` at the tokens the observer's position mode selects (padding excluded).
    ``grads`` holds d(objective)/d(values) in :func:`capture_gradients`.
    """

    site: str
    layer: int
    values: torch.Tensor
    attention_mask: torch.Tensor
    position_mask: torch.Tensor
    grads: torch.Tensor | None = None


@dataclass
class Recording:
    """What :func:`record` / :func:`capture_gradients` kept: lists of tensors per (site, layer), one per call."""

    values: dict[tuple[str, int], list[torch.Tensor]] = field(default_factory=dict)
    grads: dict[tuple[str, int], list[torch.Tensor]] = field(default_factory=dict)
    attention_masks: list[torch.Tensor] = field(default_factory=list)

    def keep(self, batch: SiteBatch) -> None:
        key = (batch.site, batch.layer)
        self.values.setdefault(key, []).append(batch.values.clone())
        if batch.grads is not None:
            self.grads.setdefault(key, []).append(batch.grads)


def _locations(model: nn.Module, sites: Iterable[str], layers: Iterable[int] | None) -> list[SiteLocation]:
    site_locations = site_map(model)
    chosen_layers = range(site_locations.num_layers) if layers is None else list(layers)
    return [site_locations.locate(site, layer) for site in sites for layer in chosen_layers]


def _normalise_sites(sites: str | Iterable[str]) -> list[str]:
    return [sites] if isinstance(sites, str) else list(sites)


@contextmanager
def record(
    model: nn.Module,
    sites: str | Iterable[str] = ("act",),
    *,
    layers: Iterable[int] | None = None,
    callback: Callable[[SiteBatch], None] | None = None,
    keep: bool = False,
    positions: Positions = "all",
) -> Iterator[Recording]:
    """Stream each layer's site values to ``callback`` (and keep them only if ``keep``).

    Values are detached views of what the model uses (after any active intervention); a
    callback that needs them later must copy them.
    """
    check_positions(positions)
    recording = Recording()
    if callback is None and not keep:
        raise NeurospecError("record() needs a callback or keep=True; otherwise nothing would be seen")

    def observer(location: SiteLocation) -> Handler:
        cache: dict = {}

        def observe(tensor: torch.Tensor, state: _CallState) -> None:
            values = _take(tensor, _on_device(location.columns, tensor.device, cache)).detach()
            batch = SiteBatch(
                location.site, location.layer, values,
                state.valid(tensor.shape[0], tensor.device), state.mask(positions, tensor.shape[0], tensor.device),
            )
            if callback is not None:
                callback(batch)
            if keep:
                recording.keep(batch)

        return observe

    locations = _locations(model, _normalise_sites(sites), layers)
    with _handlers(model, [(loc, observer(loc), "observer") for loc in locations]):
        yield recording


@contextmanager
def capture_gradients(
    model: nn.Module,
    sites: str | Iterable[str] = ("gate_pre",),
    *,
    layers: Iterable[int] | None = None,
    callback: Callable[[SiteBatch], None] | None = None,
    keep: bool | None = None,
    positions: Positions = "all",
) -> Iterator[Recording]:
    """Site values and their gradients for a backward pass run inside the block.

    Parameters may stay frozen: a site tensor that does not require grad is made a leaf that
    does, so one backward pass gives every captured site's gradient. ``callback(SiteBatch)`` is
    called during the backward pass with ``values`` and ``grads`` (batch, tokens, neurons); by
    default (no callback) they are kept in the returned :class:`Recording`.
    """
    check_positions(positions)
    keep = callback is None if keep is None else keep
    recording = Recording()

    def observer(location: SiteLocation) -> Handler:
        cache: dict = {}

        def observe(tensor: torch.Tensor, state: _CallState) -> torch.Tensor | None:
            if not torch.is_grad_enabled():
                raise NeurospecError("capture_gradients() needs gradients enabled: do not run it under torch.no_grad()")
            replaced = None
            if not tensor.requires_grad:
                tensor = replaced = tensor.detach().requires_grad_(True)
            columns = _on_device(location.columns, tensor.device, cache)
            values = _take(tensor, columns).detach()
            batch_size, device = tensor.shape[0], tensor.device
            valid, chosen = state.valid(batch_size, device), state.mask(positions, batch_size, device)

            def on_grad(grad: torch.Tensor) -> None:
                batch = SiteBatch(location.site, location.layer, values, valid, chosen, _take(grad, columns))
                if callback is not None:
                    callback(batch)
                if keep:
                    recording.keep(batch)

            tensor.register_hook(on_grad)
            return replaced

        return observe

    locations = _locations(model, _normalise_sites(sites), layers)
    with _handlers(model, [(loc, observer(loc), "observer") for loc in locations]):
        yield recording


# --------------------------------------------------------------------------------------------
# Prompt boundary


@contextmanager
def prompt_boundary(model: nn.Module, start: int | torch.Tensor | Sequence[int]) -> Iterator[None]:
    """Inside the block, tokens at columns >= ``start`` (one per row, or one for all) are continuation.

    ``with prompt_boundary(model, prompt_lengths): model(input_ids, attention_mask)`` (right padding:
    the prompt length of each row; left padding: the padded prompt width).
    """
    state = _hub(model).state
    previous = state.boundary
    state.boundary = start if isinstance(start, (int, torch.Tensor)) else torch.as_tensor(list(start))
    try:
        yield
    finally:
        state.boundary = previous


def generate(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
    """``model.generate`` with the prompt boundary at the input width (so position modes apply).

    ``with intervene(model, Edit.set(n, 3.0, positions="continuation")): generate(model, ids, mask, max_new_tokens=9)``
    """
    with prompt_boundary(model, input_ids.shape[1]):
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
