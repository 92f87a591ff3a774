"""Neuron lists in the culture paper's code format (ynklab/CULNIG), read and written.

    from neurospec.neurons.formats.culture import load_culnig, save_culnig
    neurons = load_culnig(["all_neurons_blend_max.json", "China_neurons_blend_all.json"], num_layers=48)
    neurons.groups                                   # ("culture-general", "China")
    save_culnig(neurons, "China", "China_neurons_blend_all.json", model_name="google/gemma-3-12b-it")
    load_neuron_file("SouthKorea_neurons_blend_all.json")   # any neurospec command reads them too

The reference writes one JSON file per set::

    {"model_name": "...", "dataset_ids": {...},
     "top_neurons": [{"module_name": "mlp.gate_proj", "layer_idx": 3, "neuron_idx": 17, "attribute_score": 0.8}, ...]}

Module names map to sites: ``mlp.gate_proj`` -> ``gate_pre``, ``mlp.up_proj`` -> ``up_pre``,
``self_attn.q_proj`` / ``k_proj`` / ``v_proj`` -> ``q`` / ``k`` / ``v`` (for fused projections, Phi-4,
the reference already counts indices within the part, as neurospec's sites do). The group of a file
is named from its file name unless given: ``all_neurons_*`` -> ``culture-general`` (``random<k>:culture-general``
for ``all_neurons_random<k>``), ``<Country>_neurons_*`` -> that country's BLEnD key (``SouthKorea`` -> ``South_Korea``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from neurospec.data.languages import all_countries, resolve_country
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.util.errors import FileFormatError, NeurospecError
from neurospec.util.io import atomic_write_json

__all__ = ["MODULE_SITES", "is_culnig_document", "load_culnig", "save_culnig"]

MODULE_SITES: dict[str, str] = {"mlp.gate_proj": "gate_pre", "mlp.up_proj": "up_pre", "self_attn.q_proj": "q",
                                "self_attn.k_proj": "k", "self_attn.v_proj": "v"}
_SITE_MODULES = {site: module for module, site in MODULE_SITES.items()}


def is_culnig_document(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("top_neurons"), list)


def _group_from_name(path: Path) -> str:
    stem = path.stem
    if stem.startswith("all_neurons"):
        match = re.search(r"random(\d+)", stem)
        return f"random{match.group(1)}:culture-general" if match else "culture-general"
    prefix = stem.split("_neurons")[0]
    squeezed = prefix.replace("_", "").replace(" ", "").lower()
    for country in all_countries():
        if squeezed in {country.key.replace("_", "").lower(), country.name.replace(" ", "").lower()}:
            return country.key
    try:
        return resolve_country(prefix).key
    except NeurospecError:
        return prefix


def _read(path: Path) -> list[tuple[str, int, int]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileFormatError(f"cannot read CULNIG neuron file {path}: {err}") from err
    if not is_culnig_document(document):
        raise FileFormatError(f"{path} is not a CULNIG neuron list: it has no 'top_neurons' list")
    out = []
    for k, entry in enumerate(document["top_neurons"]):
        where = f"{path} top_neurons[{k}]"
        try:
            module, layer, index = entry["module_name"], int(entry["layer_idx"]), int(entry["neuron_idx"])
        except (KeyError, TypeError, ValueError) as err:
            raise FileFormatError(f"{where}: needs module_name, layer_idx and neuron_idx ({err})") from err
        if module not in MODULE_SITES:
            raise FileFormatError(f"{where}: unknown module {module!r}; known: {', '.join(MODULE_SITES)}")
        if layer < 0 or index < 0:
            raise FileFormatError(f"{where}: negative layer or neuron index ({layer}, {index})")
        out.append((MODULE_SITES[module], layer, index))
    return out


def load_culnig(paths: str | Path | Sequence[str | Path], *, groups: Sequence[str] | None = None,
                num_layers: int | None = None, shape: Any = None) -> NeuronSet:
    """Read CULNIG neuron files (one group each) into one NeuronSet.

    ``num_layers`` (or ``shape``, a ModelShape or SiteMap, which also checks every index) gives the
    model's layer count; without either it is the highest layer in the files + 1, to be checked with
    :meth:`NeuronSet.validate_for` before use.
    """
    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not files:
        raise NeurospecError("no CULNIG files given")
    names = list(groups) if groups is not None else [_group_from_name(p) for p in files]
    if len(names) != len(files):
        raise NeurospecError(f"{len(files)} files but {len(names)} group names: give one name per file")
    if len(set(names)) != len(names):
        raise NeurospecError(f"two files would become the same group ({names}); pass groups= to name them")
    data: dict[str, dict[str, dict[int, torch.Tensor]]] = {}
    highest = -1
    for name, path in zip(names, files):
        if not path.is_file():
            raise NeurospecError(f"CULNIG file {path} does not exist")
        per_site: dict[str, dict[int, list[int]]] = {}
        for site, layer, index in _read(path):
            per_site.setdefault(site, {}).setdefault(layer, []).append(index)
            highest = max(highest, layer)
        data[name] = {site: {layer: torch.tensor(sorted(set(idx)), dtype=torch.int64) for layer, idx in layers.items()}
                      for site, layers in per_site.items()}
    layers = getattr(getattr(shape, "shape", shape), "num_layers", None) or num_layers or highest + 1
    if highest >= layers:
        raise NeurospecError(f"the CULNIG files name layer {highest}, but the model has {layers} layers")
    neurons = NeuronSet(data, NeuronSetMeta(num_layers=int(layers), method="culnig",
                                            source={"format": "culnig", "files": [str(p) for p in files]}))
    return neurons.validate_for(shape) if shape is not None else neurons


def save_culnig(neurons: NeuronSet, group: str, path: str | Path, *, model_name: str | None = None) -> Path:
    """Write one group in the CULNIG format (sites without a CULNIG module name are an error)."""
    entries = []
    for _, site, layer, indices in neurons.entries([group]):
        if site not in _SITE_MODULES:
            raise NeurospecError(f"site {site!r} has no CULNIG module name (CULNIG knows {', '.join(_SITE_MODULES)})")
        entries += [{"module_name": _SITE_MODULES[site], "layer_idx": int(layer), "neuron_idx": int(i),
                     "attribute_score": 0.0} for i in indices.tolist()]
    document = {"model_name": model_name or neurons.meta.model_id or "", "dataset_ids": {}, "top_neurons": entries}
    return atomic_write_json(path, document)
