"""Masking evaluation (Yamamoto et al., ICLR 2026): suppress or enhance neuron sets, accuracy per benchmark and group.

    from neurospec.evaluate.masking import masking_conditions, mask_eval
    conditions = masking_conditions(neurons, ["culture-general", "China"], mode="suppress", random=baseline)
    result = mask_eval(model, tok, {"blend": blend_test, "qnli": qnli}, conditions,
                       fmt=blend_prompt_format(), templates=BLEND_TEMPLATES.values(), kinds={"qnli": "nlu"})
    result.summary()           # per condition: cultural vs NLU accuracy change, and the margin over random
    result.related("blend")    # masked group x evaluated group: accuracy change (the "related cultures" matrix)
    result.save("runs/mask")   # mask_eval.json, accuracy.csv, related_<benchmark>.csv

Suppress sets a neuron's site value to 0 (at ``gate_pre``: act(0) * up = 0); enhance multiplies it by
``factor`` (2): the recipes ``zero`` and ``scale*factor``, built like every verb's conditions
(:mod:`neurospec.interventions.conditions`). Each item is scored with every template; an item's correctness is its mean over
templates, accuracy the mean over items. Scoring rules: ``vocab`` (default, the culture paper's): the
argmax over the whole vocabulary at the answer position, decoded, must be the gold letter, so a masked
model that stops answering with a letter is wrong; ``letter``: the argmax over the option letters only;
``loglik``: the options' log-likelihoods after the bare question (small models). ``vocab`` and ``letter``
come from the same forward pass, so both accuracies are kept side by side (``rules`` in each cell) with
the share of answers that were no option's letter (``non_letter_share``).
Random baselines (conditions ``random<seed>:<group>``) are pooled per group: the margin of a condition is
its change minus the mean change of its group's random conditions (on each item, its correctness minus the
random conditions' mean correctness).
Intervals (95%; mask_eval.json's ``interval_method`` names each kind's method): with one template an item's
correctness is 0 or 1, so accuracy gets Wilson's score interval, and the change (against ``none``) and the
margin (against the group's random condition, when it has one) Newcombe's paired score interval on the same
items; none of them collapses at 0 or 1 as a percentile bootstrap of 0/1 values does. With several templates
(an item's correctness is a mean) or several random conditions (their mean), the interval is a seeded
percentile bootstrap over items, of the per-item difference for a change or a margin (paired).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import torch

from neurospec.core.edits import Edit
from neurospec.data.items import MCItem
from neurospec.data.prompts import PLAIN, PromptFormat
from neurospec.evaluate.intervals import NEWCOMBE_PAIRED, WILSON, bootstrap_mean, newcombe_paired, wilson
from neurospec.evaluate.scoring import bare_question, choose_by_letter, choose_by_loglikelihood, lettered_prompt
from neurospec.interventions.conditions import BASELINE, MODES, build_conditions, mode_recipe, random_group
from neurospec.interventions.recipes import Recipe
from neurospec.results.masking import MaskBenchmark, MaskCell, MaskingRecord, MaskSummaryRow, RuleAccuracy
from neurospec.results.tables import write_matrix_csv
from neurospec.util.errors import NeurospecError
from neurospec.util.io import atomic_write_json, atomic_write_text
from neurospec.util.progress import progress

__all__ = ["BASELINE", "MODES", "Conditions", "MaskingResult", "mask_eval", "masking_conditions", "random_group"]

SCORINGS = ("vocab", "letter", "loglik")
#: The accuracy rules letter scoring yields, by the name used in cells and CSV columns.
RULES = {"vocab": "full_vocabulary", "letter": "letters_only"}
ITEM_BOOTSTRAP = "percentile bootstrap over items"
PAIRED_ITEM_BOOTSTRAP = "paired percentile bootstrap over items"


class Conditions(dict):
    """The conditions of :func:`masking_conditions` (name -> Edit, ``none`` -> None), and the groups left out
    for having no neurons (``empty_groups``: group -> reason)."""

    def __init__(self, conditions: Mapping[str, Edit | None], empty_groups: Mapping[str, str] | None = None) -> None:
        super().__init__(conditions)
        self.empty_groups = dict(empty_groups or {})


def masking_conditions(neurons, groups: Sequence[str] | None = None, *, mode: Literal["suppress", "enhance"] = "suppress",
                       factor: float = 2.0, random=None, sites: Sequence[str] | None = None,
                       random_option: str | None = None, recipe: Recipe | str | None = None,
                       random_seeds: Sequence[int] = (), stats=None) -> dict[str, Edit | None]:
    """``{"none": None, group: Edit, ..., "random<seed>:<group>": Edit, ...}`` for :func:`mask_eval`.

    ``recipe`` (any intervention recipe, e.g. ``zero`` or ``scale*2``) replaces ``mode`` and ``factor`` (masking's
    names of ``zero`` and ``scale*FACTOR``); ``random_seeds`` also draws size-matched random groups, as ppl does.

    ``random`` is a NeuronSet of random baselines (e.g. :func:`neurospec.select.culture.select_random_pooled`);
    its groups for the chosen ``groups`` are added, and every chosen group must have at least one (else a
    NeurospecError, naming ``random`` as ``random_option``, e.g. the CLI's ``--random-neurons FILE``). A group without
    neurons gets no condition: it is skipped with a warning and kept, with the reason, in the result's
    ``empty_groups`` (:mod:`neurospec.interventions.targets`).
    """
    label = mode if recipe is None else Recipe.parse(recipe, "--recipe").name
    recipe = mode_recipe(mode, factor) if recipe is None else Recipe.parse(recipe, "--recipe")
    built = build_conditions(neurons, recipe, groups, verb=f"mask-eval ({label})", random_set=random,
                             random_option=random_option, random_seeds=random_seeds, stats=stats, sites=sites,
                             exact_names=True)
    return Conditions(built.edits(), built.empty)


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

    def cell_record(self, condition: str, benchmark: str, group: str = "all") -> MaskCell:
        """Accuracy (and its change against ``none``, and the margin over the group's random conditions)."""
        values = self._items_mean(condition, benchmark, group)
        if values.numel() == 0:
            raise NeurospecError(f"benchmark {benchmark!r} has no items of group {group!r}")
        per_template = self.correct[condition][benchmark].double()
        if group != "all":
            mask = torch.tensor([item.group == group for item in self.benchmarks[benchmark]])
            per_template = per_template[:, mask]
        cell = MaskCell(condition, benchmark, group, int(values.numel()), float(values.mean()),
                        self.accuracy_interval(values), dict(zip(self.templates, per_template.mean(1).tolist())))
        if self.by_rule:
            cell.rules = {rule: self.rule_accuracy(condition, benchmark, group, source)
                          for rule, source in self.by_rule.items()}
            cell.non_letter_share = float(self._items_mean(condition, benchmark, group, self.non_letter).mean())
        if condition != BASELINE and BASELINE in self.correct:
            baseline = self._items_mean(BASELINE, benchmark, group)
            cell.change = float((values - baseline).mean())
            cell.change_ci95 = self.paired_interval(values, baseline)
            randoms = self.random_conditions(condition)
            if randoms:
                random_mean = torch.stack([self._items_mean(r, benchmark, group) for r in randoms]).mean(0)
                cell.random_change = float((random_mean - baseline).mean())
                cell.margin_over_random = float((values - random_mean).mean())
                cell.margin_ci95 = self.paired_interval(values, random_mean, single=len(randoms) == 1)
        return cell

    @property
    def binary_items(self) -> bool:
        """Whether an item's correctness is 0 or 1 (one template), not a mean over templates."""
        return len(self.templates) == 1

    def accuracy_interval(self, values: torch.Tensor) -> tuple[float, float]:
        """Wilson's interval of the items' accuracy when each is 0 or 1, else a bootstrap over items."""
        if self.binary_items:
            return wilson(int(values.sum()), int(values.numel()))
        return bootstrap_mean(values, resamples=self.resamples, seed=self.seed)

    def paired_interval(self, values: torch.Tensor, other: torch.Tensor, single: bool = True) -> tuple[float, float]:
        """The interval of ``mean(values) - mean(other)`` on the same items: Newcombe's paired score interval when
        both are 0/1 per item (one template, ``single`` condition on the other side), else the bootstrap over items
        of the per-item difference."""
        if self.binary_items and single:
            return newcombe_paired(values.tolist(), other.tolist())
        return bootstrap_mean(values - other, resamples=self.resamples, seed=self.seed)

    def interval_method(self) -> dict[str, str]:
        """The method of each kind of interval (mask_eval.json's ``interval_method``): ``accuracy``, ``change``,
        ``margin_over_random`` (only with random baselines; both methods, ``;``-separated, where groups differ)."""
        if self.binary_items:
            methods = {"accuracy": WILSON, "change": NEWCOMBE_PAIRED}
        else:
            methods = {"accuracy": ITEM_BOOTSTRAP + self.averaged, "change": PAIRED_ITEM_BOOTSTRAP + self.averaged}
        randoms = {len(self.random_conditions(c)) for c in self.conditions if c != BASELINE and random_group(c) is None}
        margins = sorted({self.margin_method(n) for n in randoms if n})
        if margins:
            methods["margin_over_random"] = "; ".join(margins)
        return methods

    @property
    def averaged(self) -> str:
        """What an item's correctness is, when it is a mean (several templates); empty with one template."""
        return "" if self.binary_items else f" (an item's correctness: its mean over {len(self.templates)} templates)"

    def margin_method(self, randoms: int) -> str:
        """The margin's interval method for a group with ``randoms`` random conditions (:meth:`paired_interval`)."""
        if self.binary_items and randoms == 1:
            return f"{NEWCOMBE_PAIRED} against the group's random condition"
        return f"{PAIRED_ITEM_BOOTSTRAP} of the difference from the group's random conditions' mean{self.averaged}"

    def rule_accuracy(self, condition: str, benchmark: str, group: str,
                      source: dict[str, dict[str, torch.Tensor]]) -> RuleAccuracy:
        """Accuracy by one scoring rule (``source``: its correctness, like ``correct``), and its change."""
        values = self._items_mean(condition, benchmark, group, source)
        change = None
        if condition != BASELINE and BASELINE in source:
            change = float((values - self._items_mean(BASELINE, benchmark, group, source)).mean())
        return RuleAccuracy(float(values.mean()), change)

    def cell(self, condition: str, benchmark: str, group: str = "all") -> dict[str, Any]:
        """:meth:`cell_record` as mask_eval.json holds it."""
        return self.cell_record(condition, benchmark, group).to_json()

    def cell_records(self, *, by_group: bool = True) -> list[MaskCell]:
        """Every (condition, benchmark, group) cell, ``all`` first per benchmark."""
        return [self.cell_record(condition, benchmark, group) for condition in self.conditions
                for benchmark in self.benchmarks for group in ["all"] + (self.groups(benchmark) if by_group else [])]

    def table(self, *, by_group: bool = True) -> list[dict[str, Any]]:
        """:meth:`cell_records` as mask_eval.json holds them."""
        return [cell.to_json() for cell in self.cell_records(by_group=by_group)]

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

    def summary_records(self) -> list[MaskSummaryRow]:
        """Per condition: the mean accuracy change over cultural and over NLU benchmarks (``all`` cells)."""
        rows = []
        for condition in self.conditions:
            if condition == BASELINE:
                continue
            row = MaskSummaryRow(condition, {}, {})
            for kind in sorted(set(self.kinds.values())):
                cells = [self.cell_record(condition, b, "all") for b in self.benchmarks if self.kinds.get(b) == kind]
                row.changes[kind] = sum(c.change for c in cells) / len(cells)
                if all(c.margin_over_random is not None for c in cells):
                    row.margins[kind] = sum(c.margin_over_random for c in cells) / len(cells)
            rows.append(row)
        return rows

    def summary(self) -> list[dict[str, Any]]:
        """:meth:`summary_records` as mask_eval.json holds them."""
        return [row.to_json() for row in self.summary_records()]

    def record(self) -> MaskingRecord:
        """What mask_eval.json holds (:class:`neurospec.results.masking.MaskingRecord`)."""
        benchmarks = {b: MaskBenchmark(self.kinds.get(b), len(items), self.groups(b)) for b, items in self.benchmarks.items()}
        return MaskingRecord(self.conditions, benchmarks, self.templates, self.summary_records(), self.cell_records(),
                             {b: self.related(b) for b in self.benchmarks}, self.settings, self.empty_groups,
                             interval_method=self.interval_method())

    def save(self, folder: str | Path) -> Path:
        """``mask_eval.json`` (settings, cells, summary, related matrices), ``accuracy.csv``, ``related_<benchmark>.csv``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        record = self.record()
        atomic_write_json(folder / "mask_eval.json", record.to_json())
        header = ["condition", "benchmark", "group", "n", "accuracy", "ci95_low", "ci95_high", "change",
                  "change_ci95_low", "change_ci95_high", "margin_over_random", "margin_ci95_low", "margin_ci95_high",
                  *[f"accuracy_{rule}" for rule in self.by_rule], *(["non_letter_share"] if self.by_rule else [])]
        lines = [",".join(header)]
        for c in record.cells:
            values = [c.condition, c.benchmark, c.group, c.n, c.accuracy, *c.ci95, c.change,
                      *(c.change_ci95 or [None, None]), c.margin_over_random, *(c.margin_ci95 or [None, None]),
                      *[c.rules[rule].accuracy for rule in self.by_rule],
                      *([c.non_letter_share] if self.by_rule else [])]
            lines.append(",".join("" if v is None else (f"{v:.6g}" if isinstance(v, float) else _csv(str(v)))
                                  for v in values))
        atomic_write_text(folder / "accuracy.csv", "\n".join(lines) + "\n")
        for benchmark, matrix in record.related.items():
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
                    bar.advance(1, items=len(items), condition=condition, benchmark=benchmark)
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
