"""Intervention files: an intervention written once, reused by the CLI, sweeps, lm-eval and reports.

    from neurospec.interventions.files import InterventionSpec, EditSpec, ValuesRef
    spec = InterventionSpec([
        EditSpec("lape.json", groups=["fr"], op="set", value=ValuesRef("stats.safetensors", "p_max.fr")),
    ])
    spec.save("steer_fr.json")
    with intervene(model, InterventionSpec.load("steer_fr.json")):   # validated against the model
        ...

The file (paths relative to the file itself)::

    {"format": "neurospec.intervention", "version": 1,
     "edits": [{"neurons": "lape.json", "groups": ["fr"], "sites": ["act"],
                "op": "set",                      # zero | scale | set | add
                "value": {"file": "stats.safetensors", "key": "p_max.fr"},
                "factor": 1.0, "positions": "all"}]}  # all | prompt | continuation

``value`` is absent (zero, scale), a number, ``{"file", "key"}`` naming a (layers, width) tensor in
a safetensors file (a corpus statistic, fixed per neuron), or ``{"runtime": "max" | "min" | "mean" |
"median" | "percentile", "q": 90}`` (a statistic of the current tensor, recomputed at every call).
``neurons_sha256`` / ``file_sha256``, written by :meth:`InterventionSpec.save`, make a later load
fail loudly if a referenced file has changed since. The rules on op, value, factor and positions, and
their JSON form, are those of :mod:`neurospec.core.operations`, shared with edits and recipes: a file is
refused on load (``FileFormatError``, naming the file and the edit) where an Edit or a recipe would be.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neurospec.core.edits import Edit
from neurospec.core.operations import OpSpec, RuntimeStatistic, ValuesRef, check_operation, operation_from_json
from neurospec.core.sites import site_map
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.util.errors import FileFormatError, NeurospecError, ShapeMismatchError
from neurospec.util.io import atomic_write_json, file_fingerprint

FORMAT = "neurospec.intervention"
VERSION = 1


@dataclass
class EditSpec:
    """One edit as written in an intervention file. See the module docstring for the fields."""

    neurons: str
    groups: list[str] | None = None
    sites: list[str] | None = None
    op: str = "zero"
    value: float | ValuesRef | RuntimeStatistic | None = None
    factor: float = 1.0
    positions: str = "all"
    neurons_sha256: str | None = None

    def __post_init__(self) -> None:
        checked = check_operation(self.op, self.value, self.factor, self.positions, per_neuron="file")
        self.value, self.factor = checked.value, checked.factor

    @property
    def operation(self) -> OpSpec:
        """``edit.operation.to_json()``: op, value, factor and positions (see :mod:`neurospec.core.operations`)."""
        return OpSpec(self.op, self.value, self.factor, self.positions)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        """The edit as the file holds it: neurons (and its fingerprint), groups, sites, then the operation."""
        out: dict[str, Any] = {"neurons": self.neurons}
        if self.neurons_sha256:
            out["neurons_sha256"] = self.neurons_sha256
        for name in ("groups", "sites"):
            if getattr(self, name) is not None:
                out[name] = list(getattr(self, name))
        return {**out, **self.operation.to_json()}

    @classmethod
    def from_json(cls, raw: Any, where: str = "intervention edit") -> "EditSpec":
        """The inverse of :meth:`to_json`; ``where`` names the edit in a FileFormatError."""
        if not isinstance(raw, dict) or not isinstance(raw.get("neurons"), str):
            raise FileFormatError(f"{where}: each edit needs 'neurons': the path of a NeuronSet JSON file")
        for name in ("groups", "sites"):
            if raw.get(name) is not None and not (
                isinstance(raw[name], list) and all(isinstance(x, str) for x in raw[name])
            ):
                raise FileFormatError(f"{where}: {name!r} must be a list of names")
        try:
            checked = operation_from_json(raw, per_neuron="file", where=where)
        except NeurospecError as err:
            raise FileFormatError(str(err)) from None
        return cls(raw["neurons"], raw.get("groups"), raw.get("sites"), checked.op, checked.value, checked.factor,
                   checked.positions, raw.get("neurons_sha256"))


@dataclass
class InterventionSpec:
    """A list of :class:`EditSpec`, applied in order. Relative paths resolve against ``base_dir``."""

    edits: list[EditSpec]
    base_dir: Path = field(default_factory=Path.cwd)

    @classmethod
    def load(cls, path: str | Path) -> "InterventionSpec":
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileFormatError(f"intervention file {path} does not exist") from None
        except json.JSONDecodeError as err:
            raise FileFormatError(f"intervention file {path} is not valid JSON: {err}") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise FileFormatError(f"{path} is not an intervention file (expected \"format\": \"{FORMAT}\")")
        if raw.get("version") != VERSION:
            raise FileFormatError(f"{path}: version {raw.get('version')!r} is not supported (this neurospec reads {VERSION})")
        edits = raw.get("edits")
        if not isinstance(edits, list) or not edits:
            raise FileFormatError(f"{path}: 'edits' must be a non-empty list")
        return cls([EditSpec.from_json(e, f"{path}, edit {i}") for i, e in enumerate(edits)], path.parent.resolve())

    def save(self, path: str | Path) -> None:
        """Write the file (atomically), with fingerprints of the files it references."""
        path = Path(path)
        for edit in self.edits:
            edit.neurons_sha256 = file_fingerprint(self._resolve(edit.neurons))
            if isinstance(edit.value, ValuesRef):
                edit.value.sha256 = file_fingerprint(self._resolve(edit.value.file))
        base = path.parent.resolve()
        edits = []
        for edit in self.edits:
            row = edit.to_json()
            row["neurons"] = _relative(self._resolve(edit.neurons), base)
            if isinstance(edit.value, ValuesRef):
                row["value"]["file"] = _relative(self._resolve(edit.value.file), base)
            edits.append(row)
        atomic_write_json(path, {"format": FORMAT, "version": VERSION, "edits": edits})

    def _resolve(self, name: str) -> Path:
        resolved = (self.base_dir / name).resolve()
        if not resolved.exists():
            raise FileFormatError(f"intervention references {name}, which does not exist (looked at {resolved})")
        return resolved

    def _checked(self, name: str, sha256: str | None) -> Path:
        resolved = self._resolve(name)
        if sha256 and file_fingerprint(resolved) != sha256:
            raise FileFormatError(
                f"{resolved} changed since this intervention file was written (fingerprint differs); "
                "re-save the intervention if the change is intended"
            )
        return resolved

    def edits_for(self, model) -> list[Edit]:
        """The edits, with every referenced file loaded and validated against ``model``."""
        shape = site_map(model).shape
        edits = []
        for edit in self.edits:
            neurons = NeuronSet.load(self._checked(edit.neurons, edit.neurons_sha256))
            neurons.validate_for(shape)
            value = edit.value
            if isinstance(value, ValuesRef):
                value = self._load_values(value)
            groups = edit.groups if edit.groups is not None else list(neurons.groups)
            try:
                edits.append(Edit.make(edit.op, neurons, value, edit.factor, edit.positions, groups, edit.sites,
                                        f"{edit.neurons} group(s) {', '.join(groups)}"))
            except NeurospecError as err:
                if not isinstance(edit.value, ValuesRef):
                    raise
                raise type(err)(f"{err} (values: {edit.value.file}, tensor {edit.value.key!r})") from None
        return edits

    def _load_values(self, ref: ValuesRef) -> torch.Tensor:
        from safetensors import safe_open

        path = self._checked(ref.file, ref.sha256)
        with safe_open(str(path), framework="pt") as handle:
            if ref.key not in handle.keys():
                keys = ", ".join(sorted(handle.keys())[:20])
                raise NeurospecError(f"{path} has no tensor {ref.key!r}; it holds: {keys}")
            values = handle.get_tensor(ref.key)
        if values.dim() != 2:
            raise ShapeMismatchError(f"{path}[{ref.key}] has shape {tuple(values.shape)}; per-neuron values are (layers, width)")
        return values


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (``../x.json`` included), or absolute where none exists (Windows drives)."""
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)
