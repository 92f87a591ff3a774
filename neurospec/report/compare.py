"""The numbers of a comparison of models: which artifacts and groups match, neurons by relative depth, overlaps.

    from neurospec.report.compare import comparable_artifacts, match_groups, depth_profile, same_shape, overlap
    pairings, alone = comparable_artifacts(found.models)      # found: a Discovery of a study of several models
    pairing.kind, pairing.label, pairing.artifacts["gemma"]      # the same artifact in each model holding it
    matched, unmatched = match_groups({"gemma": ["fra_Latn", "zho_Hans"], "toy": ["fr", "deu_Latn"]})
    matched[0].name, matched[0].items                            # ("fra_Latn",), {"gemma": "fra_Latn", "toy": "fr"}
    depth_profile([4, 0, 2], bins=10).counts                   # neurons per relative-depth bin
    same_shape(set_a, set_b)                                    # None, or why two neuron sets cannot be overlapped
    overlap(set_a, "fra_Latn", set_b, "fra_Latn").jaccard

Every number is read from each model's own artifacts through the same result classes its own sections use
(:mod:`neurospec.results`, :class:`~neurospec.neurons.neuron_set.NeuronSet`), so the comparison shows the
numbers the model's sections show. An artifact kind is compared where at least two models hold it:
artifacts are paired by their path in the model's folder (``ppl/ppl.json`` in each), or, where no path is
shared and each model holds one artifact of the kind, those. Groups are matched by name, a language or country
under another name included (``fr`` = ``fra_Latn``, ``UK`` = ``United Kingdom``).

Relative depth of layer ``l`` of a model of ``L`` layers is ``l / (L - 1)`` (0 for a one-layer model); bin ``b`` of
``bins`` holds the layers whose relative depth lies in ``[b / bins, (b + 1) / bins)``, the last bin closed (integer
arithmetic: ``min(l * bins // (L - 1), bins - 1)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Mapping, Sequence, TypeVar

from neurospec.data.languages import language_of, resolve_country
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.report.discover import Artifact, ModelRun
from neurospec.report.fields import ReportError
from neurospec.report.sections.lss import sweep_setting_labels
from neurospec.util.errors import NeurospecError

DEPTH_BINS = 10
COMPARED_KINDS = ("neurons", "ppl", "lss", "steer", "mask_eval")  # in the order the comparison shows them
RANDOM_METHODS = ("random", "random-pooled")
T = TypeVar("T")


@dataclass(frozen=True)
class Pairing:
    """The artifact of one ``kind`` in each model holding it (``artifacts``: model name -> artifact, at least two);
    ``label`` its path in the models' folders (the paths joined by ``; `` where they differ)."""

    kind: str
    label: str
    artifacts: dict[str, Artifact]


def load_neurons(artifact: Artifact) -> NeuronSet:
    """``load_neurons(artifact)``: the neuron set of a ``neurons`` artifact; a malformed one is a ReportError."""
    try:
        return NeuronSet.load(artifact.path)
    except NeurospecError as err:
        raise ReportError(f"{err} (artifact '{artifact.label}'; {artifact.fix})") from None


def is_random_baseline(artifact: Artifact) -> bool:
    """``is_random_baseline(artifact)``: a neuron set of random baseline groups (method random or random-pooled, or
    every group named ``random...``)."""
    meta = artifact.data.get("meta") if isinstance(artifact.data.get("meta"), dict) else {}
    groups = artifact.data.get("groups") if isinstance(artifact.data.get("groups"), dict) else {}
    return meta.get("method") in RANDOM_METHODS or (bool(groups) and all(str(g).startswith("random") for g in groups))


def sweep_owned(artifacts: Iterable[Artifact]) -> set[str]:
    """``sweep_owned(found.artifacts)``: the labels of the per-setting lss.json files of the sweeps among them."""
    return {label for artifact in artifacts if artifact.kind == "sweep" for label in sweep_setting_labels(artifact)}


def candidates(model: ModelRun, kind: str) -> list[Artifact]:
    """``candidates(model, "lss")``: the model's artifacts of ``kind`` that a comparison may pair (not a sweep's
    settings, not a random baseline neuron set)."""
    if model.found is None:
        return []
    owned = sweep_owned(model.found.artifacts)
    return [a for a in model.found.artifacts if a.kind == kind and a.label not in owned
            and not (kind == "neurons" and is_random_baseline(a))]


def pair_kind(models: Sequence[ModelRun], kind: str) -> list[Pairing]:
    """``pair_kind(found.models, "ppl")``: the pairings of one kind (see the module docstring)."""
    held = {model.name: candidates(model, kind) for model in models}
    held = {name: artifacts for name, artifacts in held.items() if artifacts}
    labels = list(dict.fromkeys(a.label for artifacts in held.values() for a in artifacts))
    pairings = []
    for label in labels:
        sharing = {name: a for name, artifacts in held.items() for a in artifacts if a.label == label}
        if len(sharing) >= 2:
            pairings.append(Pairing(kind, label, sharing))
    if not pairings and len(held) >= 2 and all(len(artifacts) == 1 for artifacts in held.values()):
        only = {name: artifacts[0] for name, artifacts in held.items()}
        pairings.append(Pairing(kind, "; ".join(dict.fromkeys(a.label for a in only.values())), only))
    return pairings


def comparable_artifacts(models: Sequence[ModelRun]) -> tuple[list[Pairing], list[tuple[str, str]]]:
    """``pairings, alone = comparable_artifacts(found.models)``: every pairing of :data:`COMPARED_KINDS`, and the
    ``(model, label)`` of each artifact of those kinds that no pairing compares (in one model only)."""
    pairings: list[Pairing] = []
    alone: list[tuple[str, str]] = []
    for kind in COMPARED_KINDS:
        found = pair_kind(models, kind)
        pairings += found
        paired = {(name, artifact.label) for pairing in found for name, artifact in pairing.artifacts.items()}
        alone += [(model.name, a.label) for model in models for a in candidates(model, kind)
                  if (model.name, a.label) not in paired]
    return pairings, alone


def group_key(name: str) -> str:
    """``group_key("fr")`` -> ``"fra_Latn"``: the language or country a group name denotes, else the name itself."""
    language = language_of(name)
    if language is not None:
        return language
    try:
        return f"country:{resolve_country(name).key}"
    except NeurospecError:
        return name


@dataclass(frozen=True)
class Match(Generic[T]):
    """Something present in at least two models: its ``name`` as the first of them calls it (a tuple of group names,
    e.g. ``("eng_Latn", "fra_Latn")`` for an LSS cell) and each model's ``items``."""

    name: tuple[str, ...]
    items: dict[str, T]


def group_keys(key: tuple[str, ...]) -> tuple[str, ...]:
    """``group_keys(("fr", "en"))`` -> ``("fra_Latn", "eng_Latn")``: :func:`group_key` of every name."""
    return tuple(group_key(name) for name in key)


def match_items(items: Mapping[str, Mapping[tuple[str, ...], T]],
                canonical: Callable[[tuple[str, ...]], tuple[str, ...]] = group_keys,
                ) -> tuple[list[Match[T]], dict[str, list[tuple[str, ...]]]]:
    """``matched, unmatched = match_items({"gemma": {("fra_Latn",): x, ...}, "toy": {("fr",): y}})``: the keys
    present in at least two models once ``canonical`` names them alike (in first-seen order), and per model its
    keys no other model has."""
    by_key: dict[tuple[str, ...], dict[str, tuple[tuple[str, ...], T]]] = {}
    for model, held in items.items():
        for key, item in held.items():
            by_key.setdefault(canonical(key), {}).setdefault(model, (key, item))
    matched = [Match(next(iter(found.values()))[0], {model: item for model, (_, item) in found.items()})
               for found in by_key.values() if len(found) >= 2]
    unmatched: dict[str, list[tuple[str, ...]]] = {}
    for found in by_key.values():
        if len(found) == 1:
            (model, (key, _)), = found.items()
            unmatched.setdefault(model, []).append(key)
    return matched, unmatched


def match_groups(names: Mapping[str, Sequence[str]]) -> tuple[list[Match[str]], dict[str, list[str]]]:
    """``matched, unmatched = match_groups({"gemma": [...], "toy": [...]})``: the groups present in at least two
    models (``match.items``: model -> its name of the group), and per model its groups no other model has."""
    matched, unmatched = match_items({model: {(group,): group for group in groups} for model, groups in names.items()})
    return matched, {model: [key[0] for key in keys] for model, keys in unmatched.items()}


def relative_depth(layer: int, layers: int) -> float:
    """``relative_depth(3, 4)`` -> 1.0: ``layer / (layers - 1)``, 0 for a model of one layer."""
    return layer / (layers - 1) if layers > 1 else 0.0


def depth_bin(layer: int, layers: int, bins: int = DEPTH_BINS) -> int:
    """``depth_bin(3, 4)`` -> 9: the relative-depth bin of ``layer`` (module docstring)."""
    return min(layer * bins // (layers - 1), bins - 1) if layers > 1 else 0


def bin_edges(bins: int = DEPTH_BINS) -> list[tuple[float, float]]:
    """``bin_edges(10)`` -> ``[(0.0, 0.1), ..., (0.9, 1.0)]``: each bin's relative depths."""
    return [(b / bins, (b + 1) / bins) for b in range(bins)]


@dataclass(frozen=True)
class DepthProfile:
    """Neurons per relative-depth bin (``counts``), the ``layers`` of the model falling in each bin, and ``shares``
    (count / total; None when the group holds no neuron)."""

    counts: list[int]
    layers: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def shares(self) -> list[float | None]:
        return [count / self.total if self.total else None for count in self.counts]


def depth_profile(per_layer: Sequence[int], bins: int = DEPTH_BINS) -> DepthProfile:
    """``depth_profile([4, 0, 2])``: a per-layer count summed into relative-depth bins."""
    counts, layers = [0] * bins, [0] * bins
    for layer, count in enumerate(per_layer):
        where = depth_bin(layer, len(per_layer), bins)
        counts[where] += int(count)
        layers[where] += 1
    return DepthProfile(counts, layers)


def shape_text(neurons: NeuronSet) -> str:
    """``"18 layers; act 2048"``: a neuron set's layers and the widths of the sites it uses."""
    sites = sorted({site for group in neurons.groups for site in neurons.sites(group)})
    widths = ", ".join(f"{site} {neurons.meta.widths.get(site, 'width not recorded')}" for site in sites)
    return f"{neurons.num_layers} layers" + (f"; {widths}" if widths else "")


def same_shape(first: NeuronSet, second: NeuronSet) -> bool:
    """Whether two neuron sets were made for models of one shape: the same layers, and for every site either uses
    the same recorded width (a width neither records cannot be told to match)."""
    if first.num_layers != second.num_layers:
        return False
    sites = {site for ns in (first, second) for group in ns.groups for site in ns.sites(group)}
    return all(first.meta.widths.get(site) is not None and first.meta.widths.get(site) == second.meta.widths.get(site)
               for site in sites)


@dataclass(frozen=True)
class Overlap:
    """One group in two models of one shape: their neurons (``first``, ``second``), ``shared`` and ``union``."""

    first: int
    second: int
    shared: int
    union: int

    @property
    def jaccard(self) -> float:
        """|A ∩ B| / |A ∪ B| (0 when both are empty)."""
        return self.shared / self.union if self.union else 0.0


def members(neurons: NeuronSet, group: str) -> set[tuple[str, int, int]]:
    """``members(ns, "fra_Latn")``: the group's neurons as (site, layer, index)."""
    return {(site, layer, int(i)) for _, site, layer, indices in neurons.entries([group]) for i in indices.tolist()}


def overlap(first: NeuronSet, first_group: str, second: NeuronSet, second_group: str) -> Overlap:
    """``overlap(a, "fr", b, "fr")``: how many neurons a group holds in each set and how many both hold."""
    a, b = members(first, first_group), members(second, second_group)
    return Overlap(len(a), len(b), len(a & b), len(a | b))
