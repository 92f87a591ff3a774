"""What keeping top activating contexts costs `neurospec collect`: tokens/s with and without, in one process.

    python benchmarks/contexts_speed.py                                   # a 10M Llama built from a config, CPU
    python benchmarks/contexts_speed.py --model gemma-3-270m --tokens 8192  # the built-in real model (demo extra)
    python benchmarks/contexts_speed.py --model llama-50M --k 20 --repeats 5

Three variants of :func:`neurospec.measure.collect.collect` (packed rows) run on the same text, interleaved
(the order rotates each repeat, so that drift of a shared machine hits every variant alike):

- ``off``: no contexts (``top_contexts=0``);
- ``every``: ``--top-contexts K`` for every neuron of the site;
- ``selected``: ``--top-contexts K --context-neurons SET --context-sample N``, SET a random ``--set-share`` of
  the neurons (the size of a LAPE selection, top_rate 0.01) and N others.

Each figure is counted tokens / seconds of one whole ``collect`` call (tokenising and writing the files
included; a short warm-up call first), in wall-clock seconds (``tokens_per_second``) and in the CPU seconds of
this process (``cpu_tokens_per_second``: on a machine shared with other jobs the wall clock swings by 2x between
identical runs, the process's own CPU time far less). The ratios ``every / off`` and ``selected / off`` are
given from the best run of each variant and from their medians; the issue's goal is ``every / off >= 0.9``. The first batch
of each language reduces every value (no kept K-th value yet), later ones only the values above it, so the
cost per token falls as a language grows: a small ``--tokens`` overstates it. Results:
``benchmarks/results/contexts_speed.json`` (``contexts_speed_<model>.json`` for another model).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from collect_speed import SHAPES, build, repeat_file, tokenizer_and_text  # noqa: E402

from neurospec.core.sites import site_map  # noqa: E402
from neurospec.data.corpora import open_corpus  # noqa: E402
from neurospec.data.parallel import ntrex_sentences  # noqa: E402
from neurospec.measure.collect import CollectOptions, collect  # noqa: E402
from neurospec.neurons.neuron_set import NeuronSet  # noqa: E402
from neurospec.util.io import atomic_write_json  # noqa: E402

DEFAULT_MODEL = "llama-10M"
REAL_MODEL = "gemma-3-270m"
VARIANTS = ("off", "every", "selected")


def model_and_text(name: str, folder: Path, tokens: int):
    """(model, tokenizer, a text file of NTREX English lines long enough for ``tokens``)."""
    if name == REAL_MODEL:
        from neurospec.core.models import load_model

        loaded = load_model(REAL_MODEL, device="cpu", dtype="float32", quiet=True)
        text = folder / "en.txt"
        text.write_text("\n".join(t for _, t in ntrex_sentences("en")) + "\n", encoding="utf-8")
        model, tok = loaded.model, loaded.tokenizer
    else:
        tok, text = tokenizer_and_text(8192, folder)
        model = build(name, tok)
    return model, tok, repeat_file(text, folder / "big.txt", tokens // 40_000 + 1)


def random_set(model, site: str, share: float, path: Path) -> int:
    """A NeuronSet of a random ``share`` of the site's neurons (seed 0), saved to ``path``; its size."""
    sites = site_map(model)
    layers, width = sites.num_layers, sites.width(site)
    count = max(1, round(share * layers * width))
    keys = torch.randperm(layers * width, generator=torch.Generator().manual_seed(0))[:count].sort().values
    groups = {layer: (keys[keys // width == layer] % width).tolist() for layer in range(layers)}
    NeuronSet({"random": {site: {layer: idx for layer, idx in groups.items() if idx}}}, num_layers=layers).save(path)
    return count


def timed(model, tok, text: Path, tokens: int, options: CollectOptions) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, counted tokens) of one collect call, after a short warm-up."""
    corpus = [open_corpus("en", text)]
    with tempfile.TemporaryDirectory() as folder:
        warm = CollectOptions(**{**options.__dict__, "max_tokens": options.seq_len})
        collect(model, tok, corpus, Path(folder) / "warm", warm, quiet=True)
        wall, cpu = time.perf_counter(), time.process_time()
        stats = collect(model, tok, corpus, Path(folder) / "stats",
                        CollectOptions(**{**options.__dict__, "max_tokens": tokens}), quiet=True)
        return time.perf_counter() - wall, time.process_time() - cpu, int(stats.tokens.sum())


def ratios(rates: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Tokens/s of each variant (best and median of the runs) and their ratios to ``off``."""
    best = {name: max(values) for name, values in rates.items()}
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {"best": {name: round(rate, 1) for name, rate in best.items()},
            "median": {name: round(rate, 1) for name, rate in median.items()},
            "runs": {name: [round(x, 1) for x in values] for name, values in rates.items()},
            "ratios_best": {f"{name} / off": round(best[name] / best["off"], 3) for name in ("every", "selected")},
            "ratios_median": {f"{name} / off": round(median[name] / median["off"], 3) for name in ("every", "selected")}}


def variant_options(args, neuron_file: Path) -> dict[str, CollectOptions]:
    common = {"mode": "packed", "seq_len": args.seq_len, "batch_size": args.batch_size, "checkpoint_every": None}
    return {"off": CollectOptions(**common),
            "every": CollectOptions(**common, top_contexts=args.k),
            "selected": CollectOptions(**common, top_contexts=args.k, context_neurons=neuron_file,
                                       context_sample=args.sample)}


def measure(args) -> dict:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model, tok, text = model_and_text(args.model, folder, args.tokens)
        selected = random_set(model, "act", args.set_share, folder / "set.json")
        options = variant_options(args, folder / "set.json")
        wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
        cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
        counted = 0
        for repeat in range(args.repeats):
            order = VARIANTS[repeat % 3:] + VARIANTS[:repeat % 3]
            for name in order:
                seconds, cpu_seconds, counted = timed(model, tok, text, args.tokens, options[name])
                wall[name].append(counted / seconds)
                cpu[name].append(counted / cpu_seconds)
            print(f"repeat {repeat + 1}: " + ", ".join(f"{n} {wall[n][-1]:,.0f} ({cpu[n][-1]:,.0f} per CPU s)"
                                                       for n in VARIANTS), flush=True)
        sites = site_map(model)
        neurons = sites.num_layers * sites.width("act")
    wall_figures, cpu_figures = ratios(wall), ratios(cpu)
    return {
        "model": args.model, "parameters": sum(p.numel() for p in model.parameters()), "dtype": "float32",
        "device": "cpu", "threads": args.threads, "machine": platform.machine(), "torch": torch.__version__,
        "seq_len": args.seq_len, "batch_size": args.batch_size, "tokens": counted, "repeats": args.repeats,
        "k": args.k, "neurons": neurons, "selected_neurons": selected, "context_sample": args.sample,
        "tokens_per_second": wall_figures["best"], "median_tokens_per_second": wall_figures["median"],
        "all_runs_tokens_per_second": wall_figures["runs"],
        "ratios": wall_figures["ratios_best"], "median_ratios": wall_figures["ratios_median"],
        "cpu_tokens_per_second": cpu_figures["best"], "median_cpu_tokens_per_second": cpu_figures["median"],
        "all_runs_cpu_tokens_per_second": cpu_figures["runs"],
        "cpu_ratios": cpu_figures["ratios_best"], "median_cpu_ratios": cpu_figures["ratios_median"],
        "goal": {"every / off": ">= 0.9"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(SHAPES) + [REAL_MODEL])
    parser.add_argument("--tokens", type=int, default=40_000, help="Counted tokens per collect call.")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--k", type=int, default=10, help="Contexts kept per neuron (--top-contexts).")
    parser.add_argument("--sample", type=int, default=1000, help="--context-sample of the selected variant.")
    parser.add_argument("--set-share", type=float, default=0.01, help="Share of the neurons in --context-neurons.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args)
    name = "contexts_speed.json" if args.model == DEFAULT_MODEL else f"contexts_speed_{args.model}.json"
    out = args.out or ROOT / "benchmarks" / "results" / name
    atomic_write_json(out, result)
    print(json.dumps({key: result[key] for key in ("tokens_per_second", "ratios", "median_ratios",
                                                   "cpu_tokens_per_second", "cpu_ratios", "median_cpu_ratios")},
                     indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
