"""RESULTS.md's tables for a finished study run folder (examples/gemma-study.yaml by default).

    neurospec run examples/gemma-study.yaml && python benchmarks/study_tables.py runs/gemma-study
    python benchmarks/study_tables.py runs/gemma-study --json benchmarks/results/gemma_study.json

Reads only the run's artifacts (ppl, lape.json, lss, sweep, steer, flores, mask) and prints
Markdown; with --json also writes the numbers it printed, with the study's step times and versions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text(encoding="utf-8"))


def short(language: str) -> str:
    return language.split("_")[0]


def tables(run: Path) -> tuple[str, dict]:
    out, numbers = [], {}
    ppl = load(run, "ppl/ppl.json")
    languages, change = ppl["languages"], ppl["change_nll"]
    lape = load(run, "lape.json")
    counts = {g: sum(len(v) for site in sites.values() for v in site.values()) for g, sites in lape["groups"].items()}
    out.append("| deactivated (neurons) | " + " | ".join(short(lang) for lang in languages) + " |")
    out.append("|---" * (len(languages) + 1) + "|")
    for row in ppl["rows"]:
        if row["kind"] == "none":
            continue
        name = row["name"]
        label = f"{short(row['group'])} ({counts.get(row['group'], row['neurons'])})" if row["kind"] == "group" else \
            f"random: {short(row['group'])} ({row['neurons']})"
        cells = [(f"**{change[name][lang]:.3f}**" if row["kind"] == "group" and lang == row["group"]
                  else f"{change[name][lang]:.3f}")
                 for lang in languages]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    base = {lang: round(ppl["cells"]["none"][lang]["ppl"], 1) for lang in languages}
    out.append("\nUnmodified perplexity: " + ", ".join(f"{short(lang)} {v}" for lang, v in base.items()))
    numbers["ppl"] = {"change_nll": change, "unmodified_ppl": base, "neurons": counts}
    per_layer = [0] * 18
    distinct = set()
    for sites in lape["groups"].values():
        for layers in sites.values():
            for layer, indices in layers.items():
                distinct |= {(int(layer), i) for i in indices}
    for layer, _ in distinct:
        per_layer[layer] += 1
    numbers["lape_per_layer"] = per_layer
    out.append(f"\nDistinct LAPE neurons per layer (0-17): {per_layer}")
    lss = load(run, "lss/lss.json")
    pooled = lss["pooled"]
    out.append(f"\nLSS at {lss['recipe']['name']}: pooled {pooled['lss']:.3f} [{pooled['ci95'][0]:.3f}, "
               f"{pooled['ci95'][1]:.3f}] over {pooled['n']} rows ({pooled['items']} items); mean D0 {lss['mean_d0']:.2f}")
    for name, control in pooled["controls"].items():
        out.append(f"- margin over {name}: {control['margin']:+.3f} [{control['margin_ci95'][0]:+.3f}, "
                   f"{control['margin_ci95'][1]:+.3f}] (the control's own LSS {control['lss']:.3f})")
    numbers["lss"] = {"pooled": pooled, "mean_d0": lss["mean_d0"], "matrix": lss["lss"]}
    sweep = load(run, "sweep/sweep.json")
    out.append("\n| setting | mean LSS | pooled 95% CI |\n|---|---|---|")
    for point in sweep["curve"]:
        low, high = point["pooled_lss_ci95"]
        out.append(f"| {point['recipe']} | {point['mean_lss']:.3f} | [{low:.3f}, {high:.3f}] |")
    numbers["sweep"] = sweep["curve"]
    steer = load(run, "steer/steer.json")
    out.append("\n| target | source | LAPE share | random share | unmodified |\n|---|---|---|---|---|")
    rows = {(line["row"], line["source"]): line for line in steer["table"]}
    for line in steer["table"]:
        if line["kind"] != "group":
            continue
        random = next((v for (r, s), v in rows.items() if s == line["source"] and r.endswith(":" + line["row"])), None)
        out.append(f"| {short(line['target'])} | {short(line['source'])} | {line['k']}/{line['n']} | "
                   f"{random['k'] if random else '-'}/{random['n'] if random else '-'} | "
                   f"{line['baseline']['k']}/{line['baseline']['n']} |")
    numbers["steer"] = steer["table"]
    if (run / "flores" / "flores.json").exists():
        flores = load(run, "flores/flores.json")
        languages = flores["languages"]
        out.append("\n| amplified | " + " | ".join(f"English -> {short(lang)}" for lang in languages) + " |")
        out.append("|---" * (len(languages) + 1) + "|")
        for row in flores["rows"]:
            cells = [flores["cells"][row][lang] for lang in languages]
            out.append(f"| {short(row) if row != 'none' else 'none (unmodified)'} | "
                       + " | ".join(f"{c['score']:.2f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]" for c in cells) + " |")
        summary = flores["summary"]
        out.append(f"\nchrF++ change, self mean {summary['self_mean']:+.2f}, cross mean {summary['cross_mean']:+.2f}")
        numbers["flores"] = {"scores": {r: {lang: flores["cells"][r][lang]["score"] for lang in languages}
                                        for r in flores["rows"]},
                             "summary": summary}
    mask = load(run, "mask/mask_eval.json")
    out.append("\n| masked | benchmark | accuracy [95% CI] | change | n |\n|---|---|---|---|---|")
    for cell in mask["cells"]:
        if cell["group"] != "all" or cell["condition"].startswith("random"):
            continue
        out.append(f"| {cell['condition']} | {cell['benchmark']} | {cell['accuracy']:.3f} [{cell['ci95'][0]:.2f}, "
                   f"{cell['ci95'][1]:.2f}] | {cell.get('change', 0):+.3f} | {cell['n']} |")
    out.append(f"\nGroups without neurons: {mask.get('empty_groups') or 'none'}")
    numbers["mask"] = {"cells": [c for c in mask["cells"] if c["group"] == "all"], "empty_groups": mask.get("empty_groups")}
    study = load(run, "study.json")
    numbers["steps"] = {s["name"]: s.get("seconds") for s in study["steps"]}
    numbers["versions"] = study.get("versions")
    return "\n".join(out), numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", default=Path("runs/gemma-study"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    text, numbers = tables(args.run)
    print(text)
    if args.json:
        from neurospec.util.io import atomic_write_json

        atomic_write_json(args.json, {"format": "neurospec.bench.study_tables", "run": str(args.run), **numbers})


if __name__ == "__main__":
    main()
