"""One rule set and one JSON form for an operation on neurons: op, value, factor and positions.

    from neurospec.core.operations import RuntimeStatistic, check_operation, operation_from_json
    spec = check_operation("set", RuntimeStatistic("percentile", 90), 2, "continuation", per_neuron="file")
    spec.to_json()   # {"op": "set", "value": {"runtime": "percentile", "q": 90}, "factor": 2.0, "positions": "continuation"}
    operation_from_json(spec.to_json(), per_neuron="file", where="steer.json, edit 0") == spec   # True

The three forms of an intervention validate through this module: an :class:`~neurospec.core.edits.Edit`
(in memory, what every hook applies), a :class:`~neurospec.interventions.recipes.Recipe` (``set:p_max*2``, for
whichever target group) and an :class:`~neurospec.interventions.files.EditSpec` (one edit of an intervention
file). One wrong input gets the same one-line message from each, after a prefix naming the input (the Edit's
label, ``--recipe 'set:p_max*nan'``, ``steer.json, edit 0``).

Rules (the same for the three forms)

- ``op``: ``zero`` (a <- 0), ``scale`` (a <- factor * a), ``set`` (a <- factor * value) or ``add``
  (a <- a + factor * value).
- ``value``: ``zero`` and ``scale`` take none; ``set`` and ``add`` need one of

  - a constant: a finite real number (a bool is not a number; a 0-d tensor is);
  - per-neuron values, spelt by the form (``per_neuron=``): ``"corpus"`` a corpus statistic of the target
    language, ``p_max``, ``p_median`` or ``mean`` (recipes); ``"file"`` a :class:`ValuesRef`, tensor ``key``
    of shape (layers, width) in a safetensors ``file`` (intervention files); ``"tensor"`` a (layers, width)
    tensor or ``{layer: tensor[width]}`` (an Edit);
  - a :class:`RuntimeStatistic` of the current tensor: ``max``, ``min``, ``mean``, ``median`` or
    ``percentile`` with ``q`` in [0, 100] (``q`` belongs to ``percentile`` only).

- ``factor``: a finite real number (not a bool); 1 by default.
- ``positions``: ``all`` (the default), ``prompt`` or ``continuation``.

What a value is comes before whether the op takes one. Only a value spelt in none of the ways its form takes gets
a message that differs by form: it lists what that form takes (a recipe names the corpus statistics). Each form
adds its own rules on other fields (an Edit's neurons must not be empty; the short form of a recipe
writes the factor of ``scale``: ``scale*2``; an intervention file names its neuron file).

The JSON form::

    {"op": "set", "value": V, "factor": 2.0, "positions": "all"}

``op`` absent reads as ``zero``, ``value`` absent or null as none, ``factor`` absent as 1, ``positions`` absent
as ``all``. ``V`` is a number, a corpus statistic (``"p_max"``), ``{"file": ..., "key": ..., "file_sha256":
...}`` or ``{"runtime": "percentile", "q": 90}``. :meth:`OpSpec.to_json` leaves out a value of none; a
recipe's ``to_json`` writes ``"value": null`` plus ``name`` and ``kind``, the layout of the result files.
Per-neuron values held in memory (``"tensor"``) have no JSON form: save them and refer to them by ValuesRef.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import torch

from neurospec.util.errors import NeurospecError

Operation = Literal["zero", "scale", "set", "add"]
Positions = Literal["all", "prompt", "continuation"]
StatisticName = Literal["max", "min", "mean", "median", "percentile"]
PerNeuronForm = Literal["corpus", "file", "tensor"]
ValueKind = Literal["none", "constant", "per_neuron", "runtime"]

OPERATIONS: tuple[str, ...] = ("zero", "scale", "set", "add")
VALUED_OPERATIONS: tuple[str, ...] = ("set", "add")
POSITIONS: tuple[str, ...] = ("all", "prompt", "continuation")
STATISTICS: tuple[str, ...] = ("max", "min", "mean", "median", "percentile")
CORPUS_STATISTICS: tuple[str, ...] = ("p_max", "p_median", "mean")

NON_FINITE_HINT = "(NaN or infinity would make every logit NaN)"

ACCEPTED_VALUES: dict[str, str] = {
    "corpus": "a number, a corpus statistic (p_max, p_median, mean) or a run-time statistic "
              "(RuntimeStatistic; in JSON {'runtime': 'max', ...})",
    "file": "a number, {'file': ..., 'key': ...} (a ValuesRef) or {'runtime': 'max', ...} (a RuntimeStatistic)",
    "tensor": "a number, per-neuron values (a (layers, width) tensor or {layer: tensor}) or a RuntimeStatistic",
}
"""What a value may be, per spelling of per-neuron values: the end of the message for a value of none of these."""


def prefixed(where: str | None, message: str) -> str:
    """``prefixed("--recipe 'zero:1'", "'zero' takes no value")``: the message after the input it names, if any."""
    return f"{where}: {message}" if where else message


def real_number(number: Any) -> float | None:
    """``real_number(2) == 2.0``: a real number (a 0-d tensor too) as a float; None for anything else (a bool too).

    An integer too large for a float (JSON reads one) becomes an infinity of its sign.
    """
    if isinstance(number, torch.Tensor):
        if number.dim() != 0 or number.dtype == torch.bool or number.is_complex():
            return None
        return float(number)
    if isinstance(number, bool) or not isinstance(number, numbers.Real):
        return None
    try:
        return float(number)
    except OverflowError:
        return math.copysign(math.inf, number)


# --------------------------------------------------------------------------------------------
# One field at a time


def check_op(op: Any, where: str | None = None) -> str:
    """``check_op("set")``: the operation, or a NeurospecError naming the four there are."""
    if not isinstance(op, str) or op not in OPERATIONS:
        raise NeurospecError(prefixed(where, f"unknown operation {op!r}: use one of {', '.join(OPERATIONS)}"))
    return op


def check_positions(positions: Any, where: str | None = None) -> str:
    """``check_positions("prompt")``: refuse a position mode other than ``all``, ``prompt`` or ``continuation``."""
    if not isinstance(positions, str) or positions not in POSITIONS:
        raise NeurospecError(prefixed(where, f"unknown positions {positions!r}: use one of {', '.join(POSITIONS)}"))
    return positions


def check_factor(factor: Any, where: str | None = None) -> float:
    """``check_factor(2) == 2.0``: a finite real number as a float, else a NeurospecError."""
    number = real_number(factor)
    if number is None:
        raise NeurospecError(prefixed(where, f"factor {factor!r} is not a number; give a real number such as 2"))
    if not math.isfinite(number):
        raise NeurospecError(prefixed(where, f"factor {number!r} is not a finite number; give a real number such "
                                             f"as 2 {NON_FINITE_HINT}"))
    return number


def check_constant(value: float, where: str | None = None) -> float:
    """``check_constant(0.5)``: refuse a NaN or infinite constant value."""
    if not math.isfinite(value):
        raise NeurospecError(prefixed(where, f"value {value!r} is not a finite number; give a real number such "
                                             f"as 0.5 {NON_FINITE_HINT}"))
    return value


def check_value_presence(op: str, value: Any, where: str | None = None) -> None:
    """``check_value_presence("set", None)`` raises: ``set`` and ``add`` need a value, ``zero`` and ``scale`` take none."""
    if op in VALUED_OPERATIONS and value is None:
        raise NeurospecError(prefixed(where, f"{op!r} needs a value: a number, per-neuron values "
                                             f"({', '.join(CORPUS_STATISTICS)}) or a run-time statistic "
                                             f"({', '.join(STATISTICS)})"))
    if op not in VALUED_OPERATIONS and value is not None:
        raise NeurospecError(prefixed(where, f"{op!r} takes no value; leave it out (scale multiplies by the factor)"))


def check_per_neuron(value: Any, per_neuron: PerNeuronForm, where: str | None = None) -> Any:
    """``check_per_neuron("p_max", "corpus")``: per-neuron values as form ``per_neuron`` spells them, else an error
    listing what that form takes."""
    if per_neuron == "corpus" and isinstance(value, str):
        if value not in CORPUS_STATISTICS:
            raise NeurospecError(prefixed(where, f"unknown corpus statistic {value!r}: use one of "
                                                 f"{', '.join(CORPUS_STATISTICS)}"))
        return value
    if per_neuron == "file" and isinstance(value, ValuesRef):
        return value
    if per_neuron == "tensor" and isinstance(value, (torch.Tensor, Mapping)):
        return value
    raise NeurospecError(prefixed(where, f"value {value!r} is not {ACCEPTED_VALUES[per_neuron]}"))


def check_value(op: str, value: Any, per_neuron: PerNeuronForm, where: str | None = None) -> Any:
    """``check_value("set", 2, "corpus") == 2.0``: the value of ``op``, a constant as a float (see the module rules).

    What the value is comes first (a value of no kind is refused as such, whatever ``op``), then whether ``op``
    takes one.
    """
    if value is not None and not isinstance(value, RuntimeStatistic):
        number = real_number(value)
        value = check_constant(number, where) if number is not None else check_per_neuron(value, per_neuron, where)
    check_value_presence(op, value, where)
    return value


# --------------------------------------------------------------------------------------------
# Value references


@dataclass(frozen=True)
class RuntimeStatistic:
    """A statistic of the site's current tensor in the layer, per sequence, over its non-padding tokens.

    ``RuntimeStatistic("percentile", 90)``. It covers every neuron of the site in that layer and every
    non-padding position of the current forward call (under a KV cache, that is only the new token). ``median``
    interpolates like ``numpy.median``; ``percentile`` takes ``q`` in [0, 100], the others no ``q``.
    """

    name: StatisticName
    q: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in STATISTICS:
            raise NeurospecError(f"unknown run-time statistic {self.name!r}: use one of {', '.join(STATISTICS)}")
        if self.name == "percentile":
            q = real_number(self.q)
            if q is None or not 0 <= q <= 100:
                raise NeurospecError(f"run-time statistic percentile needs a number q in [0, 100] (90 for the "
                                     f"90th percentile), got {self.q!r}")
        elif self.q is not None:
            raise NeurospecError(f"run-time statistic {self.name!r} takes no q (q {self.q!r}); q belongs to "
                                 "percentile only")

    def to_json(self) -> dict:
        """``{"name": "percentile", "q": 90}`` (``q`` only where there is one)."""
        return {"name": self.name, **({"q": self.q} if self.q is not None else {})}

    def to_value_json(self) -> dict:
        """``{"runtime": "percentile", "q": 90}``: the statistic as the ``value`` of an operation's JSON form."""
        return {"runtime": self.name, **({"q": self.q} if self.q is not None else {})}

    @classmethod
    def from_value_json(cls, raw: Mapping[str, Any]) -> "RuntimeStatistic":
        """The inverse of :meth:`to_value_json`."""
        return cls(raw["runtime"], raw.get("q"))


@dataclass
class ValuesRef:
    """Per-neuron values: tensor ``key`` of shape (layers, width) in the safetensors ``file``.

    ``ValuesRef("stats.safetensors", "p_max.fr")``; ``sha256`` is the file's fingerprint once saved.
    """

    file: str
    key: str
    sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"file": ..., "key": ..., "file_sha256": ...}`` (the fingerprint only where there is one)."""
        return {"file": self.file, "key": self.key, **({"file_sha256": self.sha256} if self.sha256 else {})}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "ValuesRef":
        """The inverse of :meth:`to_json`."""
        return cls(str(raw["file"]), str(raw["key"]), raw.get("file_sha256"))


def value_kind(value: Any) -> ValueKind:
    """``value_kind(0.5) == "constant"``: what a checked value is: none, a constant, per-neuron values or a
    run-time statistic."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return "constant"
    return "runtime" if isinstance(value, RuntimeStatistic) else "per_neuron"


def value_to_json(value: Any) -> Any:
    """``value_to_json(RuntimeStatistic("max")) == {"runtime": "max"}``: a checked value in the JSON form."""
    if isinstance(value, (RuntimeStatistic, ValuesRef)):
        return value.to_value_json() if isinstance(value, RuntimeStatistic) else value.to_json()
    if value is None or isinstance(value, (float, str)):
        return value
    raise NeurospecError("per-neuron values held in memory have no JSON form: save them to a safetensors file "
                         "and refer to them with ValuesRef(file, key)")


def value_from_json(raw: Any) -> Any:
    """``value_from_json({"runtime": "max"}) == RuntimeStatistic("max")``: the two JSON objects become their
    classes; anything else is returned as it is, for :func:`check_value` to judge."""
    if isinstance(raw, Mapping) and "file" in raw and "key" in raw:
        return ValuesRef.from_json(raw)
    if isinstance(raw, Mapping) and "runtime" in raw:
        return RuntimeStatistic.from_value_json(raw)
    return raw


# --------------------------------------------------------------------------------------------
# A whole operation


@dataclass(frozen=True)
class OpSpec:
    """A checked operation: ``op``, ``value``, ``factor``, ``positions``. Build with :func:`check_operation` or
    :func:`operation_from_json`; :meth:`to_json` is the JSON form of the module docstring."""

    op: Operation
    value: Any = None
    factor: float = 1.0
    positions: Positions = "all"

    @property
    def value_kind(self) -> ValueKind:
        """``none``, ``constant``, ``per_neuron`` or ``runtime``."""
        return value_kind(self.value)

    def to_json(self) -> dict[str, Any]:
        """``{"op", "value", "factor", "positions"}``, ``value`` left out where there is none."""
        out: dict[str, Any] = {"op": self.op}
        if self.value is not None:
            out["value"] = value_to_json(self.value)
        out["factor"] = self.factor
        out["positions"] = self.positions
        return out


def check_operation(op: Any, value: Any = None, factor: Any = 1.0, positions: Any = "all", *,
                    per_neuron: PerNeuronForm, where: str | None = None) -> OpSpec:
    """``check_operation("scale", None, 2, per_neuron="tensor")``: every rule of the module docstring, in the order
    op, positions, value, factor; ``where`` names the input in a message."""
    op = check_op(op, where)
    positions = check_positions(positions, where)
    value = check_value(op, value, per_neuron, where)
    return OpSpec(op, value, check_factor(factor, where), positions)  # type: ignore[arg-type]


def operation_from_json(raw: Any, *, per_neuron: PerNeuronForm, where: str | None = None) -> OpSpec:
    """``operation_from_json({"op": "scale", "factor": 2}, per_neuron="file")``: the JSON form read and checked."""
    if not isinstance(raw, Mapping):
        raise NeurospecError(prefixed(where, f"an operation is a JSON object with op, value, factor and positions; "
                                             f"got {raw!r}"))
    try:
        value = value_from_json(raw.get("value"))
    except NeurospecError as err:
        raise NeurospecError(prefixed(where, str(err))) from None
    return check_operation(raw.get("op", "zero"), value, raw.get("factor", 1.0), raw.get("positions", "all"),
                           per_neuron=per_neuron, where=where)
