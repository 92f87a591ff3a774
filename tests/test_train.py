"""neurospec.train: fine-tuning only chosen modules, on tiny random models of every family."""

from __future__ import annotations

import json
import math

import pytest
import torch
from families import FAMILIES, family
from tiny_tokenizer import tiny_tokenizer
from torch import nn

from neurospec.core.sites import MLP_SITES, find_decoder_layers, site_map
from neurospec.data.items import MCItem
from neurospec.data.prompts import PromptFormat
from neurospec.evaluate.scoring import lettered_prompt
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.train import (
    FinetuneResult,
    attention_module_names,
    finetune,
    layers_by_neuron_count,
    mlp_module_names,
    save_finetuned,
    trainable_parameters,
)
from neurospec.util.errors import NeurospecError

TOK = tiny_tokenizer()
CHAT = PromptFormat.chat(prefill='{"answer_choice":"')

QUESTIONS = [
    "The cat sat on the mat because it was warm?",
    "Which city is the capital of France?",
    "The man broke his toe?",
    "She went to the market?",
    "Le chat dort sur le tapis?",
    "Die Katze schläft auf der Matte?",
    "The trophy does not fit into the suitcase?",
    "Paris is the capital of France?",
]


def items(n: int = 8, options: int = 3) -> list[MCItem]:
    return [MCItem(QUESTIONS[i % len(QUESTIONS)] + " " * (i // len(QUESTIONS)),
                   tuple(["yes", "no", "maybe", "never"][:options]), gold=(i * 7) % options, id=f"q{i}")
            for i in range(n)]


def build(name: str, seed: int = 0, **overrides) -> nn.Module:
    return family(name).build(seed, vocab_size=len(TOK), pad_token_id=TOK.pad_token_id, bos_token_id=TOK.bos_token_id,
                              eos_token_id=TOK.eos_token_id, **overrides)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def independent_loss(model: nn.Module, item: MCItem, fmt: PromptFormat | None = None) -> float:
    """CE of the gold letter at the last prompt token: tokenizer + plain forward of one unpadded item."""
    text = lettered_prompt(item)
    if fmt is None:
        ids = TOK(text)["input_ids"]
        tail, letter = text, " " + "ABCD"[item.gold]
    else:
        rendered = TOK.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                           add_generation_prompt=True, enable_thinking=False) + fmt.prefill
        ids = TOK(rendered, add_special_tokens=False)["input_ids"]
        tail, letter = rendered, "ABCD"[item.gold]
    with_letter = TOK(tail + letter, add_special_tokens=False)["input_ids"]
    without = TOK(tail, add_special_tokens=False)["input_ids"]
    assert with_letter[:-1] == without  # the letter is one appended token
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    return float(-logits.log_softmax(-1)[with_letter[-1]])


# --------------------------------------------------------------------------------------------
# Only the named parameters change


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_only_named_parameters_change(fam):
    model = build(fam.name)
    names = mlp_module_names(model, [1])
    before = snapshot(model)
    fmt = CHAT if fam.name == "llama" else PromptFormat()
    result = finetune(model, TOK, items(6), names, fmt=fmt, lr=1e-3, batch_size=4, progress=False)
    trained = set(result.parameter_names)
    assert trained and result.steps == 2 and result.items_used == 6
    assert result.num_parameters == sum(p.numel() for n, p in model.named_parameters() if n in trained)
    for name, param in model.named_parameters():
        if name in trained:
            assert not torch.equal(param, before[name]), f"{name} was named but did not change"
        else:
            assert torch.equal(param, before[name]), f"{name} changed but was not named"
    assert all(".1." in n for n in trained)
    assert all(p.requires_grad for p in model.parameters())  # restored (models are built trainable)
    assert not model.training


def test_attention_only_on_gpt2_fused_qkv():
    model = build("gpt2")
    before = snapshot(model)
    result = finetune(model, TOK, items(4), attention_module_names(model, [0]), lr=1e-3, progress=False)
    assert set(result.parameter_names) == {n for n, _ in model.named_parameters() if n.startswith("transformer.h.0.attn.")}
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(result.parameter_names)


# --------------------------------------------------------------------------------------------
# Module names per family


def _block_oracle(fam, model, layer: int) -> tuple[list[str], list[str]]:
    layers_path, _ = find_decoder_layers(model)
    prefix = f"{layers_path}.{layer}."
    mlp = [prefix + "fc1", prefix + "fc2"] if fam.model_type == "opt" else [prefix + "mlp"]
    return mlp, [prefix + fam.o_proj.split(".")[0]]


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_module_names_per_family(fam):
    model = build(fam.name)
    modules = dict(model.named_modules())
    mlp, attention = mlp_module_names(model, [1, 0]), attention_module_names(model, [1, 0])
    expected_mlp, expected_attention = [], []
    for layer in (1, 0):
        m, a = _block_oracle(fam, model, layer)
        expected_mlp += m
        expected_attention += a
    assert mlp == expected_mlp
    assert attention == expected_attention
    assert all(name in modules for name in mlp + attention)
    # every parameter of every MLP site module (fused ones included) lies under the MLP names
    params = trainable_parameters(model, mlp)
    held = {id(p) for p in params.values()}
    sites = site_map(model)
    for site in MLP_SITES:
        if site in sites.specs:
            for layer in (0, 1):
                assert all(id(p) in held for p in sites.locate(site, layer).module.parameters())
    assert not any(id(p) in held for p in trainable_parameters(model, attention).values())


def test_module_names_errors():
    model = build("llama")
    with pytest.raises(NeurospecError, match="layer 5 does not exist"):
        mlp_module_names(model, [5])
    with pytest.raises(NeurospecError, match="no layers"):
        mlp_module_names(model, [])
    assert mlp_module_names(model, 1) == ["model.layers.1.mlp"]
    assert mlp_module_names(model, [1, 1, 0]) == ["model.layers.1.mlp", "model.layers.0.mlp"]


# --------------------------------------------------------------------------------------------
# trainable_parameters: patterns, errors, tied weights


def test_patterns_and_names():
    model = build("llama")
    both = trainable_parameters(model, ["model.layers.*.mlp"])
    one_by_one = {**trainable_parameters(model, ["model.layers.0.mlp"]), **trainable_parameters(model, ["model.layers.1.mlp"])}
    assert list(both) == list(one_by_one) and len(both) == 6
    q = trainable_parameters(model, ["model.layers.[01].self_attn.q_proj"])
    assert list(q) == ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.weight"]
    nested = trainable_parameters(model, ["model.layers.0.mlp", "model.layers.0.mlp.up_proj"])
    assert len(nested) == 3


def test_unknown_module_error_lists_real_names():
    model = build("llama")
    with pytest.raises(NeurospecError, match=r"'model\.layers\.9\.mlp' matches no module.*'model\.layers\.\d\.mlp'"):
        trainable_parameters(model, ["model.layers.9.mlp"])
    with pytest.raises(NeurospecError, match="matches no module"):
        trainable_parameters(model, ["transformer.h.*.mlp"])
    with pytest.raises(NeurospecError, match="holds no parameters"):
        trainable_parameters(model, ["model.layers.0.mlp.act_fn"])
    with pytest.raises(NeurospecError, match="no modules"):
        trainable_parameters(model, [])


def test_tied_embeddings_are_refused():
    model = build("gpt2")  # GPT-2 ties lm_head to transformer.wte
    assert model.lm_head.weight is model.transformer.wte.weight
    with pytest.raises(NeurospecError, match=r"shared with 'transformer\.wte\.weight'.*tied"):
        trainable_parameters(model, ["lm_head"])
    with pytest.raises(NeurospecError, match="lm_head.weight"):
        trainable_parameters(model, ["transformer.wte"])
    both = trainable_parameters(model, ["lm_head", "transformer.wte"])
    assert len(both) == 1
    llama = build("llama", tie_word_embeddings=True)
    assert llama.lm_head.weight is llama.model.embed_tokens.weight
    with pytest.raises(NeurospecError, match="tied"):
        finetune(llama, TOK, items(2), ["model.embed_tokens"], progress=False)
    trainable_parameters(llama, ["model.layers.*.mlp"])  # MLPs share nothing


# --------------------------------------------------------------------------------------------
# The loss


@pytest.mark.parametrize("name, fmt", [("llama", None), ("llama", CHAT), ("gpt2", None)])
def test_first_step_loss_is_gold_letter_cross_entropy(name, fmt):
    model = build(name)
    chosen = items(5)
    expected = [independent_loss(model, item, fmt) for item in chosen]
    one = finetune(build(name), TOK, chosen[:1], mlp_module_names(model, [0]), fmt=fmt or PromptFormat(),
                   batch_size=1, progress=False)
    assert one.losses[0] == pytest.approx(expected[0], abs=1e-5)
    # a left-padded batch of prompts of different lengths: the mean of the items' losses
    assert len({len(TOK(lettered_prompt(i))["input_ids"]) for i in chosen}) > 1
    batch = finetune(model, TOK, chosen, mlp_module_names(model, [0]), fmt=fmt or PromptFormat(),
                     batch_size=len(chosen), progress=False)
    assert batch.losses[0] == pytest.approx(sum(expected) / len(expected), abs=1e-5)


def test_training_lowers_the_loss():
    model = build("llama")
    task = items(8, options=2)
    before = sum(independent_loss(model, item) for item in task) / len(task)
    result = finetune(model, TOK, task, mlp_module_names(model, [0, 1]), lr=1e-2, epochs=8, batch_size=4,
                      progress=False)
    after = sum(independent_loss(model, item) for item in task) / len(task)
    assert result.steps == 16 and len(result.losses) == 16
    # a frozen final norm and lm_head bound the letters' logits (loss >= ~4.7 here): 6.04 -> 5.2
    assert after < before - 0.5, (before, after)
    assert sum(result.losses[-4:]) < sum(result.losses[:4])


def test_deterministic_for_a_seed_and_max_items():
    runs = []
    for seed in (3, 3, 4):
        model = build("llama")
        result = finetune(model, TOK, items(12), ["model.layers.1.mlp"], lr=1e-3, batch_size=3, max_items=9,
                          seed=seed, progress=False)
        runs.append((result, snapshot(model)))
    (a, pa), (b, pb), (c, _) = runs
    assert a.losses == b.losses and all(torch.equal(pa[n], pb[n]) for n in pa)
    assert a.losses != c.losses
    assert a.items_used == 9 and a.steps == 3
    text = json.dumps(a.to_json())
    assert json.loads(text)["settings"]["lr"] == 1e-3 and a.settings["max_items"] == 9


# --------------------------------------------------------------------------------------------
# Restoring state, errors


def test_flags_and_modes_restored_even_on_error():
    model = build("llama")
    model.model.embed_tokens.weight.requires_grad_(False)
    model.model.layers[0].train()  # a mixed-mode model
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    finetune(model, TOK, items(4), ["model.layers.1.mlp"], progress=False)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert all(p.grad is None for p in model.parameters())

    def boom(module, args, output):
        raise RuntimeError("boom")

    handle = model.model.layers[1].register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        finetune(model, TOK, items(4), ["model.layers.1.mlp"], progress=False)
    handle.remove()
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.training for n, m in model.named_modules()} == modes


def test_input_errors():
    model = build("llama")
    mlp = ["model.layers.1.mlp"]
    with pytest.raises(NeurospecError, match="no items"):
        finetune(model, TOK, [], mlp, progress=False)
    with pytest.raises(NeurospecError, match="lr=0"):
        finetune(model, TOK, items(2), mlp, lr=0, progress=False)
    with pytest.raises(NeurospecError, match="epochs"):
        finetune(model, TOK, items(2), mlp, epochs=0, progress=False)
    with pytest.raises(NeurospecError, match="batch_size"):
        finetune(model, TOK, items(2), mlp, batch_size=0, progress=False)
    bad = items(3)
    object.__setattr__(bad[1], "gold", 5)  # an item changed after its checks
    with pytest.raises(NeurospecError, match=r"item 1 \('q1'\): gold index 5 is outside its 3 options"):
        finetune(model, TOK, bad, mlp, progress=False)
    with pytest.raises(NeurospecError, match="4 options but only 2 letters"):
        finetune(model, TOK, items(2, options=4), mlp, letters="AB", progress=False)
    with pytest.raises(NeurospecError, match="matches no module"):
        finetune(model, TOK, items(2), ["model.layers.1.ffn"], progress=False)


# --------------------------------------------------------------------------------------------
# Choosing layers by neuron counts


def neuron_set() -> NeuronSet:
    # per layer, all sites: [2, 0, 3, 0, 3, 0]; act only: [2, 0, 3, 0, 1, 0]
    return NeuronSet({"g": {"act": {0: [1, 2], 2: [1, 2, 3], 4: [5]}, "q": {4: [1, 2]}},
                      "h": {"act": {1: [0]}}}, num_layers=6)


def test_layers_richest_poorest_and_ties():
    ns = neuron_set()
    assert layers_by_neuron_count(ns, "g", 1) == [2]  # 2 and 4 tie at 3: the lower index wins
    assert layers_by_neuron_count(ns, "g", 2) == [2, 4]
    assert layers_by_neuron_count(ns, "g", 3) == [0, 2, 4]
    assert layers_by_neuron_count(ns, "g", 2, site="act") == [0, 2]
    assert layers_by_neuron_count(ns, "g", 2, order="poorest") == [1, 3]
    assert layers_by_neuron_count(ns, "g", 4, order="poorest") == [0, 1, 3, 5]
    assert layers_by_neuron_count(ns, "g", 6) == list(range(6))


def test_layers_none():
    ns = neuron_set()
    draws = {tuple(layers_by_neuron_count(ns, "g", 2, order="none", seed=s)) for s in range(20)}
    assert all(set(d) <= {1, 3, 5} and len(d) == 2 and list(d) == sorted(d) for d in draws)
    assert len(draws) > 1  # the seed matters
    assert layers_by_neuron_count(ns, "g", 2, order="none", seed=7) == layers_by_neuron_count(
        ns, "g", 2, order="none", seed=7)
    assert layers_by_neuron_count(ns, "g", 3, order="none") == [1, 3, 5]
    assert set(layers_by_neuron_count(ns, "g", 3, order="none", site="act")) <= {1, 3, 5}
    with pytest.raises(NeurospecError, match="only 3 of 6 layers hold no neuron of group 'g'.*k=4"):
        layers_by_neuron_count(ns, "g", 4, order="none")


def test_layers_errors():
    ns = neuron_set()
    for k in (0, 7, -1, 1.5, True):
        with pytest.raises(NeurospecError, match="k must be an integer from 1 to 6"):
            layers_by_neuron_count(ns, "g", k)
    with pytest.raises(NeurospecError, match="unknown order"):
        layers_by_neuron_count(ns, "g", 2, order="most")
    with pytest.raises(NeurospecError, match="unknown group 'zz'"):
        layers_by_neuron_count(ns, "zz", 2)
    with pytest.raises(NeurospecError, match="unknown site"):
        layers_by_neuron_count(ns, "g", 2, site="mlp")


# --------------------------------------------------------------------------------------------
# Saving


def test_save_finetuned_round_trip_and_no_partial_folder(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    model = build("llama")
    result = finetune(model, TOK, items(4), mlp_module_names(model, [1]), lr=1e-3, progress=False)
    out = save_finetuned(model, TOK, tmp_path / "ft", result=result)
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert json.loads((out / "finetune.json").read_text())["parameter_names"] == result.parameter_names
    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert all(torch.equal(p, dict(loaded.named_parameters())[n]) for n, p in model.named_parameters())

    with pytest.raises(NeurospecError, match="not empty"):
        save_finetuned(model, TOK, out)

    tok = tiny_tokenizer()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tok, "save_pretrained", fail)
    with pytest.raises(OSError, match="disk full"):
        save_finetuned(model, tok, tmp_path / "broken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ft"]
    with pytest.raises(OSError, match="disk full"):
        save_finetuned(model, tok, out, overwrite=True)
    assert (out / "finetune.json").exists()  # the old folder is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ft"]
    save_finetuned(model, TOK, out, overwrite=True)
    assert not (out / "finetune.json").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ft"]


def test_result_type():
    result = FinetuneResult(["m"], ["m.weight"], 4, 1, 2, [math.log(2)], {"lr": 1e-3})
    assert result.to_json()["losses"] == [math.log(2)]
