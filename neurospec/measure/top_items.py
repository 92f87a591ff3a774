"""Each neuron's top-scoring items per country, kept by ``attribute --top-items K``, and a reader for them.

    from neurospec.measure.top_items import TopItems
    top = TopItems.load("runs/attr/blend")
    for item in top.neuron("China", layer=3, neuron=117, site="gate_pre"):
        print(f"{item.score:.3e}  {item.item_id}  {item.question}")

The run keeps, per group (country), site, layer and neuron, the K examples with the largest per-example score
``score_i(n)`` (the weighted, clamped score that S(n, c) sums), largest first, ties to the earlier example; see
:mod:`neurospec.measure.attribution` for the files. An example is an item rendered with one template, so one
item can appear once per template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neurospec.measure.attribution import ATTRIBUTION_RUN, AttributionScores, read_top_items
from neurospec.measure.run_folder import RunFolder
from neurospec.util.errors import NeurospecError


@dataclass(frozen=True)
class TopItem:
    """One kept item of a neuron: its ``score``, the example ``index`` in the run, the item's id, question and
    the template it was shown with."""

    score: float
    item_id: str | None
    question: str | None
    template: str
    index: int


@dataclass
class TopItems:
    """The top items of an attribution run, per group (see the module docstring)."""

    groups: list[str]
    sites: list[str]
    tensors: dict[str, dict[str, torch.Tensor]]
    items: dict[str, Any]
    path: Path | None = None

    @classmethod
    def load(cls, folder: str | Path) -> "TopItems":
        """``TopItems.load("runs/attr/blend")``: every group's top items, checked against the fingerprints in
        ``attribution.json``; a run without them, or unfinished, is refused naming the fix."""
        run = RunFolder(folder, ATTRIBUTION_RUN)
        meta = AttributionScores.read_meta(folder)
        if not meta.get("complete"):
            raise NeurospecError(f"{folder} holds an unfinished attribution run; finish it with `neurospec attribute "
                                 "... --resume`")
        if not meta.get("top_item_files"):
            raise NeurospecError(f"{folder} keeps no top items: run `neurospec attribute` with --top-items K")
        tensors, items = read_top_items(run, meta)
        return cls([g for g in meta["groups"] if g in tensors], list(meta["sites"]), tensors, items, Path(folder))

    @property
    def k(self) -> int:
        """How many items the run kept per neuron."""
        return next(iter(next(iter(self.tensors.values())).values())).shape[-1]

    def neuron(self, group: str, layer: int, neuron: int, site: str | None = None) -> list[TopItem]:
        """``top.neuron("China", 3, 117, site="q")``: the kept items of one neuron in ``group``, largest score first
        (``site`` None: the run's first site)."""
        site = site or self.sites[0]
        if group not in self.tensors:
            raise NeurospecError(f"no top items for group {group!r} in {self.path}; it holds {', '.join(self.groups)}")
        if site not in self.sites:
            raise NeurospecError(f"site {site!r} was not scored in {self.path} (scored: {', '.join(self.sites)})")
        kept = self.tensors[group]
        values, indices = kept[f"values.{site}"][layer, neuron].tolist(), kept[f"indices.{site}"][layer, neuron].tolist()
        return [self.item(index, value) for value, index in zip(values, indices) if index >= 0]

    def item(self, index: int, score: float = float("nan")) -> TopItem:
        """``top.item(12)``: the example of index 12 of the run (its id, question and template)."""
        question = self.items["question_index"][index]
        return TopItem(score, self.items["item_ids"][index], self.items["questions"][question] if question >= 0 else None,
                       self.items["templates"][index], index)
