"""The three papers' findings on the toy models, measured with the real `neurospec` commands.

    python benchmarks/findings.py lape        # main toy: collect, select lape, ppl, where the neurons sit
    python benchmarks/findings.py steering    # main toy: lss (p_max, p_median, controls), sweep, steer
    python benchmarks/findings.py culture     # culture toy: attribute, select culture, mask-eval, finetune
    python benchmarks/findings.py all
    python benchmarks/findings.py tables      # RESULTS.md's tables (and commands) from the results JSON

Each stage runs `neurospec` verbs (printed as it goes, recorded in the results) into
``runs/findings/<toy>/`` and skips a verb whose output is already there, so an interrupted stage
resumes. It then summarises the artifacts into ``benchmarks/results/findings_<stage>.json``;
RESULTS.md holds the tables and says how to reproduce them. Toy models come from
``neurospec.toy.ensure_toy`` (trained first when missing, about 30 minutes each). Everything runs
on the CPU in fp32 with 2 threads (``OMP_NUM_THREADS=2``), seeds fixed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from neurospec.neurons.neuron_set import NeuronSet
from neurospec.toy import RECIPES, ensure_toy
from neurospec.util.io import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "findings"
LANGUAGES = list(RECIPES["main"].languages)
STEERING_LANGUAGES = ["eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl", "zho_Hans", "arb_Arab"]
LAPE_RATES = {"paper": 0.01, "toy": 0.05}   # top-rate: the paper's 1%, and 5% for a 4128-neuron model
THREADS = "2"


class Runner:
    """Runs `neurospec` verbs, skipping those whose output exists, and keeps the command lines."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.commands: list[str] = []
        self.seconds: dict[str, float] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, output: str, *args: str | Path) -> Path:
        target = self.folder / output
        argv = [str(a) for a in args]
        shown = _short("neurospec " + " ".join(shlex.quote(a) for a in argv))
        self.commands.append(shown)
        if _finished(target):
            print(f"[skip] {shown}", flush=True)
            return target
        if target.is_dir() and argv[0] in ("collect", "attribute"):
            argv.append("--resume")   # both continue an unfinished run folder
        print(f"[run]  {shown}", flush=True)
        start = time.perf_counter()
        environment = {**os.environ, "OMP_NUM_THREADS": THREADS, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        executable = Path(sys.executable).parent / "neurospec"
        subprocess.run([str(executable), *argv], check=True, env=environment)
        self.seconds[name] = round(time.perf_counter() - start, 1)
        return target


# the file each verb writes last in its output folder (collect and attribute mark it "complete")
FINAL_FILES = ("stats.json", "attribution.json", "ppl.json", "lss.json", "sweep.json", "steer.json", "mask_eval.json",
               "finetune.json")


def _finished(target: Path) -> bool:
    """A file output exists, or an output folder holds its verb's final, complete JSON."""
    if target.is_file():
        return True
    for name in FINAL_FILES:
        if (target / name).is_file():
            return _json(target / name).get("complete", True) is True
    return False


def _short(text: str) -> str:
    """Paths as a reader would type them: relative to the repository, the toy cache as ``$TOY``."""
    cache = str(Path.home() / ".cache" / "neurospec" / "toy")
    text = text.replace(str(ROOT) + "/", "")
    return text.replace(cache, "$TOY")


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _environment() -> dict:
    return {"torch": torch.__version__, "python": platform.python_version(), "threads": int(THREADS),
            "machine": platform.machine(), "dtype": "float32", "device": "cpu"}


def _save(stage: str, runner: Runner, model: Path, body: dict) -> None:
    """Write the stage's results; the times of verbs skipped in this run are kept from the previous file."""
    path = RESULTS / f"findings_{stage}.json"
    seconds = {**(_json(path).get("seconds", {}) if path.exists() else {}), **runner.seconds}
    document = {"stage": stage, "model": _short(str(model)), "environment": _environment(),
                "commands": runner.commands, "seconds": seconds, **body}
    atomic_write_json(path, document)
    print(f"wrote {RESULTS / f'findings_{stage}.json'}")


# ---------------------------------------------------------------- LAPE: perplexity and placement

def placement(neurons: NeuronSet) -> dict:
    """Per-layer counts per group and the pairwise overlap (shared neurons, and Jaccard)."""
    groups = list(neurons.groups)
    per_layer = {g: neurons.per_layer_counts(g).tolist() for g in groups}
    keys = {g: set(neurons.neuron_keys(g).tolist()) for g in groups}
    shared = {a: {b: len(keys[a] & keys[b]) for b in groups} for a in groups}
    jaccard = {a: {b: (len(keys[a] & keys[b]) / len(keys[a] | keys[b]) if keys[a] | keys[b] else 0.0)
                   for b in groups} for a in groups}
    in_several = sum(1 for k in set().union(*keys.values()) if sum(k in keys[g] for g in groups) > 1)
    return {"counts": {g: len(keys[g]) for g in groups}, "per_layer": per_layer, "shared": shared,
            "jaccard": jaccard, "distinct": len(set().union(*keys.values())), "in_several_groups": in_several}


def perplexity_findings(ppl: dict) -> dict:
    """Per language: own-language NLL change, mean change elsewhere, their ratio and difference; same for random."""
    change = ppl["change_nll"]
    languages = ppl["languages"]
    rows = {}
    for group in languages:
        if group not in change:
            continue
        entry = {}
        for label in [group] + [r for r in change if r.endswith(f":{group}")]:
            row = change[label]
            others = [row[lang] for lang in languages if lang != group]
            mean_other = sum(others) / len(others)
            entry["neurons" if label == group else label] = {
                "own": row[group], "mean_other": mean_other, "max_other": max(others),
                "ratio": row[group] / mean_other if mean_other else None, "difference": row[group] - mean_other,
                "own_is_largest": row[group] > max(others)}
        rows[group] = entry
    dominated = [g for g, e in rows.items() if e["neurons"]["own_is_largest"]]
    random_dominated = [g for g, e in rows.items() if any(v["own_is_largest"] for k, v in e.items() if k != "neurons")]
    return {"per_language": rows, "diagonal_dominates": dominated, "random_diagonal_dominates": random_dominated,
            "unmodified_ppl": {lang: cell["ppl"] for lang, cell in ppl["cells"]["none"].items()}}


def _collect_packed(run: Runner, model: Path) -> Path:
    """LAPE's statistics: packed 128-token rows of all of NTREX-128, every language of the main toy."""
    return run("collect", "stats_packed", "collect", "--model", model, "--corpus-dir", "ntrex128",
               "--languages", ",".join(LANGUAGES), "--mode", "packed", "--seq-len", "128", "--quiet",
               "--out", run.folder / "stats_packed")


def stage_lape() -> None:
    model = ensure_toy("main", quiet=False)
    run = Runner(RUNS / "main")
    languages = ",".join(LANGUAGES)
    stats = _collect_packed(run, model)
    body: dict = {"languages": LANGUAGES, "rates": LAPE_RATES, "settings": {}}
    for label, rate in LAPE_RATES.items():
        neurons = run(f"select-{label}", f"lape_{label}.json", "select", "lape", "--stats", stats, "--top-rate",
                      str(rate), "--out", run.folder / f"lape_{label}.json")
        ppl = run(f"ppl-{label}", f"ppl_{label}", "ppl", "--model", model, "--neurons", neurons, "--corpus-dir",
                  "flores", "--languages", languages, "--split", "test", "--limit", "100",
                  "--random-seeds", "0", "--batch-size", "32", "--quiet", "--out", run.folder / f"ppl_{label}")
        body["settings"][label] = {"placement": placement(NeuronSet.load(neurons)),
                                   "perplexity": perplexity_findings(_json(ppl / "ppl.json"))}
    _save("lape", run, model, body)


# ---------------------------------------------------------------- steering: LSS, sweep, generation

def lss_findings(lss: dict) -> dict:
    """The matrix, the pooled LSS and margins, and how many cells' own margin interval lies above zero."""
    cells = {}
    for name in sorted({n for cell in lss["cells"] for n in cell["controls"]}):
        having = [c for c in lss["cells"] if name in c["controls"]]
        cells[name] = {"cells": len(having),
                       "margin_above_zero": sum(c["controls"][name]["margin_ci95"][0] > 0 for c in having),
                       "margin_below_zero": sum(c["controls"][name]["margin_ci95"][1] < 0 for c in having)}
    return {"lss": lss["lss"], "mean_offdiagonal": lss["mean_offdiagonal"], "mean_d0": lss["mean_d0"],
            "degenerate": lss["degenerate"], "pooled": lss["pooled"], "cells_by_control": cells,
            "margins": {name: _margin_matrix(lss, name) for name in cells}}


def _margin_matrix(lss: dict, name: str) -> dict:
    out: dict = {}
    for cell in lss["cells"]:
        if name in cell["controls"]:
            out.setdefault(cell["source"], {})[cell["target"]] = cell["controls"][name]["margin"]
    return out


def steering_findings(folder: Path) -> dict:
    """Share of continuations in language t: under t's neurons, t's matched random neurons, other languages'
    neurons, and unmodified; pooled over the sources other than t, with Wilson intervals."""
    from neurospec.evaluate.intervals import wilson

    steer = _json(folder / "steer.json")
    outputs: dict = {}
    for line in (folder / "generations.jsonl").read_text().splitlines():
        record = json.loads(line)
        outputs.setdefault(record["row"], {}).setdefault(record["source"], []).append(record["language"])
    groups = [r["name"] for r in steer["rows"] if r["kind"] == "group"]
    per_target = {}
    for row in steer["rows"]:
        if row["kind"] != "group":
            continue
        target = row["target"]
        sources = [s for s in steer["sources"] if s != target]
        randoms = [r["name"] for r in steer["rows"] if r["kind"] == "random" and r["group"] == row["group"]]
        conditions = {"neurons": [row["name"]], "random": randoms, "none": ["none"],
                      "other": [g for g in groups if g != row["name"]]}
        entry = {}
        for condition, rows in conditions.items():
            picked = [lang for name in rows for s in sources if not (condition == "other" and _target(steer, name) == s)
                      for lang in outputs[name][s]]
            k = sum(lang == target for lang in picked)
            entry[condition] = {"k": k, "n": len(picked), "share": k / len(picked), "ci95": list(wilson(k, len(picked)))}
        per_target[target] = entry
    totals = {c: sum(e[c]["k"] for e in per_target.values()) for c in ("neurons", "random", "other", "none")}
    counts = {c: sum(e[c]["n"] for e in per_target.values()) for c in ("neurons", "random", "other", "none")}
    pooled = {c: {"k": totals[c], "n": counts[c], "share": totals[c] / counts[c],
                  "ci95": list(wilson(totals[c], counts[c]))} for c in totals}
    return {"recipe": steer["recipe"], "per_target": per_target, "pooled": pooled}


def _target(steer: dict, row: str) -> str | None:
    return next(r["target"] for r in steer["rows"] if r["name"] == row)


def stage_steering() -> None:
    model = ensure_toy("main", quiet=False)
    run = Runner(RUNS / "main")
    stats_packed = _collect_packed(run, model)
    neurons = run("select-toy", "lape_toy.json", "select", "lape", "--stats", stats_packed, "--top-rate",
                  str(LAPE_RATES["toy"]), "--out", run.folder / "lape_toy.json")
    stats = run("collect-sentence", "stats_sentence", "collect", "--model", model, "--corpus-dir", "ntrex128",
                "--languages", ",".join(LANGUAGES), "--mode", "sentence", "--max-tokens", "20000", "--quiet",
                "--out", run.folder / "stats_sentence")
    languages = ",".join(STEERING_LANGUAGES)
    common = ["--model", model, "--neurons", neurons, "--stats", stats, "--parallel", "flores", "--split", "test",
              "--languages", languages, "--batch-size", "32", "--quiet"]
    body: dict = {"languages": STEERING_LANGUAGES, "neurons": "lape_toy.json", "lss": {}}
    for value in ("p_max", "p_median"):
        folder = run(f"lss-{value}", f"lss_{value}", "lss", *common, "--limit", "100", "--recipe", f"set:{value}",
                     "--controls", "random,other", "--out", run.folder / f"lss_{value}")
        body["lss"][value] = lss_findings(_json(folder / "lss.json"))
    sweep = run("sweep", "sweep", "sweep", *common, "--limit", "50", "--values", "p_max,p_median",
                "--factors", "1,2,5,10", "--out", run.folder / "sweep")
    curve = _json(sweep / "sweep.json")
    body["sweep"] = {key: curve[key] for key in curve if key not in ("format", "version")}
    best = curve["best"]["name"]
    body["steer"] = {}
    for recipe in dict.fromkeys(["set:p_max", best]):
        label = recipe.replace(":", "_").replace("*", "x")
        folder = run(f"steer-{label}", f"steer_{label}", "steer", *common, "--limit", "20", "--max-new-tokens", "24",
                     "--recipe", recipe, "--random-seeds", "0", "--langid-languages", "study",
                     "--out", run.folder / f"steer_{label}")
        body["steer"][recipe] = steering_findings(folder)
    _save("steering", run, model, body)


# ---------------------------------------------------------------- culture: attribution, masking, fine-tuning

CULTURE_RATES = {"paper": [], "x5": ["--mlp-rate", "0.05", "--attention-rate", "0.01", "--specific-rate", "0.015"]}


def culture_placement(neurons: NeuronSet) -> dict:
    """Neurons per group and site, and per layer (MLP sites and attention sites apart)."""
    out = {}
    for group in neurons.groups:
        sites = neurons.sites(group)
        mlp = [s for s in sites if s in ("gate_pre", "up_pre", "act", "down_in")]
        attention = [s for s in sites if s not in mlp]
        out[group] = {"sites": {s: neurons.count(group, s) for s in sites},
                      "mlp_per_layer": sum((neurons.per_layer_counts(group, s) for s in mlp),
                                           torch.zeros(neurons.num_layers, dtype=torch.long)).tolist(),
                      "attention_per_layer": sum((neurons.per_layer_counts(group, s) for s in attention),
                                                 torch.zeros(neurons.num_layers, dtype=torch.long)).tolist()}
    return out


def masking_findings(result: dict) -> dict:
    """Per masked group: own-country change vs other countries, margin over random; cultural vs NLU summary."""
    cells = {(c["condition"], c["benchmark"], c["group"]): c for c in result["cells"]}
    baseline = {(b, g): cells[("none", b, g)]["accuracy"] for (cond, b, g) in cells if cond == "none"}
    own = {}
    for benchmark, matrix in result["related"].items():
        for condition, changes in matrix.items():
            if condition not in changes:
                continue
            others = [v for g, v in changes.items() if g != condition]
            cell = cells[(condition, benchmark, condition)]
            own.setdefault(condition, {})[benchmark] = {
                "own_change": changes[condition], "own_change_ci95": cell.get("change_ci95"),
                "mean_other_change": sum(others) / len(others) if others else None,
                "own_margin_over_random": cell.get("margin_over_random"), "own_margin_ci95": cell.get("margin_ci95")}
    return {"baseline": {f"{b}/{g}": v for (b, g), v in baseline.items()}, "summary": result["summary"],
            "own_country": own, "related": result["related"]}


def stage_culture() -> None:
    from neurospec.data.countryrc import CULTURE_COUNTRIES

    model = ensure_toy("culture", quiet=False)
    run = Runner(RUNS / "culture")
    countries = ",".join(CULTURE_COUNTRIES)
    toy_prompts = ["--templates", "question", "--prompt-format", "plain"]   # a 6.8M model cannot read lettered options
    attributions = {}
    for data in ("blend", "blend-control", "countryrc"):
        attributions[data] = run(f"attribute-{data}", f"attr_{data}", "attribute", "--model", model, "--data", data,
                                 "--split", "find", "--countries", countries, "--limit", "100", *toy_prompts,
                                 "--target", "answer", "--quiet", "--out", run.folder / f"attr_{data}")
    body: dict = {"countries": list(CULTURE_COUNTRIES), "attribution": {
        data: {key: _json(folder / "attribution.json")[key] for key in ("examples", "clamped_examples", "target")}
        for data, folder in attributions.items()}, "settings": {}}
    for label, rates in CULTURE_RATES.items():
        neurons = run(f"select-{label}", f"culture_{label}.json", "select", "culture", "--blend", attributions["blend"],
                      "--control", attributions["blend-control"], "--countryrc", attributions["countryrc"], *rates,
                      "--random-sets", "1", "--out", run.folder / f"culture_{label}.json")
        masked = run(f"mask-{label}", f"mask_{label}", "mask-eval", "--model", model, "--neurons", neurons, "--random-neurons",
                     run.folder / f"culture_{label}.random.json", "--benchmarks", "blend,countryrc,qnli",
                     "--split", "test", "--countries", countries, "--limit", "40", *toy_prompts, "--scoring", "loglik",
                     "--batch-size", "32", "--quiet", "--out", run.folder / f"mask_{label}")
        body["settings"][label] = {"rates": rates or "paper defaults",
                                   "placement": culture_placement(NeuronSet.load(neurons)),
                                   "masking": masking_findings(_json(masked / "mask_eval.json"))}
    body["finetune"] = {}
    for layers in ("richest:2", "poorest:2"):
        folder = run(f"finetune-{layers}", f"finetune_{layers.replace(':', '')}", "finetune", "--model", model,
                     "--neurons", run.folder / "culture_x5.json", "--groups", "culture-general", "--layers", layers,
                     "--data", "qnli", "--samples", "4000", "--lr", "3e-4", "--benchmarks", "blend,qnli",
                     "--limit", "40", "--scoring", "loglik", "--batch-size", "16", "--quiet",
                     "--out", run.folder / f"finetune_{layers.replace(':', '')}")
        result = _json(folder / "finetune.json")
        losses = result["training"].pop("losses")
        result["training"].pop("parameter_names")
        result["training"]["loss_last_20_steps"] = round(sum(losses[-20:]) / len(losses[-20:]), 3)
        body["finetune"][layers] = result
    _save("culture", run, model, body)


STAGES = {"lape": stage_lape, "steering": stage_steering, "culture": stage_culture}


# ---------------------------------------------------------------- Markdown tables for RESULTS.md

def _f(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _interval(pair, digits: int = 3) -> str:
    return "" if not pair else f"{pair[0]:.{digits}f} to {pair[1]:.{digits}f}"


def _short_lang(key: str) -> str:
    """``eng_Latn`` -> ``eng``; any other name (a country) as it is."""
    return key.split("_")[0] if re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", key) else key


def tables_lape(doc: dict) -> list[str]:
    lines = []
    for label, setting in doc["settings"].items():
        ppl, where = setting["perplexity"], setting["placement"]
        lines += [f"\n#### LAPE top-rate {doc['rates'][label]} ({label}): {where['distinct']} neurons\n",
                  "| language | neurons | own ΔNLL | mean ΔNLL elsewhere | largest elsewhere | own largest | "
                  "random: own ΔNLL | random: mean elsewhere |", "|---|---:|---:|---:|---:|:-:|---:|---:|"]
        for language, entry in ppl["per_language"].items():
            mine = entry["neurons"]
            random = next(v for k, v in entry.items() if k != "neurons")
            lines.append(f"| {language} | {where['counts'][language]} | {mine['own']:+.4f} | {mine['mean_other']:+.4f} | "
                         f"{mine['max_other']:+.4f} | {'yes' if mine['own_is_largest'] else 'no'} | "
                         f"{random['own']:+.4f} | {random['mean_other']:+.4f} |")
        lines.append(f"\nThe own-language change is the row's largest for {len(ppl['diagonal_dominates'])} of "
                     f"{len(ppl['per_language'])} languages; with matched random neurons for "
                     f"{len(ppl['random_diagonal_dominates'])}.")
        layers = len(next(iter(where["per_layer"].values())))
        lines += ["\n| language | " + " | ".join(f"layer {i}" for i in range(layers)) + " |",
                  "|---|" + "---:|" * layers]
        lines += [f"| {g} | " + " | ".join(str(c) for c in counts) + " |" for g, counts in where["per_layer"].items()]
        pairs = sorted(((a, b, where["shared"][a][b], where["jaccard"][a][b]) for a in where["shared"]
                        for b in where["shared"] if a < b and where["shared"][a][b]), key=lambda p: -p[3])
        lines.append(f"\n{where['in_several_groups']} of {where['distinct']} neurons belong to several languages. "
                     "Pairs sharing neurons (Jaccard): " +
                     (", ".join(f"{_short_lang(a)}-{_short_lang(b)} {n} ({j:.2f})" for a, b, n, j in pairs[:8]) or "none")
                     + ".")
    return lines


def _matrix(rows: dict, digits: int = 2, corner: str = "source \\ target") -> list[str]:
    seen = {c for row in rows.values() for c in row}
    columns = [c for c in rows if c in seen] + sorted(seen - set(rows))
    lines = [f"| {corner} | " + " | ".join(_short_lang(c) for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    for source, row in rows.items():
        lines.append(f"| {_short_lang(source)} | " + " | ".join(_f(row.get(c), digits) if c in row else "-"
                                                                   for c in columns) + " |")
    return lines


def tables_steering(doc: dict) -> list[str]:
    lines = ["\n| recipe | pooled LSS (95% CI) | mean D0 | random: LSS | margin over random (95% CI) | "
             "cells > 0 / < 0 | other language: LSS | margin over other (95% CI) | cells > 0 / < 0 |",
             "|---|---|---:|---:|---|:-:|---:|---|:-:|"]
    for value, entry in doc["lss"].items():
        pooled, by = entry["pooled"], entry["cells_by_control"]
        random, other = pooled["controls"]["random"], pooled["controls"]["other"]
        lines.append(f"| set:{value} | {pooled['lss']:.3f} ({_interval(pooled['ci95'])}) | {entry['mean_d0']:.2f} | "
                     f"{random['lss']:.3f} | {random['margin']:+.3f} ({_interval(random['margin_ci95'])}) | "
                     f"{by['random']['margin_above_zero']} / {by['random']['margin_below_zero']} of {by['random']['cells']} | "
                     f"{other['lss']:.3f} | {other['margin']:+.3f} ({_interval(other['margin_ci95'])}) | "
                     f"{by['other']['margin_above_zero']} / {by['other']['margin_below_zero']} of {by['other']['cells']} |")
    for value, entry in doc["lss"].items():
        lines += [f"\nLSS, set:{value} (source rows, target columns):\n", *_matrix(entry["lss"])]
        lines += [f"\nMargin over matched random neurons, set:{value}:\n", *_matrix(entry["margins"]["random"])]
    sweep = doc["sweep"]
    lines += [f"\nSweep (best: `{sweep['best']['name']}`):\n", "| recipe | mean LSS | pooled LSS (95% CI) | mean D0 |",
              "|---|---:|---|---:|"]
    lines += [f"| {p['recipe']} | {p['mean_lss']:.3f} | {p['pooled_lss']:.3f} ({_interval(p['pooled_lss_ci95'])}) | "
              f"{p['mean_d0']:.2f} |" for p in sweep["curve"]]
    for recipe, steer in doc["steer"].items():
        lines += [f"\nGenerations in the target language, `{recipe}` (sources other than the target pooled; 95% Wilson):\n",
                  "| target | its neurons | matched random | other languages' neurons | unmodified |", "|---|---|---|---|---|"]
        rows = {**steer["per_target"], "all": steer["pooled"]}
        for target, entry in rows.items():
            lines.append(f"| {target} | " + " | ".join(
                f"{entry[c]['share']:.2f} ({entry[c]['k']}/{entry[c]['n']}; {_interval(entry[c]['ci95'], 2)})"
                for c in ("neurons", "random", "other", "none")) + " |")
    return lines


def tables_culture(doc: dict) -> list[str]:
    countries = doc["countries"]
    lines = ["\nAttribution examples (find split, at most 100 per country of " + ", ".join(countries) + "): " +
             ", ".join(f"{data} {a['examples']}" for data, a in doc["attribution"].items()) + "."]
    for label, setting in doc["settings"].items():
        masking, where = setting["masking"], setting["placement"]
        rates = setting["rates"] if isinstance(setting["rates"], str) else " ".join(setting["rates"])
        lines += [f"\n#### Rates: {label} ({rates})\n",
                  "| group | neurons per site | MLP per layer | attention per layer |", "|---|---|---|---|"]
        lines += [f"| {g} | " + ", ".join(f"{s} {n}" for s, n in e["sites"].items()) +
                  f" | {e['mlp_per_layer']} | {e['attention_per_layer']} |" for g, e in where.items()]
        baseline = masking["baseline"]
        lines += [f"\nUnmodified accuracy: BLEnD test {baseline['blend/all']:.3f}, CountryRC test "
                  f"{baseline['countryrc/all']:.3f}, QNLI {baseline['qnli/all']:.3f}.\n",
                  "| suppressed | cultural change | margin over random | NLU change | NLU margin over random |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['condition']} | {r['cultural_change']:+.3f} | {_f(r.get('cultural_margin_over_random'))} | "
                  f"{r['nlu_change']:+.3f} | {_f(r.get('nlu_margin_over_random'))} |"
                  for r in masking["summary"] if not r["condition"].startswith("random")]
        lines += ["\nOwn country vs the others (accuracy change when a country's culture-specific neurons are "
                  "suppressed; margin over its random neurons, 95% CI):\n",
                  "| country | BLEnD own | BLEnD others | BLEnD margin (CI) | CountryRC own | CountryRC others | "
                  "CountryRC margin (CI) |", "|---|---:|---:|---|---:|---:|---|"]
        for country, entry in masking["own_country"].items():
            cells = []
            for benchmark in ("blend", "countryrc"):
                e = entry.get(benchmark)
                cells += ([f"{e['own_change']:+.3f}", f"{e['mean_other_change']:+.3f}",
                           f"{e['own_margin_over_random']:+.3f} ({_interval(e['own_margin_ci95'], 2)})"]
                          if e else ["", "", ""])
            lines.append(f"| {country} | " + " | ".join(cells) + " |")
        lines += ["\nRelated cultures, BLEnD test (rows: suppressed group; columns: evaluated country; accuracy "
                  "change):\n", *_matrix(masking["related"]["blend"], corner="suppressed \\ evaluated")]
    lines += ["\nFine-tuning only the MLPs of 2 layers on QNLI letters (layers chosen by the x5 set's culture-general "
              "neurons):\n", "| layers | trained modules | parameters | loss, last 20 steps | BLEnD before -> after | "
              "QNLI before -> after |", "|---|---|---:|---|---|---|"]
    for layers, run in doc["finetune"].items():
        training, evaluation = run["training"], run["evaluation"]
        scores = [f"{e['before']['accuracy']:.3f} -> {e['after']['accuracy']:.3f} (n {e['after']['n']})"
                  for e in (evaluation["blend"], evaluation["qnli"])]
        lines.append(f"| {layers} | {', '.join(training['modules'])} | {training['num_parameters']:,} | "
                     f"{training['loss_last_20_steps']} | {scores[0]} | {scores[1]} |")
    return lines


def tables(names: list[str]) -> None:
    """Print the Markdown tables of RESULTS.md from the findings JSON."""
    for name in names:
        path = RESULTS / f"findings_{name}.json"
        if path.exists():
            doc = _json(path)
            print(f"\n### {name}\n\n```bash\nTOY=~/.cache/neurospec/toy\n" + "\n".join(doc["commands"]) + "\n```")
            print("\n".join(globals()[f"tables_{name}"](doc)))


def main(argv: list[str]) -> None:
    if argv[:1] == ["tables"]:
        tables(argv[1:] or list(STAGES))
        return
    names = list(STAGES) if argv == ["all"] else argv
    unknown = [n for n in names if n not in STAGES]
    if not names or unknown:
        raise SystemExit(f"usage: python benchmarks/findings.py {{{'|'.join(STAGES)}|all}} ...")
    for name in names:
        STAGES[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
