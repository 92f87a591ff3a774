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
The mean D0 is negative when the cut is sound (the source answer is the likelier one without
intervention); ``degenerate`` flags the opposite.

Intervals (95%, named in lss.json's ``interval_method``): a cell's LSS and a control's LSS are shares
of independent items, with Wilson score intervals (which keep a width at 0/n and n/n, where a
percentile bootstrap collapses to [0, 0] or [1, 1]); a cell's margin over a control is a difference of
two shares on the same items, with Newcombe's paired score interval; pooled over cells, where an item
appears in many cells, the LSS gets a Wilson interval with the number of distinct items as the trials
(conservative: it holds however alike an item's cells are) and a margin a percentile bootstrap that
resamples items with all their cells (seeded by ``seed``, ``bootstrap`` resamples).

Controls, each a paired comparison on the same items (margin = LSS of t's neurons minus the
control's LSS):
``random``: as many random neurons per layer as t's set (seeded), given the same recipe with t's
values at those neurons ("random neurons set to their own p_max"); ``other``: the neurons of
another language u (the next group in order that is neither s nor t) with u's own values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from neurospec.data.languages import language_of
from neurospec.data.lss_items import ParallelItem
from neurospec.data.prompts import PLAIN, EncodedPrompt, PromptFormat, encode, ensure_pad_token
from neurospec.evaluate.intervals import (
    CLUSTERED_BOOTSTRAP,
    NEWCOMBE_PAIRED,
    WILSON,
    bootstrap_clustered_mean,
    newcombe_paired,
    wilson,
    wilson_share,
)
from neurospec.evaluate.scoring import score_encoded
from neurospec.interventions.conditions import build_conditions
from neurospec.interventions.recipes import Recipe, match_group
from neurospec.results.lss import LSSCell, LSSControl, LSSRecord, PooledControl, PooledLSS
from neurospec.results.tables import write_matrix_csv
from neurospec.util.errors import NeurospecError
from neurospec.util.io import atomic_write_json
from neurospec.util.progress import progress

CONTROLS: tuple[str, ...] = ("random", "other")
INTERVAL_METHOD = {"lss": WILSON, "margin": NEWCOMBE_PAIRED, "pooled_lss": f"{WILSON} over distinct items",
                   "pooled_margin": f"{CLUSTERED_BOOTSTRAP} over items"}  # lss.json's interval_method


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
    control_records: dict[str, LSSControl] = field(default_factory=dict)  # name -> the control (:meth:`add_control`)

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def controls(self) -> dict[str, dict[str, Any]]:
        """Each control as lss.json holds it (``seed`` or ``group``, lss, ci95, margin, margin_ci95, di)."""
        return {name: control.to_json() for name, control in self.control_records.items()}

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
        """The 95% Wilson score interval of :attr:`lss` (None without items)."""
        return wilson(int(self.shifted.sum()), self.n) if self.n else None

    @property
    def mean_d0(self) -> float:
        return float(self.d0.mean()) if self.n else float("nan")

    def add_control(self, name: str, di: torch.Tensor, *, seed: int | None = None, group: str | None = None) -> None:
        """Record a control's DI on the same items: its LSS and the paired margin of this cell over it; ``seed``
        (random neurons) or ``group`` (another language's neurons) says which control it is."""
        other = self.shifted_by(di)
        difference = self.shifted - other
        self.control_records[name] = LSSControl(
            float(other.mean()), wilson(int(other.sum()), self.n),
            float(difference.mean()), newcombe_paired(self.shifted.tolist(), other.tolist()),
            seed=seed, group=group, di=di.tolist())

    def record(self, items: bool = True) -> LSSCell:
        """The cell as lss.json holds it (:class:`neurospec.results.lss.LSSCell`); ``items=False`` leaves out
        every per-item D0 and DI."""
        controls = {name: c if items else replace(c, di=None) for name, c in self.control_records.items()}
        return LSSCell(self.source, self.target, self.n, self.excluded, self.missing, self.lss, self.ci95, self.mean_d0,
                       float(self.di.mean()) if self.n else None, controls, self.ids if items else None,
                       self.d0.tolist() if items else None, self.di.tolist() if items else None)

    def to_json(self, items: bool = True) -> dict[str, Any]:
        return self.record(items).to_json()


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
            if name in cell.control_records:
                out[s][t] = cell.control_records[name].margin
        return out

    def pooled_record(self) -> PooledLSS | None:
        """Every cell's items together: the LSS and, per control, its LSS and the paired margin over it (None
        without a usable cell).

        One item appears in many cells, so its rows are not independent: the LSS gets a Wilson interval with
        the distinct items as trials, and a margin's interval resamples items (sentence ids), each with its rows
        in every cell. A control's margin pools only the cells that have that control.
        """
        cells = [cell for cell in self.cells.values() if cell.n]
        if not cells:
            return None
        ids = [item for cell in cells for item in cell.ids]
        shifted = torch.cat([cell.shifted for cell in cells])
        controls: dict[str, PooledControl] = {}
        for name in sorted({name for cell in cells for name in cell.control_records}):
            having = [cell for cell in cells if name in cell.control_records]
            having_ids = [item for cell in having for item in cell.ids]
            other = torch.cat([cell.shifted_by(cell.control_records[name].di) for cell in having])
            difference = torch.cat([cell.shifted for cell in having]) - other
            controls[name] = PooledControl(len(having), float(other.mean()), float(difference.mean()),
                                           bootstrap_clustered_mean(difference, having_ids,
                                                                    resamples=having[0].bootstrap, seed=having[0].seed))
        return PooledLSS(len(ids), len(set(ids)), float(shifted.mean()),
                         wilson_share(float(shifted.mean()), len(set(ids))), controls)

    def pooled(self) -> dict[str, Any]:
        """:meth:`pooled_record` as lss.json holds it (``{}`` without a usable cell)."""
        record = self.pooled_record()
        return record.to_json() if record is not None else {}

    def record(self, items: bool = True) -> LSSRecord:
        """What lss.json holds (:class:`neurospec.results.lss.LSSRecord`); ``items=False`` leaves out every
        per-item D0 and DI."""
        return LSSRecord(self.recipe, self.sources, self.targets, self.mean_offdiagonal, self.mean_d0,
                         self.pooled_record(), [cell.record(items) for cell in self.cells.values()], self.settings,
                         self.empty_groups, interval_method=dict(INTERVAL_METHOD))

    def to_json(self, items: bool = True) -> dict[str, Any]:
        return self.record(items).to_json()

    def save(self, folder: str | Path, stem: str = "lss") -> Path:
        """``lss.json`` (every item's D0/DI) and ``lss.csv`` (sources x targets), plus a margin CSV per control."""
        folder = Path(folder)
        write_matrix_csv(folder / f"{stem}.csv", self.sources, self.targets, self.lss, corner="source")
        names = sorted({name for cell in self.cells.values() for name in cell.control_records})
        for name in names:
            write_matrix_csv(folder / f"{stem}_margin_{name}.csv", self.sources, self.targets,
                             self.control_margins(name), corner="source")
        return atomic_write_json(folder / f"{stem}.json", self.to_json())


def lss_matrix(model, tokenizer, items: Sequence[ParallelItem], neurons, *, recipe: Recipe | str = "set:p_max",
               stats=None, sources: Sequence[str] | None = None, targets: Sequence[str] | None = None,
               controls: Sequence[str] = (), random_seeds: Sequence[int] = (0,), fmt: PromptFormat = PLAIN,
               batch_size: int = 8,
               bootstrap: int = 1000, seed: int = 0,
               on_cell: Callable[[ShiftCell], None] | None = None, quiet: bool = True) -> LSSMatrix:
    """LSS of every source -> target pair, intervening on the target group's neurons with ``recipe``.

    Sources and targets are language keys present both in the items and as groups of ``neurons``
    (all of them by default); a target whose group has no neurons is skipped and listed in ``empty_groups``
    (:mod:`neurospec.interventions.targets`). ``controls`` is any of ``random`` and ``other`` (module docstring);
    the random control is drawn once per seed of ``random_seeds`` (named ``random``, or ``random<seed>`` when there
    are several).
    """
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
    source_group = {source: next((g for g, lang in groups.items() if lang == source), None) for source in sources}
    built = build_conditions(neurons, recipe, named if explicit else None, verb="lss", default=named, stats=stats,
                             random_seeds=tuple(random_seeds) if "random" in controls else (),
                             other_sources=list(source_group.values()) if "other" in controls else None)
    targets = [target for target in targets if group_of[target] in built.targets]  # bad input failed above
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
                di = requests.scores(model, pad_id, built[group].edit, batch_size)
                cell = ShiftCell(source, target, requests.ids, d0, di, len(requests.excluded), requests.missing,
                                 bootstrap, seed)
                randoms = built.random_of(group)
                for control in randoms:
                    name = "random" if len(randoms) == 1 else f"random{control.seed}"
                    cell.add_control(name, requests.scores(model, pad_id, control.edit, batch_size), seed=control.seed)
                other = built.other_for(group, source_group[source]) if "other" in controls else None
                if other is not None:
                    cell.add_control("other", requests.scores(model, pad_id, other.edit, batch_size), group=other.group)
                cells[(source, target)] = cell
                bar.advance(1, items=len(requests.ids))
                if on_cell:
                    on_cell(cell)
    seeds = list(dict.fromkeys(random_seeds))
    settings = {"controls": list(controls), **({"random_seed": seeds[0]} if len(seeds) == 1 else {"random_seeds": seeds}),
                "bootstrap": bootstrap, "seed": seed,
                "items": len(items)}
    return LSSMatrix(sources, targets, cells, recipe, settings, built.empty)


def _item_language(name: str, in_items: Sequence[str]) -> str:
    key = language_of(name)
    if key not in in_items:
        raise NeurospecError(f"language {name!r} is not in the items; they hold {', '.join(in_items)}")
    return key
