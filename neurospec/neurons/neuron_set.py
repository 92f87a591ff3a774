"""NeuronSet: named groups of neurons (group -> site -> layer -> indices), the artifact every step exchanges.

    from neurospec.neurons.neuron_set import NeuronSet
    neurons = NeuronSet.load("lape.json").validate_for(lm.sites)   # refuses a file made for another model
    neurons.indices("fr", "act", 0)                                  # sorted LongTensor of neuron indices
    neurons.layer_indices(["fr", "es"], "act")                       # {layer: LongTensor}, for an intervention
    NeuronSet.from_lape("LLaMA-2-7B.neuron.pth", groups=["en", "zh", "fr", "es", "vi", "id", "ja"]).save("lape.json")

A *group* is any name: a language, a country, ``"culture-general"``. A *site* is one of
:data:`neurospec.core.sites.SITES`. A neuron is the triple (site, layer, index); indices are kept as
1-D sorted unique ``int64`` tensors, and layers without neurons are not stored.

File format (JSON, readable without neurospec; see docs/neurons.md)::

    {"format": "neurospec.neuronset", "version": 1,
     "meta": {"num_layers": 32, "widths": {"act": 11008}, "model_id": "...", "method": "lape", ...},
     "groups": {"en": {"act": {"0": [1, 5, 9], "31": [7]}}}}

LAPE interop (Tang et al., ACL 2024; RUCAIBox/Language-Specific-Neurons): the reference writes
``list[language][layer] -> LongTensor`` with ``torch.save`` and drops TRAILING languages that got no
neurons. :meth:`NeuronSet.from_lape` reads such files with ``torch.load(weights_only=True)`` only
(never unpickling code) and :meth:`NeuronSet.to_lape` / :meth:`NeuronSet.save_lape` write them back
list for list, tensor for tensor.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from numbers import Integral
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np
import torch

from neurospec.core.sites import SITES, ModelShape
from neurospec.util.errors import FileFormatError, NeurospecError, ShapeMismatchError
from neurospec.util.io import atomic_torch_save, atomic_write_json, file_fingerprint
from neurospec.version import __version__

FORMAT = "neurospec.neuronset"
VERSION = 1
LAPE_FORMAT = "lape-pth"

PathLike = Union[str, os.PathLike]
Indices = Union[torch.Tensor, Sequence[int]]
GroupData = dict[str, dict[int, torch.Tensor]]  # site -> layer -> sorted unique int64 indices
GroupSpec = Union[str, Sequence[str], None]

_EMPTY = torch.empty(0, dtype=torch.int64)
_ANOTHER_MODEL = "was this neuron file made for another model?"


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------------------------
# Metadata


@dataclass
class NeuronSetMeta:
    """Where a neuron set comes from and which model shape it fits.

    ``NeuronSetMeta(num_layers=32, widths={"act": 11008}, model_id="meta-llama/Llama-2-7b-hf", method="lape")``

    ``widths`` maps a site to its width in the model the set was made for; a site missing there
    has an unknown width (then only ``validate_for`` against a real model can check its indices).
    ``source`` is free: importers record the original format there (e.g. the LAPE list count).
    """

    num_layers: int
    widths: dict[str, int] = field(default_factory=dict)
    model_id: str | None = None
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str | None = None
    neurospec_version: str = __version__
    created: str = field(default_factory=_now)
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``meta.to_dict()``: the JSON object stored under ``"meta"`` (field order kept)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: Any, where: str, error: type[NeurospecError] = FileFormatError) -> "NeuronSetMeta":
        """``NeuronSetMeta.from_dict(obj["meta"], "neuron file 'a.json'")``: check every field, or raise ``error``."""
        if not isinstance(raw, Mapping):
            raise error(f"{where}: 'meta' must be an object, not {type(raw).__name__}. Fix or regenerate the file.")
        known = {f.name for f in fields(cls)}
        unknown = [key for key in raw if key not in known]
        if unknown:
            raise error(
                f"{where}: unknown meta field(s) {', '.join(map(repr, unknown))}; the fields are {', '.join(sorted(known))}. "
                "Put free-form information under meta 'params' or 'source', or upgrade neurospec."
            )
        if "num_layers" not in raw:
            raise error(f"{where}: meta has no 'num_layers'; add the layer count of the model the neurons belong to.")
        num_layers = raw["num_layers"]
        if not _is_int(num_layers) or num_layers < 1:
            raise error(f"{where}: meta 'num_layers' must be a positive integer, not {num_layers!r}.")
        widths = _check_widths(raw.get("widths") or {}, where, error)
        for name in ("model_id", "method", "data_fingerprint", "neurospec_version", "created"):
            if raw.get(name) is not None and not isinstance(raw[name], str):
                raise error(f"{where}: meta {name!r} must be a string or null, not {raw[name]!r}.")
        for name in ("params", "source"):
            if raw.get(name) is not None and not isinstance(raw[name], Mapping):
                raise error(f"{where}: meta {name!r} must be an object, not {type(raw[name]).__name__}.")
        return cls(
            num_layers=int(num_layers),
            widths=widths,
            model_id=raw.get("model_id"),
            method=raw.get("method"),
            params=dict(raw.get("params") or {}),
            data_fingerprint=raw.get("data_fingerprint"),
            neurospec_version=raw.get("neurospec_version") or "unknown",
            created=raw.get("created") or "unknown",
            source=dict(raw.get("source") or {}),
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_site(site: Any, where: str, error: type[NeurospecError]) -> str:
    if site not in SITES:
        raise error(f"{where}: unknown site {site!r}; the sites are {', '.join(SITES)}. Rename it to one of them.")
    return site


def _check_widths(raw: Any, where: str, error: type[NeurospecError]) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise error(f"{where}: meta 'widths' must map site names to widths, not {type(raw).__name__}.")
    widths: dict[str, int] = {}
    for site, width in raw.items():
        _check_site(site, f"{where}: meta 'widths'", error)
        if width is None:  # unknown
            continue
        if not _is_int(width) or width < 1:
            raise error(f"{where}: meta 'widths' of site {site!r} must be a positive integer or null, not {width!r}.")
        widths[site] = int(width)
    return {site: widths[site] for site in SITES if site in widths}


# --------------------------------------------------------------------------------------------
# Parsing and checking the group data


def _as_indices(values: Any, entry: str, error: type[NeurospecError]) -> torch.Tensor:
    """Any 1-D integer tensor or array, or list of non-negative integers -> sorted unique int64 tensor."""
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(values) if values.dtype.kind in "iu" else values.tolist()
    if isinstance(values, torch.Tensor):
        if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
            raise error(f"{entry}: indices must be integers, not a {values.dtype} tensor. Convert them with .long().")
        if values.dim() != 1:
            raise error(f"{entry}: indices must be a 1-D tensor, not one of shape {tuple(values.shape)}.")
        tensor = values.detach().to("cpu", torch.int64)
    elif isinstance(values, (list, tuple)):
        bad = [v for v in values if not _is_int(v)]
        if bad:
            bad = bad[0]
            raise error(f"{entry}: index {bad!r} is not an integer; neuron indices are whole numbers >= 0.")
        try:
            tensor = torch.tensor([int(v) for v in values], dtype=torch.int64) if values else _EMPTY.clone()
        except (OverflowError, RuntimeError, ValueError):  # torch: "Overflow when unpacking long long"
            big = max(values, key=lambda v: abs(int(v)))
            raise error(f"{entry}: index {big} does not fit in 64 bits; neuron indices are small whole numbers "
                        "(below the site's width). Fix or regenerate the file.") from None
    else:
        raise error(f"{entry}: indices must be a list of integers, not {type(values).__name__}.")
    if tensor.numel() and int(tensor.min()) < 0:
        raise error(f"{entry}: index {int(tensor.min())} is negative; neuron indices count from 0.")
    return torch.unique(tensor)  # sorted ascending


_LAYER_KEY = re.compile(r"-?[0-9]+")


def _as_layer(key: Any, entry: str, error: type[NeurospecError]) -> int:
    if _is_int(key):
        layer = int(key)
    elif isinstance(key, str) and _LAYER_KEY.fullmatch(key.strip()):
        layer = int(key)
    else:
        raise error(f"{entry}: layer {key!r} is not an integer; layers are numbered 0, 1, 2, ...")
    if layer < 0:
        raise error(f"{entry}: layer {layer} is negative; layers are numbered from 0.")
    return layer


def _parse_groups(raw: Any, meta: NeuronSetMeta, where: str, error: type[NeurospecError]) -> dict[str, GroupData]:
    """Check and normalise ``{group: {site: {layer: indices}}}`` against ``meta`` (layer count, known widths)."""
    if not isinstance(raw, Mapping):
        raise error(f"{where}: 'groups' must map group names to sites, not {type(raw).__name__}.")
    groups: dict[str, GroupData] = {}
    for name, sites in raw.items():
        if not isinstance(name, str) or not name:
            raise error(f"{where}: group name {name!r} must be a non-empty string.")
        if not isinstance(sites, Mapping):
            raise error(f"{where}: group {name!r} must map sites to layers, not {type(sites).__name__}.")
        data: GroupData = {}
        for site, layers in sites.items():
            _check_site(site, f"{where}: group {name!r}", error)
            entry = f"{where}: group {name!r}, site {site!r}"
            if not isinstance(layers, Mapping):
                raise error(f"{entry}: must map layer numbers to index lists, not {type(layers).__name__}.")
            by_layer: dict[int, torch.Tensor] = {}
            for key, values in layers.items():
                layer = _as_layer(key, entry, error)
                at = f"{entry}, layer {layer}"
                if layer >= meta.num_layers:
                    raise error(
                        f"{at}: layer {layer} does not exist: the file says the model has {meta.num_layers} layers "
                        f"(0..{meta.num_layers - 1}). Fix the layer or meta 'num_layers'."
                    )
                if layer in by_layer:
                    raise error(f"{at}: layer {layer} appears twice. Keep one entry per layer.")
                indices = _as_indices(values, at, error)
                width = meta.widths.get(site)
                if width is not None and indices.numel() and int(indices[-1]) >= width:
                    raise error(
                        f"{at}: index {int(indices[-1])} is out of range: site {site!r} has {width} neurons "
                        f"(0..{width - 1}) per layer. Fix the index or meta 'widths'."
                    )
                if indices.numel():
                    by_layer[layer] = indices
            data[site] = dict(sorted(by_layer.items()))
        groups[name] = {site: data[site] for site in SITES if site in data}
    return groups


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    duplicates = sorted(key for key, times in Counter(key for key, _ in pairs).items() if times > 1)
    if duplicates:
        raise ValueError(f"duplicate key(s) {', '.join(map(repr, duplicates))} in one object")
    return dict(pairs)


def _as_shape(target: Any) -> ModelShape:
    """A ModelShape, or anything with a ``.shape`` ModelShape (a SiteMap, a LoadedModel's ``.sites``)."""
    if isinstance(target, ModelShape):
        return target
    shape = getattr(target, "shape", None)
    if isinstance(shape, ModelShape):
        return shape
    sites = getattr(target, "sites", None)  # a LoadedModel
    if sites is not None and isinstance(getattr(sites, "shape", None), ModelShape):
        return sites.shape
    raise TypeError(f"expected a ModelShape or a SiteMap, not {type(target).__name__}")


# --------------------------------------------------------------------------------------------
# Set algebra on sorted unique tensors and on group data


def _union(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.unique(torch.cat([a, b]))


def _intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[torch.isin(a, b)]


def _difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[~torch.isin(a, b)]


_OPS = {"union": _union, "intersection": _intersection, "difference": _difference}


def _combine(op: str, a: GroupData, b: GroupData) -> GroupData:
    """``union``: sites of either; ``intersection``: sites of both; ``difference``: sites of ``a``."""
    if op == "union":
        sites = [s for s in SITES if s in a or s in b]
    elif op == "intersection":
        sites = [s for s in SITES if s in a and s in b]
    else:
        sites = [s for s in SITES if s in a]
    out: GroupData = {}
    for site in sites:
        left, right = a.get(site, {}), b.get(site, {})
        layers = sorted(set(left) | set(right))
        combined = {layer: _OPS[op](left.get(layer, _EMPTY), right.get(layer, _EMPTY)) for layer in layers}
        out[site] = {layer: t for layer, t in combined.items() if t.numel()}
    return out


def match_group(name: str, groups: Iterable[str]) -> str:
    """The group of ``groups`` that ``name`` denotes: itself, or the same language (``fr`` for ``fra_Latn``) or
    country (``United Kingdom`` for ``UK``) under another name, when exactly one group is it. Unknown names raise
    an error listing the groups."""
    from neurospec.data.languages import language_of

    groups = list(groups)
    if isinstance(name, str) and name in groups:
        return name
    for key_of in (language_of, _country_of):
        key = key_of(name) if isinstance(name, str) else None
        matches = [g for g in groups if key is not None and key_of(g) == key]
        if len(matches) == 1:
            return matches[0]
    raise NeurospecError(f"no group {name!r} in the neuron set; it has: {', '.join(groups) or 'none'}")


def _country_of(name: str) -> str | None:
    from neurospec.data.languages import resolve_country

    try:
        return resolve_country(name).key
    except NeurospecError:
        return None


def _as_names(groups: GroupSpec) -> list[str] | None:
    if groups is None:
        return None
    if isinstance(groups, str):
        return [groups]
    return list(groups)


# --------------------------------------------------------------------------------------------
# NeuronSet


class NeuronSet:
    """Named groups of neurons: group -> site -> layer -> sorted unique LongTensor of indices.

        ns = NeuronSet({"fr": {"act": {0: [5, 1], 31: [7]}}}, num_layers=32)
        ns.indices("fr", "act", 0)          # tensor([1, 5])
        ns.count("fr"), ns.per_layer_counts("fr", "act")
        (ns | other).save("both.json")

    Construction checks every entry (known site, integer indices >= 0, layer < ``num_layers``,
    index < the site's width where known) and normalises indices to sorted unique int64.
    """

    __hash__ = None  # mutable-looking container with value equality

    def __init__(
        self,
        groups: Mapping[str, Mapping[str, Mapping[int | str, Indices]]] | None = None,
        meta: NeuronSetMeta | None = None,
        *,
        num_layers: int | None = None,
    ) -> None:
        if meta is None:
            if num_layers is None:
                raise NeurospecError("NeuronSet needs num_layers (or a NeuronSetMeta): how many layers has the model?")
            meta = NeuronSetMeta(num_layers=num_layers)
        elif num_layers is not None and num_layers != meta.num_layers:
            raise NeurospecError(f"num_layers={num_layers} disagrees with meta.num_layers={meta.num_layers}")
        checked = NeuronSetMeta.from_dict(meta.to_dict(), "neuron set", NeurospecError)
        self.meta: NeuronSetMeta = checked
        self._groups: dict[str, GroupData] = _parse_groups(groups or {}, checked, "neuron set", NeurospecError)
        self.path: Path | None = None

    # ---- construction helpers

    @classmethod
    def _trusted(cls, groups: dict[str, GroupData], meta: NeuronSetMeta) -> "NeuronSet":
        """A set from already normalised data (internal: set operations, selection)."""
        new = cls.__new__(cls)
        new.meta, new._groups, new.path = meta, groups, None
        return new

    def _derived(self, groups: dict[str, GroupData], *, keep_source: bool = False, **changes: Any) -> "NeuronSet":
        meta = NeuronSetMeta(**copy.deepcopy({**self.meta.to_dict(), "created": _now(), **changes}))
        if not keep_source and "source" not in changes:
            meta.source = {}
        return NeuronSet._trusted(groups, meta)

    # ---- basic accessors

    @property
    def num_layers(self) -> int:
        """``ns.num_layers``: layer count of the model the set was made for."""
        return self.meta.num_layers

    @property
    def groups(self) -> tuple[str, ...]:
        """``ns.groups``: group names in order (``("en", "zh", ...)``)."""
        return tuple(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def __contains__(self, group: object) -> bool:
        return group in self._groups

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __eq__(self, other: object) -> bool:
        """Same groups in the same order with the same neurons, and the same layer count (other meta ignored)."""
        if not isinstance(other, NeuronSet):
            return NotImplemented
        if self.num_layers != other.num_layers or list(self._groups) != list(other._groups):
            return False
        return all(self._same_group(self._groups[g], other._groups[g]) for g in self._groups)

    @staticmethod
    def _same_group(a: GroupData, b: GroupData) -> bool:
        if list(a) != list(b):
            return False
        return all(
            list(a[s]) == list(b[s]) and all(torch.equal(a[s][layer], b[s][layer]) for layer in a[s]) for s in a
        )

    def __repr__(self) -> str:
        model = f", model_id={self.meta.model_id!r}" if self.meta.model_id else ""
        counts = ", ".join(f"{g}={self.count(g)}" for g in self._groups)
        return f"NeuronSet({len(self)} groups: {counts}; num_layers={self.num_layers}{model})"

    def _label(self) -> str:
        """How error messages name this set: its file (and model) when known."""
        name = f"neuron file '{self.path}'" if self.path else "neuron set"
        return f"{name} (model {self.meta.model_id})" if self.meta.model_id else name

    def group_name(self, group: str) -> str:
        """``lape.group_name("French")`` -> ``'fra_Latn'``: the group ``group`` names (:func:`match_group`: the
        name itself, or the same language or country under another name)."""
        try:
            return match_group(group, self._groups)
        except NeurospecError:
            existing = ", ".join(map(repr, self._groups)) or "none"
            raise NeurospecError(f"unknown group {group!r} in {self._label()}: the groups are {existing}.") from None

    def _group(self, group: str) -> GroupData:
        return self._groups[self.group_name(group)]

    def _names(self, groups: GroupSpec) -> list[str]:
        names = list(self._groups) if groups is None else _as_names(groups)
        return [self.group_name(name) for name in names]

    def _check_layer(self, layer: int) -> int:
        if not _is_int(layer) or not 0 <= layer < self.num_layers:
            raise NeurospecError(
                f"layer {layer!r} does not exist in {self._label()}: it has {self.num_layers} layers "
                f"(0..{self.num_layers - 1})."
            )
        return int(layer)

    def sites(self, group: str) -> tuple[str, ...]:
        """``ns.sites("fr")`` -> ``("act",)``: the sites the group holds (in SITES order)."""
        return tuple(self._group(group))

    def indices(self, group: str, site: str, layer: int) -> torch.Tensor:
        """``ns.indices("fr", "act", 3)``: sorted unique LongTensor (a copy; empty when none)."""
        _check_site(site, self._label(), NeurospecError)
        layer = self._check_layer(layer)
        return self._group(group).get(site, {}).get(layer, _EMPTY).clone()

    def layers(self, group: str, site: str) -> list[int]:
        """``ns.layers("fr", "act")`` -> ``[0, 1, 30, 31]``: layers holding at least one of the group's neurons."""
        _check_site(site, self._label(), NeurospecError)
        return list(self._group(group).get(site, {}))

    def is_empty(self, group: str) -> bool:
        """``ns.is_empty("ja")``: True when the group holds no neuron at any site."""
        return not any(self._group(group).values())

    def entries(self, groups: GroupSpec = None) -> Iterator[tuple[str, str, int, torch.Tensor]]:
        """``for group, site, layer, idx in ns.entries(): ...``: every non-empty (group, site, layer)."""
        for name in self._names(groups):
            for site, layers in self._groups[name].items():
                for layer, indices in layers.items():
                    yield name, site, layer, indices.clone()

    # ---- unions over groups, counts

    def _union_data(self, names: Iterable[str], site: str | None = None) -> GroupData:
        data: GroupData = {}
        for name in names:
            group = self._group(name)
            if site is not None:
                group = {site: group[site]} if site in group else {}
            data = _combine("union", data, group)
        return data

    def layer_indices(self, groups: GroupSpec, site: str) -> dict[int, torch.Tensor]:
        """``ns.layer_indices(["fr", "es"], "act")`` -> ``{layer: LongTensor}``: the union over the groups.

        Only layers with at least one neuron appear, in ascending order; ``groups=None`` takes all.
        """
        _check_site(site, self._label(), NeurospecError)
        return {layer: t.clone() for layer, t in self._union_data(self._names(groups), site).get(site, {}).items()}

    def count(self, group: GroupSpec = None, site: str | None = None) -> int:
        """``ns.count()``, ``ns.count("fr")``, ``ns.count(["fr", "es"], site="act")``: distinct neurons.

        A neuron is (site, layer, index); several groups count each shared neuron once (their union).
        """
        if site is not None:
            _check_site(site, self._label(), NeurospecError)
        data = self._union_data(self._names(group), site)
        return sum(int(t.numel()) for layers in data.values() for t in layers.values())

    def per_layer_counts(self, group: GroupSpec = None, site: str | None = None) -> torch.Tensor:
        """``ns.per_layer_counts("fr", "act")`` -> LongTensor[num_layers] of distinct neurons per layer."""
        if site is not None:
            _check_site(site, self._label(), NeurospecError)
        counts = torch.zeros(self.num_layers, dtype=torch.int64)
        for layers in self._union_data(self._names(group), site).values():
            for layer, indices in layers.items():
                counts[layer] += indices.numel()
        return counts

    def neuron_keys(self, group: GroupSpec = None, site: str | None = None) -> torch.Tensor:
        """Sorted unique int64 keys, one per neuron: ``(site_position * num_layers + layer) * stride + index``.

        ``stride`` is one more than the largest index in the whole set, so keys of one set are
        comparable with each other (used for overlaps); they are not stable across sets.
        """
        stride = self._key_stride()
        parts = [_EMPTY]
        for site_name, layers in self._union_data(self._names(group), site).items():
            base = SITES.index(site_name) * self.num_layers
            parts += [(base + layer) * stride + t for layer, t in layers.items()]
        return torch.unique(torch.cat(parts))

    def _key_stride(self) -> int:
        largest = [int(t[-1]) for g in self._groups.values() for layers in g.values() for t in layers.values()]
        return max(largest, default=0) + 1

    def overlap(
        self, groups: GroupSpec = None, *, site: str | None = None, kind: str = "jaccard"
    ) -> tuple[list[str], torch.Tensor]:
        """``labels, m = ns.overlap()``: Jaccard index ``|A & B| / |A | B|`` between groups (float64 matrix).

        ``kind="count"`` gives ``|A & B|`` (int64) instead. Two empty groups have Jaccard 0 (no overlap).
        """
        if kind not in ("jaccard", "count"):
            raise NeurospecError(f"overlap kind must be 'jaccard' or 'count', not {kind!r}")
        names = self._names(groups)
        keys = [self.neuron_keys(name, site) for name in names]
        inter = torch.zeros(len(names), len(names), dtype=torch.int64)
        for i, a in enumerate(keys):
            for j, b in enumerate(keys):
                inter[i, j] = int(torch.isin(a, b).sum()) if j >= i else inter[j, i]
        if kind == "count":
            return names, inter
        sizes = torch.tensor([k.numel() for k in keys], dtype=torch.float64)
        unions = sizes[:, None] + sizes[None, :] - inter.double()
        jaccard = torch.where(unions > 0, inter.double() / unions.clamp(min=1), torch.zeros_like(unions))
        return names, jaccard

    # ---- reshaping: select, rename, merge

    def select(self, *groups: str | Sequence[str]) -> "NeuronSet":
        """``ns.select("fr", "es")`` (or ``ns.select(["fr", "es"])``): a new set with those groups, in that order."""
        given = list(groups[0]) if len(groups) == 1 and not isinstance(groups[0], str) else list(groups)
        names = [self.group_name(name) for name in given]
        if len(set(names)) != len(names):
            raise NeurospecError(f"select: group names repeat in {given}")
        return self._derived({name: self._groups[name] for name in names})

    def rename(self, mapping: Mapping[str, str]) -> "NeuronSet":
        """``ns.rename({"en": "eng_Latn"})``: the same set with some groups renamed (order kept)."""
        mapping = {self.group_name(old): new for old, new in mapping.items()}
        names = [mapping.get(name, name) for name in self._groups]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise NeurospecError(f"rename would give two groups the name(s) {', '.join(map(repr, repeated))}")
        renamed = {mapping.get(name, name): data for name, data in self._groups.items()}
        return self._derived(renamed, keep_source=True)

    def merge(self, groups: Sequence[str], name: str) -> "NeuronSet":
        """``ns.merge(["fr", "es"], "romance")``: the listed groups replaced by their union, where the first stood."""
        names = self._names(groups)
        if not names:
            raise NeurospecError("merge: give at least one group")
        if name in self._groups and name not in names:
            raise NeurospecError(f"merge: a group named {name!r} exists already; choose another name")
        merged = self._union_data(names)
        out: dict[str, GroupData] = {}
        for group, data in self._groups.items():
            if group == names[0]:
                out[name] = merged
            elif group not in names:
                out[group] = data
        return self._derived(out, params={"merged": {name: names}, "of": self.meta.params})

    # ---- set operations

    def union(self, *others: "NeuronSet | str", name: str | None = None) -> "NeuronSet":
        """Union, group by group (``a.union(b)``, ``a | b``), or of named groups (``ns.union("fr", "es")``).

        With group names the result holds one group, ``name`` (default ``"fr|es"``).
        """
        return self._apply("union", others, name, "|")

    def intersection(self, *others: "NeuronSet | str", name: str | None = None) -> "NeuronSet":
        """Intersection, group by group (``a & b``: groups present in both), or of named groups (``"fr&es"``)."""
        return self._apply("intersection", others, name, "&")

    def difference(self, *others: "NeuronSet | str", name: str | None = None) -> "NeuronSet":
        """Difference, group by group (``a - b``: a's groups minus b's same group), or of groups (``"fr-es"``)."""
        return self._apply("difference", others, name, "-")

    def __or__(self, other: "NeuronSet") -> "NeuronSet":
        return self.union(other) if isinstance(other, NeuronSet) else NotImplemented

    def __and__(self, other: "NeuronSet") -> "NeuronSet":
        return self.intersection(other) if isinstance(other, NeuronSet) else NotImplemented

    def __sub__(self, other: "NeuronSet") -> "NeuronSet":
        return self.difference(other) if isinstance(other, NeuronSet) else NotImplemented

    def _apply(self, op: str, operands: tuple, name: str | None, symbol: str) -> "NeuronSet":
        if operands and all(isinstance(o, str) for o in operands):
            return self._apply_groups(op, list(operands), name or symbol.join(operands))
        if operands and all(isinstance(o, NeuronSet) for o in operands):
            result = self
            for other in operands:
                result = result._apply_sets(op, other)
            return result
        raise NeurospecError(
            f"{op}: give other NeuronSets (group by group) or group names of this set, not {operands!r}"
        )

    def _apply_groups(self, op: str, names: list[str], name: str) -> "NeuronSet":
        data = self._group(names[0])
        for other in names[1:]:
            data = _combine(op, data, self._group(other))
        return self._derived({name: data}, params={op: names, "of": self.meta.params})

    def _apply_sets(self, op: str, other: "NeuronSet") -> "NeuronSet":
        self._check_compatible(other, op)
        if op == "union":
            names = list(self._groups) + [g for g in other._groups if g not in self._groups]
        elif op == "intersection":
            names = [g for g in self._groups if g in other._groups]
        else:
            names = list(self._groups)
        groups = {g: _combine(op, self._groups.get(g, {}), other._groups.get(g, {})) for g in names}
        ids = {self.meta.model_id, other.meta.model_id} - {None}
        widths = {**other.meta.widths, **self.meta.widths}
        return self._derived(
            groups,
            widths={site: widths[site] for site in SITES if site in widths},
            model_id=ids.pop() if len(ids) == 1 else None,
            method=op,
            params={"left": self._summary_meta(), "right": other._summary_meta()},
            data_fingerprint=None,
        )

    def _summary_meta(self) -> dict[str, Any]:
        return {"model_id": self.meta.model_id, "method": self.meta.method, "params": self.meta.params}

    def _check_compatible(self, other: "NeuronSet", op: str) -> None:
        if self.num_layers != other.num_layers:
            raise ShapeMismatchError(
                f"{op}: {self._label()} has {self.num_layers} layers but {other._label()} has {other.num_layers}: "
                "neuron sets of models with different shapes cannot be combined."
            )
        for site in SITES:
            a, b = self.meta.widths.get(site), other.meta.widths.get(site)
            if a is not None and b is not None and a != b:
                raise ShapeMismatchError(
                    f"{op}: site {site!r} is {a} wide in {self._label()} but {b} wide in {other._label()}: "
                    "neuron sets of models with different shapes cannot be combined."
                )

    # ---- validation against a model

    def validate_for(self, target: ModelShape | Any) -> "NeuronSet":
        """``ns.validate_for(lm.sites)`` (a SiteMap or a ModelShape): raise ShapeMismatchError unless the set fits.

        Checked: every layer and index exists in the model, every site with neurons exists there,
        the layer count matches, and every width stored in the file equals the model's. Returns ``self``.
        Given a model's site map, a set whose provenance names other weights than the model's gets an
        :class:`~neurospec.util.errors.OtherWeightsWarning`.
        """
        shape = _as_shape(target)
        model = f"model {shape.model_id}" if shape.model_id else "the model"
        label = self._label()
        for group, site, layer, _indices in self._raw_entries():
            if layer >= shape.num_layers:
                raise ShapeMismatchError(
                    f"{label}, group {group!r}, site {site!r}: layer {layer} does not exist: {model} has "
                    f"{shape.num_layers} layers (0..{shape.num_layers - 1}); {_ANOTHER_MODEL}"
                )
        if self.num_layers != shape.num_layers:
            raise ShapeMismatchError(
                f"{label} was made for a model with {self.num_layers} layers, but {model} has {shape.num_layers} "
                f"layers; {_ANOTHER_MODEL}"
            )
        used = [s for s in SITES if any(self._groups[g].get(s) for g in self._groups)]
        for site in used:
            if site not in shape.widths:
                available = ", ".join(s for s in SITES if s in shape.widths) or "none"
                raise ShapeMismatchError(
                    f"{label} holds neurons at site {site!r}, which {model} does not have (its sites: {available}); "
                    f"{_ANOTHER_MODEL}"
                )
        for site, width in self.meta.widths.items():
            if site in shape.widths and shape.widths[site] != width:
                raise ShapeMismatchError(
                    f"{label} was made for a model whose site {site!r} has {width} neurons per layer, but {model} "
                    f"has {shape.widths[site]}; {_ANOTHER_MODEL}"
                )
        for group, site, layer, indices in self._raw_entries():
            width = shape.widths[site]
            if int(indices[-1]) >= width:
                raise ShapeMismatchError(
                    f"{label}, group {group!r}, site {site!r}, layer {layer}: neuron {int(indices[-1])} does not "
                    f"exist: {model} has {width} {site!r} neurons per layer (0..{width - 1}); {_ANOTHER_MODEL}"
                )
        live = getattr(target, "model", None)  # a SiteMap or LoadedModel: the weights can be compared too
        if isinstance(live, torch.nn.Module):
            from neurospec.core.provenance import check_made_on, made_on

            check_made_on(live, made_on(self.meta.source), label)
        return self

    def _raw_entries(self) -> Iterator[tuple[str, str, int, torch.Tensor]]:
        for group, data in self._groups.items():
            for site, layers in data.items():
                for layer, indices in layers.items():
                    yield group, site, layer, indices

    # ---- JSON file

    def to_dict(self) -> dict[str, Any]:
        """``ns.to_dict()``: the JSON document (format tag, version, meta, groups)."""
        groups = {
            name: {site: {str(layer): t.tolist() for layer, t in layers.items()} for site, layers in data.items()}
            for name, data in self._groups.items()
        }
        return {"format": FORMAT, "version": VERSION, "meta": self.meta.to_dict(), "groups": groups}

    @classmethod
    def from_dict(cls, document: Any, where: str = "neuron set document") -> "NeuronSet":
        """``NeuronSet.from_dict(json.loads(text))``: check everything, raising FileFormatError naming ``where``."""
        if not isinstance(document, Mapping):
            raise FileFormatError(f"{where}: expected a JSON object at the top, not {type(document).__name__}.")
        tag = document.get("format")
        if tag != FORMAT:
            raise FileFormatError(
                f"{where}: format tag is {tag!r}, expected {FORMAT!r}: this is not a neurospec neuron file. "
                "A LAPE .pth file is imported with `neurospec neurons import FILE.pth --groups ...` "
                "(NeuronSet.from_lape)."
            )
        version = document.get("version")
        if not _is_int(version) or version != VERSION:
            newer = _is_int(version) and version > VERSION
            raise FileFormatError(
                f"{where}: format version {version!r} is not supported (this neurospec {__version__} reads version "
                f"{VERSION}). " + ("Upgrade neurospec to read it." if newer else "Regenerate the file.")
            )
        unknown = [key for key in document if key not in ("format", "version", "meta", "groups")]
        if unknown:
            raise FileFormatError(
                f"{where}: unknown top-level field(s) {', '.join(map(repr, unknown))}; the fields are format, "
                "version, meta, groups. Remove them, or upgrade neurospec."
            )
        if "meta" not in document or "groups" not in document:
            missing = [k for k in ("meta", "groups") if k not in document]
            raise FileFormatError(f"{where}: missing field(s) {', '.join(missing)}.")
        meta = NeuronSetMeta.from_dict(document["meta"], where)
        return cls._trusted(_parse_groups(document["groups"], meta, where, FileFormatError), meta)

    def save(self, path: PathLike) -> Path:
        """``ns.save("fr.json")``: write the JSON file atomically (parents created); return its path."""
        written = atomic_write_json(path, self.to_dict())
        self.path = Path(path)
        return written

    @classmethod
    def load(cls, path: PathLike, shape: ModelShape | Any | None = None) -> "NeuronSet":
        """``NeuronSet.load("fr.json", shape=lm.sites)``: read and check a JSON neuron file (and its fit to a model)."""
        path = Path(path)
        where = f"neuron file '{path}'"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NeurospecError(f"{where} does not exist; check the path.") from None
        except UnicodeDecodeError:
            raise FileFormatError(
                f"{where} is not JSON text (a LAPE .pth file? import it with `neurospec neurons import FILE.pth "
                "--groups ...` or NeuronSet.from_lape)."
            ) from None
        try:
            document = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except ValueError as err:
            raise FileFormatError(f"{where} is not valid JSON ({err}); fix or regenerate it.") from None
        neurons = cls.from_dict(document, where)
        neurons.path = path
        if shape is not None:
            neurons.validate_for(shape)
        return neurons

    # ---- LAPE reference interop

    @classmethod
    def from_lape(
        cls,
        source: PathLike | Sequence[Sequence[Indices]],
        groups: Sequence[str],
        site: str = "act",
        shape: ModelShape | Any | None = None,
        *,
        model_id: str | None = None,
    ) -> "NeuronSet":
        """``NeuronSet.from_lape("LLaMA-2-7B.neuron.pth", groups=["en", "zh", ...], shape=model_shape(m))``.

        ``source`` is a reference LAPE file (``list[language][layer] -> LongTensor``, ``torch.save``),
        read with ``torch.load(weights_only=True)`` only, or the loaded lists. ``groups`` names the lists
        in order; fewer lists than names is accepted (the reference drops trailing languages with no
        neurons: they become empty groups), more is an error. ``shape`` (a ModelShape or SiteMap)
        supplies widths and is validated against; without it the layer count comes from the file.
        """
        names = list(groups)
        _check_site(site, "from_lape", NeurospecError)
        if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise NeurospecError(f"from_lape: groups must be distinct non-empty names, one per list, not {names!r}")
        where, source_info = "LAPE neuron lists", {"format": LAPE_FORMAT}
        lists = source
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            where = f"LAPE file '{path}'"
            lists = _torch_load_lists(path, where)
            source_info.update(file=path.name, file_fingerprint=file_fingerprint(path))
        num_layers = _lape_layer_count(lists, where)
        model_shape = _as_shape(shape) if shape is not None else None
        if len(lists) > len(names):
            raise FileFormatError(
                f"{where} holds {len(lists)} language lists but {len(names)} group names were given "
                f"({', '.join(names)}): give one name per list, in the file's language order."
            )
        if num_layers is None:
            if model_shape is None:
                raise FileFormatError(f"{where} holds no lists: give the model shape to tell its layer count.")
            num_layers = model_shape.num_layers
        if model_shape is not None and model_shape.num_layers != num_layers:
            model = model_shape.model_id or "the model"
            raise ShapeMismatchError(
                f"{where} has {num_layers} layers per language, but model {model} has {model_shape.num_layers} "
                f"layers; {_ANOTHER_MODEL}"
            )
        source_info.update(lists=len(lists), site=site)
        widths = {site: model_shape.widths[site]} if model_shape and site in model_shape.widths else {}
        meta = NeuronSetMeta(
            num_layers=num_layers,
            widths=widths,
            model_id=model_id,  # the model's id is recorded once the neurons are known to fit it
            method="lape",
            params={"imported": True},
            source=source_info,
        )
        raw = {
            name: {site: ({layer: t for layer, t in enumerate(lists[i])} if i < len(lists) else {})}
            for i, name in enumerate(names)
        }
        # parse without the model's width: an index beyond it is a shape mismatch, reported by validate_for
        neurons = cls._trusted(_parse_groups(raw, replace(meta, widths={}), where, FileFormatError), meta)
        if isinstance(source, (str, os.PathLike)):
            neurons.path = Path(source)
        if model_shape is not None:
            neurons.validate_for(model_shape)
            meta.model_id = model_id or model_shape.model_id
        return neurons

    def _lape_site(self, names: list[str]) -> str:
        """The one site a LAPE export holds: the only site with neurons, else the imported one, else ``act``."""
        used = [s for s in SITES if any(self._groups[name].get(s) for name in names)]
        if len(used) > 1:
            raise NeurospecError(
                f"the LAPE format holds one site, but these groups have neurons at sites {', '.join(used)}: "
                "choose the site to export (site=..., --site); neurons at other sites are then left out."
            )
        recorded = self.meta.source.get("site") if self.meta.source.get("format") == LAPE_FORMAT else None
        return used[0] if used else recorded if recorded in SITES else "act"

    def to_lape(self, groups: Sequence[str] | None = None, site: str | None = None) -> list[list[torch.Tensor]]:
        """``ns.to_lape()`` -> ``list[group][layer] -> LongTensor``, as the LAPE reference writes it.

        One tensor per layer (empty int64 tensors where a group has none); trailing groups with no
        neurons are dropped, as the reference does. A set imported with :meth:`from_lape` gets back
        exactly as many lists as its file held. The format holds one site: without ``site``, groups
        with neurons at several sites are refused rather than silently cut; with ``site``, only that
        site is written.
        """
        names = self._names(groups)
        site = site or self._lape_site(names)
        _check_site(site, "to_lape", NeurospecError)
        lists = [[self.indices(name, site, layer) for layer in range(self.num_layers)] for name in names]
        keep = max((i + 1 for i, lang in enumerate(lists) if any(t.numel() for t in lang)), default=0)
        if groups is None and self.meta.source.get("format") == LAPE_FORMAT:
            recorded = self.meta.source.get("lists")
            if _is_int(recorded):
                keep = max(keep, min(int(recorded), len(names)))
        return lists[:keep]

    def save_lape(self, path: PathLike, groups: Sequence[str] | None = None, site: str | None = None) -> Path:
        """``ns.save_lape("fr.neuron.pth")``: write :meth:`to_lape` with ``torch.save``, atomically."""
        return atomic_torch_save(path, self.to_lape(groups, site))

    # ---- summaries (CLI, reports)

    def summary(self) -> dict[str, Any]:
        """``ns.summary()``: counts per group and site, per layer, and in total, as plain JSON data."""
        groups = {}
        for name, data in self._groups.items():
            sites = {
                site: {"count": self.count(name, site), "per_layer": self.per_layer_counts(name, site).tolist()}
                for site in data
            }
            groups[name] = {"count": self.count(name), "sites": sites}
        return {
            "file": str(self.path) if self.path else None,
            "model_id": self.meta.model_id,
            "method": self.meta.method,
            "num_layers": self.num_layers,
            "widths": dict(self.meta.widths),
            "groups": groups,
            "unique_total": self.count(),
            "assignments_total": sum(self.count(name) for name in self._groups),
        }


# --------------------------------------------------------------------------------------------
# LAPE file reading


def _torch_load_lists(path: Path, where: str) -> Any:
    if not path.exists():
        raise NeurospecError(f"{where} does not exist; check the path.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (not a zip), EOFError, ...
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileFormatError(
            f"{where} cannot be read as a LAPE neuron file with torch.load(weights_only=True) ({first_line}); "
            "neurospec reads only plain lists of tensors and never unpickles code."
        ) from None


def _lape_layer_count(lists: Any, where: str) -> int | None:
    """Check ``list[language][layer] -> 1-D integer tensor``; return the layer count (None when no lists)."""
    if not isinstance(lists, (list, tuple)):
        raise FileFormatError(f"{where}: expected a list of per-language lists, not {type(lists).__name__}.")
    counts = set()
    for i, layers in enumerate(lists):
        if not isinstance(layers, (list, tuple)):
            raise FileFormatError(f"{where}: list {i} must be a list of per-layer tensors, not {type(layers).__name__}.")
        counts.add(len(layers))
    if len(counts) > 1:
        per_list = ", ".join(str(len(layers)) for layers in lists)
        raise FileFormatError(f"{where}: the language lists have different layer counts ({per_list}); the file is damaged.")
    if not counts:
        return None
    num_layers = counts.pop()
    if num_layers < 1:
        raise FileFormatError(f"{where}: the language lists hold no layers.")
    return num_layers
