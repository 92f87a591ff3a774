"""Tiny random models, one per supported decoder family: every site and hook test runs against each.

    from families import FAMILIES, build, tiny_model, family
    for fam in FAMILIES:
        model = fam.build()           # a fresh fp32 model in eval mode, same weights on every call
        model = tiny_model(fam.name)  # a cached shared instance: remove your hooks, don't edit weights

    @pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
    def test_something(fam): ...

Every model has 2 layers, vocab 128 (bos 1, eos 2, pad 0), 4 attention heads and, where the
config allows it, 2 key/value heads, a head_dim that is not hidden/heads, and an MLP width that is
not 4 x hidden, so that every width tells its site apart. Dropout is set to 0 everywhere (the
models are built in eval mode anyway, but a test that switches to train mode stays deterministic).

Negative cases: :func:`build_moe` (a tiny Qwen2-MoE), :func:`build_moe_dense_first` (a DeepSeek-V3
whose first layer is dense, its second a mixture of experts) and :func:`build_odd` (a custom ``nn.Module``
whose decoder blocks use names no structural rule knows; :func:`odd_sites` registers it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

import pytest
import torch
import transformers
from torch import nn

# Tiny models gain nothing from a second thread, and when another process holds a core, OpenMP
# threads waiting for each other make a 2-thread forward ~100x slower (250 ms instead of 3 ms).
torch.set_num_threads(1)


class _Missing:
    """A transformers class this version lacks: using it skips the test, with the reason."""

    def __init__(self, name: str):
        self.__name__ = name
        self.reason = f"transformers {transformers.__version__} has no {name}"

    def __call__(self, *args, **kwargs):
        pytest.skip(self.reason)


class _Transformers:
    """``transformers`` for the tiny models: a class missing from the installed version (Qwen3, Gemma3,
    OLMo2 and DeepSeek-V3 in 4.46) is a :class:`_Missing`, so families and negative cases that need it
    are skipped, and the others still run."""

    def __getattr__(self, name: str):
        found = getattr(transformers, name, None)
        return found if found is not None else _Missing(name)


tf = _Transformers()

VOCAB = 128
BOS, EOS, PAD = 1, 2, 0
_IDS = {"vocab_size": VOCAB, "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD}
_SMALL = {
    "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 128,
}


@dataclass(frozen=True)
class Family:
    """One tiny model of one family.

    ``config()`` the config (keyword overrides are applied to its arguments); ``build()`` a fresh
    fp32 eval-mode model whose weights depend only on ``seed``; ``widths(model)`` the width of each
    site computed from the config alone (the test oracle).
    """

    name: str
    model_type: str  # the root config's model_type (what neurospec's registry is keyed by)
    make_config: Callable[..., object] = field(repr=False)
    model_class: type = field(repr=False)
    gated: bool  # down(act(gate(x)) * up(x)) rather than out(act(fc(x)))
    fused_qkv: bool  # q, k, v come out of one projection
    fused_mlp: bool = False  # gate and up come out of one projection (Phi-3)
    qk_norm: bool = False  # q/k are normalized after their projections (Qwen3, Gemma3, OLMo2)
    multimodal: bool = False  # a wrapper whose text decoder sits one level down
    o_proj: str = "self_attn.o_proj"  # the attention output projection, relative to a decoder layer
    left_pad_invariant: bool = True  # a plain forward on a left-padded batch (no position_ids) matches unpadded
    notes: str = ""

    @property
    def unavailable(self) -> str | None:
        """Why this family cannot be built with the installed transformers (None when it can)."""
        for needed in (getattr(self.make_config, "config_class", None), self.model_class):
            if isinstance(needed, _Missing):
                return needed.reason
        return None

    @property
    def cache_bug(self) -> str | None:
        """Why the installed transformers' own cached ``generate`` differs from uncached here (None: it does not).

        transformers 4.49 to 4.51: Gemma-2/3's HybridCache rolls its sliding layers by one slot when the
        last slot is written, although the sliding window (4096) is longer than the cache, so the last
        generated token loses the oldest key (fixed by the cache rewrite in 4.52). Tests comparing cached with
        uncached generation leave that step out there (it differs without neurospec too).
        """
        version = tuple(int(part) for part in transformers.__version__.split(".")[:2])
        if self.model_type in ("gemma2", "gemma3_text", "gemma3") and (4, 49) <= version < (4, 52):
            return (f"transformers {transformers.__version__}: HybridCache drops the oldest key of sliding layers "
                    "on the last generation step (upstream bug, fixed in 4.52)")
        return None

    def config(self, **overrides):
        return self.make_config(**overrides)

    def build(self, seed: int = 0, **overrides) -> nn.Module:
        torch.manual_seed(seed)
        model = self.model_class(self.config(**overrides)).float().eval()
        return model

    def text_config(self, model_or_config):
        config = getattr(model_or_config, "config", model_or_config)
        return config.get_text_config()

    def widths(self, model_or_config) -> dict[str, int]:
        """Expected site widths, read from the config with each family's own attribute names."""
        c = self.text_config(model_or_config)
        if self.model_type == "gpt2":
            inner = c.n_inner or 4 * c.n_embd
            return {"act": inner, "down_in": inner, "gate_pre": inner, "q": c.n_embd, "k": c.n_embd, "v": c.n_embd}
        if self.model_type == "bloom":  # the MLP is 4 x hidden, not configurable
            inner = 4 * c.hidden_size
            return {"act": inner, "down_in": inner, "gate_pre": inner,
                    "q": c.hidden_size, "k": c.hidden_size, "v": c.hidden_size}
        if self.model_type == "falcon":
            inner, head_dim = c.ffn_hidden_size, c.hidden_size // c.num_attention_heads
            kv_heads = c.num_kv_heads if c.new_decoder_architecture else (1 if c.multi_query else c.num_attention_heads)
            return {"act": inner, "down_in": inner, "gate_pre": inner, "q": c.num_attention_heads * head_dim,
                    "k": kv_heads * head_dim, "v": kv_heads * head_dim}
        if self.model_type == "opt":
            return {"act": c.ffn_dim, "down_in": c.ffn_dim, "gate_pre": c.ffn_dim,
                    "q": c.hidden_size, "k": c.hidden_size, "v": c.hidden_size}
        if self.model_type == "gpt_neox":
            inner = c.intermediate_size
            return {"act": inner, "down_in": inner, "gate_pre": inner,
                    "q": c.hidden_size, "k": c.hidden_size, "v": c.hidden_size}
        # Llama-like: intermediate_size, num_key_value_heads, head_dim (or hidden / heads)
        inner = c.intermediate_size
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        kv_heads = c.num_key_value_heads or c.num_attention_heads
        return {"act": inner, "down_in": inner, "gate_pre": inner, "up_pre": inner,
                "q": c.num_attention_heads * head_dim, "k": kv_heads * head_dim, "v": kv_heads * head_dim}


def _config(config_class, **defaults):
    def make(**overrides):
        return config_class(**{**defaults, **overrides})

    make.config_class = config_class
    return make


def _gemma3_multimodal(**overrides):
    text = tf.Gemma3TextConfig(**{**_GEMMA3_TEXT, **overrides})
    # as many vision layers as text layers: the decoder layer list must be told apart by name, not by count.
    # A dict, not a SiglipVisionConfig: transformers 4.50 replaces a config object by the 12-layer default.
    vision = dict(
        hidden_size=32, intermediate_size=48, num_hidden_layers=text.num_hidden_layers, num_attention_heads=2,
        image_size=28, patch_size=14, attention_dropout=0.0,
    )
    return tf.Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4,
        boi_token_index=VOCAB - 3, eoi_token_index=VOCAB - 2, image_token_index=VOCAB - 1,
    )


_LLAMA = {**_IDS, **_SMALL, "intermediate_size": 96, "num_key_value_heads": 2, "attention_dropout": 0.0}
_GEMMA_ATTN = {"head_dim": 24}  # q = 4 x 24 = 96, k = v = 2 x 24 = 48: not the hidden size
_GEMMA3_TEXT = {**_LLAMA, **_GEMMA_ATTN, "query_pre_attn_scalar": 24}

FAMILIES: list[Family] = [
    Family("llama", "llama", _config(tf.LlamaConfig, **_LLAMA, head_dim=24), tf.LlamaForCausalLM,
           gated=True, fused_qkv=False),
    Family("qwen2", "qwen2", _config(tf.Qwen2Config, **_LLAMA), tf.Qwen2ForCausalLM,
           gated=True, fused_qkv=False,
           notes="q/k/v projections have a bias; use_sliding_window defaults to False"),
    Family("qwen3", "qwen3", _config(tf.Qwen3Config, **_LLAMA, head_dim=24), tf.Qwen3ForCausalLM,
           gated=True, fused_qkv=False, qk_norm=True,
           notes="head_dim defaults to 128 (not hidden/heads): set it; q_norm/k_norm act per head after q_proj/k_proj"),
    Family("mistral", "mistral", _config(tf.MistralConfig, **_LLAMA, head_dim=24), tf.MistralForCausalLM,
           gated=True, fused_qkv=False,
           notes="sliding_window defaults to 4096 (longer than any test input, so inactive here)"),
    Family("gemma", "gemma", _config(tf.GemmaConfig, **_LLAMA, **_GEMMA_ATTN), tf.GemmaForCausalLM,
           gated=True, fused_qkv=False,
           notes="head_dim defaults to 256; embeddings scaled by sqrt(hidden); act is gelu_pytorch_tanh"),
    Family("gemma2", "gemma2", _config(tf.Gemma2Config, **_LLAMA, **_GEMMA_ATTN, query_pre_attn_scalar=24),
           tf.Gemma2ForCausalLM, gated=True, fused_qkv=False,
           notes="attn_logit_softcapping=50 and final_logit_softcapping=30 by default (deterministic, kept); "
                 "sliding_window 4096 on alternate layers (inactive at test lengths)"),
    Family("gemma3_text", "gemma3_text", _config(tf.Gemma3TextConfig, **_GEMMA3_TEXT), tf.Gemma3ForCausalLM,
           gated=True, fused_qkv=False, qk_norm=True,
           notes="layer_types default: 5 sliding (window 4096) per full layer, so both tiny layers are sliding"),
    Family("gemma3", "gemma3", _gemma3_multimodal, tf.Gemma3ForConditionalGeneration,
           gated=True, fused_qkv=False, qk_norm=True, multimodal=True,
           notes="text decoder at model.language_model.layers; SigLIP tower at model.vision_tower "
                 "(same layer count on purpose); AutoModelForCausalLM maps gemma3 to this class"),
    Family("phi3", "phi3", _config(tf.Phi3Config, **_LLAMA, resid_pdrop=0.0, embd_pdrop=0.0), tf.Phi3ForCausalLM,
           gated=True, fused_qkv=True, fused_mlp=True,
           notes="pad_token_id defaults to 32000 (outside a small vocab); qkv_proj = [q; k; v] by offset, "
                 "gate_up_proj = [gate; up]; act module is mlp.activation_fn"),
    Family("olmo2", "olmo2", _config(tf.Olmo2Config, **_LLAMA), tf.Olmo2ForCausalLM,
           gated=True, fused_qkv=False, qk_norm=True,
           notes="q_norm/k_norm act on the whole projection output (heads x head_dim), not per head"),
    Family("bloom", "bloom", _config(tf.BloomConfig, **_IDS, hidden_size=32, n_layer=2, n_head=4,
                                     hidden_dropout=0.0, attention_dropout=0.0), tf.BloomForCausalLM,
           gated=False, fused_qkv=True, o_proj="self_attention.dense",
           notes="MLP width fixed at 4 x hidden; ALiBi positions; pretraining_tp > 1 with slow_but_exact=True "
                 "calls F.linear on slices of dense_4h_to_h's weight, bypassing the module (down_in hook)"),
    Family("gpt2", "gpt2", _config(tf.GPT2Config, **_IDS, n_embd=64, n_layer=2, n_head=4, n_inner=96, n_positions=128,
                                   resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0),
           tf.GPT2LMHeadModel, gated=False, fused_qkv=True, o_proj="attn.c_proj", left_pad_invariant=False,
           notes="bos/eos default to 50256: set inside the vocab; dropouts default to 0.1; c_attn/c_fc are Conv1D; "
                 "a plain forward does not derive position_ids from the attention mask (left padding shifts "
                 "positions unless position_ids are passed; generate does pass them)"),
    Family("opt", "opt", _config(tf.OPTConfig, **_IDS, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 ffn_dim=96, word_embed_proj_dim=64, max_position_embeddings=128,
                                 dropout=0.0, attention_dropout=0.0, layerdrop=0.0),
           tf.OPTForCausalLM, gated=False, fused_qkv=False, o_proj="self_attn.out_proj",
           notes="no MLP module: fc1/activation_fn/fc2 sit on the decoder layer; dropout defaults to 0.1 "
                 "and layerdrop would skip whole layers in train mode; positions come from the attention mask"),
    Family("falcon_new", "falcon", _config(tf.FalconConfig, **_IDS, hidden_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, num_kv_heads=2, new_decoder_architecture=True,
                                           multi_query=False, ffn_hidden_size=96, hidden_dropout=0.0,
                                           attention_dropout=0.0), tf.FalconForCausalLM,
           gated=False, fused_qkv=True, o_proj="self_attention.dense",
           notes="qkv = [kv_heads, heads/kv_heads + 2, head_dim]; _split_heads broadcasts k/v to every q head"),
    Family("falcon_mq", "falcon", _config(tf.FalconConfig, **_IDS, hidden_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, new_decoder_architecture=False, multi_query=True,
                                          ffn_hidden_size=96, hidden_dropout=0.0, attention_dropout=0.0),
           tf.FalconForCausalLM, gated=False, fused_qkv=True, o_proj="self_attention.dense",
           notes="multi_query (the FalconConfig default): qkv = [heads + 2, head_dim], one k and one v head"),
    Family("falcon_classic", "falcon", _config(tf.FalconConfig, **_IDS, hidden_size=64, num_hidden_layers=2,
                                               num_attention_heads=4, new_decoder_architecture=False,
                                               multi_query=False, ffn_hidden_size=96, hidden_dropout=0.0,
                                               attention_dropout=0.0), tf.FalconForCausalLM,
           gated=False, fused_qkv=True, o_proj="self_attention.dense",
           notes="neither flag: qkv = [heads, 3, head_dim] as BLOOM; num_kv_heads must stay None (= heads)"),
    Family("gpt_neox", "gpt_neox", _config(tf.GPTNeoXConfig, **_IDS, **_SMALL, intermediate_size=96,
                                           hidden_dropout=0.0, attention_dropout=0.0), tf.GPTNeoXForCausalLM,
           gated=False, fused_qkv=True, o_proj="attention.dense",
           notes="qkv = [heads, 3, head_dim] (view then chunk); rotary on 25% of each head by default"),
]

BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}


def family(name: str) -> Family:
    return BY_NAME[name]


def build(name: str, seed: int = 0, **overrides) -> nn.Module:
    """A fresh tiny model of family ``name`` (also the negative cases "moe", "moe_dense_first", "odd")."""
    if name == "moe":
        return build_moe(seed)
    if name == "moe_dense_first":
        return build_moe_dense_first(seed)
    if name == "odd":
        return build_odd(seed)
    return BY_NAME[name].build(seed, **overrides)


@functools.lru_cache(maxsize=None)
def tiny_model(name: str) -> nn.Module:
    """A cached model per family, shared between tests: leave it as you found it."""
    return build(name)


def left_padded_batch(lengths=(5, 8), seed: int = 0) -> dict[str, torch.Tensor]:
    """Token ids in [3, VOCAB) padded on the left with PAD, and the matching attention mask."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, width - n:] = torch.randint(3, VOCAB, (n,), generator=generator)
        mask[row, width - n:] = 1
    return {"input_ids": ids, "attention_mask": mask}


# --------------------------------------------------------------------------------------------
# Negative cases


def build_moe(seed: int = 0) -> nn.Module:
    """A tiny Qwen2-MoE: neuron sites do not apply to a mixture-of-experts MLP."""
    torch.manual_seed(seed)
    config = tf.Qwen2MoeConfig(**_LLAMA, moe_intermediate_size=32, shared_expert_intermediate_size=48,
                               num_experts=4, num_experts_per_tok=2)
    return tf.Qwen2MoeForCausalLM(config).float().eval()


def build_moe_dense_first(seed: int = 0) -> nn.Module:
    """A tiny DeepSeek-V3: layer 0 has a dense MLP, layer 1 a mixture of experts (first_k_dense_replace=1)."""
    torch.manual_seed(seed)
    config = tf.DeepseekV3Config(
        **_IDS, **_SMALL, intermediate_size=96, num_key_value_heads=4, moe_intermediate_size=32,
        n_routed_experts=4, num_experts_per_tok=2, n_group=1, topk_group=1, first_k_dense_replace=1,
        kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,  # 4.5x needs a q rank
    )
    return tf.DeepseekV3ForCausalLM(config).float().eval()


class OddFFN(nn.Module):
    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.w_in = nn.Linear(hidden, inner)
        self.nonlin = nn.GELU()
        self.w_out = nn.Linear(inner, hidden)

    def forward(self, x):
        return self.w_out(self.nonlin(self.w_in(x)))


class OddBlock(nn.Module):
    """A residual MLP block whose MLP is called ``mixer``: no structural rule looks there."""

    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.mixer = OddFFN(hidden, inner)

    def forward(self, x):
        return x + self.mixer(self.norm(x))


class OddModel(nn.Module):
    """A custom "language model" (not a transformers class) with a config neurospec cannot resolve."""

    def __init__(self, vocab: int = VOCAB, hidden: int = 32, inner: int = 80, layers: int = 3):
        super().__init__()
        self.config = SimpleNamespace(model_type="oddnet", num_hidden_layers=layers, hidden_size=hidden,
                                      intermediate_size=inner, vocab_size=vocab)
        self.embed = nn.Embedding(vocab, hidden)
        self.blocks = nn.ModuleList(OddBlock(hidden, inner) for _ in range(layers))
        self.head = nn.Linear(hidden, vocab)

    def forward(self, input_ids, attention_mask=None):
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x)
        return SimpleNamespace(logits=self.head(x))


def build_odd(seed: int = 0) -> OddModel:
    torch.manual_seed(seed)
    return OddModel().eval()


def odd_sites():
    """The site map that makes :class:`OddModel` work with ``register_family("oddnet", odd_sites())``."""
    from neurospec.core.sites import SiteSpec

    return {
        "act": SiteSpec("mixer.nonlin"),
        "down_in": SiteSpec("mixer.w_out", "input"),
        "gate_pre": SiteSpec("mixer.w_in"),
    }
