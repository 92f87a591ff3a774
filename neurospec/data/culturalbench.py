"""CulturalBench (Chiu et al. 2024) as multiple-choice items, from a local export of ``kellycyy/CulturalBench``.

    from neurospec.data.culturalbench import load_culturalbench
    items = load_culturalbench("culturalbench_easy.jsonl")                    # 4 options, shuffled
    hard = load_culturalbench("culturalbench_hard.jsonl", config="hard")      # one True/False item per option
    find = load_culturalbench("culturalbench_easy.jsonl", countries=["USA", "Hong Kong"], split="find")

The benchmark lives on the Hugging Face hub only; export it once where there is internet, e.g.
``load_dataset("kellycyy/CulturalBench", "CulturalBench-Easy", split="test").to_json("easy.jsonl")``
(``.jsonl``, ``.json``, ``.csv`` and ``.tsv`` read with the standard library; ``.parquet`` needs
pandas and pyarrow).

Easy (``CulturalBench-Easy``, one row per question): columns ``data_idx, question_idx,
prompt_question, prompt_option_a .. prompt_option_d, answer`` (a letter A-D) and ``country``. The
four options are shuffled by a generator seeded with (seed, data_idx); ``MCItem.gold`` follows the
answer. Hard (``CulturalBench-Hard``, one row per (question, option)): ``data_idx, question_idx,
prompt_question, prompt_option, answer`` (true / false) and ``country``; every row is an item whose
options are ``("True", "False")``.

Groups: a country :func:`neurospec.data.languages.resolve_country` knows becomes its key
(``"United States"`` -> ``US``, ``"United Kingdom"`` -> ``UK``, ``"South Korea"`` -> ``South_Korea``);
any other country keeps its own name as the group (``"Hong Kong"``, ``"Zimbabwe"``). Splits, as the
culture-neuron reference does: per country, ``"find"`` = the first half (rounded down) of its
questions in file order, ``"test"`` = the rest, ``"all"`` = every question. Easy and hard put the
same ``question_idx`` in the same half.

This module also holds the table reading, seeding and country naming the other culture loaders
(:mod:`neurospec.data.normad`, :mod:`neurospec.data.worldvaluesbench`, :mod:`neurospec.data.nlu`)
share: :func:`read_rows`, :func:`stable_rng`, :func:`country_group`, :func:`match_countries`.
"""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

from neurospec.data.items import MCItem
from neurospec.data.languages import AmbiguousCountryError, UnknownCountryError, resolve_country
from neurospec.data.records import RECORD_SUFFIXES, read_records, require
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = [
    "CULTURALBENCH_HF", "EASY_COLUMNS", "HARD_COLUMNS", "SPLITS", "TABLE_SUFFIXES", "check_columns",
    "check_split", "country_group", "first_half", "load_culturalbench", "match_countries", "need", "read_rows",
    "requested_countries", "stable_rng",
]

#: Where CulturalBench lives (configs ``CulturalBench-Easy`` and ``CulturalBench-Hard``, split ``test``).
CULTURALBENCH_HF = "kellycyy/CulturalBench"
#: The columns each config needs.
EASY_COLUMNS: tuple[str, ...] = ("data_idx", "question_idx", "prompt_question", "prompt_option_a",
                                 "prompt_option_b", "prompt_option_c", "prompt_option_d", "answer", "country")
HARD_COLUMNS: tuple[str, ...] = ("data_idx", "question_idx", "prompt_question", "prompt_option", "answer", "country")
#: The find / test halves of the culture loaders, and "all".
SPLITS: tuple[str, ...] = ("all", "find", "test")
#: File types :func:`read_rows` reads.
TABLE_SUFFIXES: tuple[str, ...] = RECORD_SUFFIXES + (".parquet",)

_LETTERS = "ABCD"
_TRUE = frozenset({"true", "t", "1", "yes"})
_FALSE = frozenset({"false", "f", "0", "no"})


# ----------------------------------------------------------------------------------------------------------
# Shared helpers (also used by normad.py, worldvaluesbench.py and nlu.py)
# ----------------------------------------------------------------------------------------------------------

def stable_rng(*parts: object) -> random.Random:
    """A generator seeded by SHA-256 of the parts joined with ``|``: the same on every machine and run.

    ``stable_rng("countryrc", 0, "12", "US")``; Python's ``hash()`` is salted per process, this is not.
    """
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _plain(value: Any) -> Any:
    """numpy / pandas values from a parquet file as plain Python (NaN -> None, arrays -> lists)."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):            # numpy arrays and scalars
        return _plain(value.tolist())
    return value


def _read_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    fix = (f"{path}: reading .parquet needs pandas and pyarrow (pip install pandas pyarrow); or export the "
           f"dataset as JSON lines instead (Dataset.to_json('file.jsonl')), which needs nothing extra.")
    try:
        import pandas
    except ImportError:
        raise NeurospecError(fix) from None
    try:
        frame = pandas.read_parquet(path)
    except ImportError:
        raise NeurospecError(fix) from None
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise FileFormatError(f"{path} is not a readable parquet file ({type(err).__name__}: {err}); "
                              f"export the dataset again, or as JSON lines") from None
    if frame.empty:
        raise FileFormatError(f"{path} is empty: it holds no records")
    for number, record in enumerate(frame.to_dict("records"), 1):
        yield f"{path} row {number}", {str(k): _plain(v) for k, v in record.items()}


def read_rows(path: str | Path, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, record)`` for each record of a ``.jsonl/.json/.csv/.tsv/.parquet`` file.

    ``where`` is ``"<path> line N"`` (``"row N"`` for parquet), for error messages. ``what`` names
    the dataset in the error for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        hint = "it is a folder; pass the exported file inside it" if path.is_dir() else "no such file"
        raise NeurospecError(f"{what} file {path} not found ({hint}). Pass the path of a local export "
                             f"({', '.join(TABLE_SUFFIXES)}).")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _read_parquet(path)
        return
    if suffix not in RECORD_SUFFIXES:
        raise FileFormatError(f"{path}: unknown file type {suffix or '(no extension)'!r} for {what}; "
                              f"use one of {', '.join(TABLE_SUFFIXES)}")
    for line, record in read_records(path):
        yield f"{path} line {line}", record


def need(record: Mapping[str, Any], name: str, where: str, columns: Sequence[str] = ()) -> Any:
    """``record[name]``; missing, None or an empty string is an error naming the field and place."""
    return require(record, name, where, ", ".join(columns))


def check_columns(first: Mapping[str, Any], columns: Sequence[str], where: str, fix: str) -> None:
    """An error naming the columns the first record lacks, the columns it has, and ``fix``."""
    missing = [c for c in columns if c not in first]
    if missing:
        raise FileFormatError(f"{where}: no column(s) {missing}; the record has {sorted(first)}. {fix}")


def _title(name: str) -> str:
    small = {"and", "of", "the", "da", "de"}
    words = name.split()
    return " ".join(w if (i and w.lower() in small) else w[:1].upper() + w[1:] for i, w in enumerate(words))


def _norm(name: str) -> str:
    return " ".join(str(name).replace("_", " ").replace("-", " ").casefold().split())


def country_group(name: str, *, titlecase: bool = False) -> tuple[str, str]:
    """``(group, display name)`` of a benchmark's country: a known country's key and name, else the name.

    ``country_group("United States")`` -> ``("US", "United States")``; ``country_group("Hong Kong")`` ->
    ``("Hong Kong", "Hong Kong")``; with ``titlecase=True`` a snake-case name is spelled out:
    ``country_group("saudi_arabia", titlecase=True)`` -> ``("Saudi Arabia", "Saudi Arabia")``. Never fails.
    """
    text = " ".join(str(name).split())
    try:
        country = resolve_country(text)
    except (UnknownCountryError, AmbiguousCountryError):
        if titlecase:
            text = _title(" ".join(text.replace("_", " ").split()).lower())
        return text, text
    return country.key, country.name


def match_countries(requested: Iterable[str], present: Iterable[str], *, what: str, titlecase: bool = False,
                    source: str | Path = "") -> list[str]:
    """The groups of ``present`` that ``requested`` names (in request order, no repeats).

    A requested name is read with :func:`country_group`, then compared case-insensitively with ``_`` and
    ``-`` as spaces. One absent from ``present`` is an error listing what is there.
    """
    if isinstance(requested, str):
        requested = [requested]
    by_norm = {_norm(g): g for g in present}
    chosen: list[str] = []
    absent: list[str] = []
    for name in requested:
        group, _ = country_group(str(name), titlecase=titlecase)
        hit = by_norm.get(_norm(group)) or by_norm.get(_norm(str(name)))
        if hit is None:
            absent.append(str(name))
        elif hit not in chosen:
            chosen.append(hit)
    if absent:
        where = f" in {source}" if source else ""
        raise NeurospecError(f"{what}: countries {absent} are not{where}. The data holds: "
                             f"{', '.join(sorted(by_norm.values())) or '(nothing)'}.")
    return chosen


def requested_countries(countries: Iterable[str] | str | None) -> list[str] | None:
    """``countries`` as a list (a single name becomes a one-name list); None stays None."""
    if countries is None:
        return None
    return [countries] if isinstance(countries, str) else [str(c) for c in countries]


def first_half(keys: Sequence[Any]) -> tuple[set, set]:
    """``(find, test)``: the first ``len // 2`` distinct keys in order, and the rest."""
    ordered = list(dict.fromkeys(keys))
    cut = len(ordered) // 2
    return set(ordered[:cut]), set(ordered[cut:])


def check_split(split: str, what: str, allowed: Sequence[str] = SPLITS) -> str:
    if split not in allowed:
        raise NeurospecError(f"{what}: split={split!r}; use one of {', '.join(map(repr, allowed))}.")
    return split


# ----------------------------------------------------------------------------------------------------------
# CulturalBench
# ----------------------------------------------------------------------------------------------------------

def _truth(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FileFormatError(f"{where}: answer {value!r} is neither true nor false; CulturalBench-Hard answers "
                          f"are booleans (true / false)")


def _letter(value: Any, where: str) -> int:
    text = str(value).strip().upper()
    if len(text) != 1 or text not in _LETTERS:
        raise FileFormatError(f"{where}: answer {value!r} is not one of the letters A, B, C, D "
                              f"(CulturalBench-Easy gives the answer as a letter)")
    return _LETTERS.index(text)


def _text(value: Any) -> str:
    return str(value).strip()


def load_culturalbench(path: str | Path, *, config: Literal["easy", "hard"] = "easy",
                       countries: Iterable[str] | None = None, split: Literal["all", "find", "test"] = "all",
                       seed: int = 0) -> list[MCItem]:
    """CulturalBench items from a local export (see the module docstring for the rules).

    path       a ``.jsonl/.json/.csv/.tsv/.parquet`` export of one config of ``kellycyy/CulturalBench``
    config     ``"easy"`` (4 options, shuffled) or ``"hard"`` (one True/False item per option)
    countries  names to keep (``"USA"``, ``"United Kingdom"``, ``"Hong Kong"``); one the file lacks is
               an error listing the countries it has. None = all
    split      ``"all"``, ``"find"`` (per country the first half of its questions) or ``"test"``
    seed       seeds the option order of easy items, per (seed, data_idx)

    Items are in file order: ``MCItem(question, options, gold, group=<country group>,
    id="culturalbench-<config>-<data_idx>", metadata=...)`` with metadata ``benchmark``
    (``"culturalbench"``), ``config``, ``country`` (as in the file), ``data_idx``, ``question_idx``,
    and for easy ``answer`` (the letter) and ``option_order`` (the file's option index of each
    option), for hard ``prompt_question``, ``prompt_option`` and ``answer`` (bool).
    """
    if config not in ("easy", "hard"):
        raise NeurospecError(f"CulturalBench config={config!r}; use 'easy' (CulturalBench-Easy) or 'hard' "
                             f"(CulturalBench-Hard).")
    check_split(split, "CulturalBench")
    countries = requested_countries(countries)
    columns = EASY_COLUMNS if config == "easy" else HARD_COLUMNS
    hf_config = "CulturalBench-Easy" if config == "easy" else "CulturalBench-Hard"
    rows = list(read_rows(path, f"CulturalBench ({hf_config})"))
    if not rows:
        raise FileFormatError(f"{path} holds no records")
    other = "hard" if config == "easy" else "easy"
    check_columns(rows[0][1], columns, rows[0][0],
                  f"A {hf_config} export of {CULTURALBENCH_HF} has the columns {', '.join(columns)}"
                  f" (is this the {other} config? then pass config={other!r}).")

    parsed: list[tuple[str, str, str, dict]] = []     # (group, question key, where, record)
    for where, record in rows:
        country = _text(need(record, "country", where, columns))
        group, _ = country_group(country)
        question_key = _text(need(record, "question_idx", where, columns))
        parsed.append((group, question_key, where, record))
    present = list(dict.fromkeys(p[0] for p in parsed))
    wanted = None if countries is None else set(
        match_countries(countries, present, what="CulturalBench", source=path))

    keep_keys: dict[str, set] = {}
    if split != "all":
        by_group: dict[str, list[str]] = {}
        for group, question_key, _, _ in parsed:
            by_group.setdefault(group, []).append(question_key)
        for group, keys in by_group.items():
            find, test = first_half(keys)
            keep_keys[group] = find if split == "find" else test

    items: list[MCItem] = []
    for group, question_key, where, record in parsed:
        if wanted is not None and group not in wanted:
            continue
        if split != "all" and question_key not in keep_keys[group]:
            continue
        data_idx = _text(need(record, "data_idx", where, columns))
        question = _text(need(record, "prompt_question", where, columns))
        meta: dict[str, Any] = {"benchmark": "culturalbench", "config": config,
                                "country": _text(record["country"]), "data_idx": data_idx,
                                "question_idx": question_key}
        if config == "easy":
            texts = [_text(need(record, f"prompt_option_{c}", where, columns)) for c in "abcd"]
            answer = _letter(need(record, "answer", where, columns), where)
            order = list(range(4))
            stable_rng("culturalbench", seed, data_idx).shuffle(order)
            meta.update(answer=_LETTERS[answer], option_order=tuple(order))
            items.append(MCItem(question, tuple(texts[i] for i in order), order.index(answer), group=group,
                                id=f"culturalbench-easy-{data_idx}", metadata=meta))
        else:
            option = _text(need(record, "prompt_option", where, columns))
            truth = _truth(need(record, "answer", where, columns), where)
            meta.update(prompt_question=question, prompt_option=option, answer=truth)
            text = f"{question}\nProposed answer: {option}\nIs the proposed answer true or false?"
            items.append(MCItem(text, ("True", "False"), 0 if truth else 1, group=group,
                                id=f"culturalbench-hard-{data_idx}", metadata=meta))
    if not items:
        raise NeurospecError(f"CulturalBench ({config}) from {path}: no items left with countries="
                             f"{countries!r}, split={split!r}. "
                             f"The file holds: {', '.join(sorted(present))}.")
    return items
