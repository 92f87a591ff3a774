"""What an intervention does to a set of neurons: the in-memory form every hook applies.

    from neurospec.core.edits import Edit, RuntimeStatistic
    Edit.zero({"act": {0: torch.tensor([3, 17])}})                      # deactivate (LAPE)
    Edit.scale(neurons, 2.0)                                            # enhance x2 (culture neurons)
    Edit.set(neurons, per_neuron_values)                                # replace by p_max (amplification)
    Edit.set(neurons, RuntimeStatistic("percentile", 90), factor=2)     # 2 x the layer's current 90th pct.
    Edit.add(neurons, 0.5, positions="continuation")

``neurons`` is ``{site: {layer: LongTensor of indices}}`` or a NeuronSet (with ``groups=``).
The operations (``a`` is the neuron's current value at a token the position mode selects):

=========  ===============================
``zero``   ``a <- 0``
``scale``  ``a <- factor * a``
``set``    ``a <- factor * value``
``add``    ``a <- a + factor * value``
=========  ===============================

``value`` is a constant, a per-neuron tensor (``{layer: tensor[width]}`` or ``tensor[layers, width]``:
a corpus statistic such as p_max, fixed per neuron), or a :class:`RuntimeStatistic` of the current
tensor (recomputed on every forward call). METHODS section 2 keeps these two kinds apart; so does
this module. Padding positions are never edited. The rules on op, value, factor and positions (and
their JSON form, :attr:`Edit.operation`) are those of :mod:`neurospec.core.operations`, shared with
recipes and intervention files; an error names the edit's ``label`` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Union

import torch

from neurospec.core.operations import (  # noqa: F401 - OPERATIONS, POSITIONS, STATISTICS, check_positions: public here too
    OPERATIONS,
    POSITIONS,
    STATISTICS,
    Operation,
    OpSpec,
    Positions,
    RuntimeStatistic,
    check_operation,
    check_positions,
    value_kind,
)
from neurospec.util.errors import NeurospecError

NeuronIndices = Mapping[str, Mapping[int, torch.Tensor]]
"""site -> layer -> 1-D LongTensor of neuron indices."""

Value = Union[None, float, torch.Tensor, Mapping[int, torch.Tensor], RuntimeStatistic]


def _as_indices(neurons, groups, sites) -> dict[str, dict[int, torch.Tensor]]:
    """Normalise a NeuronSet (with ``groups``) or a nested mapping to ``{site: {layer: LongTensor}}``."""
    if hasattr(neurons, "layer_indices"):  # a NeuronSet
        chosen = list(groups) if groups is not None else list(neurons.groups)
        wanted = sites or sorted({s for g in chosen for s in neurons.sites(g)})
        mapping = {site: neurons.layer_indices(chosen, site) for site in wanted}
    else:
        if groups is not None:
            raise NeurospecError("groups= applies to a NeuronSet; a plain {site: {layer: indices}} mapping has none")
        mapping = {site: layers for site, layers in neurons.items() if sites is None or site in sites}
    result: dict[str, dict[int, torch.Tensor]] = {}
    for site, layers in mapping.items():
        per_layer = {}
        for layer, idx in layers.items():
            idx = torch.as_tensor(idx, dtype=torch.long).flatten().unique(sorted=True)
            if idx.numel():
                per_layer[int(layer)] = idx
        if per_layer:
            result[site] = per_layer
    return result


@dataclass
class Edit:
    """One operation on one selection of neurons. Build with :meth:`zero`, :meth:`scale`, :meth:`set`, :meth:`add`."""

    neurons: dict[str, dict[int, torch.Tensor]]
    op: Operation
    value: Value = None
    factor: float = 1.0
    positions: Positions = "all"
    label: str = field(default="neurons")

    def __post_init__(self) -> None:
        checked = check_operation(self.op, self.value, self.factor, self.positions, per_neuron="tensor",
                                  where=self.label)
        if not self.neurons:
            raise NeurospecError(
                f"intervening on an empty selection: {self.label} has no neurons. Check the group names and "
                "sites you chose (`neurospec neurons show FILE` lists the counts)."
            )
        self.factor = checked.factor
        self.value = _normalise_value(checked.value, self.label)
        _check_finite_values(self.value, self.neurons, self.label)

    @property
    def value_kind(self) -> Literal["none", "constant", "per_neuron", "runtime"]:
        """What ``value`` is: absent, one constant, a per-neuron table, or a run-time statistic."""
        return value_kind(self.value)

    @property
    def operation(self) -> OpSpec:
        """``edit.operation.to_json()``: op, value, factor and positions (see :mod:`neurospec.core.operations`)."""
        return OpSpec(self.op, self.value, self.factor, self.positions)

    @classmethod
    def make(cls, op: str, neurons, value: Value = None, factor: float = 1.0, positions: Positions = "all",
             groups=None, sites=None, label: str | None = None) -> "Edit":
        """The general constructor behind :meth:`zero`, :meth:`scale`, :meth:`set`, :meth:`add`."""
        if label is None:
            label = f"group(s) {', '.join(groups)}" if groups else "the neuron selection"
        return cls(_as_indices(neurons, groups, sites), op, value, factor, positions, label)  # type: ignore[arg-type]

    @classmethod
    def zero(cls, neurons, *, positions: Positions = "all", groups=None, sites=None, label=None) -> "Edit":
        return cls.make("zero", neurons, None, 1.0, positions, groups, sites, label)

    @classmethod
    def scale(cls, neurons, factor: float, *, positions: Positions = "all", groups=None, sites=None, label=None) -> "Edit":
        return cls.make("scale", neurons, None, factor, positions, groups, sites, label)

    @classmethod
    def set(cls, neurons, value: Value, *, factor: float = 1.0, positions: Positions = "all", groups=None, sites=None,
            label=None) -> "Edit":
        return cls.make("set", neurons, value, factor, positions, groups, sites, label)

    @classmethod
    def add(cls, neurons, value: Value, *, factor: float = 1.0, positions: Positions = "all", groups=None, sites=None,
            label=None) -> "Edit":
        return cls.make("add", neurons, value, factor, positions, groups, sites, label)

    @property
    def count(self) -> int:
        return sum(int(idx.numel()) for layers in self.neurons.values() for idx in layers.values())

    def layer_values(self, layer: int) -> torch.Tensor:
        """The per-neuron values of ``layer`` (a full-width row), for a per-neuron ``value``."""
        return self.value[layer]


def _check_finite_values(value: Value, neurons: NeuronIndices, label: str) -> None:
    """Refuse a NaN or infinite per-neuron value at a neuron the edit touches (others are never read)."""
    if not isinstance(value, (torch.Tensor, Mapping)):
        return  # a constant is checked by check_operation
    for layers in neurons.values():
        for layer, indices in layers.items():
            indices = torch.as_tensor(indices, dtype=torch.long).flatten()
            if isinstance(value, torch.Tensor):
                row = value[layer] if 0 <= layer < value.shape[0] else None
            else:
                row = value.get(layer)
            if row is None or not indices.numel() or int(indices.max()) >= row.numel() or int(indices.min()) < 0:
                continue  # a shape that does not fit is refused, with the model's shape, when the edit is applied
            chosen = row[indices]
            bad = ~torch.isfinite(chosen) if chosen.is_floating_point() else torch.zeros_like(chosen, dtype=torch.bool)
            if bad.any():
                first = int(bad.nonzero()[0])
                raise NeurospecError(
                    f"{label}: the per-neuron value of neuron {int(indices[first])} in layer {layer} is "
                    f"{float(chosen[first])!r}, not a finite number ({int(bad.sum())} such value(s) among the edited "
                    "neurons); recompute the values (statistics) or leave those neurons out")


def _normalise_value(value: Value, label: str) -> Value:
    """Per-neuron values (checked by check_operation) as a (layers, width) tensor or ``{layer: 1-D tensor}``."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 2:
            return value
        raise NeurospecError(f"{label}: per-neuron values must be (layers, width), got shape {tuple(value.shape)}")
    if isinstance(value, Mapping):
        return {int(layer): torch.as_tensor(row).flatten() for layer, row in value.items()}
    return value
