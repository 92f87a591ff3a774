"""Hooks against independent computations, for every family (METHODS section 0).

Each intervention is compared with the same change made without neurospec's hooks: by editing
weights (zero / scale), or by swapping a module for a hand-written wrapper that applies the edit
with a mask computed here from the padding and prompt lengths (set / add / run-time statistics).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from families import FAMILIES, PAD, VOCAB, family
from torch import nn

from neurospec.core.edits import Edit, RuntimeStatistic
from neurospec.core.hooks import capture_gradients, generate, intervene, prompt_boundary, record
from neurospec.core.sites import site_map
from neurospec.util.errors import NeurospecError, ShapeMismatchError

ATOL = 1e-5
IDS = [f.name for f in FAMILIES]


# --------------------------------------------------------------------------------------------
# Inputs: prompt + continuation per row, padded left or right; masks computed here, by hand

PROMPTS = (4, 6, 3)
CONTINUATIONS = (3, 2, 4)


def scoring_batch(padding: str, seed: int = 0):
    """Teacher-forced batch: ids, attention mask, prompt boundary per row, and hand masks."""
    generator = torch.Generator().manual_seed(seed)
    lengths = [p + c for p, c in zip(PROMPTS, CONTINUATIONS)]
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    prompt = torch.zeros_like(ids, dtype=torch.bool)
    boundary = []
    for row, (p, n) in enumerate(zip(PROMPTS, lengths)):
        start = width - n if padding == "left" else 0
        ids[row, start:start + n] = torch.randint(3, VOCAB, (n,), generator=generator)
        mask[row, start:start + n] = 1
        prompt[row, start:start + p] = True
        boundary.append(start + p)
    valid = mask.bool()
    hand = {"all": valid, "prompt": prompt, "continuation": valid & ~prompt}
    return {"input_ids": ids, "attention_mask": mask}, torch.tensor(boundary), hand


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def assert_close_on(valid, actual, expected, atol=ATOL):
    diff = (actual - expected).abs()[valid.bool()].max().item()
    assert diff <= atol, f"max |diff| on non-padding tokens = {diff:.3g}"


# --------------------------------------------------------------------------------------------
# Weight edits: the independent computation for zero / scale


def _rows_of_output(module: nn.Module, rows):
    """The weight (and bias) entries that make output coordinate(s) ``rows`` of a Linear / Conv1D."""
    if type(module).__name__ == "Conv1D":  # weight is [in, out]
        return module.weight[:, rows], (module.bias[rows] if module.bias is not None else None)
    return module.weight[rows], (module.bias[rows] if module.bias is not None else None)


def zero_output_rows(module: nn.Module, rows) -> None:
    with torch.no_grad():
        if type(module).__name__ == "Conv1D":
            module.weight[:, rows] = 0
        else:
            module.weight[rows] = 0
        if module.bias is not None:
            module.bias[rows] = 0


def scale_input_columns(module: nn.Module, columns, factor: float) -> None:
    with torch.no_grad():
        if type(module).__name__ == "Conv1D":
            module.weight[columns] *= factor
        else:
            module.weight[:, columns] *= factor


def down_projection(model, layer):
    return site_map(model).locate("down_in", layer).module


def some_neurons(width: int) -> torch.Tensor:
    return torch.tensor(sorted({1, width // 3, width - 2}))


@pytest.mark.parametrize("fam", FAMILIES, ids=IDS)
def test_zero_act_equals_zeroed_down_columns(fam):
    model, reference = fam.build(), fam.build()
    batch, _, hand = scoring_batch("left")
    idx = {0: some_neurons(site_map(model).width("act")), 1: torch.tensor([0, 5])}
    for layer, columns in idx.items():
        scale_input_columns(down_projection(reference, layer), columns, 0.0)
    with intervene(model, Edit.zero({"act": idx})):
        edited = logits(model, batch)
    assert_close_on(hand["all"], edited, logits(reference, batch))
    assert (edited - logits(model, batch)).abs().max() > 1e-4  # the edit did something


@pytest.mark.parametrize("fam", FAMILIES, ids=IDS)
def test_scale_act_equals_scaled_down_columns(fam):
    model, reference = fam.build(), fam.build()
    batch, _, hand = scoring_batch("right")
    columns = some_neurons(site_map(model).width("act"))
    scale_input_columns(down_projection(reference, 1), columns, 3.5)
    with intervene(model, Edit.scale({"act": {1: columns}}, 3.5)):
        edited = logits(model, batch)
    assert_close_on(hand["all"], edited, logits(reference, batch))
    assert (edited - logits(model, batch)).abs().max() > 1e-4


@pytest.mark.parametrize("fam", FAMILIES, ids=IDS)
def test_zero_gate_pre_equals_zeroed_gate_rows(fam):
    model, reference = fam.build(), fam.build()
    batch, _, hand = scoring_batch("left")
    neurons = some_neurons(site_map(model).width("gate_pre"))
    # the module holding the gate (or, non-gated, the first MLP projection); Phi-3's is [gate; up], gate first
    zero_output_rows(site_map(reference).locate("gate_pre", 0).module, neurons)
    with intervene(model, Edit.zero({"gate_pre": {0: neurons}})):
        edited = logits(model, batch)
    assert_close_on(hand["all"], edited, logits(reference, batch))


def qkv_weight_row(fam, model, site: str, j: int) -> int:
    """Row of the (possibly fused) projection weight that makes coordinate j of q / k / v.

    Written here from each family's attention code, independently of neurospec's layouts.
    """
    config = model.config.get_text_config()
    widths = fam.widths(model)
    heads = config.num_attention_heads
    head_dim = widths["q"] // heads
    part = "qkv".index(site)
    if not fam.fused_qkv:
        return j
    if fam.model_type == "phi3":
        return [0, widths["q"], widths["q"] + widths["k"]][part] + j
    if fam.model_type == "gpt2":
        return part * widths["q"] + j
    if fam.model_type == "falcon" and config.new_decoder_architecture:
        group = heads // config.num_kv_heads
        slots = group + 2
        head, dim = divmod(j, head_dim)
        slot = (head // group) * slots + head % group if site == "q" else head * slots + group + (site == "v")
        return slot * head_dim + dim
    if fam.model_type == "falcon" and config.multi_query:
        return [0, heads * head_dim, (heads + 1) * head_dim][part] + j
    head, dim = divmod(j, head_dim)  # [heads, 3, head_dim]: BLOOM, GPT-NeoX, classic Falcon
    return (head * 3 + part) * head_dim + dim


@pytest.mark.parametrize("site", ["q", "k", "v"])
@pytest.mark.parametrize("fam", FAMILIES, ids=IDS)
def test_zero_qkv_coordinate_equals_zeroed_weight_row(fam, site):
    model, reference = fam.build(), fam.build()
    batch, _, hand = scoring_batch("left")
    width = site_map(model).width(site)
    coordinates = list(range(width // 2 - 1, min(width, width // 2 + 5)))  # across a head boundary
    rows = [qkv_weight_row(fam, reference, site, j) for j in coordinates]
    zero_output_rows(site_map(reference).locate(site, 1).module, rows)
    with intervene(model, Edit.zero({site: {1: torch.tensor(coordinates)}})):
        edited = logits(model, batch)
    assert_close_on(hand["all"], edited, logits(reference, batch))
    assert (edited - logits(model, batch)).abs().max() > 1e-5


# --------------------------------------------------------------------------------------------
# set / add / run-time statistics against a hand-written module wrapper


class HandEdited(nn.Module):
    """Wraps a module; edits columns ``idx`` of its output (or its input) where ``mask`` is True."""

    def __init__(self, inner: nn.Module, idx: torch.Tensor, fn, mask: torch.Tensor, on_input: bool = False):
        super().__init__()
        self.inner, self.idx, self.fn, self.mask, self.on_input = inner, idx, fn, mask, on_input

    def _edit(self, x):
        shape = x.shape
        x = x.clone().view(*self.mask.shape, shape[-1])  # OPT's MLP runs on (batch * tokens, width)
        cur = x[..., self.idx]
        x[..., self.idx] = torch.where(self.mask[..., None], self.fn(cur, x), cur)
        return x.view(shape)

    def forward(self, x):
        return self.inner(self._edit(x)) if self.on_input else self._edit(self.inner(x))


def swap_module(model: nn.Module, name: str, wrap) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    setattr(parent, attr, wrap(getattr(parent, attr)))


def _module_path(model, site, layer):
    return site_map(model).locate(site, layer).module_name


OPS = {
    "set": (lambda idx: Edit.set({"act": {1: idx}}, 1.75, factor=2.0), lambda cur, _: torch.full_like(cur, 3.5)),
    "add": (lambda idx: Edit.add({"act": {1: idx}}, -0.5, factor=3.0), lambda cur, _: cur - 1.5),
}


@pytest.mark.parametrize("padding", ["left", "right"])
@pytest.mark.parametrize("positions", ["all", "prompt", "continuation"])
@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("fam", FAMILIES, ids=IDS)
def test_set_add_by_position_mode_equal_hand_forward(fam, op, positions, padding):
    model, reference = fam.build(), fam.build()
    batch, boundary, hand = scoring_batch(padding)
    idx = some_neurons(site_map(model).width("act"))
    make_edit, fn = OPS[op]
    swap_module(reference, _module_path(model, "act", 1), lambda m: HandEdited(m, idx, fn, hand[positions]))
    edit = make_edit(idx)
    edit.positions = positions
    with intervene(model, edit), prompt_boundary(model, boundary):
        edited = logits(model, batch)
    assert_close_on(hand["all"], edited, logits(reference, batch))


@pytest.mark.parametrize("fam", [f for f in FAMILIES if f.gated], ids=lambda f: f.name)
def test_set_at_down_in_differs_from_act_and_equals_hand_forward(fam):
    """Setting ``down_in`` replaces act*up; setting ``act`` replaces act only (METHODS section 0)."""
    model, reference = fam.build(), fam.build()
    batch, boundary, hand = scoring_batch("right")
    idx = some_neurons(site_map(model).width("down_in"))
    swap_module(reference, _module_path(model, "down_in", 0),
                lambda m: HandEdited(m, idx, lambda cur, _: torch.full_like(cur, 0.8), hand["prompt"], on_input=True))
    with prompt_boundary(model, boundary):
        with intervene(model, Edit.set({"down_in": {0: idx}}, 0.8, positions="prompt")):
            at_down_in = logits(model, batch)
        with intervene(model, Edit.set({"act": {0: idx}}, 0.8, positions="prompt")):
            at_act = logits(model, batch)
    assert_close_on(hand["all"], at_down_in, logits(reference, batch))
    assert (at_down_in - at_act).abs().max() > 1e-4


@pytest.mark.parametrize("statistic", [
    RuntimeStatistic("max"), RuntimeStatistic("min"), RuntimeStatistic("mean"), RuntimeStatistic("median"),
    RuntimeStatistic("percentile", 90),
], ids=lambda s: s.name + (str(s.q) if s.q else ""))
@pytest.mark.parametrize("fam_name", ["llama", "gpt2"])
def test_runtime_statistic_equals_numpy_over_non_padding(fam_name, statistic):
    fam = family(fam_name)
    model, reference = fam.build(), fam.build()
    batch, _, hand = scoring_batch("left")
    idx = some_neurons(site_map(model).width("act"))
    valid = hand["all"]

    def numpy_stat(cur, layer_values):  # per row: over every neuron and every non-padding token
        rows = []
        for row in range(layer_values.shape[0]):
            values = layer_values[row][valid[row]].detach().numpy().ravel()
            stat = {"max": np.max, "min": np.min, "mean": np.mean, "median": np.median,
                    "percentile": lambda v: np.percentile(v, statistic.q)}[statistic.name](values)
            rows.append(torch.full_like(cur[row], 2.0 * float(stat)))
        return torch.stack(rows)

    swap_module(reference, _module_path(model, "act", 1), lambda m: HandEdited(m, idx, numpy_stat, valid))
    with intervene(model, Edit.set({"act": {1: idx}}, statistic, factor=2.0)):
        edited = logits(model, batch)
    assert_close_on(valid, edited, logits(reference, batch), atol=1e-4)


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("q", [0.0, 37.5, 50.0, 90.0, 100.0])
def test_runtime_quantiles_equal_numpy_with_and_without_padding(q, padded):
    from neurospec.core.hooks import runtime_statistic

    values = torch.randn(3, 4, 7, generator=torch.Generator().manual_seed(int(q)))
    valid = torch.ones(3, 4, dtype=torch.bool)
    if padded:
        valid[0, :2] = False
        valid[2, 0] = False
    got = runtime_statistic(values, valid, RuntimeStatistic("percentile", q))
    expected = [np.percentile(values[row][valid[row]].numpy().ravel(), q) for row in range(3)]
    assert got.tolist() == pytest.approx(expected, abs=1e-6)


# --------------------------------------------------------------------------------------------
# Generation: every batch element, KV cache or not, left or right padding


def _generate(model, batch, **kwargs):
    with torch.no_grad():
        return generate(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=5, min_new_tokens=5,
                        do_sample=False,
                        pad_token_id=PAD, return_dict_in_generate=True, output_scores=True, **kwargs)


def prompt_batch(padding: str):
    batch, _, _ = scoring_batch(padding)
    return batch


@pytest.mark.parametrize("padding", ["left", "right"])
@pytest.mark.parametrize("positions", ["all", "prompt", "continuation"])
@pytest.mark.parametrize("fam", FAMILIES, ids=IDS)
def test_generate_with_cache_equals_without(fam, positions, padding):
    model = fam.build()
    batch = prompt_batch(padding)
    idx = some_neurons(site_map(model).width("act"))
    edit = Edit.set({"act": {0: idx, 1: idx}}, 4.0, positions=positions)
    with intervene(model, edit):
        cached = _generate(model, batch, use_cache=True)
        uncached = _generate(model, batch, use_cache=False)
    plain = _generate(model, batch, use_cache=True)
    last = -1 if fam.cache_bug else None  # transformers' own last cached step is wrong there (see Family.cache_bug)
    assert torch.equal(cached.sequences[:, :last], uncached.sequences[:, :last])
    for a, b in zip(cached.scores[:last], uncached.scores[:last]):
        assert torch.allclose(a, b, atol=1e-4)
    changed = [torch.nan_to_num(a - b).abs().max().item() for a, b in zip(cached.scores, plain.scores)]  # -inf: EOS
    if positions == "continuation":
        assert changed[0] == 0.0 and max(changed[1:]) > 0  # the first new token comes from the prompt alone
    else:
        assert changed[0] > 0


@pytest.mark.parametrize("padding", ["left", "right"])
@pytest.mark.parametrize("positions", ["all", "prompt", "continuation"])
def test_generate_with_static_cache_equals_without(positions, padding):
    """transformers 4.x makes generate's 2-D mask 4-D before the forward call when the cache is static."""
    model = family("llama").build()
    batch = prompt_batch(padding)
    idx = some_neurons(site_map(model).width("act"))
    with intervene(model, Edit.set({"act": {0: idx, 1: idx}}, 4.0, positions=positions)):
        static = _generate(model, batch, use_cache=True, cache_implementation="static")
        uncached = _generate(model, batch, use_cache=False)
    assert torch.equal(static.sequences, uncached.sequences)
    for a, b in zip(static.scores, uncached.scores):
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("fam", FAMILIES, ids=IDS)
def test_positions_of_a_cached_forward_without_attention_mask(fam):
    """Prompt, then two more tokens with the cache the model returned (a legacy tuple from most families
    in transformers 4.x) and no attention mask: the new tokens' columns come from the cache length."""
    model = fam.build()
    ids = torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    seen = []
    with prompt_boundary(model, 6), record(model, "act", layers=[1], positions="continuation",
                                           callback=lambda b: seen.append(b.position_mask.clone())):
        with torch.no_grad():
            past = model(input_ids=ids[:, :5], use_cache=True).past_key_values
            if getattr(past, "max_cache_len", None) == 5:
                pytest.skip(f"transformers {transformers.__version__}: {type(past).__name__} sized to the prompt, "
                            "it cannot take more tokens")
            model(input_ids=ids[:, 5:], past_key_values=past, use_cache=True)
    assert [mask.tolist() for mask in seen] == [[[False] * 5] * 2, [[False, True]] * 2]


@pytest.mark.parametrize("fam_name", ["llama", "gpt_neox", "phi3"])
def test_generate_edits_every_batch_element(fam_name):
    """Batched, left-padded generation equals each prompt generated alone (the reference edited row 0 only)."""
    model = family(fam_name).build()
    batch = prompt_batch("left")
    idx = some_neurons(site_map(model).width("act"))
    with intervene(model, Edit.set({"act": {0: idx}}, 4.0, positions="all")):
        together = _generate(model, batch)
        for row in range(batch["input_ids"].shape[0]):
            keep = batch["attention_mask"][row].bool()
            alone = _generate(model, {k: v[row:row + 1, keep] for k, v in batch.items()})
            new_tokens = together.sequences[row, batch["input_ids"].shape[1]:]
            assert torch.equal(new_tokens, alone.sequences[0, int(keep.sum()):])
            assert torch.allclose(together.scores[0][row], alone.scores[0][0], atol=1e-4)


# --------------------------------------------------------------------------------------------
# Recording and gradients


@pytest.mark.parametrize("fam", FAMILIES, ids=IDS)
def test_record_streams_site_values_with_masks(fam):
    model = fam.build()
    batch, boundary, hand = scoring_batch("left")
    seen = []
    expected = {}

    def grab(name):
        def hook(module, args, output):
            expected[name] = output.detach().clone().view(*hand["all"].shape, -1)
        return hook

    sites = site_map(model)
    handle = sites.locate("gate_pre", 1).module.register_forward_hook(grab("gate_pre"))
    act_handle = sites.locate("act", 1).module.register_forward_hook(grab("act"))
    try:
        with prompt_boundary(model, boundary), record(model, ["act", "gate_pre"], callback=seen.append,
                                                      positions="continuation") as rec:
            logits(model, batch)
    finally:
        handle.remove()
        act_handle.remove()
    assert [(b.site, b.layer) for b in seen] == [("gate_pre", 0), ("act", 0), ("gate_pre", 1), ("act", 1)]
    by_key = {(b.site, b.layer): b for b in seen}
    width = sites.width("gate_pre")
    # gate_pre is the first ``width`` columns of the hooked output (Phi-3 fuses [gate; up])
    assert torch.equal(by_key[("gate_pre", 1)].values, expected["gate_pre"][..., :width])
    assert torch.equal(by_key[("act", 1)].values, expected["act"])
    assert torch.equal(by_key[("act", 1)].attention_mask, hand["all"])
    assert torch.equal(by_key[("act", 1)].position_mask, hand["continuation"])
    assert rec.values == {}  # nothing kept unless asked


@pytest.mark.parametrize("fam", FAMILIES, ids=IDS)
def test_captured_gradients_equal_autograd(fam):
    model = fam.build()
    batch, _, hand = scoring_batch("right")
    sites = site_map(model)
    retained = {}

    def retain(name):
        def hook(module, args, output):
            retained[name] = output  # (batch, tokens, width), or (batch * tokens, width) in OPT's MLP
        return hook

    handles = [sites.locate(s, 1).module.register_forward_hook(retain(s)) for s in ("act", "q")]
    try:
        with capture_gradients(model, ["act", "q"]) as captured:
            out = model(**batch).logits
            objective = out[torch.arange(3), -1].log_softmax(-1)[:, 7].sum()
            truth = torch.autograd.grad(objective, [retained["act"], retained["q"]], retain_graph=True)
            objective.backward()
    finally:
        for h in handles:
            h.remove()
    q_columns = sites.locate("q", 1).columns
    truth = [t.view(*hand["all"].shape, -1) for t in truth]
    assert torch.allclose(captured.grads[("act", 1)][0], truth[0], atol=1e-6)
    assert torch.allclose(captured.grads[("q", 1)][0], truth[1][..., q_columns], atol=1e-6)
    assert torch.equal(captured.values[("q", 1)][0], retained["q"].detach()[..., q_columns])
    assert captured.grads[("act", 1)][0].abs().sum() > 0


def test_gradients_with_frozen_parameters_match_trainable():
    fam = family("llama")
    batch, _, _ = scoring_batch("left")
    results = []
    for frozen in (False, True):
        model = fam.build()
        model.requires_grad_(not frozen)
        with capture_gradients(model, ["gate_pre", "k"]) as captured:
            model(**batch).logits[:, -1, 5].sum().backward()
        results.append(captured)
    for key in results[0].grads:
        assert torch.allclose(results[0].grads[key][0], results[1].grads[key][0], atol=1e-6)
    assert all(p.grad is None for p in model.parameters())  # nothing accumulated on frozen weights


def test_gradient_capture_under_intervention_sees_edited_value():
    model = family("llama").build()
    batch, _, hand = scoring_batch("left")
    idx = torch.tensor([2, 9])
    with intervene(model, Edit.zero({"act": {0: idx}})), capture_gradients(model, "act", layers=[0]) as captured:
        model(**batch).logits.sum().backward()
    with capture_gradients(model, "act", layers=[0]) as clean:
        model(**batch).logits.sum().backward()
    edited, unedited = captured.values[("act", 0)][0][..., idx], clean.values[("act", 0)][0][..., idx]
    assert edited[hand["all"]].abs().max() == 0
    # padding is never edited: there the value is the model's own (zero only where padding attends nothing)
    assert torch.equal(edited[~hand["all"]], unedited[~hand["all"]])


# --------------------------------------------------------------------------------------------
# Composition, clean-up, errors


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_nested_interventions_compose_outer_first():
    model = family("llama").build()
    batch, _, _ = scoring_batch("left")
    idx = {"act": {0: torch.tensor([4, 8])}}
    results = {}
    for order in ("scale_then_add", "add_then_scale"):
        first, second = (Edit.scale(idx, 2.0), Edit.add(idx, 1.0))
        if order == "add_then_scale":
            first, second = second, first
        with intervene(model, first), intervene(model, second), record(model, "act", layers=[0], keep=True) as rec:
            logits(model, batch)
        results[order] = rec.values[("act", 0)][0][..., [4, 8]]
    with record(model, "act", layers=[0], keep=True) as rec:
        logits(model, batch)
    plain = rec.values[("act", 0)][0][..., [4, 8]]
    valid = batch["attention_mask"].bool()
    real = lambda x: x[valid]  # padding is never edited: compare real tokens  # noqa: E731
    assert torch.allclose(real(results["scale_then_add"]), real(2 * plain + 1), atol=1e-6)
    assert torch.allclose(real(results["add_then_scale"]), real(2 * (plain + 1)), atol=1e-6)
    # one Edit list applies in the order given, like nesting
    with intervene(model, [Edit.scale(idx, 2.0), Edit.add(idx, 1.0)]), record(model, "act", layers=[0], keep=True) as rec:
        logits(model, batch)
    assert torch.allclose(real(rec.values[("act", 0)][0][..., [4, 8]]), real(2 * plain + 1), atol=1e-6)


def test_hooks_are_removed_on_exit_and_after_an_exception():
    model = family("phi3").build()
    before = _hook_count(model)
    batch, _, _ = scoring_batch("left")
    with intervene(model, Edit.zero({"q": {0: torch.tensor([1])}})), record(model, ["act", "q"], callback=lambda b: None):
        logits(model, batch)
        assert _hook_count(model) > before
    assert _hook_count(model) == before
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(model, Edit.scale({"act": {1: torch.tensor([1])}}, 2.0)):
            raise RuntimeError("boom")
    assert _hook_count(model) == before
    clean = logits(model, batch)
    assert torch.equal(clean, logits(family("phi3").build(), batch))


def test_position_modes_need_a_boundary():
    model = family("llama").build()
    batch, _, _ = scoring_batch("left")
    with intervene(model, Edit.zero({"act": {0: torch.tensor([1])}}, positions="prompt")):
        with pytest.raises(NeurospecError, match="prompt_boundary"):
            logits(model, batch)


def test_bad_edits_are_clear_errors():
    model = family("gpt2").build()
    width = site_map(model).width("act")
    with pytest.raises(NeurospecError, match="empty selection"):
        Edit.zero({"act": {0: torch.tensor([], dtype=torch.long)}})
    with pytest.raises(ShapeMismatchError, match=f"out of range.*{width} neurons"):
        with intervene(model, Edit.zero({"act": {0: torch.tensor([width])}})):
            pass
    with pytest.raises(NeurospecError, match="layer 7 does not exist: the model has 2 layers"):
        with intervene(model, Edit.zero({"act": {7: torch.tensor([0])}})):
            pass
    with pytest.raises(NeurospecError, match="up_pre.*does not exist in gpt2"):
        with intervene(model, Edit.zero({"up_pre": {0: torch.tensor([0])}})):
            pass
    with pytest.raises(ShapeMismatchError, match="index -1 in layer 0 is out of range"):
        with intervene(model, Edit.zero({"act": {0: torch.tensor([-1, 3])}})):
            pass
    with pytest.raises(ShapeMismatchError, match=r"\(layers, width\)"):
        with intervene(model, Edit.set({"act": {0: torch.tensor([0])}}, torch.zeros(2, width + 1))):
            pass
    with pytest.raises(ShapeMismatchError, match=r"missing layer\(s\) \[1\]"):
        with intervene(model, Edit.set({"act": {1: torch.tensor([0])}}, {0: torch.zeros(width)})):
            pass
    with pytest.raises(NeurospecError, match="fit one site"):
        with intervene(model, Edit.set({"act": {0: torch.tensor([0])}, "q": {0: torch.tensor([0])}},
                                       torch.zeros(2, width))):
            pass
    with pytest.raises(NeurospecError, match="unknown positions 'prompts'"):
        with record(model, "act", keep=True, positions="prompts"):
            pass
    assert _hook_count(model) == 0


def test_per_neuron_values_pick_each_neurons_value():
    fam = family("llama")
    model, reference = fam.build(), fam.build()
    batch, _, hand = scoring_batch("right")
    width = site_map(model).width("act")
    table = torch.randn(2, width)
    idx = some_neurons(width)
    swap_module(reference, _module_path(model, "act", 1),
                lambda m: HandEdited(m, idx, lambda cur, _: table[1, idx].expand_as(cur).clone(), hand["all"]))
    with intervene(model, Edit.set({"act": {1: idx}}, table)):
        edited = logits(model, batch)
    assert_close_on(hand["all"], edited, logits(reference, batch))


def test_accelerate_dispatched_model_gives_the_same_edits():
    """Models spread with accelerate (device_map) carry accelerate's own hooks; ours must compose with them."""
    from accelerate import cpu_offload

    fam = family("llama")
    plain, offloaded = fam.build(), cpu_offload(fam.build(), execution_device="cpu")
    batch, _, hand = scoring_batch("left")
    idx = {"act": {0: torch.tensor([1, 3])}, "q": {1: torch.tensor([5])}}
    results = []
    for model in (plain, offloaded):
        with intervene(model, Edit.scale({"act": idx["act"]}, 0.5), Edit.zero({"q": idx["q"]})):
            results.append(logits(model, batch))
        with capture_gradients(model, "gate_pre", layers=[1]) as captured:
            model(**batch).logits[:, -1, 3].sum().backward()
        results.append(captured.grads[("gate_pre", 1)][0])
    assert_close_on(hand["all"], results[0], results[2])
    assert torch.allclose(results[1], results[3], atol=1e-6)
