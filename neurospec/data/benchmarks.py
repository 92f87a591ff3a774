"""Every benchmark neurospec reads, in one registry: what it is, what it covers, what it reads, how it loads.

    from neurospec.data.benchmarks import BENCHMARKS, benchmark, benchmark_names
    xcopa = benchmark("xcopa")
    xcopa.kind, xcopa.dataset, xcopa.coverage              # 'downstream', 'xcopa', '11 languages: et ht ...'
    items = xcopa.load(language="et", split="val")         # the MCItems the xcopa task scores
    xcopa.languages()                                      # the languages its data holds: ['est_Latn', ...]
    find = benchmark("blend").load(countries=["US"], split="find", seed=0)
    benchmark_names("nlu")                                 # ['qnli', 'mrpc', 'commonsenseqa']

Kinds (:data:`KINDS`): ``downstream`` (the amplification method's tasks, METHODS section 2),
``cultural`` (the culture method's multiple-choice sets, METHODS section 3) and ``nlu`` (its NLU
control sets). Two views read this registry: :data:`neurospec.data.mc_sets.MC_SETS` (the cultural and
NLU entries themselves) and :data:`neurospec.evaluate.tasks.TASKS` (one scoring task per downstream entry).

``entry.load`` takes keywords only:

- downstream: ``load(language=KEY, path=None, split=None)``: the items of one language in file order
  (MCItems; :class:`neurospec.data.translation.TranslationPair` for flores and ntrex).
- cultural, nlu: ``load(path=None, countries=None, split=None, seed=0, **options)``: MCItems, every
  one (:func:`neurospec.data.mc_sets.load_mc_set` checks the arguments first and applies ``limit``).

``path`` is the benchmark's local data (a file or folder); without it, the registered data set
``entry.dataset`` (:mod:`neurospec.data.registry`, found by :func:`neurospec.data.locate.locate`). How
items are prompted and scored is not here: that is :mod:`neurospec.evaluate.tasks` and the culture verbs.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

from neurospec.data.belebele import belebele_languages, load_belebele
from neurospec.data.blend import build_blend_items, control_items, load_blend
from neurospec.data.countryrc import CULTURE_COUNTRIES, build_countryrc_items
from neurospec.data.culturalbench import load_culturalbench
from neurospec.data.include import include_languages, load_include
from neurospec.data.items import MCItem
from neurospec.data.locate import locate
from neurospec.data.nlu import load_commonsenseqa, load_mrpc, load_qnli
from neurospec.data.normad import load_normad
from neurospec.data.records import checked_split
from neurospec.data.translation import TranslationPair, flores_languages, flores_pairs, ntrex_languages, ntrex_pairs
from neurospec.data.worldvaluesbench import load_worldvaluesbench
from neurospec.data.xcopa import XCOPA_SPLIT_ALIASES, XCOPA_SPLITS, load_xcopa, xcopa_languages
from neurospec.data.xwinograd import load_xwinograd, xwinograd_languages
from neurospec.util.errors import NeurospecError

__all__ = ["BENCHMARKS", "HUB_FILES", "KINDS", "Benchmark", "BenchmarkView", "benchmark", "benchmark_names",
           "hub_file", "missing_path_error", "normalized"]

Kind = Literal["downstream", "cultural", "nlu"]
DataPath = str | Path | None
Countries = Iterable[str] | None
Split = str | None

#: What each kind of benchmark is for.
KINDS: dict[str, str] = {
    "downstream": "downstream task of the amplification method (METHODS section 2), scored by neurospec.evaluate.tasks",
    "cultural": "multiple-choice set of the culture method: finds culture neurons and measures masking them",
    "nlu": "NLU control set of the culture method: masking culture neurons should leave it intact",
}


@dataclass(frozen=True)
class Benchmark:
    """One benchmark.

    name            the registry name (what users type)
    kind            ``"downstream"``, ``"cultural"`` or ``"nlu"`` (:data:`KINDS`)
    needs_path      True when neurospec cannot fetch its data: ``path=`` is required
    description     one line: what it is and where the items come from
    source          where to get it (a Hugging Face dataset id or a repository)
    splits          the accepted ``split`` values (the default first); empty = no split
    options         the loader's own keyword options (cultural and NLU sets)
    load            how to load its items (keywords only; see the module docstring)
    dataset         the registered data set it reads by default (:data:`neurospec.data.registry.DATASETS`)
    grouped_by      what ``item.group`` is: a ``"language"`` key, a ``"country"``, or the ``"set"``'s name
    coverage        one line: its languages or countries
    split_aliases   other names of its splits (``{"dev": "val"}``)
    list_languages  ``list_languages(path)``: the languages its data holds (downstream benchmarks)
    """

    name: str
    kind: Kind
    needs_path: bool
    description: str
    source: str
    splits: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    _: KW_ONLY
    load: Callable[..., list] = field(repr=False, compare=False)
    dataset: str | None = None
    grouped_by: Literal["language", "country", "set"] = "language"
    coverage: str = ""
    split_aliases: Mapping[str, str] = field(default_factory=dict, hash=False)
    list_languages: Callable[[DataPath], list[str]] | None = field(default=None, repr=False, compare=False)

    def split_name(self, split: str | None) -> str:
        """``benchmark("xcopa").split_name("dev")`` -> ``"val"``: the canonical split, None the default."""
        return checked_split(self.name, split, self.splits, self.split_aliases)

    def languages(self, path: DataPath = None) -> list[str]:
        """Canonical keys of the languages the data at ``path`` (default: the registered data set) holds."""
        if self.list_languages is None:
            raise NeurospecError(f"{self.name} is grouped by {self.grouped_by}, not by language: it has no "
                                 f"languages() (its coverage: {self.coverage})")
        return self.list_languages(path)


# ---- hub files and paths neurospec cannot fetch

#: The file of a fetched hub data set (``neurospec data fetch NAME``) each set reads by default.
HUB_FILES = {"culturalbench": "CulturalBench-Easy.csv", "normad": "normad_etiquette_final_data.csv"}

_EXPORTS = {
    "culturalbench": "load_dataset('kellycyy/CulturalBench', 'CulturalBench-Easy', split='test')"
                     ".to_json('culturalbench_easy.jsonl') (or 'CulturalBench-Hard' with config='hard')",
    "normad": "load_dataset('akhilayerukola/NormAd', split='train').to_json('normad.jsonl') (or download "
              "normad_etiquette_final_data.csv from the dataset's files)",
    "commonsenseqa": "load_dataset('tau/commonsense_qa', split='validation')"
                     ".to_json('commonsense_qa_validation.jsonl')",
}


def hub_file(name: str, config: str | None = None) -> Path:
    """``hub_file("culturalbench", "hard")``: the default file of a hub-only set, in the mirror or the cache
    (else :func:`neurospec.data.locate.locate`'s error naming the fetch command)."""
    file = HUB_FILES[name]
    if name == "culturalbench" and config == "hard":
        file = "CulturalBench-Hard.csv"
    return locate(name) / file


def _export_hint(entry: Benchmark) -> str:
    if entry.name == "worldvaluesbench":
        return (f"get the WorldValuesBench/ folder ({entry.source}: question_metadata.json and the split TSVs, "
                f"distributed separately from the repository) and pass path=<that folder>")
    return (f"export it from the Hugging Face hub ({entry.source}) to a local file on a machine with internet, "
            f"e.g. {_EXPORTS[entry.name]}, and pass path=<that file>; nothing is downloaded at run time")


def missing_path_error(entry: Benchmark) -> NeurospecError:
    """The error for a set neurospec cannot fetch, loaded without ``path=``: where to get it."""
    return NeurospecError(f"{entry.name} needs path=: neurospec cannot fetch it. To get it, {_export_hint(entry)}.")


def _given(path: DataPath, name: str) -> str | Path:
    if path is None:
        raise missing_path_error(BENCHMARKS[name])
    return path


# ---- loaders of the cultural and NLU sets: load(path=, countries=, split=, seed=, **options)


def _load_blend(*, path: DataPath = None, countries: Countries = None, split: Split = None, seed: int = 0,
                **options: Any) -> list[MCItem]:
    # every country is loaded so distractors come from all of them (as BLEnD's own MCQ); items only for `countries`
    return build_blend_items(load_blend(path), countries=countries, topics=split or "test", seed=seed, **options)


def _load_blend_control(*, path: DataPath = None, countries: Countries = None, split: Split = None, seed: int = 0,
                        instruction: str = "", **options: Any) -> list[MCItem]:
    items = _load_blend(path=path, countries=countries, split=split, seed=seed, **options)
    return control_items(items, instruction=instruction)


def _load_countryrc(*, path: DataPath = None, countries: Countries = None, split: Split = None, seed: int = 0,
                    **options: Any) -> list[MCItem]:
    return build_countryrc_items(CULTURE_COUNTRIES if countries is None else countries, split=split or "all",
                                 seed=seed, data_dir=path, **options)


def _load_culturalbench(*, path: DataPath = None, countries: Countries = None, split: Split = None, seed: int = 0,
                        **options: Any) -> list[MCItem]:
    path = hub_file("culturalbench", options.get("config")) if path is None else path
    return load_culturalbench(path, countries=countries, split=split or "all", seed=seed, **options)


def _load_normad(*, path: DataPath = None, countries: Countries = None, split: Split = None, seed: int = 0,
                 **options: Any) -> list[MCItem]:
    path = hub_file("normad") if path is None else path
    return load_normad(path, countries=countries, split=split or "all", seed=seed, **options)


def _load_worldvaluesbench(*, path: DataPath = None, countries: Countries = None, split: Split = None, seed: int = 0,
                           data_split: str = "full", **options: Any) -> list[MCItem]:
    return load_worldvaluesbench(_given(path, "worldvaluesbench"),
                                 countries=CULTURE_COUNTRIES if countries is None else countries,
                                 split=data_split, select=split or "all", **options)


def _load_qnli(*, path: DataPath = None, countries: Countries = None, split: Split = None,
               seed: int = 0) -> list[MCItem]:
    return load_qnli(path)


def _load_mrpc(*, path: DataPath = None, countries: Countries = None, split: Split = None,
               seed: int = 0) -> list[MCItem]:
    return load_mrpc(path, split=split or "test")


def _load_commonsenseqa(*, path: DataPath = None, countries: Countries = None, split: Split = None,
                        seed: int = 0) -> list[MCItem]:
    return load_commonsenseqa(_given(path, "commonsenseqa"))


# ---- loaders of the downstream tasks: load(language=, path=, split=)


def _load_xcopa(*, language: str, path: DataPath = None, split: Split = None) -> list[MCItem]:
    return load_xcopa(language, split, path)


def _load_xwinograd(*, language: str, path: DataPath = None, split: Split = None) -> list[MCItem]:
    BENCHMARKS["xwinograd"].split_name(split)
    return load_xwinograd(language, path)


def _load_belebele(*, language: str, path: DataPath = None, split: Split = None) -> list[MCItem]:
    BENCHMARKS["belebele"].split_name(split)
    return load_belebele(language, path)


def _load_include(*, language: str, path: DataPath = None, split: Split = None) -> list[MCItem]:
    BENCHMARKS["include"].split_name(split)
    return load_include(language, path)


def _load_flores(*, language: str, path: DataPath = None, split: Split = None) -> list[TranslationPair]:
    return flores_pairs(language, split, path)  # the default split depends on the layout (SIB-200 or release)


def _load_ntrex(*, language: str, path: DataPath = None, split: Split = None) -> list[TranslationPair]:
    BENCHMARKS["ntrex"].split_name(split)
    return ntrex_pairs(language, path)


_BLEND_OPTIONS = ("num_options", "max_per_question", "language", "distractors")
_CULTURE_SPLITS = ("all", "find", "test")
_BLEND_COVERAGE = "16 countries (BLEnD's), any subset by countries="
_NLU_COVERAGE = "English; no countries (item.group is the set's name)"

#: Every benchmark, by name: downstream tasks, then the culture method's cultural and NLU sets.
BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("xcopa", "downstream", False,
              "XCOPA: causal commonsense reasoning, two options scored as continuations (neurospec.data.xcopa)",
              "cambridgeltl/xcopa (data set: xcopa)", XCOPA_SPLITS, split_aliases=XCOPA_SPLIT_ALIASES,
              load=_load_xcopa, list_languages=xcopa_languages, dataset="xcopa",
              coverage="11 languages: et ht id it qu sw ta th tr vi zh (English COPA from a file)"),
    Benchmark("xwinograd", "downstream", False,
              "XWinograd: pronoun resolution, the options scored by partial scoring (neurospec.data.xwinograd)",
              "yandex-research/crosslingual_winograd (data set: xwinograd)", ("test",),
              load=_load_xwinograd, list_languages=xwinograd_languages, dataset="xwinograd",
              coverage="6 languages: en fr jp pt ru zh"),
    Benchmark("belebele", "downstream", False,
              "Belebele: reading comprehension on FLORES passages, 4 options answered by letter "
              "(neurospec.data.belebele)",
              "facebook/belebele; the shared copy saeub/item-evaluation (data set: belebele)", ("test",),
              load=_load_belebele, list_languages=belebele_languages, dataset="belebele",
              coverage="English and German in the registered copy; any Belebele language from a file"),
    Benchmark("include", "downstream", False,
              "INCLUDE: regional-knowledge exam questions, 4 options answered by letter (neurospec.data.include)",
              "CohereForAI/include-base-44 (data set: include)", ("test",),
              load=_load_include, list_languages=include_languages, dataset="include", coverage="44 languages"),
    Benchmark("flores", "downstream", False,
              "FLORES-200 translation from English: sentence pairs by FLORES id (neurospec.data.translation)",
              "dadelani/sib-200, or the FLORES-200 release (data set: flores)",
              ("test", "dev", "train", "all", "devtest"),
              load=_load_flores, list_languages=flores_languages, dataset="flores",
              coverage="English -> the 46 other languages of the SIB-200 copy"),
    Benchmark("ntrex", "downstream", False,
              "NTREX-128 translation from English: 1997 news sentences paired by line (neurospec.data.translation)",
              "MicrosoftTranslator/NTREX (data set: ntrex128)", ("test",),
              load=_load_ntrex, list_languages=ntrex_languages, dataset="ntrex128",
              coverage="English -> the 43 other languages of the NTREX-128 copy"),
    Benchmark("blend", "cultural", False,
              "BLEnD multiple-choice questions rebuilt from the short-answer annotations (neurospec.data.blend)",
              "nayeon212/BLEnD (data set: blend)", ("test", "find", "all"), _BLEND_OPTIONS,
              load=_load_blend, dataset="blend", grouped_by="country", coverage=_BLEND_COVERAGE),
    Benchmark("blend-control", "cultural", False,
              "BLEnD-control: the BLEnD items' options with no question (the reference's control prompt)",
              "nayeon212/BLEnD (data set: blend)", ("test", "find", "all"), _BLEND_OPTIONS + ("instruction",),
              load=_load_blend_control, dataset="blend", grouped_by="country", coverage=_BLEND_COVERAGE),
    Benchmark("countryrc", "cultural", False,
              "CountryRC passages whose answer is a country; 4 country options (neurospec.data.countryrc)",
              "github.com/ynklab/CULNIG data/CountryRC/data.json (data set: countryrc)",
              _CULTURE_SPLITS, ("pool",),
              load=_load_countryrc, dataset="countryrc", grouped_by="country",
              coverage="the 8 culture countries by default (neurospec.data.countryrc.CULTURE_COUNTRIES)"),
    Benchmark("culturalbench", "cultural", False,
              "CulturalBench easy (4 shuffled options) or hard (True/False per option) questions",
              "kellycyy/CulturalBench", _CULTURE_SPLITS, ("config",),
              load=_load_culturalbench, dataset="culturalbench", grouped_by="country",
              coverage="the countries and regions its questions name"),
    Benchmark("normad", "cultural", False,
              "NormAd etiquette stories: is the behaviour acceptable in the country? yes / no / neutral",
              "akhilayerukola/NormAd", _CULTURE_SPLITS, ("with_rule", "with_background"),
              load=_load_normad, dataset="normad", grouped_by="country", coverage="75 countries"),
    Benchmark("worldvaluesbench", "cultural", True,
              "WorldValuesBench survey questions: a country's most frequent answer on the answer scale",
              "github.com/Demon702/WorldValuesBench (WorldValuesBench/ folder)", _CULTURE_SPLITS,
              ("data_split", "min_answers", "find_questions"),
              load=_load_worldvaluesbench, dataset="worldvaluesbench", grouped_by="country",
              coverage="the survey's countries; the 8 culture countries by default"),
    Benchmark("qnli", "nlu", False, "GLUE QNLI dev: does the sentence answer the question? yes / no",
              "nyu-mll/glue (qnli; data set: qnli)", ("dev",),
              load=_load_qnli, dataset="qnli", grouped_by="set", coverage=_NLU_COVERAGE),
    Benchmark("mrpc", "nlu", False, "MRPC: do the two sentences mean the same thing? yes / no",
              "nyu-mll/glue (mrpc; data set: mrpc)", ("test", "dev"),
              load=_load_mrpc, dataset="mrpc", grouped_by="set", coverage=_NLU_COVERAGE),
    Benchmark("commonsenseqa", "nlu", True, "CommonsenseQA: 5-option commonsense questions",
              "tau/commonsense_qa (split validation)", (),
              load=_load_commonsenseqa, grouped_by="set", coverage=_NLU_COVERAGE),
)}


def normalized(name: str) -> str:
    """``normalized(" Blend_Control ")`` -> ``"blend-control"``: how a typed name is matched."""
    return str(name).strip().lower().replace("_", "-")


def benchmark(name: str) -> Benchmark:
    """The entry called ``name`` (case, spaces and ``_`` / ``-`` ignored); unknown: a one-line error listing all."""
    entry = BENCHMARKS.get(normalized(name))
    if entry is None:
        raise NeurospecError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return entry


def benchmark_names(*kinds: str) -> list[str]:
    """The registered names, all or of the given kinds (``"downstream"``, ``"cultural"``, ``"nlu"``)."""
    return list(BenchmarkView(*(kinds or tuple(KINDS))))


class BenchmarkView(Mapping[str, Benchmark]):
    """``BenchmarkView("cultural", "nlu")``: the entries of these kinds, by name, read live from
    :data:`BENCHMARKS` in its order; read-only (register a benchmark in :data:`BENCHMARKS` instead)."""

    def __init__(self, *kinds: str) -> None:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise NeurospecError(f"unknown benchmark kind(s) {unknown}; use {', '.join(KINDS)}")
        self.kinds = kinds

    def __getitem__(self, name: str) -> Benchmark:
        entry = BENCHMARKS[name]
        if entry.kind not in self.kinds:
            raise KeyError(name)
        return entry

    def __iter__(self) -> Iterator[str]:
        return (name for name, entry in BENCHMARKS.items() if entry.kind in self.kinds)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"BenchmarkView({', '.join(map(repr, self.kinds))}: {', '.join(self)})"
