"""Load time and throughput of the real model (Gemma 3 270M from the `demo` extra), CPU, fp32.

    python benchmarks/gemma_speed.py            # GGUF conversion + cached load, forward and collect rates
    python benchmarks/gemma_speed.py --quick    # fewer tokens, no fresh conversion (a smoke run)

- ``load_gguf``: :func:`neurospec.load_model` ("gemma-3-270m") with an empty cache, in a fresh
  process: the GGUF file is dequantized and written as safetensors (tokenizer conversion included).
- ``load_cached``: the same call a second time, in another fresh process, reading that cache.
- Forward rates, on the same packed NTREX-128 English rows (8 x 256 tokens):
  ``bare_logits`` (``model(**batch)``, every position's 262,144 logits), ``bare_no_head`` (the
  decoder alone) and ``bare_last_logit`` (``logits_to_keep=1``: the head at one position per row).
- ``collect_packed`` / ``collect_sentence``: :func:`neurospec.measure.collect.collect` over the same text.

Rates are the best of the repeats, which alternate; ratios are against ``bare_logits`` and
``bare_no_head`` of the same run. Results: ``benchmarks/results/gemma_speed.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from collect_speed import bare, packed_batches, timed_collect  # noqa: E402

from neurospec.core.models import load_model  # noqa: E402
from neurospec.data.parallel import ntrex_sentences  # noqa: E402
from neurospec.measure.collect import CollectOptions  # noqa: E402
from neurospec.util.io import atomic_write_json  # noqa: E402

MODEL = "gemma-3-270m"
LOAD_SNIPPET = ("import time, sys; t = time.perf_counter(); from neurospec.core.models import load_model; "
                f"load_model({MODEL!r}, device='cpu'); print(time.perf_counter() - t)")


def load_seconds(cache: Path) -> float:
    """Seconds for one `load_model` call in a fresh process (imports included) with NEUROSPEC_CACHE=cache."""
    env = {**os.environ, "NEUROSPEC_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", LOAD_SNIPPET], env=env, cwd=ROOT, capture_output=True, text=True,
                          check=True)
    return float(done.stdout.strip().splitlines()[-1])


def last_logit(model, batches) -> float:
    with torch.no_grad():
        model(**batches[0], logits_to_keep=1)
        start = time.perf_counter()
        for batch in batches:
            out = model(**batch, logits_to_keep=1)
            del out
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tokens, repeats = (2048, 1) if args.quick else (8 * 256 * 4, args.repeats)

    loads: dict[str, float] = {}
    if not args.quick:
        with tempfile.TemporaryDirectory() as cache:
            loads["load_gguf"] = round(load_seconds(Path(cache)), 1)
            loads["load_cached"] = round(load_seconds(Path(cache)), 1)
        print(f"load from GGUF {loads['load_gguf']} s, from the cache {loads['load_cached']} s")

    loaded = load_model(MODEL, device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "en.txt"
        path.write_text("\n".join(t for _, t in ntrex_sentences("en")) + "\n", encoding="utf-8")
        batches = packed_batches(tok, path, 256, 8, tokens, "cpu")
        counted = sum(b["input_ids"].numel() for b in batches)
        packed = CollectOptions(mode="packed", seq_len=256, batch_size=8, checkpoint_every=None)
        sentence = CollectOptions(mode="sentence", seq_len=256, batch_size=8, checkpoint_every=None)
        rates: dict[str, list[float]] = {}
        for _ in range(repeats):
            rates.setdefault("bare_logits", []).append(counted / bare(model, batches, True, "cpu"))
            rates.setdefault("bare_no_head", []).append(counted / bare(model, batches, False, "cpu"))
            rates.setdefault("bare_last_logit", []).append(counted / last_logit(model, batches))
            for name, options in (("collect_packed", packed), ("collect_sentence", sentence)):
                seconds, n = timed_collect(model, tok, path, counted, options, "cpu")
                rates.setdefault(name, []).append(n / seconds)
    best = {name: round(max(values), 1) for name, values in rates.items()}
    result = {
        "model": MODEL, "parameters": sum(p.numel() for p in model.parameters()), "dtype": "float32",
        "device": "cpu", "threads": torch.get_num_threads(), "machine": platform.machine(),
        "torch": torch.__version__, "seq_len": 256, "batch_size": 8, "tokens": counted, "repeats": repeats,
        "load_seconds": loads, "tokens_per_second": best,
        "all_runs_tokens_per_second": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratios": {
            "bare_no_head / bare_logits": round(best["bare_no_head"] / best["bare_logits"], 2),
            "bare_last_logit / bare_logits": round(best["bare_last_logit"] / best["bare_logits"], 2),
            "collect_packed / bare_no_head": round(best["collect_packed"] / best["bare_no_head"], 3),
            "collect_sentence / bare_no_head": round(best["collect_sentence"] / best["bare_no_head"], 3),
        },
    }
    for name, rate in best.items():
        print(f"{name:>17}: {rate:8.1f} tokens/s")
    for name, ratio in result["ratios"].items():
        print(f"{name}: {ratio}")
    out = ROOT / "benchmarks" / "results" / ("gemma_speed_quick.json" if args.quick else "gemma_speed.json")
    atomic_write_json(out, result)
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
