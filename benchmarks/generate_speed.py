"""Generation speed with an intervention active, against bare ``model.generate``, in one run.

    python benchmarks/generate_speed.py                # 10M and 50M Llama-style models, CPU, fp32
    python benchmarks/generate_speed.py --quick        # one model, fewer repeats (a smoke run)
    python benchmarks/generate_speed.py --gpu-8b       # on a GPU: a random Llama-3-8B-shaped model in bf16

Same prompts (8 NTREX English sentences, left-padded), greedy, exactly ``--new-tokens`` new tokens
(``min_new_tokens`` = ``max_new_tokens``). Variants, timed in turn (ABCD ABCD ...) so drift hits all
alike, median over repeats:

- ``bare``: ``model.generate`` with no neurospec hook;
- ``set_p_max``: 1% of the ``act`` neurons of every layer set to per-neuron values (the amplification
  recipe ``set:p_max``);
- ``zero``: the same neurons zeroed (LAPE deactivation);
- ``set_p_max_continuation``: ``set:p_max@continuation`` (position mask from the prompt boundary);
- ``set_runtime_percentile``: ``set:runtime:percentile90*2`` (a statistic of the current tensor, each step).

``ratios`` are median tokens/s of each variant over ``bare``'s; ``paired_ratios`` the median (and
quartiles) of the per-repeat ratios, which cancel the machine's drift between repeats (goal for the
corpus-statistic recipes: at least 0.97). Results go to ``benchmarks/results/generate_speed.json`` (``generate_speed_gpu.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from collect_speed import SHAPES, _sync, build  # noqa: E402

from neurospec.core.edits import Edit, RuntimeStatistic  # noqa: E402
from neurospec.core.hooks import generate, intervene  # noqa: E402
from neurospec.data.parallel import ntrex_sentences  # noqa: E402
from neurospec.data.prompts import collate, encode_many, ensure_pad_token  # noqa: E402
from neurospec.util.io import atomic_write_json  # noqa: E402


def variants(model) -> dict[str, list[Edit] | None]:
    """The edits of each variant on 1% of the act neurons of every layer (seeded)."""
    config = model.config
    layers, width = config.num_hidden_layers, config.intermediate_size
    generator = torch.Generator().manual_seed(0)
    chosen = {layer: torch.randperm(width, generator=generator)[: max(1, width // 100)] for layer in range(layers)}
    values = torch.rand(layers, width, generator=generator)
    neurons = {"act": chosen}
    return {
        "bare": None,
        "set_p_max": [Edit.set(neurons, values)],
        "zero": [Edit.zero(neurons)],
        "set_p_max_continuation": [Edit.set(neurons, values, positions="continuation")],
        "set_runtime_percentile": [Edit.set(neurons, RuntimeStatistic("percentile", 90), factor=2)],
    }


def timed(model, batch, edits, new_tokens: int, pad_id: int, device) -> float:
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_id)
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        if edits is None:
            model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs)
        else:
            with intervene(model, *edits):
                generate(model, batch.input_ids, batch.attention_mask, **kwargs)
    _sync(device)
    return time.perf_counter() - start


def speed(shape, tok, prompts: list[str], new_tokens: int, repeats: int, device, dtype) -> dict:
    model = build(shape, tok, dtype=dtype, device=device)
    pad_id = ensure_pad_token(tok)
    batch = collate(encode_many(tok, prompts), pad_id, "left").to(device)
    plans = variants(model)
    for edits in plans.values():  # warm-up (first-call allocations, kernels)
        timed(model, batch, edits, 4, pad_id, device)
    times: dict[str, list[float]] = {name: [] for name in plans}
    for _ in range(repeats):
        for name, edits in plans.items():
            times[name].append(timed(model, batch, edits, new_tokens, pad_id, device))
    generated = len(prompts) * new_tokens
    rates = {name: generated / statistics.median(values) for name, values in times.items()}
    return {
        "model": shape if isinstance(shape, str) else "llama-3-8b-shaped",
        "parameters": sum(p.numel() for p in model.parameters()), "device": str(device), "dtype": str(dtype),
        "batch": len(prompts), "prompt_tokens": int(batch.input_ids.shape[1]), "new_tokens": new_tokens,
        "repeats": repeats, "seconds": {k: [round(v, 4) for v in vals] for k, vals in times.items()},
        "tokens_per_second": {k: round(v, 1) for k, v in rates.items()},
        "ratios": {f"{k} / bare": round(v / rates["bare"], 3) for k, v in rates.items() if k != "bare"},
        "paired_ratios": {f"{k} / bare": paired(times["bare"], vals) for k, vals in times.items() if k != "bare"},
    }


def paired(bare_seconds: list[float], seconds: list[float]) -> dict[str, float]:
    """Median and quartiles of the per-repeat speed ratio (bare time / variant time, same repeat):
    the variants of one repeat run back to back, so drift of the machine between repeats cancels."""
    ratios = sorted(b / v for b, v in zip(bare_seconds, seconds))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return {"median": round(quartiles[1], 3), "q1": round(quartiles[0], 3), "q3": round(quartiles[2], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="One model, two repeats.")
    parser.add_argument("--gpu-8b", action="store_true", help="A random Llama-3-8B-shaped model in bf16 on cuda.")
    parser.add_argument("--models", default="llama-10M,llama-50M")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "generate_speed.json")
    args = parser.parse_args()
    from neurospec.toy import train_tokenizer

    lines = [t for _, t in ntrex_sentences("en")]
    tok = train_tokenizer(lines, 8192)
    prompts = lines[:8]
    report = {"host": platform.platform(), "torch": torch.__version__, "runs": []}
    if args.gpu_8b:
        report["runs"].append(speed((128256, 4096, 32, 14336, 32), tok, prompts, args.new_tokens, args.repeats,
                                    "cuda", torch.bfloat16))
        args.out = args.out.with_name("generate_speed_gpu.json")
    else:
        torch.set_num_threads(2)
        report["threads"] = 2
        for shape in (["llama-10M"] if args.quick else args.models.split(",")):
            if shape not in SHAPES:
                raise SystemExit(f"unknown model {shape!r}; choose from {', '.join(SHAPES)}")
            run = speed(shape, tok, prompts, args.new_tokens, 2 if args.quick else args.repeats, "cpu", torch.float32)
            report["runs"].append(run)
            print(json.dumps(run["paired_ratios"]), flush=True)
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    for run in report["runs"]:
        print(f"\n{run['model']} ({run['parameters']:,} parameters, {run['device']}, {run['dtype']}):")
        for name, value in run["tokens_per_second"].items():
            print(f"  {name:26s} {value:>10,.1f} tokens/s")
        for name, value in run["paired_ratios"].items():
            print(f"  {name:34s} {value['median']}  (quartiles {value['q1']} - {value['q3']})")


if __name__ == "__main__":
    main()
