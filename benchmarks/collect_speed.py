"""Speed and memory of `neurospec collect` against the bare model and peer tools, in one run.

    python benchmarks/collect_speed.py                 # 10M and 50M Llama-style models, CPU, fp32
    python benchmarks/collect_speed.py --quick         # fewer tokens (a smoke run)
    python benchmarks/collect_speed.py --gpu-8b        # on a GPU: a random Llama-3-8B-shaped model in bf16

Every figure is a ratio against the bare model measured in the same process on the same batches:

- ``bare_logits``: ``model(**batch)``, a plain forward with the output head;
- ``bare_no_head``: the decoder alone (``model.model(**batch)``);
- ``collect_packed``: :func:`neurospec.measure.collect.collect` in packed mode over the same text (its time
  includes tokenising and writing the statistics);
- ``collect_sentence``: sentence mode on the same text (sentences packed into rows with block masks);
- ``transformerlens`` / ``nnsight``: the same statistic gathered with each peer's idiom
  (benchmarks/peers.py), when installed (``pip install -e ".[bench]"``).

Peak memory: two fresh processes collect 1M and 10M tokens with a small model; their peak resident
memory should agree within 5% (the statistics stream; nothing grows with the corpus).
Results go to ``benchmarks/results/collect_speed.json`` (and ``collect_speed_gpu.json``).
"""

from __future__ import annotations

import argparse
import json
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

from neurospec.data.corpora import open_corpus  # noqa: E402
from neurospec.data.parallel import ntrex_sentences  # noqa: E402
from neurospec.measure.collect import CollectOptions, collect  # noqa: E402
from neurospec.util.io import atomic_write_json  # noqa: E402

SHAPES = {  # name: (vocab, hidden, layers, intermediate, heads)
    "llama-10M": (8192, 256, 8, 688, 4),
    "llama-50M": (16384, 512, 10, 1376, 8),
    "llama-1M": (8192, 64, 2, 172, 2),  # memory check only
}


def build(shape: str, tokenizer, dtype=torch.float32, device="cpu"):
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab, hidden, layers, inner, heads = SHAPES[shape] if shape in SHAPES else shape
    config = LlamaConfig(vocab_size=max(vocab, len(tokenizer)), hidden_size=hidden, intermediate_size=inner,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=4096, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
    return model


def tokenizer_and_text(vocab: int, folder: Path) -> tuple[object, Path]:
    """A BPE tokenizer trained on NTREX English and a text file of NTREX English lines."""
    from neurospec.toy import train_tokenizer

    lines = [t for _, t in ntrex_sentences("en")]
    tok = train_tokenizer(lines, vocab)
    path = folder / "en.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tok, path


def repeat_file(source: Path, target: Path, times: int) -> Path:
    text = source.read_text(encoding="utf-8")
    with open(target, "w", encoding="utf-8") as f:
        for _ in range(times):
            f.write(text)
    return target


def packed_batches(tok, path: Path, seq_len: int, batch_size: int, tokens: int, device) -> list[dict]:
    ids: list[int] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        ids.extend(tok(line, add_special_tokens=False)["input_ids"])
        if len(ids) >= tokens:
            break
    rows = torch.tensor(ids[: tokens // seq_len * seq_len]).view(-1, seq_len)
    return [{"input_ids": rows[i:i + batch_size].to(device),
             "attention_mask": torch.ones_like(rows[i:i + batch_size]).to(device)}
            for i in range(0, rows.shape[0], batch_size)]


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def bare(model, batches, head: bool, device) -> float:
    run = model if head else model.model
    with torch.no_grad():
        run(**batches[0])
        _sync(device)
        start = time.perf_counter()
        for batch in batches:
            out = run(**batch)
            del out
        _sync(device)
    return time.perf_counter() - start


def timed_collect(model, tok, path: Path, tokens: int, options: CollectOptions, device) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        corpus = [open_corpus("en", path)]
        warm = CollectOptions(**{**options.__dict__, "max_tokens": options.seq_len or 64})
        collect(model, tok, corpus, Path(folder) / "warm", warm, quiet=True)
        _sync(device)
        start = time.perf_counter()
        stats = collect(model, tok, corpus, Path(folder) / "stats", CollectOptions(**{**options.__dict__, "max_tokens": tokens}),
                        quiet=True)
        _sync(device)
        return time.perf_counter() - start, int(stats.tokens.sum())


def speed(shape: str, tok, path: Path, tokens: int, seq_len: int, batch_size: int, repeats: int, device, dtype,
          peers: bool, model_dir: Path | None) -> dict:
    model = build(shape, tok, dtype, device)
    batches = packed_batches(tok, path, seq_len, batch_size, tokens, device)
    counted = sum(b["input_ids"].numel() for b in batches)
    params = sum(p.numel() for p in model.parameters())
    times: dict[str, list[float]] = {}
    packed = CollectOptions(mode="packed", seq_len=seq_len, batch_size=batch_size, checkpoint_every=None)
    sentence = CollectOptions(mode="sentence", seq_len=seq_len, batch_size=batch_size, checkpoint_every=None,
                              sample_sentences=100)
    for _ in range(repeats):  # interleaved, so that drift of the machine hits every variant alike
        times.setdefault("bare_logits", []).append(counted / bare(model, batches, True, device))
        times.setdefault("bare_no_head", []).append(counted / bare(model, batches, False, device))
        seconds, n = timed_collect(model, tok, path, counted, packed, device)
        times.setdefault("collect_packed", []).append(n / seconds)
        seconds, n = timed_collect(model, tok, path, counted, sentence, device)
        times.setdefault("collect_sentence", []).append(n / seconds)
        if peers:
            for name, rate in peer_rates(model, tok, batches, model_dir, shape).items():
                times.setdefault(name, []).append(rate)
    best = {name: max(values) for name, values in times.items()}  # best of the repeats: least disturbed
    result = {
        "model": shape, "parameters": params, "dtype": str(dtype).replace("torch.", ""), "device": str(device),
        "seq_len": seq_len, "batch_size": batch_size, "tokens": counted, "repeats": repeats,
        "tokens_per_second": {k: round(v, 1) for k, v in best.items()},
        "all_runs_tokens_per_second": {k: [round(x, 1) for x in v] for k, v in times.items()},
        "ratios": {
            "collect_packed / bare_logits": round(best["collect_packed"] / best["bare_logits"], 3),
            "collect_packed / bare_no_head": round(best["collect_packed"] / best["bare_no_head"], 3),
            "collect_sentence / collect_packed": round(best["collect_sentence"] / best["collect_packed"], 3),
        },
        "goals": {"collect_packed / bare_logits": 1.0, "collect_packed / bare_no_head": 0.97,
                  "collect_sentence / collect_packed": 0.9},
    }
    for peer in ("transformerlens", "nnsight"):
        if peer in best:
            result["ratios"][f"{peer} / bare_logits"] = round(best[peer] / best["bare_logits"], 3)
            result["ratios"][f"collect_packed / {peer}"] = round(best["collect_packed"] / best[peer], 2)
    return result


def peer_rates(model, tok, batches, model_dir: Path | None, shape: str) -> dict[str, float]:
    """Tokens/s of the peers on the same batches (skipped, with a note, when not installed)."""
    rates = {}
    try:
        import peers
    except ImportError:
        return rates
    counted = sum(b["input_ids"].numel() for b in batches)
    if model_dir is not None:
        try:
            rates["transformerlens"] = counted / peers.transformerlens_counts(str(model_dir), batches)["seconds"]
        except ImportError:
            pass
    try:
        rates["nnsight"] = counted / peers.nnsight_counts(model, batches, tokenizer=tok)["seconds"]
    except ImportError:
        pass
    return rates


def peak_memory(tok_dir: Path, path: Path, tokens: int) -> dict:
    """Collect ``tokens`` tokens in a fresh process; its peak resident memory (ru_maxrss)."""
    code = (
        "import sys, time, resource, tempfile, torch; sys.path.insert(0, %r)\n"
        "from transformers import AutoTokenizer\n"
        "from collect_speed import build\n"
        "from neurospec.measure.collect import CollectOptions, collect\n"
        "from neurospec.data.corpora import open_corpus\n"
        "torch.set_num_threads(2)\n"
        "tok = AutoTokenizer.from_pretrained(%r)\n"
        "model = build('llama-1M', tok)\n"
        "start = time.perf_counter()\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    s = collect(model, tok, [open_corpus('en', %r)], d + '/s', "
        "CollectOptions(seq_len=256, batch_size=8, max_tokens=%d), quiet=True)\n"
        "print(int(s.tokens.sum()), time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    ) % (str(ROOT / "benchmarks"), str(tok_dir), str(path), tokens)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return {"tokens": int(out[0]), "seconds": round(float(out[1]), 1), "peak_rss_mb": round(int(out[2]) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Fewer tokens and one repeat.")
    parser.add_argument("--no-peers", action="store_true", help="Skip TransformerLens and nnsight.")
    parser.add_argument("--no-memory", action="store_true", help="Skip the 1M vs 10M token memory check.")
    parser.add_argument("--gpu-8b", action="store_true", help="A random Llama-3-8B-shaped model in bf16 on cuda.")
    parser.add_argument("--models", default="llama-10M,llama-50M", help="Which CPU models to run.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "collect_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(2 if not torch.cuda.is_available() else torch.get_num_threads())
    report = {"host": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(), "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        tok, text = tokenizer_and_text(8192, folder)
        tok.save_pretrained(folder / "tok")
        if args.gpu_8b:
            shape = (128256, 4096, 32, 14336, 32)
            big = repeat_file(text, folder / "big.txt", 3)  # the corpus is read in full once: size it to the run
            report["runs"].append(speed(shape, tok, big, 65536, 2048, 4, 2, "cuda", torch.bfloat16, False, None))
            args.out = args.out.with_name("collect_speed_gpu.json")
        else:
            for shape, tokens in (("llama-10M", 40_000 if args.quick else 100_000),
                                  ("llama-50M", 16_000 if args.quick else 40_000)):
                if shape not in args.models.split(","):
                    continue
                model_dir = None
                if not args.no_peers:
                    model_dir = folder / shape
                    build(shape, tok).save_pretrained(model_dir)
                    tok.save_pretrained(model_dir)
                big = repeat_file(text, folder / f"{shape}.txt", tokens // 40_000 + 1)
                report["runs"].append(speed(shape, tok, big, tokens, 256, 8, 1 if args.quick else 2, "cpu",
                                            torch.float32, not args.no_peers, model_dir))
                print(json.dumps(report["runs"][-1]["ratios"]), flush=True)
            if not args.no_memory:
                small, large = (200_000, 2_000_000) if args.quick else (1_000_000, 10_000_000)
                huge = repeat_file(text, folder / "huge.txt", max(1, large // 50_000))
                memory = {"small": peak_memory(folder / "tok", huge, small), "large": peak_memory(folder / "tok", huge, large)}
                memory["ratio"] = round(memory["large"]["peak_rss_mb"] / memory["small"]["peak_rss_mb"], 3)
                memory["goal"] = "within 5% (ratio <= 1.05)"
                report["memory"] = memory
                print(json.dumps(memory), flush=True)
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    for run in report["runs"]:
        print(f"\n{run['model']} ({run['parameters']:,} parameters, {run['device']}, {run['dtype']}):")
        for name, value in run["tokens_per_second"].items():
            print(f"  {name:18s} {value:>10,.0f} tokens/s")
        for name, value in run["ratios"].items():
            print(f"  {name:38s} {value}")


if __name__ == "__main__":
    main()
