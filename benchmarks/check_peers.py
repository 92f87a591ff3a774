"""Check that the peers in ``benchmarks/peers.py`` gather the same site-``act`` statistic as a plain hook.

    HF_HUB_OFFLINE=1 python benchmarks/check_peers.py       # from the repository root; exits 1 on a mismatch

Builds a tiny random Llama (hidden 64, 2 layers, intermediate 96, vocab 300) and the offline tokenizer
of ``tests/tiny_tokenizer.py``, saves both to a temporary folder, makes 3 right-padded batches, and
compares TransformerLens's and nnsight's counts with a reference: a torch forward hook on every
layer's ``mlp.act_fn`` that keeps all values and reduces them at the end (a different code path
from the peers' streaming tally). ``active`` must be equal; ``sum``, ``sum_sq`` and ``max`` must agree
to 1e-4 relative to the largest reference value of the statistic.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
import peers
from tiny_tokenizer import CORPUS, tiny_tokenizer

RTOL = 1e-4


def tiny_llama(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, num_hidden_layers=2, intermediate_size=96, vocab_size=300,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval()


def make_batches(tokenizer, vocab: int) -> list[dict]:
    """3 batches of 4 distinct sentences, right-padded; ids folded into the model's vocabulary of 300
    (the tokenizer has 420 entries; special ids are < 300 and stay as they are)."""
    texts = list(dict.fromkeys(CORPUS))[:12]
    batches = []
    for start in range(0, 12, 4):
        enc = tokenizer(texts[start:start + 4], return_tensors="pt", padding=True)
        batches.append({"input_ids": enc["input_ids"] % vocab, "attention_mask": enc["attention_mask"]})
    return batches


def reference(model, batches: list[dict]) -> dict:
    """All act_fn outputs kept by forward hooks, reduced over non-padding tokens at the end."""
    layers = model.model.layers
    kept: list[list[torch.Tensor]] = [[] for _ in layers]
    handles = [layer.mlp.act_fn.register_forward_hook(
        lambda module, args, output, i=i: kept[i].append(output.detach())) for i, layer in enumerate(layers)]
    masks = []
    try:
        with torch.no_grad():
            for batch in batches:
                model(**batch, use_cache=False)
                masks.append(batch["attention_mask"].bool())
    finally:
        for handle in handles:
            handle.remove()
    rows = [torch.cat([values[mask] for values, mask in zip(per_layer, masks)]) for per_layer in kept]
    values = torch.stack(rows).double()  # (L, tokens, W)
    return {"active": (values > 0).sum(1), "sum": values.sum(1), "sum_sq": (values * values).sum(1),
            "max": values.amax(1).float(), "tokens": int(sum(mask.sum() for mask in masks))}


def compare(name: str, got: dict, ref: dict) -> bool:
    ok = got["tokens"] == ref["tokens"] and torch.equal(got["active"], ref["active"])
    line = [f"{name:16s} tokens {got['tokens']} active equal {torch.equal(got['active'], ref['active'])}"]
    for stat in ("sum", "sum_sq", "max"):
        error = float((got[stat].double() - ref[stat].double()).abs().max() / ref[stat].double().abs().max())
        ok &= error <= RTOL
        line.append(f"{stat} rel.err {error:.1e}")
    print(", ".join(line) + f", {got['seconds'] * 1000:.1f} ms  -> {'OK' if ok else 'MISMATCH'}")
    return ok


def main() -> int:
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    batches = make_batches(tokenizer, model.config.vocab_size)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        ref = reference(model, batches)
        print(f"reference: {ref['tokens']} tokens, {float(ref['active'].sum()) / ref['active'].numel() / ref['tokens']:.2f} "
              f"of values > 0")
        results = {"transformer_lens": peers.transformerlens_counts(folder, batches, device="cpu"),
                   "nnsight": peers.nnsight_counts(AutoModelForCausalLM.from_pretrained(folder).eval(), batches,
                                                   tokenizer=tokenizer)}
    verdicts = [compare(name, got, ref) for name, got in results.items()]  # print every peer
    ok = all(verdicts)
    for head in (True, False):
        seconds = peers.bare_forward_seconds(model, batches, head=head)
        print(f"bare forward ({'with head' if head else 'decoder only'}): {seconds * 1000:.1f} ms")
    print("ALL AGREE" if ok else "DISAGREEMENT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
