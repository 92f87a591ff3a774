"""Copy the toy models' training reports into benchmarks/results and print them as Markdown tables.

    python benchmarks/toy_report.py main culture small      # after `neurospec toy train <recipe>`

Reads ``training.json`` from each recipe's cache folder (``neurospec.toy.ensure_toy`` places them)
and, for the culture recipe, ``benchmarks/results/toy_culture_blend.json`` written by
``neurospec toy blend-accuracy <folder> --out benchmarks/results/toy_culture_blend.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from neurospec.toy import RECIPES, default_cache_dir
from neurospec.util.io import atomic_write_json

RESULTS = Path(__file__).parent / "results"


def main(names: list[str]) -> None:
    for name in names:
        folder = default_cache_dir() / f"{name}-{RECIPES[name].fingerprint()}"
        report = json.loads((folder / "training.json").read_text())
        slim = {k: v for k, v in report.items() if k != "data"}
        slim["data"] = {k: v for k, v in report["data"].items() if not k.startswith("heldout_") or k == "heldout_sentences"}
        slim["data"]["heldout_ids"] = {"ntrex": len(report["data"]["heldout_ntrex_ids"]),
                                       "flores": len(report["data"]["heldout_flores_ids"])}
        atomic_write_json(RESULTS / f"toy_{name}.json", slim)
        print(f"\n### {name}: {report['parameters']:,} parameters, {report['seconds'] / 60:.1f} min, "
              f"{report['data']['tokens_seen']:,} tokens ({report['data']['epochs']} epochs), "
              f"final training loss {report['final_train_loss']:.3f}\n")
        print(f"weights: `{report['weights_sha256']}`\n")
        print("| language | train sentences | held-out sentences | held-out loss (nats/token) |")
        print("|---|---:|---:|---:|")
        for language, loss in report["heldout_loss"].items():
            print(f"| {language} | {report['data']['train_sentences'][language]} | "
                  f"{report['data']['heldout_sentences'][language]} | {loss:.3f} |")
    blend = RESULTS / "toy_culture_blend.json"
    if "culture" in names and blend.exists():
        table = json.loads(blend.read_text())["accuracy"]
        print("\n| country | accuracy | 95% interval | n | chance |")
        print("|---|---:|---|---:|---:|")
        for group, row in table.items():
            print(f"| {group} | {row['accuracy']:.3f} | {row['ci95'][0]:.3f}-{row['ci95'][1]:.3f} | {row['n']} | "
                  f"{row['chance']:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["main", "culture", "small"])
