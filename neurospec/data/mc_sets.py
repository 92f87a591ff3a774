"""One entry point for every multiple-choice set of the culture method, cultural and NLU.

    from neurospec.data.mc_sets import MC_SETS, load_mc_set
    find = load_mc_set("blend", split="find")                              # BLEnD MCQ, Food / Work life / Sport
    ctrl = load_mc_set("blend-control", split="find")                      # same options, no question (reference)
    rc = load_mc_set("countryrc", split="find")                            # 8 countries x 25 passages
    cb = load_mc_set("culturalbench", path="cb_easy.jsonl", countries=["USA", "UK"], split="test")
    wvb = load_mc_set("worldvaluesbench", path="WorldValuesBench", countries=["Iran"], split="find")
    nlu = load_mc_set("qnli", limit=500)                                   # the first 500 QNLI items
    [(s.name, s.kind, s.needs_path) for s in MC_SETS.values()]

The sets are the ``cultural`` and ``nlu`` entries of :data:`neurospec.data.benchmarks.BENCHMARKS`
(``MC_SETS[name] is BENCHMARKS[name]``): each entry's ``load`` reads the items, this module checks the
arguments and applies ``limit``.

Arguments mean the same for every set:

- ``path``: the set's local data (a file or folder; see :data:`MC_SETS` and docs/culture_data.md).
  Without it, a set reads its registered data set (``neurospec data list``): from the mirror in
  NEUROSPEC_DATA or the cache of ``neurospec data fetch NAME`` (CulturalBench and NormAd come from the
  Hugging Face hub that way). WorldValuesBench and CommonsenseQA need ``path``.
- ``countries``: the countries to keep (any name :func:`neurospec.data.languages.resolve_country` knows,
  or the benchmark's own spelling). CountryRC and WorldValuesBench default to the paper's 8 culture
  countries; the NLU sets have no countries and ignore it.
- ``split``: BLEnD topics ``"find"`` / ``"test"`` (default) / ``"all"`` or a topic; CountryRC,
  CulturalBench, NormAd ``"find"`` / ``"test"`` / ``"all"`` (default); WorldValuesBench the same
  (its ``select=``; the data folder's split is the ``data_split=`` option); MRPC ``"test"``
  (default) / ``"dev"``; QNLI only ``"dev"``; CommonsenseQA none (the file is the split).
- ``limit``: at most this many items per group (country, or the NLU set's name), the first in order.
- ``seed``: option shuffling, where the set shuffles (BLEnD, CountryRC, CulturalBench easy, NormAd).
- ``**options``: the set's own options (``MC_SETS[name].options``), e.g. ``config="hard"`` for
  CulturalBench, ``with_rule=True`` for NormAd, ``pool=`` for CountryRC, ``num_options=`` for BLEnD,
  ``instruction=`` for BLEnD-control (default ``""``: no question, the reference's control prompt;
  ``instruction=CONTROL_INSTRUCTION`` shows "Choose only one of the options." in its place).

CountryRC items are the same for every protocol; how they are prompted is the attribution's choice:
:func:`neurospec.data.countryrc.countryrc_prompts` (the reference's 4 prompts, no prefill, by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from neurospec.data.benchmarks import HUB_FILES, Benchmark, BenchmarkView, hub_file, missing_path_error, normalized
from neurospec.data.items import MCItem
from neurospec.util.errors import NeurospecError

__all__ = ["HUB_FILES", "MC_KINDS", "MC_SETS", "MCSetInfo", "check_limit", "limit_per_group", "load_mc_set", "mc_set",
           "mc_set_names"]

#: What :func:`load_mc_set` knows about a set: an entry of :data:`neurospec.data.benchmarks.BENCHMARKS`.
MCSetInfo = Benchmark

#: The kinds of benchmark that are multiple-choice sets of the culture method.
MC_KINDS = ("cultural", "nlu")

#: Every set :func:`load_mc_set` loads, by name: the cultural and NLU entries of the benchmark registry
#: (a live, read-only view of :data:`neurospec.data.benchmarks.BENCHMARKS`).
MC_SETS: Mapping[str, Benchmark] = BenchmarkView(*MC_KINDS)


def mc_set_names(kind: str | None = None) -> list[str]:
    """The registered names, all or of one kind (``"cultural"``, ``"nlu"``)."""
    return [name for name, info in MC_SETS.items() if kind is None or info.kind == kind]


def limit_per_group(items: Iterable[MCItem], limit: int | None) -> list[MCItem]:
    """At most ``limit`` items per group, the first in order (all when None)."""
    if limit is None:
        return list(items)
    check_limit(limit)
    seen: dict[Any, int] = {}
    out = []
    for item in items:
        if seen.get(item.group, 0) < limit:
            seen[item.group] = seen.get(item.group, 0) + 1
            out.append(item)
    return out


def check_limit(limit: int | None) -> None:
    """``check_limit(500)``: None or a positive integer, else a one-line error."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise NeurospecError(f"limit must be a positive integer or None, got {limit!r}")


def mc_set(name: str) -> Benchmark:
    """The set called ``name`` (case and ``_`` / ``-`` ignored); unknown: a one-line error listing the sets."""
    info = MC_SETS.get(normalized(name))
    if info is None:
        raise NeurospecError(f"Unknown multiple-choice set {name!r}. The sets are: {', '.join(MC_SETS)}.")
    return info


def _check_arguments(info: Benchmark, split: str | None, options: dict[str, Any]) -> None:
    if split is not None and info.name not in ("blend", "blend-control") and split not in info.splits:
        allowed = (f"use one of {', '.join(map(repr, info.splits))}" if info.splits
                   else "it has none (the file is the split); drop split=")
        raise NeurospecError(f"{info.name}: split={split!r}; {allowed}.")
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        known = ", ".join(info.options) if info.options else "none"
        raise NeurospecError(f"{info.name}: unknown option(s) {unknown}; its options are: {known} "
                             f"(plus path, countries, split, limit, seed).")


def load_mc_set(name: str, *, path: str | Path | None = None, countries: Iterable[str] | str | None = None,
                split: str | None = None, limit: int | None = None, seed: int = 0, **options: Any) -> list[MCItem]:
    """The items of a registered set (:data:`MC_SETS`); see the module docstring for the arguments.

    An unknown name, split or option, a missing ``path`` for a set neurospec cannot fetch, or no item
    left after filtering is a :class:`NeurospecError` saying what to change.
    """
    info = mc_set(name)
    _check_arguments(info, split, options)
    if path is None and info.name in HUB_FILES:
        path = hub_file(info.name, options.get("config"))
    if info.needs_path and path is None:
        raise missing_path_error(info)
    if isinstance(countries, str):
        countries = [countries]
    elif countries is not None:
        countries = list(countries)
    check_limit(limit)
    items = limit_per_group(info.load(path=path, countries=countries, split=split, seed=seed, **options), limit)
    if not items:
        raise NeurospecError(f"{info.name}: no items with countries={countries!r}, split={split!r}, "
                             f"options={options!r} (path {path or 'default'}). Widen the filters.")
    return items
