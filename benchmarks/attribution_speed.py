"""Attribution cost against a plain forward + backward with frozen parameters, and against a per-neuron Python loop.

    python benchmarks/attribution_speed.py             # 10M and 50M Llama-style models, CPU, fp32
    python benchmarks/attribution_speed.py --quick     # one model, fewer repeats (a smoke run)
    python benchmarks/attribution_speed.py --gpu-8b    # on a GPU: a random Llama-3-8B-shaped model in bf16

The same batches (BLEnD find items of 8 countries with BLEnD's prompt, left-padded, 8 per batch) for:

- ``bare``: frozen parameters, the embedding output made to require grad, one forward (logits at
  the answer position only), the gold letters' summed probability, one backward. No hook.
- ``attribute``: :func:`neurospec.measure.attribution.attribute` on the same batches, sites gate_pre,
  up_pre, q, k, v of every layer (the paper's), scores summed per country. Goal: at most 1.15 x bare.
- ``python_loop``: the same forward/backward with the values and gradients kept, then aggregated
  the straightforward way the reference does (``.tolist()`` and a dict update per example and
  neuron). Its aggregation time is compared with attribute's (its aggregation calls timed alone), and
  its rate (updates per second) extrapolated to a Llama-3-8B shape and 20k examples.

Variants alternate within each repeat; ``paired_ratios`` are the median and quartiles of the
per-repeat time ratios. Results go to ``benchmarks/results/attribution_speed.json`` (``_gpu.json``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from collect_speed import _sync, build  # noqa: E402
from generate_speed import paired  # noqa: E402

from neurospec.core.hooks import capture_gradients  # noqa: E402
from neurospec.data.blend import BLEND_TEMPLATES, build_blend_items  # noqa: E402
from neurospec.data.prompts import EncodedPrompt, collate, ensure_pad_token  # noqa: E402
from neurospec.measure.attribution import DEFAULT_SITES, attribute, prepare_examples  # noqa: E402
from neurospec.util.io import atomic_write_json  # noqa: E402

COUNTRIES = ("China", "Indonesia", "Iran", "Mexico", "South_Korea", "Spain", "UK", "US")


def batches_of(examples, batch_size: int, pad_id: int, device):
    out = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        encoded = [EncodedPrompt(list(e.input_ids), ["text"] * len(e.input_ids)) for e in chunk]
        batch = collate(encoded, pad_id, "left").to(device)
        out.append((chunk, batch))
    return out


def objective(model, batch, chunk):
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False,
                   logits_to_keep=1).logits[:, -1].float()
    gold = torch.tensor([e.targets[0] for e in chunk], device=logits.device)
    return logits.softmax(-1).gather(-1, gold[:, None]).sum()


def bare(model, batches) -> None:
    embed = model.get_input_embeddings()
    handle = embed.register_forward_hook(lambda m, a, out: out.requires_grad_(True))
    try:
        with torch.enable_grad():
            for chunk, batch in batches:
                objective(model, batch, chunk).backward()
    finally:
        handle.remove()


def python_loop(model, batch, chunk, sites) -> float:
    """The reference's aggregation: every example's max-product of every neuron into nested dicts.

    Returns the seconds of the aggregation alone (after the forward and backward pass).
    """
    totals: dict = defaultdict(lambda: defaultdict(float))
    with torch.enable_grad(), capture_gradients(model, sites, keep=True) as kept:
        objective(model, batch, chunk).backward()
    start = time.perf_counter()
    mask = batch.attention_mask.bool()
    for (site, layer), values in kept.values.items():
        products = (values[0] * kept.grads[(site, layer)][0]).masked_fill(~mask[..., None], 0.0)
        best = products.max(dim=1).values.tolist()
        for i, example in enumerate(chunk):
            row = best[i]
            for n in range(len(row)):
                totals[(site, layer, n)][example.group] += row[n]
    return time.perf_counter() - start


def aggregation_seconds(fn, device) -> float:
    """Seconds spent inside attribute's per-(site, layer) aggregation while ``fn`` runs (timed per call)."""
    import neurospec.measure.attribution as engine

    original, spent = engine._Accumulator.__call__, [0.0]

    def timed_call(self, batch):
        _sync(device)
        start = time.perf_counter()
        original(self, batch)
        _sync(device)
        spent[0] += time.perf_counter() - start

    engine._Accumulator.__call__ = timed_call
    try:
        fn()
    finally:
        engine._Accumulator.__call__ = original
    return spent[0]


def timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def speed(shape, tok, items, batch_size: int, repeats: int, device, dtype) -> dict:
    model = build(shape, tok, dtype=dtype, device=device)
    for p in model.parameters():
        p.requires_grad_(False)
    pad_id = ensure_pad_token(tok)
    examples = prepare_examples(tok, items, templates=[BLEND_TEMPLATES["blend"]])
    examples.sort(key=lambda e: -len(e.input_ids))  # attribute() batches by length too: the same batches
    batches = batches_of(examples, batch_size, pad_id, device)
    plans = {
        "bare": lambda: bare(model, batches),
        "attribute": lambda: attribute(model, tok, examples, sites=DEFAULT_SITES, batch_size=batch_size, quiet=True),
    }
    for fn in plans.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in plans}
    for _ in range(repeats):
        for name, fn in plans.items():
            times[name].append(timed(fn, device))
    # the reference's aggregation on every batch, after its own forward + backward (timed apart)
    loop_aggregation = sum(python_loop(model, batch, chunk, DEFAULT_SITES) for chunk, batch in batches)
    bare_median, ours_median = statistics.median(times["bare"]), statistics.median(times["attribute"])
    ours_aggregation = aggregation_seconds(lambda: attribute(model, tok, examples, sites=DEFAULT_SITES,
                                                             batch_size=batch_size, quiet=True), device)
    neurons = sum(_width(model, site) for site in DEFAULT_SITES) * model.config.num_hidden_layers
    updates = len(examples) * neurons
    tokens = sum(len(e.input_ids) for e in examples)
    return {
        "model": shape if isinstance(shape, str) else "llama-3-8b-shaped",
        "parameters": sum(p.numel() for p in model.parameters()), "device": str(device), "dtype": str(dtype),
        "examples": len(examples), "batch_size": batch_size, "tokens": tokens,
        "padded_tokens": sum(int(b.input_ids.numel()) for _, b in batches), "sites": list(DEFAULT_SITES),
        "scored_neurons": neurons, "repeats": repeats,
        "seconds": {k: [round(v, 4) for v in vals] for k, vals in times.items()},
        # paired(a, b) is the median of a / b per repeat: here time(attribute) / time(bare), the cost multiple
        "ratio_attribute_over_bare": paired(times["attribute"], times["bare"]),
        "aggregation_seconds": {"attribute": round(ours_aggregation, 4),
                                "python_loop": round(loop_aggregation, 3)},
        "python_loop_over_attribute_aggregation": round(loop_aggregation / ours_aggregation, 1),
        "python_loop_step_over_attribute": round((bare_median + loop_aggregation) / ours_median, 2),
        "python_loop_updates_per_second": round(updates / loop_aggregation),
    }


def _width(model, site: str) -> int:
    from neurospec.core.sites import site_map

    return site_map(model).width(site)


def extrapolate(updates_per_second: float, examples: int = 20_000) -> dict:
    """Hours the Python aggregation alone would take on a Llama-3-8B shape (gate, up: 14336; q: 4096; k, v: 1024)."""
    neurons = 32 * (14336 * 2 + 4096 + 1024 * 2)
    return {"model": "llama-3-8b-shaped", "examples": examples, "scored_neurons": neurons,
            "python_loop_hours": round(examples * neurons / updates_per_second / 3600, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="One model, two repeats.")
    parser.add_argument("--gpu-8b", action="store_true", help="A random Llama-3-8B-shaped model in bf16 on cuda.")
    parser.add_argument("--models", default="llama-10M,llama-50M")
    parser.add_argument("--items", type=int, default=4, help="BLEnD items per country (8 countries).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attribution_speed.json")
    args = parser.parse_args()
    from neurospec.data.parallel import ntrex_sentences
    from neurospec.toy import train_tokenizer

    tok = train_tokenizer([t for _, t in ntrex_sentences("en")], 8192)
    every = build_blend_items(topics="find")
    items = []
    for country in COUNTRIES:
        items += [i for i in every if i.group == country][: args.items]
    report = {"host": platform.platform(), "torch": torch.__version__, "runs": []}
    if args.gpu_8b:
        report["runs"].append(speed((128256, 4096, 32, 14336, 32), tok, items, args.batch_size, args.repeats, "cuda",
                                    torch.bfloat16))
        args.out = args.out.with_name("attribution_speed_gpu.json")
    else:
        torch.set_num_threads(2)
        report["threads"] = 2
        for shape in (["llama-10M"] if args.quick else args.models.split(",")):
            report["runs"].append(speed(shape, tok, items, args.batch_size, 2 if args.quick else args.repeats, "cpu",
                                        torch.float32))
    rates = [run["python_loop_updates_per_second"] for run in report["runs"]]
    report["python_loop_extrapolated"] = extrapolate(statistics.median(rates))
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    for run in report["runs"]:
        ratio = run["ratio_attribute_over_bare"]
        print(f"\n{run['model']} ({run['parameters']:,} parameters, {run['device']}, {run['dtype']}), "
              f"{run['examples']} examples, {run['tokens']} tokens:")
        print(f"  attribute / bare fwd+bwd      {ratio['median']}  (quartiles {ratio['q1']} - {ratio['q3']}; goal <= 1.15)")
        seconds = run["aggregation_seconds"]
        print(f"  aggregation: python loop {seconds['python_loop']} s, attribute {seconds['attribute']} s "
              f"({run['python_loop_over_attribute_aggregation']}x); whole step {run['python_loop_step_over_attribute']}x")
    extra = report["python_loop_extrapolated"]
    print(f"\nthe Python loop alone on {extra['examples']} examples of a Llama-3-8B shape: ~{extra['python_loop_hours']} h")


if __name__ == "__main__":
    main()
