"""Language Steering Shift (Rahmanisa et al., 2025): does intervening on t's neurons move answers toward t?

    from neurospec.evaluate.lss import lss_matrix, steering_shift
    cell = steering_shift(model, tok, items, "eng_Latn", "fra_Latn", intervention=edit)   # one s -> t
    cell.lss, cell.ci95, cell.mean_d0, cell.excluded
    matrix = lss_matrix(model, tok, items, lape, recipe="set:p_max", stats=stats, controls=("random", "other"))
    matrix.lss["eng_Latn"]["fra_Latn"], matrix.mean_offdiagonal, matrix.save("runs/lss")

For source s, target t and item i with a prompt in s and answers ``o_s``, ``o_t``:
``D_i = log P(o_t | prompt_s) - log P(o_s | prompt_s)`` (summed token log-probabilities of the answer
as a continuation), ``D0_i`` without and ``DI_i`` with the intervention, and
``LSS(s -> t) = mean_i 1[DI_i - D0_i > 0]`` (METHODS section 2). Items whose two answers tokenise
identically after the prompt are excluded (and counted): their D is 0 whatever the model does.
Intervals are percentile bootstraps over items (seeded). The mean D0 is negative when the cut is
sound (the source answer is the likelier one without intervention); ``degenerate`` flags the opposite.

Controls, each a paired comparison on the same items (margin = LSS of t's neurons minus the
control's LSS, bootstrap interval of the per-item difference of the indicators):
``random``: as many random neurons per layer as t's set (seeded), given the same recipe with t's
values at those neurons ("random neurons set to their own p_max"); ``other``: the neurons of
another language u (the next group in order that is neither s nor t) with u's own values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from neurospec.data.lss_items import ParallelItem
from neurospec.util.errors import NeurospecError
from neurospec.evaluate.intervals import bootstrap_clustered_mean, bootstrap_mean
from neurospec.evaluate.tables import write_matrix_csv
from neurospec.interventions.targets import target_groups
from neurospec.util.io import atomic_write_json
from neurospec.data.languages import language_of
from neurospec.util.progress import progress
from neurospec.data.prompts import PLAIN, EncodedPrompt, PromptFormat, encode, ensure_pad_token
from neurospec.interventions.recipes import Recipe, match_group
from neurospec.evaluate.scoring import score_encoded

CONTROLS: tuple[str, ...] = ("random", "other")


def _continuation_ids(encoded: EncodedPrompt) -> tuple[int, ...]:
    return tuple(i for i, role in zip(encoded.input_ids, encoded.roles) if role == "continuation")


@dataclass
class PairRequests:
    """The encoded requests of one (source, target) pair: per usable item, prompt_s + o_t and prompt_s + o_s."""

    source: str
    target: str
    ids: list[str]
    to_target: list[EncodedPrompt]
    to_source: list[EncodedPrompt]
    excluded: list[str]
    missing: int

    def scores(self, model, pad_id: int, intervention, batch_size: int) -> torch.Tensor:
        """D_i = log P(o_t | prompt_s) - log P(o_s | prompt_s) per usable item, float64."""
        scored = score_encoded(model, self.to_target + self.to_source, pad_id, batch_size=batch_size,
                               intervention=intervention)
        values = torch.tensor([s.logprob for s in scored], dtype=torch.float64)
        n = len(self.ids)
        return values[:n] - values[n:]


def pair_requests(tokenizer, items: Sequence[ParallelItem], source: str, target: str, *,
                  fmt: PromptFormat = PLAIN) -> PairRequests:
    """Encode the usable items of s -> t; items lacking either language are counted in ``missing``."""
    ids, to_target, to_source, excluded, missing = [], [], [], [], 0
    for item in items:
        if source not in item.prompts or source not in item.answers or target not in item.answers:
            missing += 1
            continue
        a = encode(tokenizer, item.prompts[source], fmt, item.answers[target])
        b = encode(tokenizer, item.prompts[source], fmt, item.answers[source])
        if _continuation_ids(a) == _continuation_ids(b):
            excluded.append(item.id)
            continue
        ids.append(item.id)
        to_target.append(a)
        to_source.append(b)
    return PairRequests(source, target, ids, to_target, to_source, excluded, missing)


@dataclass
class ShiftCell:
    """LSS of one source -> target pair, with D0 and DI per item and the controls' paired margins."""

    source: str
    target: str
    ids: list[str]
    d0: torch.Tensor
    di: torch.Tensor
    excluded: int
    missing: int = 0
    bootstrap: int = 1000
    seed: int = 0
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def shifted(self) -> torch.Tensor:
        """1 where DI - D0 > 0, per item (float64)."""
        return self.shifted_by(self.di)

    def shifted_by(self, di) -> torch.Tensor:
        """1 where another intervention's DI (a control's) exceeds this cell's D0, per item (float64)."""
        return (torch.as_tensor(di, dtype=torch.float64) - self.d0 > 0).to(torch.float64)

    @property
    def lss(self) -> float:
        return float(self.shifted.mean()) if self.n else float("nan")

    @property
    def ci95(self) -> tuple[float, float] | None:
        return bootstrap_mean(self.shifted, resamples=self.bootstrap, seed=self.seed) if self.n else None

    @property
    def mean_d0(self) -> float:
        return float(self.d0.mean()) if self.n else float("nan")

    def add_control(self, name: str, di: torch.Tensor, **info: Any) -> None:
        """Record a control's DI on the same items: its LSS and the paired margin of this cell over it."""
        other = self.shifted_by(di)
        difference = self.shifted - other
        self.controls[name] = {
            **info, "lss": float(other.mean()), "ci95": bootstrap_mean(other, resamples=self.bootstrap, seed=self.seed),
            "margin": float(difference.mean()),
            "margin_ci95": bootstrap_mean(difference, resamples=self.bootstrap, seed=self.seed),
            "di": di.tolist(),
        }

    def to_json(self, items: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source, "target": self.target, "n": self.n, "excluded_identical": self.excluded,
            "missing": self.missing, "lss": self.lss, "ci95": self.ci95, "mean_d0": self.mean_d0,
            "mean_di": float(self.di.mean()) if self.n else None,
        }
        out["controls"] = {name: {k: v for k, v in c.items() if items or k != "di"} for name, c in self.controls.items()}
        if items:
            out.update(ids=self.ids, d0=self.d0.tolist(), di=self.di.tolist())
        return out


def steering_shift(model, tokenizer, items: Sequence[ParallelItem], source: str, target: str, *, intervention,
                   fmt: PromptFormat = PLAIN, batch_size: int = 8, bootstrap: int = 1000, seed: int = 0) -> ShiftCell:
    """LSS(source -> target) of one intervention (an Edit, a list of them or an InterventionSpec)."""
    requests = pair_requests(tokenizer, items, source, target, fmt=fmt)
    pad_id = ensure_pad_token(tokenizer)
    if not requests.ids:
        raise NeurospecError(_no_items(requests))
    d0 = requests.scores(model, pad_id, None, batch_size)
    di = requests.scores(model, pad_id, intervention, batch_size)
    return ShiftCell(source, target, requests.ids, d0, di, len(requests.excluded), requests.missing, bootstrap, seed)


def _no_items(requests: PairRequests) -> str:
    return (f"no usable item for {requests.source} -> {requests.target}: {requests.missing} lack one of the two "
            f"languages and {len(requests.excluded)} have answers that tokenise identically")


@dataclass
class LSSMatrix:
    """All source -> target cells of one recipe (the diagonal is undefined and left out)."""

    sources: list[str]
    targets: list[str]
    cells: dict[tuple[str, str], ShiftCell]
    recipe: Recipe
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # target group -> why it has no column (no neurons)

    @property
    def lss(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {s: {} for s in self.sources}
        for (s, t), cell in self.cells.items():
            out[s][t] = cell.lss
        return out

    @property
    def mean_offdiagonal(self) -> float:
        """The mean LSS over the cells (the amplification paper's criterion for the best setting)."""
        values = [cell.lss for cell in self.cells.values() if cell.n]
        return sum(values) / len(values) if values else float("nan")

    @property
    def mean_d0(self) -> float:
        """Mean D0 over every usable item of every cell; negative for a sound cut."""
        values = torch.cat([cell.d0 for cell in self.cells.values()]) if self.cells else torch.zeros(0)
        return float(values.mean()) if values.numel() else float("nan")

    def control_margins(self, name: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {s: {} for s in self.sources}
        for (s, t), cell in self.cells.items():
            if name in cell.controls:
                out[s][t] = cell.controls[name]["margin"]
        return out

    def pooled(self) -> dict[str, Any]:
        """Every cell's items together: the LSS and, per control, its LSS and the paired margin over it.

        Intervals resample items (sentence ids), each with its rows in every cell, since one item
        appears in many cells. A control's margin pools only the cells that have that control.
        """
        cells = [cell for cell in self.cells.values() if cell.n]
        if not cells:
            return {}
        ids = [item for cell in cells for item in cell.ids]
        shifted = torch.cat([cell.shifted for cell in cells])
        out: dict[str, Any] = {"n": len(ids), "items": len(set(ids)), "lss": float(shifted.mean()),
                               "ci95": bootstrap_clustered_mean(shifted, ids, resamples=cells[0].bootstrap,
                                                                seed=cells[0].seed), "controls": {}}
        for name in sorted({name for cell in cells for name in cell.controls}):
            having = [cell for cell in cells if name in cell.controls]
            ids = [item for cell in having for item in cell.ids]
            other = torch.cat([cell.shifted_by(cell.controls[name]["di"]) for cell in having])
            difference = torch.cat([cell.shifted for cell in having]) - other
            out["controls"][name] = {
                "cells": len(having), "lss": float(other.mean()), "margin": float(difference.mean()),
                "margin_ci95": bootstrap_clustered_mean(difference, ids, resamples=having[0].bootstrap,
                                                        seed=having[0].seed)}
        return out

    def to_json(self, items: bool = True) -> dict[str, Any]:
        return {
            "format": "neurospec.lss_matrix", "version": 1, "recipe": self.recipe.to_json(),
            "sources": self.sources, "targets": self.targets, "lss": self.lss,
            "mean_offdiagonal": self.mean_offdiagonal, "mean_d0": self.mean_d0, "degenerate": not self.mean_d0 < 0,
            "pooled": self.pooled(), "empty_groups": self.empty_groups,
            "cells": [cell.to_json(items) for cell in self.cells.values()], "settings": self.settings,
        }

    def save(self, folder: str | Path, stem: str = "lss") -> Path:
        """``lss.json`` (every item's D0/DI) and ``lss.csv`` (sources x targets), plus a margin CSV per control."""
        folder = Path(folder)
        write_matrix_csv(folder / f"{stem}.csv", self.sources, self.targets, self.lss, corner="source")
        names = sorted({name for cell in self.cells.values() for name in cell.controls})
        for name in names:
            write_matrix_csv(folder / f"{stem}_margin_{name}.csv", self.sources, self.targets,
                             self.control_margins(name), corner="source")
        return atomic_write_json(folder / f"{stem}.json", self.to_json())


def _other_group(groups: Sequence[str], source: str, target: str) -> str | None:
    start = groups.index(target)
    for step in range(1, len(groups)):
        candidate = groups[(start + step) % len(groups)]
        if candidate not in (source, target):
            return candidate
    return None


def lss_matrix(model, tokenizer, items: Sequence[ParallelItem], neurons, *, recipe: Recipe | str = "set:p_max",
               stats=None, sources: Sequence[str] | None = None, targets: Sequence[str] | None = None,
               controls: Sequence[str] = (), random_seed: int = 0, fmt: PromptFormat = PLAIN, batch_size: int = 8,
               bootstrap: int = 1000, seed: int = 0,
               on_cell: Callable[[ShiftCell], None] | None = None, quiet: bool = True) -> LSSMatrix:
    """LSS of every source -> target pair, intervening on the target group's neurons with ``recipe``.

    Sources and targets are language keys present both in the items and as groups of ``neurons``
    (all of them by default); a target whose group has no neurons is skipped and listed in ``empty_groups``
    (:mod:`neurospec.interventions.targets`). ``controls`` is any of ``random`` and ``other`` (module docstring).
    """
    from neurospec.select import select_random
    from neurospec.core.sites import site_map

    recipe = Recipe.parse(recipe)
    unknown = [c for c in controls if c not in CONTROLS]
    if unknown:
        raise NeurospecError(f"unknown control(s) {', '.join(unknown)}: use {', '.join(CONTROLS)}")
    neurons.validate_for(site_map(model).shape)
    in_items = sorted({lang for item in items for lang in item.languages})
    groups = {g: language_of(g) for g in neurons.groups}
    default = [groups[g] for g in neurons.groups if groups[g] in in_items]
    sources = [_item_language(s, in_items) for s in sources] if sources else default
    explicit = bool(targets)
    targets = [_item_language(t, in_items) for t in targets] if targets else default
    if not sources or not targets:
        raise NeurospecError(f"no language is both in the items ({', '.join(in_items)}) and a group of the neuron set "
                             f"({', '.join(neurons.groups)})")
    group_of = {target: match_group(target, neurons.groups) for target in targets}
    named = list(group_of.values())
    chosen = target_groups(neurons, named if explicit else None, verb="lss", default=named)
    targets = [target for target in targets if group_of[target] in chosen.groups]
    with_neurons = [group for group in neurons.groups if not neurons.is_empty(group)]
    edits = {target: recipe.edit(neurons, group_of[target], stats) for target in targets}  # bad input fails here
    random_set = select_random(neurons, seed=random_seed) if "random" in controls else None
    pad_id = ensure_pad_token(tokenizer)
    cells: dict[tuple[str, str], ShiftCell] = {}
    pairs = sum(1 for source in sources for target in targets if target != source)
    with progress(f"lss {recipe.name}", total=pairs, unit="cells", quiet=quiet) as bar:
        for source in sources:
            for target in targets:
                if target == source:
                    continue
                requests = pair_requests(tokenizer, items, source, target, fmt=fmt)
                if not requests.ids:
                    raise NeurospecError(_no_items(requests))
                group = group_of[target]
                d0 = requests.scores(model, pad_id, None, batch_size)
                di = requests.scores(model, pad_id, edits[target], batch_size)
                cell = ShiftCell(source, target, requests.ids, d0, di, len(requests.excluded), requests.missing,
                                 bootstrap, seed)
                if random_set is not None:
                    edit = recipe.edit(random_set, group, stats)
                    cell.add_control("random", requests.scores(model, pad_id, edit, batch_size), seed=random_seed)
                if "other" in controls:
                    source_group = next((g for g, lang in groups.items() if lang == source), None)
                    other = _other_group(with_neurons, source_group or "", group)
                    if other is not None:
                        edit = recipe.edit(neurons, other, stats)
                        cell.add_control("other", requests.scores(model, pad_id, edit, batch_size), group=other)
                cells[(source, target)] = cell
                bar.advance(1)
                if on_cell:
                    on_cell(cell)
    settings = {"controls": list(controls), "random_seed": random_seed, "bootstrap": bootstrap, "seed": seed,
                "items": len(items)}
    return LSSMatrix(sources, targets, cells, recipe, settings, chosen.empty)


def _item_language(name: str, in_items: Sequence[str]) -> str:
    key = language_of(name)
    if key not in in_items:
        raise NeurospecError(f"language {name!r} is not in the items; they hold {', '.join(in_items)}")
    return key
