"""What an intervention does to a set of neurons: the in-memory form every hook applies.

    from neurospec.interventions.edits import Edit, RuntimeStatistic
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
this module. Padding positions are never edited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Union

import torch

from neurospec.util.errors import NeurospecError

Operation = Literal["zero", "scale", "set", "add"]
Positions = Literal["all", "prompt", "continuation"]
OPERATIONS: tuple[str, ...] = ("zero", "scale", "set", "add")
POSITIONS: tuple[str, ...] = ("all", "prompt", "continuation")
STATISTICS: tuple[str, ...] = ("max", "min", "mean", "median", "percentile")

def check_positions(positions: str) -> None:
    """Refuse a position mode other than ``all``, ``prompt`` or ``continuation``."""
    if positions not in POSITIONS:
        raise NeurospecError(f"unknown positions {positions!r}: use one of {', '.join(POSITIONS)}")


NeuronIndices = Mapping[str, Mapping[int, torch.Tensor]]
"""site -> layer -> 1-D LongTensor of neuron indices."""


@dataclass(frozen=True)
class RuntimeStatistic:
    """A statistic of the site's current tensor in the layer, per sequence, over its non-padding tokens.

    It covers every neuron of the site in that layer and every non-padding position of the current
    forward call (under a KV cache, that is only the new token). ``median`` interpolates like
    ``numpy.median``; ``percentile`` takes ``q`` in [0, 100].
    """

    name: Literal["max", "min", "mean", "median", "percentile"]
    q: float | None = None

    def __post_init__(self) -> None:
        if self.name not in STATISTICS:
            raise NeurospecError(f"unknown run-time statistic {self.name!r}: use one of {', '.join(STATISTICS)}")
        if self.name == "percentile" and (self.q is None or not 0 <= self.q <= 100):
            raise NeurospecError(f"percentile needs q in [0, 100], got {self.q!r}")

    def to_json(self) -> dict:
        return {"name": self.name, **({"q": self.q} if self.q is not None else {})}


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
        if self.op not in OPERATIONS:
            raise NeurospecError(f"unknown operation {self.op!r}: use one of {', '.join(OPERATIONS)}")
        check_positions(self.positions)
        if self.op in ("set", "add") and self.value is None:
            raise NeurospecError(f"{self.op!r} needs a value: a constant, per-neuron values or a RuntimeStatistic")
        if self.op in ("zero", "scale") and self.value is not None:
            raise NeurospecError(f"{self.op!r} takes no value (scale uses factor=)")
        if not self.neurons:
            raise NeurospecError(
                f"intervening on an empty selection: {self.label} has no neurons. Check the group names and "
                "sites you chose (`neurospec neurons show FILE` lists the counts)."
            )
        if not _finite(self.factor):
            raise NeurospecError(f"{self.label}: factor {self.factor!r} is not a finite number; give a real number such "
                                 "as 2 (NaN or infinity would make every logit NaN)")
        self.value = _normalise_value(self.value, self.label)
        _check_finite_values(self.value, self.neurons, self.label)

    @property
    def value_kind(self) -> Literal["none", "constant", "per_neuron", "runtime"]:
        """What ``value`` is: absent, one constant, a per-neuron table, or a run-time statistic."""
        if self.value is None:
            return "none"
        if isinstance(self.value, float):
            return "constant"
        return "runtime" if isinstance(self.value, RuntimeStatistic) else "per_neuron"

    @classmethod
    def make(cls, op: str, neurons, value: Value = None, factor: float = 1.0, positions: Positions = "all",
             groups=None, sites=None, label: str | None = None) -> "Edit":
        """The general constructor behind :meth:`zero`, :meth:`scale`, :meth:`set`, :meth:`add`."""
        if label is None:
            label = f"group(s) {', '.join(groups)}" if groups else "the neuron selection"
        return cls(_as_indices(neurons, groups, sites), op, value, float(factor), positions, label)

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


def _finite(number) -> bool:
    """True for a real number that is neither NaN nor infinite (False for anything else)."""
    try:
        return math.isfinite(float(number))
    except (TypeError, ValueError):
        return False


def _check_finite_values(value: Value, neurons: NeuronIndices, label: str) -> None:
    """Refuse a NaN or infinite constant, or per-neuron value at a neuron the edit touches (others are never read)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NeurospecError(f"{label}: value {value!r} is not a finite number; give a real number such as 0.5 "
                                 "(NaN or infinity would make every logit NaN)")
        return
    if value is None or isinstance(value, RuntimeStatistic):
        return
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
    """A number becomes a float, per-neuron values a (layers, width) tensor or ``{layer: 1-D tensor}``."""
    if value is None or isinstance(value, RuntimeStatistic):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return float(value)
        if value.dim() == 2:
            return value
        raise NeurospecError(f"{label}: per-neuron values must be (layers, width), got shape {tuple(value.shape)}")
    if isinstance(value, Mapping):
        return {int(layer): torch.as_tensor(row).flatten() for layer, row in value.items()}
    raise NeurospecError(
        f"{label}: value {value!r} is not a number, per-neuron values or a RuntimeStatistic"
    )
