"""Site maps of every family: widths from the config, fused layouts against the model's own split code,
q/k before q/k norm, the multimodal wrapper, the structural fallback, errors, registration, loading."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from families import FAMILIES, build_moe, build_moe_dense_first, build_odd, family, odd_sites, tiny_model
from torch import nn

import neurospec.core.models as models
import neurospec.core.sites as sites
from neurospec.core.sites import MLP_SITES, SiteMap, SiteSpec, _structural_specs, register_family
from neurospec.util.errors import NeurospecError, UnsupportedModelError

ids = lambda f: f.name  # noqa: E731


def capture(model: nn.Module, locations, inputs: dict) -> dict:
    """Run ``model`` once and keep the full tensor each location hooks (its output, or first input)."""
    seen, handles = {}, []
    for key, loc in locations.items():
        if loc.hook == "output":
            hook = lambda m, args, out, key=key: seen.__setitem__(key, out.detach().clone())  # noqa: E731
            handles.append(loc.module.register_forward_hook(hook))
        else:
            hook = lambda m, args, key=key: seen.__setitem__(key, args[0].detach().clone())  # noqa: E731
            handles.append(loc.module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def tokens(seq: int = 7, batch: int = 2, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(3, 100, (batch, seq), generator=generator)}


def layer_index(name: str, layers_path: str) -> int:
    assert name.startswith(layers_path + "."), name
    return int(name[len(layers_path) + 1:].split(".")[0])


# --------------------------------------------------------------------------------------------
# Resolution and widths


@pytest.mark.parametrize("fam", FAMILIES, ids=ids)
def test_site_map_resolves_with_config_widths(fam):
    model = tiny_model(fam.name)
    site_map = SiteMap(model)
    expected = fam.widths(model)
    assert site_map.num_layers == fam.text_config(model).num_hidden_layers
    assert set(site_map.sites) == set(expected)
    assert ("up_pre" in site_map.sites) == fam.gated
    assert {s: site_map.width(s) for s in site_map.sites} == expected
    assert dict(site_map.shape.widths) == expected and site_map.shape.num_layers == site_map.num_layers
    for site in site_map.sites:
        modules = set()
        for layer in range(site_map.num_layers):
            loc = site_map.locate(site, layer)
            assert model.get_submodule(loc.module_name) is loc.module  # the name is a real path to it
            assert layer_index(loc.module_name, site_map.layers_path) == layer
            assert loc.width == expected[site]
            modules.add(id(loc.module))
        assert len(modules) == site_map.num_layers


@pytest.mark.parametrize("fam", FAMILIES, ids=ids)
def test_sites_hold_what_their_names_say(fam):
    """In a real forward: act = act_fn(gate_pre), down_in = act * up_pre (gated) or act (not gated),
    and each site's columns of the hooked tensor are exactly ``width`` wide."""
    model = tiny_model(fam.name)
    site_map = SiteMap(model)
    layer = site_map.num_layers - 1
    locations = {s: site_map.locate(s, layer) for s in site_map.sites}
    seen = capture(model, locations, tokens())
    # OPT runs its MLP on (batch * tokens, width): fold it back
    value = {s: seen[s][..., locations[s].columns].reshape(2, 7, -1) for s in site_map.sites}
    assert all(seen[s].dim() == (2 if fam.model_type == "opt" and s in MLP_SITES else 3) for s in seen)
    for site in site_map.sites:
        assert value[site].shape == (2, 7, site_map.width(site)), site
    act_fn = locations["act"].module
    with torch.no_grad():
        assert torch.allclose(act_fn(value["gate_pre"]), value["act"], atol=1e-6)
    assert torch.equal(value["act"] > 0, value["gate_pre"] > 0)
    product = value["act"] * value["up_pre"] if fam.gated else value["act"]
    assert torch.allclose(value["down_in"], product, atol=1e-6)
    assert not torch.allclose(value["down_in"], value["gate_pre"], atol=1e-3)


@pytest.mark.parametrize("fam", FAMILIES, ids=ids)
def test_v_columns_feed_the_attention_output_at_one_token(fam):
    """With a single token, attention returns v itself: the input of the output projection is, for
    q head h, the v head of h's key/value group. This checks v's columns by running the model."""
    model = tiny_model(fam.name)
    site_map = SiteMap(model)
    config = fam.text_config(model)
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    layer = site_map.num_layers - 1
    v_loc = site_map.locate("v", layer)
    o_proj = site_map.layers[layer].get_submodule(fam.o_proj)
    o_loc = sites.SiteLocation("o_in", layer, o_proj, fam.o_proj, "input", slice(None), 0)
    seen = capture(model, {"v": v_loc, "o": o_loc}, tokens(seq=1, batch=3))
    v = seen["v"][..., v_loc.columns]
    o_in = seen["o"]
    head_dim = o_in.shape[-1] // heads
    kv_heads = v.shape[-1] // head_dim
    v, o_in = v.reshape(3, 1, kv_heads, head_dim), o_in.reshape(3, 1, heads, head_dim)
    for h in range(heads):
        assert torch.allclose(o_in[..., h, :], v[..., h // (heads // kv_heads), :], atol=1e-5), h


# --------------------------------------------------------------------------------------------
# Fused layouts, checked against each model's own split code


def _flat_heads(x: torch.Tensor, heads_dim: int) -> torch.Tensor:
    """[batch, seq, heads, d] (heads_dim=2) or [batch, heads, seq, d] (heads_dim=1) -> [batch, seq, heads*d]."""
    if heads_dim == 1:
        x = x.transpose(1, 2)
    return x.reshape(*x.shape[:2], -1)


class _Captured(Exception):
    pass


def _falcon_attention_inputs(attention: nn.Module, fused: torch.Tensor) -> dict[str, torch.Tensor]:
    """q, k, v as FalconAttention.forward itself hands them to the attention function (transformers >= 5.25
    splits inline and has no ``_split_heads``): its fused projection's output replaced by ``fused``, rotary
    embedding left out (it acts after the split), and the attention function stopped at its inputs."""
    from transformers.models.falcon import modeling_falcon

    seen: dict[str, torch.Tensor] = {}

    def capture(module, query, key, value, *args, **kwargs):
        seen.update(q=_flat_heads(query, 1), k=_flat_heads(key, 1), v=_flat_heads(value, 1))
        raise _Captured

    handle = attention.query_key_value.register_forward_hook(lambda module, args, output: fused)
    implementation = attention.config._attn_implementation
    attention.config._attn_implementation = "eager"
    try:
        with mock.patch.object(modeling_falcon, "apply_rotary_pos_emb", lambda q, k, cos, sin: (q, k)), \
                mock.patch.object(modeling_falcon, "eager_attention_forward", capture), pytest.raises(_Captured):
            hidden = torch.zeros(*fused.shape[:2], attention.hidden_size)
            attention(hidden, None, position_embeddings=(None, None))
    finally:
        handle.remove()
        attention.config._attn_implementation = implementation
    return seen


def model_split(fam, model, fused: torch.Tensor) -> dict[str, torch.Tensor]:
    """q, k, v (each [batch, seq, heads*head_dim]) as the model computes them from its fused output."""
    layer = SiteMap(model).layers[0]
    config = fam.text_config(model)
    if fam.model_type == "bloom":  # BloomAttention._reshape -> [batch, heads, seq, d] each
        q, k, v = layer.self_attention._reshape(fused)
        return {"q": _flat_heads(q, 1), "k": _flat_heads(k, 1), "v": _flat_heads(v, 1)}
    if fam.model_type == "falcon" and not hasattr(layer.self_attention, "_split_heads"):
        return _falcon_attention_inputs(layer.self_attention, fused)
    if fam.model_type == "falcon":  # FalconAttention._split_heads (transformers < 5.25) -> [batch, seq, heads, d] each
        attention = layer.self_attention
        q, k, v = attention._split_heads(fused)
        if config.new_decoder_architecture:
            # k and v come back broadcast to every q head of their group: keep one copy per group
            group = config.num_attention_heads // config.num_kv_heads
            grouped = lambda x: x.reshape(*x.shape[:2], config.num_kv_heads, group, x.shape[-1])  # noqa: E731
            for x in (k, v):
                assert torch.equal(grouped(x), grouped(x)[:, :, :, :1].expand_as(grouped(x)))
            k, v = grouped(k)[:, :, :, 0], grouped(v)[:, :, :, 0]
        return {"q": _flat_heads(q, 2), "k": _flat_heads(k, 2), "v": _flat_heads(v, 2)}
    if fam.model_type == "gpt_neox":  # GPTNeoXAttention.forward: view(..., -1, 3 * head_size).transpose(1, 2).chunk(3)
        head_size = layer.attention.head_size
        q, k, v = fused.view(*fused.shape[:-1], -1, 3 * head_size).transpose(1, 2).chunk(3, dim=-1)
        return {"q": _flat_heads(q, 1), "k": _flat_heads(k, 1), "v": _flat_heads(v, 1)}
    if fam.model_type == "gpt2":  # GPT2Attention.forward: c_attn(x).split(self.split_size, dim=2)
        q, k, v = fused.split(layer.attn.split_size, dim=2)
        return {"q": q, "k": k, "v": v}
    if fam.model_type == "phi3":  # Phi3Attention.forward: by offset, query_pos = heads * head_dim
        attention = layer.self_attn
        query_pos = config.num_attention_heads * attention.head_dim
        kv = attention.num_key_value_heads * attention.head_dim
        return {"q": fused[..., :query_pos], "k": fused[..., query_pos:query_pos + kv],
                "v": fused[..., query_pos + kv:]}
    raise AssertionError(f"no fused layout for {fam.name}")


FUSED = [f for f in FAMILIES if f.fused_qkv]


def test_fused_families_are_the_expected_ones():
    assert {f.name for f in FUSED} == {"phi3", "bloom", "gpt2", "falcon_new", "falcon_mq", "falcon_classic",
                                       "gpt_neox"}


@pytest.mark.parametrize("fam", FUSED, ids=ids)
def test_fused_qkv_columns_match_the_models_own_split(fam):
    model = tiny_model(fam.name)
    site_map = SiteMap(model)
    locations = {s: site_map.locate(s, 0) for s in ("q", "k", "v")}
    module = locations["q"].module
    assert all(loc.module is module for loc in locations.values())
    fused = torch.randn(2, 5, module.weight.shape[0] if isinstance(module, nn.Linear) else module.nf)
    expected = model_split(fam, model, fused)
    columns = {s: torch.arange(fused.shape[-1])[loc.columns] for s, loc in locations.items()}
    for site in ("q", "k", "v"):
        assert torch.equal(fused[..., locations[site].columns], expected[site]), site
    # the three sites partition the fused output: no column twice, none left out
    assert torch.equal(torch.cat(list(columns.values())).sort().values, torch.arange(fused.shape[-1]))


def test_falcon_layouts_differ():
    """The three Falcon configs really exercise three layouts (else the test above proves less)."""
    cols = {}
    for name in ("falcon_new", "falcon_mq", "falcon_classic"):
        loc = SiteMap(tiny_model(name)).locate("k", 0)
        cols[name] = torch.arange(loc.module.out_features)[loc.columns].tolist()
    assert len({tuple(c) for c in cols.values()}) == 3


def test_phi3_gate_up_columns_match_the_models_own_split():
    model = tiny_model("phi3")
    site_map = SiteMap(model)
    gate, up = site_map.locate("gate_pre", 0), site_map.locate("up_pre", 0)
    assert gate.module is up.module is site_map.layers[0].mlp.gate_up_proj
    fused = torch.randn(2, 5, gate.module.out_features)
    model_gate, model_up = fused.chunk(2, dim=-1)  # Phi3MLP.forward: gate, up_states = up_states.chunk(2, dim=-1)
    assert torch.equal(fused[..., gate.columns], model_gate)
    assert torch.equal(fused[..., up.columns], model_up)


# --------------------------------------------------------------------------------------------
# q and k before q/k norm (and rotary)

QK_NORM = [f for f in FAMILIES if f.qk_norm]


def test_qk_norm_families_are_the_expected_ones():
    assert {f.name for f in QK_NORM} == {"qwen3", "gemma3_text", "gemma3", "olmo2"}


@pytest.mark.parametrize("fam", QK_NORM, ids=ids)
def test_q_and_k_are_taken_before_the_qk_norm(fam):
    """The site is the projection's output; the norm's input is that same tensor (so the norm comes after)."""
    model = tiny_model(fam.name)
    site_map = SiteMap(model)
    attention = site_map.layers[0].self_attn
    for site, proj, norm in (("q", attention.q_proj, attention.q_norm), ("k", attention.k_proj, attention.k_norm)):
        loc = site_map.locate(site, 0)
        assert loc.module is proj and loc.module_name.endswith(f"self_attn.{site}_proj")
        norm_in = sites.SiteLocation("n", 0, norm, "", "input", slice(None), 0)
        norm_out = sites.SiteLocation("n", 0, norm, "", "output", slice(None), 0)
        seen = capture(model, {"site": loc, "norm_in": norm_in}, tokens(seq=7))
        seen_out = capture(model, {"norm_out": norm_out}, tokens(seq=7))
        value = seen["site"][..., loc.columns]

        def flat(x):  # Qwen3: [b, s, heads, d]; Gemma3: [b, heads, s, d]; OLMo2: [b, s, heads*d]
            if x.dim() == 4:
                x = x if x.shape[1] == 7 else x.transpose(1, 2)
                x = x.reshape(*x.shape[:2], -1)
            return x

        assert torch.equal(flat(seen["norm_in"]), value)
        assert not torch.allclose(flat(seen_out["norm_out"]), value, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Multimodal wrapper


def test_gemma3_multimodal_resolves_the_text_decoder():
    wrapper, text = tiny_model("gemma3"), tiny_model("gemma3_text")
    site_map, text_map = SiteMap(wrapper), SiteMap(text)
    # the text decoder: model.language_model from transformers 4.52 on, language_model.model in 4.50 and 4.51
    assert site_map.layers_path in ("model.language_model.layers", "language_model.model.layers")
    assert site_map.layers is wrapper.get_submodule(site_map.layers_path)
    vision_lists = [n for n, m in wrapper.named_modules()
                    if isinstance(m, nn.ModuleList) and "vision" in n and len(m) == site_map.num_layers]
    assert vision_lists, "the vision tower should have as many layers, so that only names tell them apart"
    assert site_map.model_type == "gemma3_text"
    assert dict(site_map.shape.widths) == dict(text_map.shape.widths)
    assert site_map.num_layers == text_map.num_layers
    for row, text_row in zip(site_map.describe(), text_map.describe()):
        assert "vision" not in row["module"]
        assert row["module"].removeprefix(site_map.layers_path) == text_row["module"].removeprefix(text_map.layers_path)
        assert {k: v for k, v in row.items() if k != "module"} == {k: v for k, v in text_row.items() if k != "module"}


# --------------------------------------------------------------------------------------------
# Structural fallback


UNFUSED = [f for f in FAMILIES if not f.fused_qkv]
FUSED_QKV_ONLY = [f for f in FAMILIES if f.fused_qkv and not f.fused_mlp]


def _as_paths(specs) -> dict:
    return {site: (spec.module, spec.hook) for site, spec in specs.items()}


@pytest.mark.parametrize("fam", UNFUSED, ids=ids)
def test_structural_fallback_finds_the_registry_sites(fam, monkeypatch):
    model = tiny_model(fam.name)
    registered = SiteMap(model)
    assert registered.source == "registry"
    assert _as_paths(_structural_specs(registered.layers[0])) == _as_paths(registered.specs)
    # and the whole SiteMap without a registry entry gives the same locations
    for key in (fam.model_type, registered.model_type):
        monkeypatch.delitem(sites.FAMILIES, key, raising=False)
    structural = SiteMap(model)
    assert structural.source == "structure"
    assert structural.describe() == registered.describe()


@pytest.mark.parametrize("fam", FUSED_QKV_ONLY, ids=ids)
def test_structural_fallback_finds_the_unfused_mlp_sites(fam):
    registered = SiteMap(tiny_model(fam.name))
    found = _as_paths(_structural_specs(registered.layers[0]))
    mlp = {s: v for s, v in _as_paths(registered.specs).items() if s in MLP_SITES}
    assert {s: v for s, v in found.items() if s in MLP_SITES} == mlp


# --------------------------------------------------------------------------------------------
# Errors


def test_mixture_of_experts_is_refused():
    with pytest.raises(UnsupportedModelError, match="mixture-of-experts") as err:
        SiteMap(build_moe())
    assert "register_family" in str(err.value)


def test_mixture_of_experts_after_dense_layers_is_refused():
    """DeepSeek-V3 keeps dense MLPs in its first layers: every layer must be checked, not layer 0."""
    model = build_moe_dense_first()
    assert not hasattr(model.model.layers[0].mlp, "experts") and hasattr(model.model.layers[1].mlp, "experts")
    with pytest.raises(UnsupportedModelError, match="mixture-of-experts") as err:
        SiteMap(model)
    assert "model.layers.1.mlp " in str(err.value) and "register_family" in str(err.value)


def test_custom_model_is_refused_with_a_hint():
    with pytest.raises(UnsupportedModelError, match="register_family") as err:
        SiteMap(build_odd())
    assert "oddnet" in str(err.value)


def test_custom_model_without_a_matching_layer_list_is_refused():
    model = build_odd()
    model.config.num_hidden_layers = 5
    with pytest.raises(UnsupportedModelError, match="register_family") as err:
        SiteMap(model)
    assert "decoder layer list" in str(err.value) and "5 layers" in str(err.value)


def test_missing_site_names_the_site_and_the_available_ones():
    site_map = SiteMap(tiny_model("gpt2"))
    with pytest.raises(NeurospecError, match="'up_pre'") as err:
        site_map.locate("up_pre", 0)
    assert not isinstance(err.value, UnsupportedModelError)
    assert "act, down_in, gate_pre, q, k, v" in str(err.value)
    with pytest.raises(NeurospecError, match="'up_pre'"):
        site_map.width("up_pre")


def test_unknown_site_name():
    site_map = SiteMap(tiny_model("llama"))
    with pytest.raises(NeurospecError, match="'mlp_out'") as err:
        site_map.locate("mlp_out", 0)
    assert "act, down_in, gate_pre, up_pre, q, k, v" in str(err.value)


@pytest.mark.parametrize("layer", [2, 7, -1])
def test_layer_out_of_range_names_the_layer_count(layer):
    site_map = SiteMap(tiny_model("llama"))
    with pytest.raises(NeurospecError, match=f"layer {layer} ") as err:
        site_map.locate("act", layer)
    assert "2 layers" in str(err.value)
    site_map.locate("act", 1)  # the last layer is fine


# --------------------------------------------------------------------------------------------
# register_family


@pytest.fixture
def scratch_registry(monkeypatch):
    """register_family writes a global: give each test its own copy of the registry."""
    monkeypatch.setattr(sites, "FAMILIES", dict(sites.FAMILIES))
    return sites.FAMILIES


def test_register_family_makes_an_unknown_model_work(scratch_registry):
    model = build_odd()
    assert _structural_specs(model.blocks[0]) == {}  # structure alone finds nothing
    register_family("oddnet", odd_sites())
    site_map = SiteMap(model)
    assert site_map.source == "registry" and site_map.layers_path == "blocks" and site_map.num_layers == 3
    assert site_map.sites == ("act", "down_in", "gate_pre")
    assert dict(site_map.shape.widths) == {"act": 80, "down_in": 80, "gate_pre": 80}
    assert site_map.locate("act", 2).module is model.blocks[2].mixer.nonlin
    locations = {s: site_map.locate(s, 1) for s in site_map.sites}
    seen = capture(model, locations, tokens())
    assert torch.allclose(seen["act"], torch.nn.functional.gelu(seen["gate_pre"]))
    assert torch.equal(seen["down_in"], seen["act"])
    with pytest.raises(NeurospecError, match="up_pre"):
        site_map.locate("up_pre", 0)


def test_register_family_can_name_the_shared_expert_of_an_moe_model(scratch_registry):
    """What the MoE error suggests works: a registered map is used as given (here the dense shared expert)."""
    model = build_moe()
    register_family("qwen2_moe", {
        "act": SiteSpec("mlp.shared_expert.act_fn"), "down_in": SiteSpec("mlp.shared_expert.down_proj", "input"),
        "gate_pre": SiteSpec("mlp.shared_expert.gate_proj"), "up_pre": SiteSpec("mlp.shared_expert.up_proj"),
    })
    site_map = SiteMap(model)
    assert dict(site_map.shape.widths) == {s: model.config.shared_expert_intermediate_size for s in MLP_SITES}
    assert site_map.locate("act", 1).module is model.model.layers[1].mlp.shared_expert.act_fn


def test_register_family_overrides_the_registry_entry(scratch_registry):
    model = tiny_model("llama")
    register_family("llama", {"act": SiteSpec("mlp.act_fn"), "down_in": SiteSpec("mlp.down_proj", "input")})
    assert SiteMap(model).sites == ("act", "down_in")


def test_register_family_rejects_unknown_sites(scratch_registry):
    with pytest.raises(NeurospecError, match="mlp_out"):
        register_family("oddnet", {**odd_sites(), "mlp_out": SiteSpec("mixer.w_out")})
    assert "oddnet" not in scratch_registry


def test_registered_module_path_that_does_not_exist(scratch_registry):
    register_family("oddnet", {**odd_sites(), "q": SiteSpec("attn.to_q")})
    with pytest.raises(UnsupportedModelError, match="'attn.to_q'"):
        SiteMap(build_odd())


# --------------------------------------------------------------------------------------------
# Config-only shapes and loading saved models


@pytest.mark.parametrize("fam", FAMILIES, ids=ids)
def test_model_shape_from_the_config_alone(fam, tmp_path):
    model = tiny_model(fam.name)
    model.config.save_pretrained(tmp_path)  # the config only: no weights to read
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
    shape = models.model_shape(tmp_path)
    expected = SiteMap(model).shape
    assert shape.num_layers == expected.num_layers
    assert dict(shape.widths) == dict(expected.widths) == fam.widths(model)
    assert shape.model_id == str(tmp_path)


@pytest.fixture
def auto_calls(monkeypatch):
    """Record which Auto class ``load_model`` used, and with which keyword arguments."""
    calls = []
    for auto in models._model_classes():
        original = auto.from_pretrained

        def spy(*args, _auto=auto, _original=original, **kwargs):
            calls.append((_auto.__name__, kwargs))
            return _original(*args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", staticmethod(spy))
    return calls


@pytest.mark.parametrize("name", ["llama", "gemma3"])
def test_load_model_from_a_saved_folder(name, tmp_path, auto_calls):
    original = tiny_model(name)
    cls = family(name).model_class  # LlamaForCausalLM, Gemma3ForConditionalGeneration
    original.save_pretrained(tmp_path)
    loaded = models.load_model(tmp_path, tokenizer=False, device="cpu")
    assert type(loaded.model) is cls
    # transformers maps the gemma3 config straight to the multimodal class from AutoModelForCausalLM
    assert [c[0] for c in auto_calls] == ["AutoModelForCausalLM"]
    assert auto_calls[0][1]["trust_remote_code"] is False
    assert loaded.tokenizer is None and not loaded.model.training
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert loaded.sites.shape.widths == SiteMap(original).shape.widths
    assert loaded.sites.layers_path == SiteMap(original).layers_path
    inputs = tokens()
    with torch.no_grad():
        assert torch.allclose(loaded.model(**inputs).logits, original(**inputs).logits, atol=1e-5)


def test_load_model_trust_remote_code_is_off_by_default():
    import inspect

    assert inspect.signature(models.load_model).parameters["trust_remote_code"].default is False
    assert inspect.signature(models.model_shape).parameters["trust_remote_code"].default is False
