"""Masking evaluation (Yamamoto et al., ICLR 2026): suppress or enhance neuron sets, accuracy per benchmark and group.

    from neurospec.evaluate.masking import masking_conditions, mask_eval
    conditions = masking_conditions(neurons, ["culture-general", "China"], mode="suppress", random=baseline)
    result = mask_eval(model, tok, {"blend": blend_test, "qnli": qnli}, conditions,
                       fmt=blend_prompt_format(), templates=BLEND_TEMPLATES.values(), kinds={"qnli": "nlu"})
    result.summary()           # per condition: cultural vs NLU accuracy change, and the margin over random
    result.related("blend")    # masked group x evaluated group: accuracy change (the "related cultures" matrix)
    result.save("runs/mask")   # mask_eval.json, accuracy.csv, related_<benchmark>.csv

Suppress sets a neuron's site value to 0 (at ``gate_pre``: act(0) * up = 0); enhance multiplies it by
``factor`` (2). Each item is scored with every template; an item's correctness is its mean over
templates, accuracy the mean over items. Scoring rules: ``vocab`` (default, the culture paper's): the
argmax over the whole vocabulary at the answer position, decoded, must be the gold letter, so a masked
model that stops answering with a letter is wrong; ``letter``: the argmax over the option letters only;
``loglik``: the options' log-likelihoods after the bare question (small models). ``vocab`` and ``letter``
come from the same forward pass, so both accuracies are kept side by side (``rules`` in each cell) with
the share of answers that were no option's letter (``non_letter_share``).
Intervals are 95% percentile bootstraps over items; a change is paired (the same items with and
without the edit). Random baselines (conditions ``random<seed>:<group>``) are pooled per group: the
margin of a condition is its change minus the mean change of its group's random conditions, with a
bootstrap interval over items of the per-item difference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import torch

from neurospec.data.items import MCItem
from neurospec.interventions.edits import Edit
from neurospec.util.errors import NeurospecError
from neurospec.evaluate.intervals import bootstrap_mean
from neurospec.evaluate.tables import write_matrix_csv
from neurospec.interventions.targets import target_groups
from neurospec.util.io import atomic_write_json, atomic_write_text
from neurospec.util.progress import progress
from neurospec.data.prompts import PLAIN, PromptFormat
from neurospec.evaluate.scoring import bare_question, choose_by_letter, choose_by_loglikelihood, lettered_prompt

__all__ = ["BASELINE", "MODES", "Conditions", "MaskingResult", "mask_eval", "masking_conditions", "random_group"]

BASELINE = "none"
MODES = ("suppress", "enhance")
SCORINGS = ("vocab", "letter", "loglik")
#: The accuracy rules letter scoring yields, by the name used in cells and CSV columns.
RULES = {"vocab": "full_vocabulary", "letter": "letters_only"}
_RANDOM = re.compile(r"^random(\d+):(.+)$")


def random_group(name: str) -> str | None:
    """The group a ``random<seed>:<group>`` condition stands in for, else None."""
    match = _RANDOM.match(name)
    return match.group(2) if match else None


class Conditions(dict):
    """The conditions of :func:`masking_conditions` (name -> Edit, ``none`` -> None), and the groups left out
    for having no neurons (``empty_groups``: group -> reason)."""

    def __init__(self, conditions: Mapping[str, Edit | None], empty_groups: Mapping[str, str] | None = None) -> None:
        super().__init__(conditions)
        self.empty_groups = dict(empty_groups or {})


def masking_conditions(neurons, groups: Sequence[str] | None = None, *, mode: Literal["suppress", "enhance"] = "suppress",
                       factor: float = 2.0, random=None, sites: Sequence[str] | None = None,
                       random_option: str | None = None) -> dict[str, Edit | None]:
    """``{"none": None, group: Edit, ..., "random<seed>:<group>": Edit, ...}`` for :func:`mask_eval`.

    ``random`` is a NeuronSet of random baselines (e.g. :func:`neurospec.select.culture.select_random_pooled`);
    its groups for the chosen ``groups`` are added, and every chosen group must have at least one (else a
    NeurospecError, naming ``random`` as ``random_option``, e.g. the CLI's ``--random FILE``). A group without
    neurons gets no condition: it is skipped with a warning and kept, with the reason, in the result's
    ``empty_groups`` (:mod:`neurospec.interventions.targets`).
    """
    if mode not in MODES:
        raise NeurospecError(f"mode={mode!r}: use suppress (set to 0) or enhance (multiply by factor)")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
        raise NeurospecError(f"factor {factor!r} is not a finite number; give a real number such as 2")
    for group in groups or ():
        if group not in neurons.groups:
            raise NeurospecError(f"group {group!r} is not in the neuron set (groups: {', '.join(neurons.groups)})")
    targets = target_groups(neurons, groups, verb=f"mask-eval ({mode})")
    chosen = targets.groups

    def edit(source, group: str) -> Edit:
        if mode == "suppress":
            return Edit.zero(source, groups=[group], sites=sites, label=group)
        return Edit.scale(source, factor, groups=[group], sites=sites, label=group)

    conditions = Conditions({BASELINE: None}, targets.empty)
    for group in chosen:
        conditions[group] = edit(neurons, group)
    if random is not None:
        missing = [group for group in chosen if not any(random_group(name) == group for name in random.groups)]
        if missing:
            label = random_option or (f"random ({random.path})" if getattr(random, "path", None) else "random")
            shown = ", ".join(random.groups[:6]) + (", ..." if len(random.groups) > 6 else "") or "none"
            raise NeurospecError(
                f"{label} has no random<seed>:<group> group for {', '.join(missing)} (its groups: {shown}): give random "
                "baselines made for these groups, e.g. by `neurospec select culture --random-seeds N`")
        for name in random.groups:
            if random_group(name) in chosen:
                conditions[name] = edit(random, name)
    return conditions


@dataclass
class MaskingResult:
    """Per condition and benchmark, each item's correctness under each template (templates x items, float)."""

    conditions: list[str]
    benchmarks: dict[str, list[MCItem]]
    correct: dict[str, dict[str, torch.Tensor]]
    templates: list[str]
    kinds: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    resamples: int = 1000
    seed: int = 0
    empty_groups: dict[str, str] = field(default_factory=dict)  # group -> why it has no condition (no neurons)
    by_rule: dict[str, dict[str, dict[str, torch.Tensor]]] = field(default_factory=dict)  # rule -> like `correct`
    non_letter: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # answer was no option's letter

    # ---- per-item views

    def _items_mean(self, condition: str, benchmark: str, group: str | None = None,
                    source: dict[str, dict[str, torch.Tensor]] | None = None) -> torch.Tensor:
        values = (source or self.correct)[condition][benchmark].double().mean(0)  # per item, mean over templates
        if group is None or group == "all":
            return values
        mask = torch.tensor([item.group == group for item in self.benchmarks[benchmark]])
        return values[mask]

    def groups(self, benchmark: str) -> list[str]:
        return sorted({item.group or "none" for item in self.benchmarks[benchmark]})

    def random_conditions(self, group: str) -> list[str]:
        return [c for c in self.conditions if random_group(c) == group]

    # ---- tables

    def cell(self, condition: str, benchmark: str, group: str = "all") -> dict[str, Any]:
        """Accuracy (and its change against ``none``, and the margin over the group's random conditions)."""
        values = self._items_mean(condition, benchmark, group)
        if values.numel() == 0:
            raise NeurospecError(f"benchmark {benchmark!r} has no items of group {group!r}")
        low, high = bootstrap_mean(values, resamples=self.resamples, seed=self.seed)
        row: dict[str, Any] = {"condition": condition, "benchmark": benchmark, "group": group, "n": int(values.numel()),
                               "accuracy": float(values.mean()), "ci95": [low, high]}
        per_template = self.correct[condition][benchmark].double()
        if group != "all":
            mask = torch.tensor([item.group == group for item in self.benchmarks[benchmark]])
            per_template = per_template[:, mask]
        row["per_template"] = dict(zip(self.templates, per_template.mean(1).tolist()))
        if self.by_rule:
            row["rules"] = {}
            for rule, source in self.by_rule.items():
                rule_values = self._items_mean(condition, benchmark, group, source)
                row["rules"][rule] = {"accuracy": float(rule_values.mean())}
                if condition != BASELINE and BASELINE in source:
                    rule_delta = rule_values - self._items_mean(BASELINE, benchmark, group, source)
                    row["rules"][rule]["change"] = float(rule_delta.mean())
            row["non_letter_share"] = float(self._items_mean(condition, benchmark, group, self.non_letter).mean())
        if condition != BASELINE and BASELINE in self.correct:
            delta = values - self._items_mean(BASELINE, benchmark, group)
            row["change"] = float(delta.mean())
            row["change_ci95"] = list(bootstrap_mean(delta, resamples=self.resamples, seed=self.seed))
            randoms = self.random_conditions(condition)
            if randoms:
                random_mean = torch.stack([self._items_mean(r, benchmark, group) for r in randoms]).mean(0)
                margin = values - random_mean
                row["random_change"] = float((random_mean - self._items_mean(BASELINE, benchmark, group)).mean())
                row["margin_over_random"] = float(margin.mean())
                row["margin_ci95"] = list(bootstrap_mean(margin, resamples=self.resamples, seed=self.seed))
        return row

    def table(self, *, by_group: bool = True) -> list[dict[str, Any]]:
        """Every (condition, benchmark, group) cell, ``all`` first per benchmark."""
        rows = []
        for condition in self.conditions:
            for benchmark in self.benchmarks:
                for group in ["all"] + (self.groups(benchmark) if by_group else []):
                    rows.append(self.cell(condition, benchmark, group))
        return rows

    def related(self, benchmark: str, *, value: Literal["change", "accuracy"] = "change") -> dict[str, dict[str, float]]:
        """Masked condition (non-random, not ``none``) x evaluated group of ``benchmark``: accuracy change."""
        out: dict[str, dict[str, float]] = {}
        for condition in self.conditions:
            if condition == BASELINE or random_group(condition) is not None:
                continue
            out[condition] = {}
            for group in self.groups(benchmark):
                values = self._items_mean(condition, benchmark, group)
                if value == "change":
                    values = values - self._items_mean(BASELINE, benchmark, group)
                out[condition][group] = float(values.mean())
        return out

    def summary(self) -> list[dict[str, Any]]:
        """Per condition: the mean accuracy change over cultural and over NLU benchmarks (``all`` cells)."""
        rows = []
        for condition in self.conditions:
            if condition == BASELINE:
                continue
            row: dict[str, Any] = {"condition": condition}
            for kind in sorted(set(self.kinds.values())):
                cells = [self.cell(condition, b, "all") for b in self.benchmarks if self.kinds.get(b) == kind]
                row[f"{kind}_change"] = sum(c["change"] for c in cells) / len(cells)
                if all("margin_over_random" in c for c in cells):
                    row[f"{kind}_margin_over_random"] = sum(c["margin_over_random"] for c in cells) / len(cells)
            rows.append(row)
        return rows

    def save(self, folder: str | Path) -> Path:
        """``mask_eval.json`` (settings, cells, summary, related matrices), ``accuracy.csv``, ``related_<benchmark>.csv``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cells = self.table()
        related = {b: self.related(b) for b in self.benchmarks}
        atomic_write_json(folder / "mask_eval.json", {
            "format": "neurospec.mask_eval", "version": 1, "settings": self.settings, "conditions": self.conditions,
            "benchmarks": {b: {"kind": self.kinds.get(b), "items": len(items), "groups": self.groups(b)}
                           for b, items in self.benchmarks.items()},
            "templates": self.templates, "summary": self.summary(), "cells": cells, "related": related,
            "empty_groups": self.empty_groups})
        header = ["condition", "benchmark", "group", "n", "accuracy", "ci95_low", "ci95_high", "change",
                  "change_ci95_low", "change_ci95_high", "margin_over_random", "margin_ci95_low", "margin_ci95_high",
                  *[f"accuracy_{rule}" for rule in self.by_rule], *(["non_letter_share"] if self.by_rule else [])]
        lines = [",".join(header)]
        for c in cells:
            values = [c["condition"], c["benchmark"], c["group"], c["n"], c["accuracy"], *c["ci95"], c.get("change"),
                      *(c.get("change_ci95") or [None, None]), c.get("margin_over_random"),
                      *(c.get("margin_ci95") or [None, None]),
                      *[c["rules"][rule]["accuracy"] for rule in self.by_rule],
                      *([c["non_letter_share"]] if self.by_rule else [])]
            lines.append(",".join("" if v is None else (f"{v:.6g}" if isinstance(v, float) else _csv(str(v)))
                                  for v in values))
        atomic_write_text(folder / "accuracy.csv", "\n".join(lines) + "\n")
        for benchmark, matrix in related.items():
            if matrix:
                write_matrix_csv(folder / f"related_{_safe(benchmark)}.csv", list(matrix), self.groups(benchmark), matrix,
                                 corner="masked\\evaluated")
        return folder


def _csv(text: str) -> str:
    return f'"{text}"' if "," in text or '"' in text else text


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _template_name(template: Callable, index: int) -> str:
    return str(getattr(template, "name", None) or getattr(template, "__name__", None) or f"template{index}")


def mask_eval(model, tokenizer, benchmarks: Mapping[str, Sequence[MCItem]], conditions: Mapping[str, Edit | None], *,
              scoring: Literal["vocab", "letter", "loglik"] = "vocab", fmt: PromptFormat = PLAIN,
              templates: Iterable[Callable[[MCItem], str]] | None = None, letters: str = "ABCDEFGHIJ",
              kinds: Mapping[str, str] | None = None, batch_size: int = 8, resamples: int = 1000, seed: int = 0,
              quiet: bool = False) -> MaskingResult:
    """Score every benchmark under every condition (and template); see the module docstring.

    ``kinds`` maps a benchmark to ``"cultural"`` or ``"nlu"`` for the summary (default cultural).
    ``scoring``: ``vocab`` (the paper's: the decoded full-vocabulary argmax must be the gold letter),
    ``letter`` (argmax over the option letters only) or ``loglik`` (the options' log-likelihoods as
    continuations of the bare question, for models too small to read lettered options).
    """
    if scoring not in SCORINGS:
        raise NeurospecError(f"scoring={scoring!r}: use vocab (the paper's full-vocabulary argmax), letter (argmax "
                             f"of the option letters only) or loglik")
    if not benchmarks:
        raise NeurospecError("no benchmarks to evaluate: give at least one item set")
    for name, items in benchmarks.items():
        if not items:
            raise NeurospecError(f"benchmark {name!r} has no items (check its data and filters)")
    empty_groups = dict(getattr(conditions, "empty_groups", {}))
    if BASELINE not in conditions:
        conditions = {BASELINE: None, **conditions}
    chosen = list(templates) if templates is not None else [lettered_prompt]
    if scoring == "loglik":
        chosen = [bare_question]
    names = [_template_name(t, i) for i, t in enumerate(chosen)]
    lettered = scoring in RULES
    rules = list(RULES.values()) if lettered else ["loglik"]
    tables: dict[str, dict[str, dict[str, torch.Tensor]]] = {name: {} for name in [*rules, "non_letter"]}
    total = len(conditions) * len(benchmarks) * len(chosen)
    with progress("mask-eval", total=total, unit="runs", quiet=quiet) as bar:
        for condition, edit in conditions.items():
            for table in tables.values():
                table[condition] = {}
            for benchmark, items in benchmarks.items():
                rows: dict[str, list[torch.Tensor]] = {name: [] for name in tables}
                for template in chosen:
                    if lettered:
                        predictions = choose_by_letter(model, tokenizer, list(items), fmt=fmt, prompt=template,
                                                       letters=letters, batch_size=batch_size, intervention=edit)
                        rows["full_vocabulary"].append(torch.tensor([p.correct_vocab for p in predictions]))
                        rows["letters_only"].append(torch.tensor([p.correct for p in predictions]))
                        rows["non_letter"].append(torch.tensor([p.vocab_choice is None for p in predictions]))
                    else:
                        predictions = choose_by_loglikelihood(model, tokenizer, list(items), fmt=fmt,
                                                              batch_size=batch_size, intervention=edit)
                        rows["loglik"].append(torch.tensor([p.correct for p in predictions]))
                    bar.advance(1, condition=condition, benchmark=benchmark)
                for name, values in rows.items():
                    if values:
                        tables[name][condition][benchmark] = torch.stack(values)
    correct = tables[RULES.get(scoring, "loglik")]
    by_rule = {rule: tables[rule] for rule in RULES.values()} if lettered else {}
    non_letter = tables["non_letter"] if lettered else {}
    settings = {"scoring": scoring, "batch_size": batch_size, "resamples": resamples, "seed": seed,
                "conditions": {name: (None if edit is None else {"op": edit.op, "factor": edit.factor,
                                                                 "neurons": edit.count})
                               for name, edit in conditions.items()}}
    kinds = {b: (kinds or {}).get(b, "cultural") for b in benchmarks}
    return MaskingResult(list(conditions), {b: list(items) for b, items in benchmarks.items()}, correct, names, kinds,
                         settings, resamples, seed, empty_groups, by_rule, non_letter)
