"""Where neuron j of layer l lives, for every decoder family.

    from neurospec.core.sites import site_map
    sites = site_map(model)             # any Hugging Face decoder (or a multimodal wrapper)
    sites.width("act"), sites.num_layers
    loc = sites.locate("q", layer=3)    # module, hook kind ("output"/"input"), columns of its tensor

A *site* is one of ``SITES`` (METHODS section 0):

=========  =====================================================================
``act``      the MLP activation output, ``act(gate(x))`` (non-gated: ``act(fc(x))``)
``down_in``  the down/output projection's input, ``act(gate(x)) * up(x)``
``gate_pre`` the gate projection before the activation (non-gated: ``fc(x)``)
``up_pre``   the up projection (gated MLPs only)
``q k v``    output coordinates of the attention projections, before any q/k
             norm and before rotary embedding
=========  =====================================================================

Each family is a small declarative entry in ``FAMILIES`` (module paths inside a decoder layer,
plus a layout function where a projection is fused). Families without an entry are resolved
structurally: the decoder layer list, then the MLP and attention modules by their shapes and
names. Add a family with :func:`register_family`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping, Union

import torch
from torch import nn

from neurospec.util.errors import NeurospecError, UnsupportedModelError

SITES: tuple[str, ...] = ("act", "down_in", "gate_pre", "up_pre", "q", "k", "v")
MLP_SITES: tuple[str, ...] = ("act", "down_in", "gate_pre", "up_pre")
ATTENTION_SITES: tuple[str, ...] = ("q", "k", "v")

Columns = Union[slice, torch.Tensor]
"""Columns of a module tensor's last dimension that hold a site: a slice, or a LongTensor."""

LayoutFn = Callable[[object, int], Columns]
"""``layout(text_config, module_width) -> columns`` for a site that shares a fused projection."""

HookKind = Literal["output", "input"]

_REGISTER_HINT = (
    "Register a site map for it: neurospec.core.sites.register_family('<model_type>', "
    "{'act': SiteSpec('mlp.act_fn'), 'down_in': SiteSpec('mlp.down_proj', 'input'), ...}) "
    "(module paths relative to one decoder layer; see docs/sites.md)."
)


@dataclass(frozen=True)
class ModelShape:
    """What a neuron file must agree with: layer count and the width of each site.

    ``ModelShape(num_layers=32, widths={"act": 11008}, model_id="meta-llama/Llama-2-7b-hf")``
    """

    num_layers: int
    widths: Mapping[str, int]
    model_id: str | None = None
    family: str | None = None


@dataclass(frozen=True)
class SiteSpec:
    """Where a site lives inside one decoder layer: a module path, its output or input, a layout.

    ``SiteSpec("mlp.down_proj", "input")`` is the down projection's input;
    ``SiteSpec("self_attn.qkv_proj", columns=offset_layout("q"))`` a slice of a fused output.
    """

    module: str
    hook: HookKind = "output"
    columns: LayoutFn | None = None


@dataclass(frozen=True)
class SiteLocation:
    """One site in one layer: hook ``module`` (its output or its first input), take ``columns``."""

    site: str
    layer: int
    module: nn.Module = field(repr=False)
    module_name: str
    hook: HookKind
    columns: Columns
    width: int


# --------------------------------------------------------------------------------------------
# Layout functions for fused projections


def _head_dim(config) -> int:
    head_dim = getattr(config, "head_dim", None)
    return int(head_dim) if head_dim else config.hidden_size // config.num_attention_heads


def _as_columns(index: torch.Tensor) -> Columns:
    """A contiguous ascending index becomes a slice (a view instead of a gather)."""
    if index.numel() and bool((index.diff() == 1).all()):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def stacked_layout(part: int, parts: int) -> LayoutFn:
    """Equal blocks one after another: Phi-3 ``gate_up_proj`` = [gate; up], GPT-2 ``c_attn`` = [q; k; v]."""

    def layout(config, module_width: int) -> Columns:
        block = module_width // parts
        return slice(part * block, (part + 1) * block)

    return layout


def offset_layout(which: str) -> LayoutFn:
    """[q (heads x d); k (kv_heads x d); v (kv_heads x d)] by offset, as Phi-3 ``qkv_proj``."""

    def layout(config, module_width: int) -> Columns:
        head_dim = _head_dim(config)
        q_width = config.num_attention_heads * head_dim
        kv_width = (module_width - q_width) // 2
        start = {"q": 0, "k": q_width, "v": q_width + kv_width}[which]
        return slice(start, start + (q_width if which == "q" else kv_width))

    return layout


def per_head_layout(which: str) -> LayoutFn:
    """q/k/v interleaved per head as [heads, 3, head_dim]: BLOOM, GPT-NeoX, classic Falcon."""

    def layout(config, module_width: int) -> Columns:
        heads = config.num_attention_heads
        head_dim = module_width // (3 * heads)
        part = "qkv".index(which)
        head = torch.arange(heads).repeat_interleave(head_dim)
        dim = torch.arange(head_dim).repeat(heads)
        return _as_columns((head * 3 + part) * head_dim + dim)

    return layout


def falcon_layout(which: str) -> LayoutFn:
    """Falcon's fused ``query_key_value``, whose layout depends on its config.

    ``new_decoder_architecture``: [kv_heads, heads/kv_heads + 2, d] (q heads of a group, then k, v);
    ``multi_query``: [heads + 2, d] (all q heads, then one k and one v head); otherwise [heads, 3, d].
    """

    def layout(config, module_width: int) -> Columns:
        heads = config.num_attention_heads
        head_dim = config.hidden_size // heads
        if config.new_decoder_architecture:
            kv_heads = config.num_kv_heads
            group = heads // kv_heads
            slots = group + 2
            if which == "q":
                head = torch.arange(heads)
                slot = (head // group) * slots + head % group
            else:
                slot = torch.arange(kv_heads) * slots + group + (which == "v")
            return _as_columns((slot.repeat_interleave(head_dim) * head_dim + torch.arange(head_dim).repeat(len(slot))))
        if config.multi_query:
            start = {"q": 0, "k": heads * head_dim, "v": (heads + 1) * head_dim}[which]
            return slice(start, start + (heads * head_dim if which == "q" else head_dim))
        return per_head_layout(which)(config, module_width)

    return layout


# --------------------------------------------------------------------------------------------
# The declarative registry: model_type -> site -> where it lives inside a decoder layer

_GATED_MLP = {
    "act": SiteSpec("mlp.act_fn"),
    "down_in": SiteSpec("mlp.down_proj", "input"),
    "gate_pre": SiteSpec("mlp.gate_proj"),
    "up_pre": SiteSpec("mlp.up_proj"),
}
_SELF_ATTN_QKV = {
    "q": SiteSpec("self_attn.q_proj"),
    "k": SiteSpec("self_attn.k_proj"),
    "v": SiteSpec("self_attn.v_proj"),
}
_LLAMA_LIKE = {**_GATED_MLP, **_SELF_ATTN_QKV}


def _fused_qkv(module: str, layout: Callable[[str], LayoutFn]) -> dict[str, SiteSpec]:
    return {which: SiteSpec(module, columns=layout(which)) for which in ATTENTION_SITES}


def _plain_mlp(prefix: str, fc: str, act: str, out: str) -> dict[str, SiteSpec]:
    """A non-gated MLP ``out(act(fc(x)))``: ``gate_pre`` is ``fc(x)``; ``down_in`` equals ``act``."""
    return {
        "act": SiteSpec(f"{prefix}{act}"),
        "down_in": SiteSpec(f"{prefix}{out}", "input"),
        "gate_pre": SiteSpec(f"{prefix}{fc}"),
    }


FAMILIES: dict[str, dict[str, SiteSpec]] = {
    **{family: _LLAMA_LIKE for family in (
        "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text", "olmo2",
    )},
    "phi3": {
        "act": SiteSpec("mlp.activation_fn"),
        "down_in": SiteSpec("mlp.down_proj", "input"),
        "gate_pre": SiteSpec("mlp.gate_up_proj", columns=stacked_layout(0, 2)),
        "up_pre": SiteSpec("mlp.gate_up_proj", columns=stacked_layout(1, 2)),
        **_fused_qkv("self_attn.qkv_proj", offset_layout),
    },
    "gpt2": {
        **_plain_mlp("mlp.", "c_fc", "act", "c_proj"),
        **_fused_qkv("attn.c_attn", lambda which: stacked_layout("qkv".index(which), 3)),
    },
    "bloom": {
        **_plain_mlp("mlp.", "dense_h_to_4h", "gelu_impl", "dense_4h_to_h"),
        **_fused_qkv("self_attention.query_key_value", per_head_layout),
    },
    "gpt_neox": {
        **_plain_mlp("mlp.", "dense_h_to_4h", "act", "dense_4h_to_h"),
        **_fused_qkv("attention.query_key_value", per_head_layout),
    },
    "falcon": {
        **_plain_mlp("mlp.", "dense_h_to_4h", "act", "dense_4h_to_h"),
        **_fused_qkv("self_attention.query_key_value", falcon_layout),
    },
    "opt": {**_plain_mlp("", "fc1", "activation_fn", "fc2"), **_SELF_ATTN_QKV},
}


def register_family(model_type: str, sites: Mapping[str, SiteSpec]) -> None:
    """Tell neurospec where the sites of a family live (paths relative to one decoder layer).

    ``register_family("mymodel", {"act": SiteSpec("ffn.act"), "down_in": SiteSpec("ffn.w2", "input")})``
    """
    unknown = set(sites) - set(SITES)
    if unknown:
        raise NeurospecError(f"unknown site(s) {sorted(unknown)} for family {model_type!r}: sites are {SITES}")
    FAMILIES[model_type] = dict(sites)


# --------------------------------------------------------------------------------------------
# Structural resolution

_NON_TEXT_PARTS = ("vision", "visual", "image", "audio", "speech", "multi_modal_projector", "mm_projector")
_MLP_NAMES = ("mlp", "feed_forward", "ffn", "ff", "mlp_block")
_ATTENTION_NAMES = ("self_attn", "self_attention", "attn", "attention")
_QKV_NAMES = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"), ("wq", "wk", "wv"))


def text_config(model: nn.Module):
    """The decoder's config: ``config.get_text_config()`` for multimodal wrappers, else the config."""
    config = model.config
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else getattr(config, "text_config", config)


def _is_projection(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def _projection_width(module: nn.Module, hook: HookKind) -> int:
    """Output (or input) width of a Linear, or of GPT-2's Conv1D (weight stored as [in, out])."""
    if isinstance(module, nn.Linear):
        return module.out_features if hook == "output" else module.in_features
    if type(module).__name__ == "Conv1D":
        return module.nf if hook == "output" else module.weight.shape[0]
    raise UnsupportedModelError(f"cannot tell the width of {type(module).__name__}: expected a Linear layer")


def _is_activation(module: nn.Module) -> bool:
    kind = type(module)
    return kind.__module__.startswith(("torch.nn.modules.activation", "transformers.activations")) or any(
        part in kind.__name__.lower() for part in ("gelu", "silu", "relu", "swish", "activation")
    )


def _check_not_moe(layer: nn.Module, where: str) -> None:
    for name, module in layer.named_modules():
        kind = type(module).__name__.lower()
        if hasattr(module, "experts") or "moe" in kind or "expert" in kind:
            path = f"{where}.{name}" if name else where
            raise UnsupportedModelError(
                f"{path} ({type(module).__name__}) is or holds a mixture-of-experts MLP: neurospec's neuron "
                "sites assume one dense MLP per layer, so none is chosen for you. To study a dense part of "
                f"it (a shared expert, say), name its modules. {_REGISTER_HINT}"
            )


def find_decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder layer list: the ModuleList of identical blocks, one per text layer, outside vision towers."""
    expected = getattr(text_config(model), "num_hidden_layers", None)
    candidates = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(block) for block in module}) != 1 or any(p in name.lower() for p in _NON_TEXT_PARTS):
            continue
        if expected is not None and len(module) != expected:
            continue
        candidates.append((name, module))
    if len(candidates) > 1:  # prefer the decoder of a multimodal or encoder-decoder wrapper
        preferred = [c for c in candidates if any(p in c[0] for p in ("language_model", "decoder", "text"))]
        candidates = preferred or candidates
    if len(candidates) != 1:
        found = ", ".join(name for name, _ in candidates) or "none"
        raise UnsupportedModelError(
            f"cannot find the decoder layer list of {type(model).__name__} (config model_type "
            f"{getattr(model.config, 'model_type', '?')!r}, {expected} layers expected; candidates: {found}). "
            f"{_REGISTER_HINT}"
        )
    return candidates[0]


def _structural_specs(layer: nn.Module) -> dict[str, SiteSpec]:
    """Site specs read off one decoder layer by module names and shapes (no list of model names)."""
    children = dict(layer.named_children())
    mlp_name = next((n for n in _MLP_NAMES if n in children), None)
    mlp = children[mlp_name] if mlp_name else layer
    prefix = f"{mlp_name}." if mlp_name else ""
    specs: dict[str, SiteSpec] = {}

    projections = {n: m for n, m in mlp.named_children() if _is_projection(m)}
    # the down projection: its output width is the hidden size, and its input width is the widest
    widths = {n: (_projection_width(m, "input"), _projection_width(m, "output")) for n, m in projections.items()}
    down = max(widths, key=lambda n: widths[n][0] - widths[n][1], default=None)
    if down is not None and widths[down][0] > widths[down][1]:
        hidden, inner = widths[down][1], widths[down][0]
        specs["down_in"] = SiteSpec(prefix + down, "input")
        inputs = [n for n in projections if n != down and widths[n][0] == hidden]
        same = [n for n in inputs if widths[n][1] == inner]
        if len(same) == 1:
            specs["gate_pre"] = SiteSpec(prefix + same[0])
        elif len(same) == 2:
            gate = [n for n in same if "gate" in n or n == "w1"]
            up = [n for n in same if n not in gate]
            if len(gate) == 1 and len(up) == 1:
                specs["gate_pre"], specs["up_pre"] = SiteSpec(prefix + gate[0]), SiteSpec(prefix + up[0])
        activations = [n for n, m in mlp.named_children() if _is_activation(m)]
        if len(activations) == 1 and "gate_pre" in specs:
            specs["act"] = SiteSpec(prefix + activations[0])

    attention_name = next((n for n in _ATTENTION_NAMES if n in children), None)
    if attention_name:
        attention = dict(children[attention_name].named_children())
        for names in _QKV_NAMES:
            if all(n in attention and _is_projection(attention[n]) for n in names):
                specs.update({s: SiteSpec(f"{attention_name}.{n}") for s, n in zip(ATTENTION_SITES, names)})
                break
    return specs


# --------------------------------------------------------------------------------------------
# The site map of one model


class SiteMap:
    """Every site of every layer of one model.

        sites = SiteMap(model)
        sites.sites               # ("act", "down_in", "gate_pre", "up_pre", "q", "k", "v")
        sites.width("q")          # heads x head_dim
        sites.locate("act", 0)    # SiteLocation(module=..., hook="output", columns=slice(None))
        sites.shape               # ModelShape for validating neuron files
    """

    def __init__(self, model: nn.Module, specs: Mapping[str, SiteSpec] | None = None):
        self.model = model
        self.config = text_config(model)
        self.model_type = getattr(self.config, "model_type", None) or "unknown"
        root_type = getattr(model.config, "model_type", None)
        self.layers_path, self.layers = find_decoder_layers(model)
        self.num_layers = len(self.layers)
        if specs is None:
            specs = FAMILIES.get(root_type) or FAMILIES.get(self.model_type)
            self.source = "registry" if specs is not None else "structure"
            if specs is None:
                # a registered (or given) site map is the user's choice, e.g. the shared expert of an MoE
                # layer; structure alone must not pick neurons out of a mixture of experts. Every layer is
                # checked: some MoE models keep dense MLPs in their first layers (DeepSeek-V3).
                for index, block in enumerate(self.layers):
                    _check_not_moe(block, f"{self.layers_path}.{index}")
                specs = _structural_specs(self.layers[0])
        else:
            self.source = "given"
        if not specs:
            raise UnsupportedModelError(
                f"no neuron site could be located in {type(self.layers[0]).__name__} "
                f"(model_type {self.model_type!r}). {_REGISTER_HINT}"
            )
        self.specs = dict(specs)
        self._locations = {(s, i): self._resolve(s, i) for s in self.specs for i in range(self.num_layers)}
        self._check_act_modules_unshared()

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(s for s in SITES if s in self.specs)

    @property
    def shape(self) -> ModelShape:
        model_id = getattr(self.model.config, "_name_or_path", None) or None
        return ModelShape(self.num_layers, {s: self.width(s) for s in self.sites}, model_id, self.model_type)

    def width(self, site: str) -> int:
        return self.locate(site, 0).width

    def check_site(self, site: str) -> None:
        """Raise a clear error when ``site`` does not exist in this family."""
        if site not in SITES:
            raise NeurospecError(f"unknown site {site!r}: the sites are {', '.join(SITES)}")
        if site not in self.specs:
            raise NeurospecError(
                f"site {site!r} does not exist in {self.model_type} models (sites here: "
                f"{', '.join(self.sites)}); " + ("non-gated MLPs have no up projection. " if site == "up_pre" else "")
                + "Choose one of the sites here, or register a site map: neurospec.core.sites.register_family."
            )

    def check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.num_layers:
            raise NeurospecError(
                f"layer {layer} does not exist: the model has {self.num_layers} layers (0..{self.num_layers - 1}); "
                "was this neuron file made for another model?"
            )

    def locate(self, site: str, layer: int) -> SiteLocation:
        self.check_site(site)
        self.check_layer(layer)
        return self._locations[(site, layer)]

    def _resolve(self, site: str, layer: int) -> SiteLocation:
        spec = self.specs[site]
        block = self.layers[layer]
        try:
            module = block.get_submodule(spec.module)
        except AttributeError:
            raise UnsupportedModelError(
                f"site {site!r} of {self.model_type} expects module {spec.module!r} in "
                f"{self.layers_path}.{layer}, which has none. {_REGISTER_HINT}"
            ) from None
        if spec.hook == "input" or _is_projection(module):
            module_width = _projection_width(module, spec.hook)
        else:  # an activation module: as wide as the down projection's input
            down = self.specs.get("down_in")
            if down is None:
                raise UnsupportedModelError(f"cannot tell the width of site {site!r}: no down_in site. {_REGISTER_HINT}")
            module_width = _projection_width(block.get_submodule(down.module), "input")
        columns = spec.columns(self.config, module_width) if spec.columns else slice(0, module_width)
        if isinstance(columns, slice):
            width = len(range(*columns.indices(module_width)))
        else:
            width = int(columns.numel())
        return SiteLocation(site, layer, module, f"{self.layers_path}.{layer}.{spec.module}", spec.hook, columns, width)

    def _check_act_modules_unshared(self) -> None:
        for site in self.sites:
            modules = {id(self._locations[(site, i)].module) for i in range(self.num_layers)}
            if len(modules) != self.num_layers:
                raise UnsupportedModelError(
                    f"site {site!r}: one module object is shared by several layers, so a hook on it cannot tell "
                    f"the layers apart. {_REGISTER_HINT}"
                )

    def describe(self) -> list[dict]:
        """One row per site: module path in layer 0, hook kind, width, layout."""
        rows = []
        for site in self.sites:
            loc = self.locate(site, 0)
            layout = f"{loc.columns.start}:{loc.columns.stop}" if isinstance(loc.columns, slice) else "per head"
            rows.append({"site": site, "module": loc.module_name, "hook": loc.hook, "width": loc.width, "columns": layout})
        return rows


def site_map(model: nn.Module) -> SiteMap:
    """The :class:`SiteMap` of ``model``, cached on the model itself (it lives and dies with it)."""
    cached = model.__dict__.get("_neurospec_sites")
    if cached is None:
        cached = model.__dict__["_neurospec_sites"] = SiteMap(model)
    return cached
