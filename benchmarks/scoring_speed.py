"""Scoring with the output head only where it is needed, against the same verbs computing full logits.

    python benchmarks/scoring_speed.py                   # Gemma 3 270M (the `demo` extra) and the 10M / 50M Llamas
    python benchmarks/scoring_speed.py --quick           # fewer items, one repeat (a smoke run)
    python benchmarks/scoring_speed.py --models llama-10M

Per model, on the same NTREX-128 English text, CPU, float32:

- ``bare_logits`` / ``bare_no_head``: ``model(**batch)`` (every position's logits) and the decoder alone, on
  packed rows (4 x 512 tokens on Gemma), in tokens per second;
- ``collect``: :func:`neurospec.measure.collect.collect` (packed) on the same tokens (it stops after the last
  hooked layer: no head at all);
- ``continuations`` (what LSS, XCOPA and log-likelihood multiple choice run): :func:`score_continuations`
  on prompt / one-to-three-word continuation pairs, and ``letters`` (:func:`choose_by_letter`), each with
  the head at the scored positions and, under :func:`neurospec.core.head.full_logits`, with full logits;
- ``ppl``: :func:`perplexity` on 512-token windows at batch 8 against a plain forward with logits on the
  same collated batches (every position needs the head: the goal is parity), and the peak memory of each
  path measured in a fresh process (resident memory sampled every 2 ms, above the loaded model's).

Rates are the best of the repeats, which alternate. Results: ``benchmarks/results/scoring_speed.json``.
"""

from __future__ import annotations

import argparse
import json
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

from collect_speed import bare, build, packed_batches, timed_collect, tokenizer_and_text  # noqa: E402

from neurospec.core.head import full_logits  # noqa: E402
from neurospec.core.models import load_model  # noqa: E402
from neurospec.data.items import MCItem  # noqa: E402
from neurospec.data.parallel import ntrex_sentences  # noqa: E402
from neurospec.data.prompts import collate, ensure_pad_token  # noqa: E402
from neurospec.evaluate.perplexity import encode_windows, perplexity  # noqa: E402
from neurospec.evaluate.scoring import choose_by_letter, score_continuations  # noqa: E402
from neurospec.measure.collect import CollectOptions  # noqa: E402
from neurospec.util.io import atomic_write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "scoring_speed.json"
MEMORY_SNIPPET = """
import json, sys, threading, time, torch
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from scoring_speed import load
from neurospec.core.head import full_logits
from neurospec.evaluate.perplexity import perplexity

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

model, tok, texts = load({name!r}, {ppl_texts})
perplexity(model, tok, texts[:1], batch_size=8, max_length=512)           # warm: allocator, kernels
before, peak, running = rss(), [0], [True]

def watch():
    while running[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)

watcher = threading.Thread(target=watch)
watcher.start()
if {plain}:
    with full_logits():
        perplexity(model, tok, texts, batch_size=8, max_length=512)
else:
    perplexity(model, tok, texts, batch_size=8, max_length=512)
running[0] = False
watcher.join()
print(json.dumps({{"loaded_rss_mb": before / 2**20, "peak_rss_mb": peak[0] / 2**20,
                  "above_loaded_mb": (peak[0] - before) / 2**20}}))
"""


def load(name: str, ppl_texts: int):
    """The model, its tokenizer and English texts of about 512 tokens each."""
    lines = [text for _, text in ntrex_sentences("en")]
    if name == "gemma-3-270m":
        lm = load_model(name, device="cpu", dtype="float32")
        model, tok = lm.model, lm.tokenizer
    else:
        tok, _ = tokenizer_and_text(8192, Path(tempfile.mkdtemp()))
        model = build(name, tok)
    texts, current = [], []
    for line in lines:
        current.append(line)
        if len(current) == 24:        # ~24 NTREX sentences: a 512-token window or more
            texts.append(" ".join(current))
            current = []
        if len(texts) == ppl_texts:
            break
    return model, tok, texts


def continuation_pairs(n: int) -> tuple[list[str], list[str]]:
    lines = [text for _, text in ntrex_sentences("en")][:n]
    prompts, continuations = [], []
    for i, line in enumerate(lines):
        words = line.split()
        keep = 1 + i % 3
        prompts.append(" ".join(words[:-keep]))
        continuations.append(" " + " ".join(words[-keep:]))
    return prompts, continuations


def letter_items(n: int) -> list[MCItem]:
    lines = [text for _, text in ntrex_sentences("en")][:n + 3]
    return [MCItem(f"Which sentence follows? {lines[i]}", (lines[i + 1][:60], lines[i + 2][:60], lines[i + 3][:60]),
                   0) for i in range(n)]


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def ppl_forward_seconds(model, tok, texts: list[str]) -> float:
    """A plain forward with logits over the same collated 512-token windows perplexity scores."""
    windows = encode_windows(tok, texts, max_length=512)
    pad = ensure_pad_token(tok)
    with torch.no_grad():
        start = time.perf_counter()
        for i in range(0, len(windows), 8):
            batch = collate(sorted(windows, key=len, reverse=True)[i:i + 8], pad, "right")
            model(**batch.model_inputs(model))
        return time.perf_counter() - start


def memory(name: str, ppl_texts: int, plain: bool) -> dict:
    code = MEMORY_SNIPPET.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), name=name, ppl_texts=ppl_texts,
                                 plain=plain)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, quick: bool, repeats: int = 3) -> dict:
    ppl_texts = 4 if quick else 16
    model, tok, texts = load(name, ppl_texts)
    repeats = 1 if quick else repeats
    n_pairs, n_items = (16, 8) if quick else (64, 32)
    prompts, continuations = continuation_pairs(n_pairs)
    items = letter_items(n_items)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "en.txt"
        path.write_text("\n".join(text for _, text in ntrex_sentences("en")) + "\n", encoding="utf-8")
        seq_len, batch_size = 512, 4
        tokens = (2 if quick else 8) * seq_len * batch_size
        batches = packed_batches(tok, path, seq_len, batch_size, tokens, "cpu")
        counted = sum(b["input_ids"].numel() for b in batches)
        options = CollectOptions(mode="packed", seq_len=seq_len, batch_size=batch_size, checkpoint_every=None)
        rates: dict[str, list[float]] = {}

        def add(key: str, value: float) -> None:
            rates.setdefault(key, []).append(value)

        for _ in range(repeats):
            add("bare_logits", counted / bare(model, batches, True, "cpu"))
            add("bare_no_head", counted / bare(model, batches, False, "cpu"))
            seconds, n = timed_collect(model, tok, path, counted, options, "cpu")
            add("collect", n / seconds)
            add("continuations", n_pairs / timed(lambda: score_continuations(model, tok, prompts, continuations,
                                                                                batch_size=8)))
            with full_logits():
                add("continuations_full_logits", n_pairs / timed(lambda: score_continuations(
                    model, tok, prompts, continuations, batch_size=8)))
            add("letters", n_items / timed(lambda: choose_by_letter(model, tok, items, batch_size=8)))
            with full_logits():
                add("letters_full_logits", n_items / timed(lambda: choose_by_letter(model, tok, items, batch_size=8)))
            add("ppl_seconds", -timed(lambda: perplexity(model, tok, texts, batch_size=8, max_length=512)))
            add("ppl_plain_forward_seconds", -ppl_forward_seconds(model, tok, texts))
    best = {key: max(values) for key, values in rates.items()}
    for key in ("ppl_seconds", "ppl_plain_forward_seconds"):
        best[key] = -best[key]
    ratios = {
        "collect_vs_bare_logits": best["collect"] / best["bare_logits"],
        "collect_vs_bare_no_head": best["collect"] / best["bare_no_head"],
        "continuations_vs_full_logits": best["continuations"] / best["continuations_full_logits"],
        "letters_vs_full_logits": best["letters"] / best["letters_full_logits"],
        "ppl_time_vs_plain_forward": best["ppl_seconds"] / best["ppl_plain_forward_seconds"],
    }
    return {"rates": best, "ratios": ratios, "tokens": counted, "pairs": n_pairs, "letter_items": n_items,
            "ppl_texts": len(texts), "memory_ppl_8x512": memory(name, ppl_texts, plain=False),
            "memory_ppl_8x512_full_logits": memory(name, ppl_texts, plain=True),
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="gemma-3-270m,llama-10M,llama-50M")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats; the best of each is kept")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
               "quick": args.quick, "models": {}}
    for name in args.models.split(","):
        results["models"][name] = measure(name, args.quick, args.repeats)
        print(name, json.dumps(results["models"][name]["ratios"], indent=1), flush=True)
        print(" memory", results["models"][name]["memory_ppl_8x512"], "full logits",
              results["models"][name]["memory_ppl_8x512_full_logits"], flush=True)
    if not args.quick:
        atomic_write_json(RESULTS, results)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
