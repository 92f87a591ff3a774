"""One entry point for every multiple-choice set of the culture method, cultural and NLU.

    from neurospec.data.mc_sets import MC_SETS, load_mc_set
    find = load_mc_set("blend", split="find")                              # BLEnD MCQ, Food / Work life / Sport
    ctrl = load_mc_set("blend-control", split="find")                      # same options, no question (reference)
    rc = load_mc_set("countryrc", split="find")                            # 8 countries x 25 passages
    cb = load_mc_set("culturalbench", path="cb_easy.jsonl", countries=["USA", "UK"], split="test")
    wvb = load_mc_set("worldvaluesbench", path="WorldValuesBench", countries=["Iran"], split="find")
    nlu = load_mc_set("qnli", limit=500)                                   # the first 500 QNLI items
    [(s.name, s.kind, s.needs_path) for s in MC_SETS.values()]

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from neurospec.data.items import MCItem
from neurospec.util.errors import NeurospecError

__all__ = ["MC_SETS", "MCSetInfo", "limit_per_group", "load_mc_set", "mc_set_names"]


@dataclass(frozen=True)
class MCSetInfo:
    """What :func:`load_mc_set` knows about a set.

    name         the registry name
    kind         ``"cultural"`` or ``"nlu"``
    needs_path   True when neurospec cannot fetch it (``neurospec data fetch``): ``path=`` is required
    description  one line: what the set is and where the items come from
    source       where to get it (a Hugging Face dataset id or a repository)
    splits       the accepted ``split`` values (the default first); empty = no split
    options      the set's own keyword options
    """

    name: str
    kind: Literal["cultural", "nlu"]
    needs_path: bool
    description: str
    source: str
    splits: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


_BLEND_OPTIONS = ("num_options", "max_per_question", "language", "distractors")

#: Every set :func:`load_mc_set` loads, by name.
MC_SETS: dict[str, MCSetInfo] = {s.name: s for s in (
    MCSetInfo("blend", "cultural", False,
              "BLEnD multiple-choice questions rebuilt from the short-answer annotations (neurospec.data.blend)",
              "nayeon212/BLEnD (data set: blend)", ("test", "find", "all"), _BLEND_OPTIONS),
    MCSetInfo("blend-control", "cultural", False,
              "BLEnD-control: the BLEnD items' options with no question (the reference's control prompt)",
              "nayeon212/BLEnD (data set: blend)", ("test", "find", "all"), _BLEND_OPTIONS + ("instruction",)),
    MCSetInfo("countryrc", "cultural", False,
              "CountryRC passages whose answer is a country; 4 country options (neurospec.data.countryrc)",
              "github.com/ynklab/CULNIG data/CountryRC/data.json (data set: countryrc)",
              ("all", "find", "test"), ("pool",)),
    MCSetInfo("culturalbench", "cultural", False,
              "CulturalBench easy (4 shuffled options) or hard (True/False per option) questions",
              "kellycyy/CulturalBench", ("all", "find", "test"), ("config",)),
    MCSetInfo("normad", "cultural", False,
              "NormAd etiquette stories: is the behaviour acceptable in the country? yes / no / neutral",
              "akhilayerukola/NormAd", ("all", "find", "test"), ("with_rule", "with_background")),
    MCSetInfo("worldvaluesbench", "cultural", True,
              "WorldValuesBench survey questions: a country's most frequent answer on the answer scale",
              "github.com/Demon702/WorldValuesBench (WorldValuesBench/ folder)", ("all", "find", "test"),
              ("data_split", "min_answers", "find_questions")),
    MCSetInfo("qnli", "nlu", False, "GLUE QNLI dev: does the sentence answer the question? yes / no",
              "nyu-mll/glue (qnli; data set: qnli)", ("dev",)),
    MCSetInfo("mrpc", "nlu", False, "MRPC: do the two sentences mean the same thing? yes / no",
              "nyu-mll/glue (mrpc; data set: mrpc)", ("test", "dev")),
    MCSetInfo("commonsenseqa", "nlu", True, "CommonsenseQA: 5-option commonsense questions",
              "tau/commonsense_qa (split validation)", ()),
)}


def mc_set_names(kind: str | None = None) -> list[str]:
    """The registered names, all or of one kind (``"cultural"``, ``"nlu"``)."""
    return [name for name, info in MC_SETS.items() if kind is None or info.kind == kind]


def limit_per_group(items: Iterable[MCItem], limit: int | None) -> list[MCItem]:
    """At most ``limit`` items per group, the first in order (all when None)."""
    if limit is None:
        return list(items)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise NeurospecError(f"limit must be a positive integer or None, got {limit!r}")
    seen: dict[Any, int] = {}
    out = []
    for item in items:
        if seen.get(item.group, 0) < limit:
            seen[item.group] = seen.get(item.group, 0) + 1
            out.append(item)
    return out


_EXPORTS = {
    "culturalbench": "load_dataset('kellycyy/CulturalBench', 'CulturalBench-Easy', split='test')"
                     ".to_json('culturalbench_easy.jsonl') (or 'CulturalBench-Hard' with config='hard')",
    "normad": "load_dataset('akhilayerukola/NormAd', split='train').to_json('normad.jsonl') (or download "
              "normad_etiquette_final_data.csv from the dataset's files)",
    "commonsenseqa": "load_dataset('tau/commonsense_qa', split='validation').to_json('commonsense_qa_validation.jsonl')",
}


#: The file of a fetched hub data set (``neurospec data fetch NAME``) each set reads by default.
HUB_FILES = {"culturalbench": "CulturalBench-Easy.csv", "normad": "normad_etiquette_final_data.csv"}


def _hub_file(info: MCSetInfo, options: dict[str, Any]) -> Path:
    """The default file of a hub-only set: in the mirror or the cache, else the error naming the fetch command."""
    from neurospec.data.locate import locate

    name = HUB_FILES[info.name]
    if info.name == "culturalbench" and options.get("config") == "hard":
        name = "CulturalBench-Hard.csv"
    return locate(info.name) / name


def _export_hint(info: MCSetInfo) -> str:
    if info.name == "worldvaluesbench":
        return (f"get the WorldValuesBench/ folder ({info.source}: question_metadata.json and the split TSVs, "
                f"distributed separately from the repository) and pass path=<that folder>")
    return (f"export it from the Hugging Face hub ({info.source}) to a local file on a machine with internet, "
            f"e.g. {_EXPORTS[info.name]}, and pass path=<that file>; nothing is downloaded at run time")


def _blend(path, countries, split, seed, options, control: bool) -> list[MCItem]:
    from neurospec.data.blend import build_blend_items, control_items, load_blend

    options = dict(options)
    instruction = options.pop("instruction", "")  # blend-control only (MC_SETS lists it there)
    # every country is loaded so distractors come from all of them (as BLEnD's own MCQ); items only for `countries`
    items = build_blend_items(load_blend(path), countries=countries, topics=split or "test", seed=seed, **options)
    return control_items(items, instruction=instruction) if control else items


def _countryrc(path, countries, split, seed, options) -> list[MCItem]:
    from neurospec.data.countryrc import CULTURE_COUNTRIES, build_countryrc_items

    return build_countryrc_items(CULTURE_COUNTRIES if countries is None else countries, split=split or "all",
                                 seed=seed, data_dir=path, **options)


def _culturalbench(path, countries, split, seed, options) -> list[MCItem]:
    from neurospec.data.culturalbench import load_culturalbench

    return load_culturalbench(path, countries=countries, split=split or "all", seed=seed, **options)


def _normad(path, countries, split, seed, options) -> list[MCItem]:
    from neurospec.data.normad import load_normad

    return load_normad(path, countries=countries, split=split or "all", seed=seed, **options)


def _worldvaluesbench(path, countries, split, seed, options) -> list[MCItem]:
    from neurospec.data.countryrc import CULTURE_COUNTRIES
    from neurospec.data.worldvaluesbench import load_worldvaluesbench

    options = dict(options)
    data_split = options.pop("data_split", "full")
    return load_worldvaluesbench(path, countries=CULTURE_COUNTRIES if countries is None else countries,
                                 split=data_split, select=split or "all", **options)


def _qnli(path, countries, split, seed, options) -> list[MCItem]:
    from neurospec.data.nlu import load_qnli

    return load_qnli(path)


def _mrpc(path, countries, split, seed, options) -> list[MCItem]:
    from neurospec.data.nlu import load_mrpc

    return load_mrpc(path, split=split or "test")


def _commonsenseqa(path, countries, split, seed, options) -> list[MCItem]:
    from neurospec.data.nlu import load_commonsenseqa

    return load_commonsenseqa(path)


_LOADERS: dict[str, Callable[..., list[MCItem]]] = {
    "blend": lambda *a: _blend(*a, control=False),
    "blend-control": lambda *a: _blend(*a, control=True),
    "countryrc": _countryrc,
    "culturalbench": _culturalbench,
    "normad": _normad,
    "worldvaluesbench": _worldvaluesbench,
    "qnli": _qnli,
    "mrpc": _mrpc,
    "commonsenseqa": _commonsenseqa,
}


def load_mc_set(name: str, *, path: str | Path | None = None, countries: Iterable[str] | str | None = None,
                split: str | None = None, limit: int | None = None, seed: int = 0, **options: Any) -> list[MCItem]:
    """The items of a registered set (:data:`MC_SETS`); see the module docstring for the arguments.

    An unknown name, split or option, a missing ``path`` for a set neurospec cannot fetch, or no item
    left after filtering is a :class:`NeurospecError` saying what to change.
    """
    key = str(name).strip().lower().replace("_", "-")
    info = MC_SETS.get(key)
    if info is None:
        raise NeurospecError(f"Unknown multiple-choice set {name!r}. The sets are: {', '.join(MC_SETS)}.")
    if split is not None and info.name not in ("blend", "blend-control") and split not in info.splits:
        allowed = (f"use one of {', '.join(map(repr, info.splits))}" if info.splits
                   else "it has none (the file is the split); drop split=")
        raise NeurospecError(f"{info.name}: split={split!r}; {allowed}.")
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        known = ", ".join(info.options) if info.options else "none"
        raise NeurospecError(f"{info.name}: unknown option(s) {unknown}; its options are: {known} "
                             f"(plus path, countries, split, limit, seed).")
    if path is None and info.name in HUB_FILES:
        path = _hub_file(info, options)
    if info.needs_path and path is None:
        raise NeurospecError(f"{info.name} needs path=: neurospec cannot fetch it. To get it, {_export_hint(info)}.")
    if isinstance(countries, str):
        countries = [countries]
    elif countries is not None:
        countries = list(countries)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise NeurospecError(f"limit must be a positive integer or None, got {limit!r}")
    items = limit_per_group(_LOADERS[info.name](path, countries, split, seed, options), limit)
    if not items:
        raise NeurospecError(f"{info.name}: no items with countries={countries!r}, split={split!r}, "
                             f"options={options!r} (path {path or 'default'}). Widen the filters.")
    return items
