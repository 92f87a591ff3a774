"""WorldValuesBench (Zhao et al. 2024) as multiple-choice items: a country's most frequent survey answer.

    from neurospec.data.worldvaluesbench import load_worldvaluesbench
    items = load_worldvaluesbench("WorldValuesBench", countries=["USA", "UK", "China"])
    find = load_worldvaluesbench("WorldValuesBench", countries=["Iran"], select="find")   # 40 questions
    test = load_worldvaluesbench("WorldValuesBench", countries=["Iran"], select="test")   # the rest

Data: the ``WorldValuesBench/`` folder of github.com/Demon702/WorldValuesBench (the TSVs are
distributed separately from the repository; see its README):

- ``question_metadata.json``: ``{"Q1": {"question": ..., "answer_scale_min": 1, "answer_scale_max": 4,
  ...}, ...}`` (demographic variables have empty scales and are not used);
- ``<split>/<split>_demographic_qa.tsv``: one row per participant, ``D_INTERVIEW`` and ``B_COUNTRY``
  (``"United States"``, ``"Great Britain"``, ...) among the columns;
- ``<split>/<split>_value_qa.tsv``: ``D_INTERVIEW`` and the answers ``Q1`` .. ``Q259`` (empty = not answered).

``split`` is one of ``full`` (default), ``train``, ``valid``, ``test``.

How items are made, per requested country and question with at least ``min_answers`` answers in
that country (answers outside the question's scale are ignored):

- options: the answer scale, ``answer_scale_min`` .. ``answer_scale_max``, as strings;
- gold: the country's most frequent answer (a tie goes to the smallest value);
- question: ``"How would a typical person from <country> answer the following survey question?"``,
  a newline and the survey question (which states its scale).

``select`` (the culture-neuron reference's rule): a country's questions are ranked by
KL(country's answer distribution || every participant's distribution, all countries of the file),
largest first (ties keep question order); ``"find"`` = the first ``find_questions`` (40), ``"test"``
= the rest, ``"all"`` = every question, in that ranked order.

Countries: ``B_COUNTRY`` values are read with :func:`neurospec.data.languages.resolve_country` and the
aliases of :data:`WVB_ALIASES` (``"Great Britain"`` -> ``UK``, ``"United States"`` -> ``US``); the
others keep their own name as the group.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path
from typing import Iterable, Literal

from neurospec.data.culturalbench import check_split, country_group, match_countries, requested_countries
from neurospec.data.items import MCItem
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = ["WVB_ALIASES", "WVB_SPLITS", "load_worldvaluesbench", "wvb_question"]

#: The data splits of WorldValuesBench (sub-folders).
WVB_SPLITS: tuple[str, ...] = ("full", "train", "valid", "test")
#: ``B_COUNTRY`` spellings -> names :func:`resolve_country` knows (most resolve directly).
WVB_ALIASES: dict[str, str] = {"Great Britain": "UK", "United States": "US", "South Korea": "South_Korea"}

_LAYOUT = ("question_metadata.json and <split>/<split>_demographic_qa.tsv, <split>/<split>_value_qa.tsv "
           "(the WorldValuesBench/ folder of github.com/Demon702/WorldValuesBench)")


def wvb_question(country: str, question: str) -> str:
    """The question text of an item: who is asked about, then the survey question."""
    return f"How would a typical person from {country} answer the following survey question?\n{question.strip()}"


def _group(b_country: str) -> tuple[str, str]:
    return country_group(WVB_ALIASES.get(b_country, b_country))


def _scale(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _questions(path: Path) -> dict[str, tuple[str, int, int, str]]:
    """question id -> (text, scale min, scale max, category) for every question with an integer scale."""
    if not path.is_file():
        raise NeurospecError(f"WorldValuesBench file {path} not found. The folder should hold {_LAYOUT}.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise FileFormatError(f"{path} is not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(raw, dict):
        raise FileFormatError(f"{path}: expected a JSON object keyed by question id (\"Q1\": {{...}})")
    out: dict[str, tuple[str, int, int, str]] = {}
    for qid, entry in raw.items():
        if not isinstance(entry, dict) or entry.get("use_case", "value") != "value":
            continue
        low, high = _scale(entry.get("answer_scale_min")), _scale(entry.get("answer_scale_max"))
        if low is None or high is None:
            continue
        if high <= low:
            raise FileFormatError(f"{path} [{qid}]: answer_scale_max {high} is not above answer_scale_min {low}")
        if not str(entry.get("question") or "").strip():
            raise FileFormatError(f"{path} [{qid}]: no question text")
        out[str(qid)] = (str(entry["question"]), low, high, str(entry.get("category") or ""))
    if not out:
        raise FileFormatError(f"{path}: no question with an integer answer_scale_min / answer_scale_max")
    return out


def _open_tsv(path: Path):
    if not path.is_file():
        raise NeurospecError(f"WorldValuesBench file {path} not found. The folder should hold {_LAYOUT}.")
    handle = path.open(encoding="utf-8-sig", newline="")
    reader = csv.reader(handle, delimiter="\t")
    header = next(reader, None)
    if not header:
        handle.close()
        raise FileFormatError(f"{path} is empty: no header row")
    return handle, reader, header


def _column(header: list[str], name: str, path: Path) -> int:
    if name not in header:
        raise FileFormatError(f"{path}: no column {name!r} (columns: {', '.join(header[:12])}"
                              f"{', ...' if len(header) > 12 else ''}); the folder should hold {_LAYOUT}.")
    return header.index(name)


def _kl(country: Counter, overall: Counter) -> float:
    n_country, n_all = sum(country.values()), sum(overall.values())
    total = 0.0
    for value, count in country.items():
        p, q = count / n_country, overall.get(value, 0) / n_all
        if p > 0 and q > 0:
            total += p * math.log(p / q)
    return total


def load_worldvaluesbench(folder: str | Path, *, countries: Iterable[str], split: str = "full",
                          min_answers: int = 10, select: Literal["all", "find", "test"] = "all",
                          find_questions: int = 40) -> list[MCItem]:
    """WorldValuesBench items per country and question (see the module docstring for the rules).

    folder          the ``WorldValuesBench/`` folder (``question_metadata.json`` and split sub-folders)
    countries       names (``"USA"``, ``"Great Britain"``, ``"Japan"``); one the data lacks is an error
                    listing the countries it has
    split           the data split folder: ``full``, ``train``, ``valid`` or ``test``
    min_answers     questions with fewer answers in a country give no item for it
    select          ``"all"``, ``"find"`` (the ``find_questions`` most country-specific questions by KL)
                    or ``"test"`` (the rest)

    Items are per country (as requested), then by KL rank: ``MCItem(question, options, gold,
    group=<country group>, id="wvb-<group>-<question id>", metadata=...)`` with metadata ``benchmark``
    (``"worldvaluesbench"``), ``question_id``, ``country`` (``B_COUNTRY``), ``category``,
    ``distribution`` (answer -> count), ``n_answers``, ``kl``, ``rank`` (0 = most specific), ``select``
    (``"find"`` or ``"test"``).
    """
    if split not in WVB_SPLITS:
        raise NeurospecError(f"WorldValuesBench split={split!r}; use one of {', '.join(WVB_SPLITS)} "
                             f"(find / test questions are chosen with select=).")
    check_split(select, "WorldValuesBench select")
    if isinstance(min_answers, bool) or not isinstance(min_answers, int) or min_answers < 1:
        raise NeurospecError(f"WorldValuesBench min_answers={min_answers!r}; use a positive integer.")
    if isinstance(find_questions, bool) or not isinstance(find_questions, int) or find_questions < 0:
        raise NeurospecError(f"WorldValuesBench find_questions={find_questions!r}; use an integer >= 0.")
    requested = requested_countries(countries)
    if not requested:
        raise NeurospecError("WorldValuesBench: countries= is required (e.g. ['USA', 'UK', 'China']).")
    root = Path(folder)
    if not root.is_dir():
        raise NeurospecError(f"WorldValuesBench folder {root} not found. It should hold {_LAYOUT}.")
    questions = _questions(root / "question_metadata.json")

    # who answered where: D_INTERVIEW -> B_COUNTRY
    demo_path = root / split / f"{split}_demographic_qa.tsv"
    handle, reader, header = _open_tsv(demo_path)
    with handle:
        i_id, i_country = _column(header, "D_INTERVIEW", demo_path), _column(header, "B_COUNTRY", demo_path)
        width = max(i_id, i_country)
        country_of: dict[str, str] = {}
        for row in reader:
            if len(row) <= width:
                if any(cell.strip() for cell in row):
                    raise FileFormatError(f"{demo_path} line {reader.line_num}: {len(row)} cells, the header "
                                          f"has {len(header)}")
                continue
            country_of[row[i_id].strip()] = row[i_country].strip()
    names = {name: _group(name) for name in set(country_of.values()) if name}
    present = sorted({group for group, _ in names.values()})
    chosen = match_countries(requested, present, what="WorldValuesBench", source=demo_path)
    group_of = {interview: names[name][0] for interview, name in country_of.items() if name}
    display = {group: shown for group, shown in names.values()}
    raw_name = {names[name][0]: name for name in names}

    # answers: every participant for the overall distribution, the chosen countries' separately
    value_path = root / split / f"{split}_value_qa.tsv"
    handle, reader, header = _open_tsv(value_path)
    with handle:
        i_id = _column(header, "D_INTERVIEW", value_path)
        columns = [(i, name) for i, name in enumerate(header) if name in questions]
        if not columns:
            raise FileFormatError(f"{value_path}: none of its columns is a question of question_metadata.json "
                                  f"(expected Q1 .. Q259)")
        overall: dict[str, Counter] = {name: Counter() for _, name in columns}
        per_country: dict[str, dict[str, Counter]] = {g: {name: Counter() for _, name in columns} for g in chosen}
        parsed: dict[str, int | None] = {"": None}
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise FileFormatError(f"{value_path} line {reader.line_num}: {len(row)} cells, the header has "
                                      f"{len(header)}")
            mine = per_country.get(group_of.get(row[i_id].strip(), ""))
            for i, qid in columns:
                cell = row[i]
                if cell not in parsed:
                    text = cell.strip()
                    try:
                        number = float(text) if text else None
                    except ValueError:
                        raise FileFormatError(f"{value_path} line {reader.line_num}, column {qid}: {cell!r} is "
                                              f"not a number; value answers are integers on the question's "
                                              f"scale") from None
                    parsed[cell] = None if number is None or math.isnan(number) or not number.is_integer() \
                        else int(number)
                answer = parsed[cell]
                if answer is None:
                    continue
                _, low, high, _ = questions[qid]
                if not low <= answer <= high:
                    continue
                overall[qid][answer] += 1
                if mine is not None:
                    mine[qid][answer] += 1

    order = {qid: n for n, qid in enumerate(questions)}
    items: list[MCItem] = []
    for group in chosen:
        counts = {qid: c for qid, c in per_country[group].items() if sum(c.values()) >= min_answers}
        divergence = {qid: _kl(c, overall[qid]) for qid, c in counts.items()}
        ranked = sorted(counts, key=lambda q: (-divergence[q], order[q]))
        for rank, qid in enumerate(ranked):
            part = "find" if rank < find_questions else "test"
            if select != "all" and part != select:
                continue
            text, low, high, category = questions[qid]
            dist = counts[qid]
            gold_value = min(dist, key=lambda v: (-dist[v], v))
            items.append(MCItem(
                wvb_question(display[group], text), tuple(str(v) for v in range(low, high + 1)), gold_value - low,
                group=group, id=f"wvb-{group}-{qid}",
                metadata={"benchmark": "worldvaluesbench", "question_id": qid, "country": raw_name[group],
                          "category": category, "distribution": {str(v): dist[v] for v in sorted(dist)},
                          "n_answers": sum(dist.values()), "kl": divergence[qid], "rank": rank, "select": part}))
    if not items:
        raise NeurospecError(f"WorldValuesBench from {root}/{split}: no items for countries={requested!r}, "
                             f"select={select!r}, min_answers={min_answers}, find_questions={find_questions} "
                             f"(no question has {min_answers}+ answers there, or the selection is empty).")
    return items
