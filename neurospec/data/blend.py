"""BLEnD multiple-choice items, rebuilt from the short-answer annotations (METHODS section 3).

    from neurospec.data.blend import (load_blend, build_blend_items, control_items, blend_summary,
                                      BLEND_TEMPLATES, blend_prompt_format, FIND_TOPICS, TEST_TOPICS)
    data = load_blend()                                    # {country: {question id: BlendQuestion}}
    items = build_blend_items(data, topics="find")         # Food / Work life / Sport: finding neurons
    tests = build_blend_items(data, topics="test")         # Education / Family / Holidays: testing
    ctrl = control_items(items)                            # same options and gold, no question (the reference)
    ctrl2 = control_items(items, instruction=CONTROL_INSTRUCTION)  # option: "Choose only one of the options."
    choose_by_letter(model, tok, items, fmt=blend_prompt_format(), prompt=BLEND_TEMPLATES["blend"])
    print(blend_summary(data).format())                    # items per country and topic, skips and why

How an item is made, per (country, question id):

1. Gold = the most-voted annotation (highest ``count``). BLEnD's votes tie often (a quarter of the
   answered questions); a tie goes to the FIRST of the tied annotations in file order. A question
   with no annotation (every annotator said idk / no answer / not applicable) gives no item.
2. Option text = an annotation's first non-empty English variant (``en_answers``), or with
   ``language="local"`` its first non-empty local variant (``answers``).
3. Distractors = the other countries' gold answers to the same question id (``distractors="gold"``;
   ``"best"``: each other country's most-voted valid answer; ``"answers"``: every answer of every
   other country), never one that is also among the gold country's own annotations: a candidate is
   dropped when any of its variants equals, lower-cased and stripped, any variant (English or local)
   of any of the gold country's annotations. Candidates are deduplicated the same way (a candidate
   sharing a variant with an earlier one is dropped), countries in alphabetical order.
4. ``num_options - 1`` distractors per item (4 options by default); a question with fewer valid
   distractors gives no item. Up to ``max_per_question`` (5) items per (country, question id), each
   a different set of distractors, drawn with a random generator seeded by (seed, country, question
   id), so an item does not depend on which other countries or topics are built. Option order is
   shuffled by the same generator; ``MCItem.gold`` records where the gold went.

The data folder defaults to the ``blend`` data set (:mod:`neurospec.data.locate`); any folder with
``annotations/<Country>_data.json`` and ``questions/<Country>_questions.csv`` works. See docs/blend.md.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

from neurospec.data.items import MCItem
from neurospec.data.languages import Country, all_countries, resolve_country
from neurospec.data.locate import locate
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = [
    "ALL_TOPICS", "BLEND_PREFILL", "BLEND_TEMPLATES", "BlendAnnotation", "BlendBuild", "BlendQuestion",
    "BlendSummary", "BlendTemplate", "CONTROL_INSTRUCTION", "DEFAULT_TEMPLATE", "FIND_TOPICS", "SKIP_REASONS",
    "SkippedQuestion", "TEST_TOPICS", "blend_data_dir", "blend_prompt_format", "blend_summary", "build_blend",
    "build_blend_items", "control_items", "load_blend", "resolve_topic", "resolve_topics",
]

#: Topics whose questions find culture neurons (METHODS section 3), exactly as BLEnD's CSVs spell them.
FIND_TOPICS: tuple[str, ...] = ("Food", "Work life", "Sport")
#: Topics whose questions test them ("Holidays" in METHODS is BLEnD's "Holidays/Celebration/Leisure").
TEST_TOPICS: tuple[str, ...] = ("Education", "Family", "Holidays/Celebration/Leisure")
#: BLEnD's six topics: the finding half first, as the reference orders them.
ALL_TOPICS: tuple[str, ...] = FIND_TOPICS + TEST_TOPICS

#: Why a (country, question id) gave no item.
SKIP_REASONS: tuple[str, ...] = ("no_annotation", "gold_without_text", "too_few_distractors")

#: An optional question for control items (``control_items(items, instruction=CONTROL_INSTRUCTION)``).
#: The reference's control prompt has no question and no such sentence (``control_items`` default ``""``):
#: BLEnD's own instruction already says "choose only one".
CONTROL_INSTRUCTION = "Choose only one of the options."

#: The forced start of the answer in the culture method (METHODS section 0b).
BLEND_PREFILL = '{"answer_choice":"'

_LETTERS = "ABCDEFGHIJ"
_LAYOUT = "annotations/<Country>_data.json and questions/<Country>_questions.csv (BLEnD's data/ folder)"


# ----------------------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------------------

def _norm(text: str) -> str:
    return text.strip().lower()


def _first_text(variants: Sequence[str]) -> str | None:
    for variant in variants:
        if variant.strip():
            return variant.strip()
    return None


@dataclass(frozen=True)
class BlendAnnotation:
    """One aggregated answer: its local variants, English variants and number of annotators, as in the file."""

    answers: tuple[str, ...]
    en_answers: tuple[str, ...]
    count: int

    def text(self, language: Literal["en", "local"] = "en") -> str | None:
        """The option text: the first non-empty variant (stripped), English or local; None if there is none."""
        return _first_text(self.en_answers if language == "en" else self.answers)

    @cached_property
    def variants(self) -> frozenset[str]:
        """Every variant, English and local, lower-cased and stripped (empty ones left out)."""
        return frozenset(_norm(v) for v in self.en_answers + self.answers if v.strip())


@dataclass(frozen=True)
class BlendQuestion:
    """One (country, question id) of BLEnD: both question texts, topic, annotations in file order, idk counts.

    ``en_question`` names the country ("... in China?") and is kept as BLEnD wrote it. ``idks`` holds
    BLEnD's ``idk`` / ``no-answer`` / ``not-applicable`` counts and, for a few questions, extra keys
    (annotators' free-text remarks) with their counts.
    """

    country: str
    question_id: str
    topic: str
    en_question: str
    local_question: str
    annotations: tuple[BlendAnnotation, ...]
    idks: Mapping[str, int] = field(default_factory=dict)
    source: str = ""

    @cached_property
    def gold_index(self) -> int | None:
        """Index of the most-voted annotation; on a tie the first in file order; None without annotations."""
        best = None
        for i, annotation in enumerate(self.annotations):
            if best is None or annotation.count > self.annotations[best].count:
                best = i
        return best

    @property
    def gold(self) -> BlendAnnotation | None:
        index = self.gold_index
        return None if index is None else self.annotations[index]

    @property
    def gold_votes(self) -> int:
        gold = self.gold
        return 0 if gold is None else gold.count

    @property
    def n_tied(self) -> int:
        """How many annotations share the top vote count (1 = no tie, 0 = no annotation)."""
        gold = self.gold
        return 0 if gold is None else sum(a.count == gold.count for a in self.annotations)

    @property
    def is_tie(self) -> bool:
        return self.n_tied > 1

    @property
    def idk_total(self) -> int:
        return sum(self.idks.values())

    @cached_property
    def variants(self) -> frozenset[str]:
        """Every variant of every annotation (lower-cased, stripped): what a distractor must avoid."""
        out: set[str] = set()
        for annotation in self.annotations:
            out |= annotation.variants
        return frozenset(out)

    def question(self, language: Literal["en", "local"] = "en") -> str:
        return self.en_question if language == "en" else self.local_question


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------

def blend_data_dir() -> Path:
    """The ``blend`` data set's folder (:func:`neurospec.data.locate.locate`)."""
    return locate("blend")


def _country(name: str | Country) -> Country:
    return resolve_country(name)


def _read_topics(path: Path) -> dict[str, tuple[str, str, str, str]]:
    """question id -> (topic, source, Question (local), Translation (English)), in file order."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"ID", "Topic"} - set(reader.fieldnames or ())
        if missing:
            raise FileFormatError(f"{path}: no column(s) {sorted(missing)}; a BLEnD questions file has the columns "
                                  f"'', ID, Topic, Source, Question, Translation.")
        rows: dict[str, tuple[str, str, str, str]] = {}
        for row in reader:
            rows[row["ID"]] = (row["Topic"], row.get("Source") or "", row.get("Question") or "",
                               row.get("Translation") or "")
    return rows


def _annotation(raw: Mapping, where: str) -> BlendAnnotation:
    try:
        return BlendAnnotation(tuple(raw.get("answers") or ()), tuple(raw.get("en_answers") or ()), int(raw["count"]))
    except (KeyError, TypeError, ValueError) as err:
        raise FileFormatError(f"{where}: an annotation without a numeric 'count' ({raw!r}).") from err


def _load_country(folder: Path, country: Country) -> dict[str, BlendQuestion]:
    json_path = folder / "annotations" / f"{country.key}_data.json"
    csv_path = folder / "questions" / f"{country.key}_questions.csv"
    for path in (json_path, csv_path):
        if not path.is_file():
            raise NeurospecError(f"BLEnD file {path} not found. A BLEnD folder holds {_LAYOUT} for each country "
                                 f"({country.key} here); pass data_dir= or set NEUROSPEC_DATA.")
    try:
        raw = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FileFormatError(f"{json_path} is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise FileFormatError(f"{json_path}: expected a JSON object keyed by question id.")
    topics = _read_topics(csv_path)
    unknown = [qid for qid in raw if qid not in topics]
    if unknown:
        raise FileFormatError(f"{json_path}: question id(s) {unknown[:5]} have no row (no topic) in {csv_path}.")
    records: dict[str, BlendQuestion] = {}
    for qid in [q for q in topics if q in raw]:  # CSV order; CSV rows without annotations are left out
        entry = raw[qid]
        topic, source, local_q, en_q = topics[qid]
        where = f"{json_path} [{qid}]"
        records[qid] = BlendQuestion(
            country=country.key, question_id=qid, topic=topic,
            en_question=entry.get("en_question") or en_q, local_question=entry.get("question") or local_q,
            annotations=tuple(_annotation(a, where) for a in entry.get("annotations") or ()),
            idks={k: int(v) for k, v in (entry.get("idks") or {}).items()}, source=source)
    return records


def load_blend(data_dir: str | Path | None = None,
               countries: Iterable[str | Country] | None = None) -> dict[str, dict[str, BlendQuestion]]:
    """Read BLEnD's annotations and question files: ``{country key: {question id: BlendQuestion}}``.

    ``countries`` (any name :func:`neurospec.data.languages.resolve_country` knows) defaults to BLEnD's 16.
    Countries are in alphabetical key order, questions in file order. A missing folder or file raises
    :class:`NeurospecError` naming the path and the expected layout.
    """
    folder = Path(data_dir) if data_dir is not None else blend_data_dir()
    if not folder.is_dir():
        raise NeurospecError(f"BLEnD folder {folder} not found. It should hold {_LAYOUT}; pass data_dir= "
                             f"or set NEUROSPEC_DATA (the folder holding blend/).")
    chosen = all_countries() if countries is None else [_country(c) for c in countries]
    keys = sorted(dict.fromkeys(c.key for c in chosen))
    return {key: _load_country(folder, resolve_country(key)) for key in keys}


# ----------------------------------------------------------------------------------------------------------
# Topics
# ----------------------------------------------------------------------------------------------------------

def _norm_topic(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def resolve_topic(name: str) -> str:
    """BLEnD's spelling of a topic: ``"holidays"`` -> ``"Holidays/Celebration/Leisure"``.

    Case-insensitive, ``-`` and ``_`` read as spaces (``"work-life"`` -> ``"Work life"``); the full name
    or any of its ``/`` parts.
    """
    query = _norm_topic(name)
    for topic in ALL_TOPICS:
        if query == _norm_topic(topic) or query in (_norm_topic(p) for p in topic.split("/")):
            return topic
    raise NeurospecError(f"Unknown BLEnD topic {name!r}. The topics are {', '.join(ALL_TOPICS)} "
                         f"(or 'find' = {FIND_TOPICS}, 'test' = {TEST_TOPICS}).")


def resolve_topics(topics: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``None`` (all), ``"find"``, ``"test"``, ``"all"``, one topic name, or several -> BLEnD topic names."""
    if topics is None:
        return None
    if isinstance(topics, str):
        split = topics.strip().lower()
        if split == "find":
            return FIND_TOPICS
        if split == "test":
            return TEST_TOPICS
        if split == "all":
            return ALL_TOPICS
        return (resolve_topic(topics),)
    return tuple(dict.fromkeys(resolve_topic(t) for t in topics))


# ----------------------------------------------------------------------------------------------------------
# Building items
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SkippedQuestion:
    """A (country, question id) that gave no item, and why (one of :data:`SKIP_REASONS`)."""

    country: str
    question_id: str
    topic: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class _Candidate:
    text: str
    variants: frozenset[str]
    country: str


def _candidates(record: BlendQuestion, mode: str) -> list[BlendAnnotation]:
    """Another country's answers to offer as distractors, most-voted first (file order among equal votes)."""
    if mode == "gold":
        return [record.gold] if record.gold is not None else []
    return sorted(record.annotations, key=lambda a: -a.count)


def _distractor_pool(target: BlendQuestion, others: Sequence[BlendQuestion], mode: str,
                     language: str) -> list[_Candidate]:
    forbidden = target.variants
    pool: list[_Candidate] = []
    taken: set[str] = set()
    for other in others:
        for annotation in _candidates(other, mode):
            text = annotation.text(language)
            if text is None:
                continue
            variants = annotation.variants | {_norm(text)}
            if variants & forbidden or variants & taken:
                continue
            pool.append(_Candidate(text, variants, other.country))
            taken |= variants
            if mode == "best":
                break
    return pool


def _draws(rng: random.Random, size: int, k: int, limit: int) -> list[tuple[int, ...]]:
    """Up to ``limit`` different k-subsets of range(size), in draw order."""
    total = math.comb(size, k)
    if total <= limit:
        subsets = list(itertools.combinations(range(size), k))
        rng.shuffle(subsets)
        return subsets
    seen: set[tuple[int, ...]] = set()
    out: list[tuple[int, ...]] = []
    while len(out) < limit:
        subset = tuple(sorted(rng.sample(range(size), k)))
        if subset not in seen:
            seen.add(subset)
            out.append(subset)
    return out


@dataclass(frozen=True)
class BlendBuild:
    """The items of one build, the (country, question id)s that gave none, and the settings used."""

    items: tuple[MCItem, ...]
    skipped: tuple[SkippedQuestion, ...]
    records: tuple[BlendQuestion, ...]
    settings: Mapping[str, object] = field(default_factory=dict)

    def summary(self) -> "BlendSummary":
        return BlendSummary.from_build(self)


def build_blend(data: Mapping[str, Mapping[str, BlendQuestion]] | None = None, *,
                data_dir: str | Path | None = None, countries: Iterable[str | Country] | None = None,
                topics: str | Iterable[str] | None = None, num_options: int = 4, max_per_question: int = 5,
                seed: int = 0, language: Literal["en", "local"] = "en",
                distractors: Literal["gold", "best", "answers"] = "gold") -> BlendBuild:
    """Build BLEnD multiple-choice items (see the module docstring for the rules) and record what was skipped.

    data              what :func:`load_blend` returned (loaded from ``data_dir`` when None). Distractors
                      come from every country in it, whichever ``countries`` items are made for.
    countries         the gold countries to make items for (default: all in ``data``)
    topics            ``"find"``, ``"test"``, a topic or several (``"Holidays"`` works), None = all
    num_options       options per item, gold included (4)
    max_per_question  items per (country, question id) at most (5, as the reference)
    seed              seeds each (country, question id)'s generator: distractor draws and option order
    language          ``"en"``: English question and options (BLEnD's ``en_question``, ``en_answers``);
                      ``"local"``: the country's local question and local answer variants (the
                      distractors are then in the other countries' languages)
    distractors       ``"gold"``: each other country's gold answer; ``"best"``: each other country's
                      most-voted answer that is valid; ``"answers"``: every answer of every other country

    Every item is ``MCItem(question, options, gold, group=<country key>, id=f"{qid}#{k}", metadata=...)``
    with metadata ``topic``, ``question_id``, ``country``, ``gold_votes``, ``control`` (False),
    ``tie`` (the gold's vote count was shared), ``option_countries`` (whose answer each option is),
    ``language``.
    """
    if num_options < 2:
        raise NeurospecError(f"num_options={num_options}: an item needs 2 or more options.")
    if num_options > len(_LETTERS):
        raise NeurospecError(f"num_options={num_options}: at most {len(_LETTERS)} options can be lettered.")
    if max_per_question < 1:
        raise NeurospecError(f"max_per_question={max_per_question}: use 1 or more.")
    if language not in ("en", "local"):
        raise NeurospecError(f"language={language!r}: use 'en' (English) or 'local'.")
    if distractors not in ("gold", "best", "answers"):
        raise NeurospecError(f"distractors={distractors!r}: use 'gold', 'best' or 'answers'.")
    if data is None:
        data = load_blend(data_dir)
    if countries is None:
        targets = list(data)
    else:
        targets = sorted(dict.fromkeys(_country(c).key for c in countries))
        absent = [c for c in targets if c not in data]
        if absent:
            raise NeurospecError(f"countries {absent} are not in the loaded BLEnD data ({', '.join(data)}); "
                                 f"load them with load_blend(countries=...).")
    wanted = resolve_topics(topics)
    n_distractors = num_options - 1
    items: list[MCItem] = []
    skipped: list[SkippedQuestion] = []
    records: list[BlendQuestion] = []
    for country in targets:
        for qid, record in data[country].items():
            if wanted is not None and record.topic not in wanted:
                continue
            records.append(record)
            gold = record.gold
            if gold is None:
                skipped.append(SkippedQuestion(country, qid, record.topic, "no_annotation",
                                               f"idks {dict(record.idks)}"))
                continue
            gold_text = gold.text(language)
            if gold_text is None:
                skipped.append(SkippedQuestion(country, qid, record.topic, "gold_without_text",
                                               f"the gold annotation has no {language} variant: {gold}"))
                continue
            others = [data[c][qid] for c in data if c != country and qid in data[c]]
            pool = _distractor_pool(record, others, distractors, language)
            if len(pool) < n_distractors:
                skipped.append(SkippedQuestion(country, qid, record.topic, "too_few_distractors",
                                               f"{len(pool)} valid distractor(s), {n_distractors} needed"))
                continue
            rng = random.Random(f"neurospec-blend|{seed}|{country}|{qid}")
            for k, subset in enumerate(_draws(rng, len(pool), n_distractors, max_per_question)):
                entries = [(gold_text, country)] + [(pool[i].text, pool[i].country) for i in subset]
                order = list(range(len(entries)))
                rng.shuffle(order)
                items.append(MCItem(
                    record.question(language), tuple(entries[i][0] for i in order), order.index(0),
                    group=country, id=f"{qid}#{k}",
                    metadata={"topic": record.topic, "question_id": qid, "country": country,
                              "gold_votes": gold.count, "control": False, "tie": record.is_tie,
                              "option_countries": tuple(entries[i][1] for i in order), "language": language}))
    settings = {"num_options": num_options, "max_per_question": max_per_question, "seed": seed,
                "language": language, "distractors": distractors, "topics": wanted, "countries": tuple(targets)}
    return BlendBuild(tuple(items), tuple(skipped), tuple(records), settings)


def build_blend_items(data: Mapping[str, Mapping[str, BlendQuestion]] | None = None, **options) -> list[MCItem]:
    """The items of :func:`build_blend` (same options): ``build_blend_items(topics="find", seed=0)``."""
    return list(build_blend(data, **options).items)


def control_items(items: Iterable[MCItem], instruction: str = "") -> list[MCItem]:
    """BLEnD-control: the same options, gold, group and id, the question replaced by ``instruction``.

        ctrl = control_items(items)                                   # the reference's control prompt
        ctrl = control_items(items, instruction=CONTROL_INSTRUCTION)  # option: "Choose only one of the options."

    ``metadata["control"]`` is True and ``metadata["original_question"]`` keeps the question. The
    default ``instruction=""`` with the ``blend`` template (and :func:`blend_prompt_format`) gives the
    reference's control prompt exactly: BLEnD's instruction and the options, no question, nothing
    before the instruction. A non-empty ``instruction`` is shown where the question was.
    """
    out = []
    for item in items:
        metadata = {**item.metadata, "control": True, "original_question": item.question}
        out.append(MCItem(instruction, item.options, item.gold, group=item.group, id=item.id, metadata=metadata))
    return out


# ----------------------------------------------------------------------------------------------------------
# Prompt templates
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlendTemplate:
    """A way to show an item to a chat model; call it on an item for the prompt text.

    ``body`` contains ``{question}`` (replaced by ``question_format`` filled with the question;
    by ``control_format`` for a control item, whose question is an instruction; by nothing when the
    question is empty), ``{options}`` (one ``option_format`` line per option, lettered
    A, B, ...) and optionally ``{letters}`` ("A, B, C, D"). Placeholders are replaced literally, so
    JSON braces need no escaping. Usable as ``choose_by_letter(..., prompt=template)``.
    """

    name: str
    body: str
    question_format: str = "{question}\n"
    option_format: str = "{letter}. {option}"
    control_format: str = "{question}\n"

    def __call__(self, item: MCItem, letters: str = _LETTERS) -> str:
        if len(item.options) > len(letters):
            raise NeurospecError(f"item {item.id!r} has {len(item.options)} options but only {len(letters)} letters.")
        question = item.question.strip()
        shape = self.control_format if item.metadata.get("control") else self.question_format
        block = shape.replace("{question}", question) if question else ""
        options = "\n".join(self.option_format.replace("{letter}", letter).replace("{option}", option)
                            for letter, option in zip(letters, item.options))
        return (self.body.replace("{question}", block).replace("{options}", options)
                .replace("{letters}", ", ".join(letters[:len(item.options)])))


#: Prompt templates for BLEnD items. ``blend`` is BLEnD's own multiple-choice prompt (what the
#: reference scores, with the forced prefix of :func:`blend_prompt_format`); the others ask the same
#: in other words, for "several prompt templates" (METHODS section 3).
BLEND_TEMPLATES: dict[str, BlendTemplate] = {t.name: t for t in (
    BlendTemplate(
        "blend",
        '{question}Without any explanation, choose only one from the given alphabet choices(e.g., A, B, C). '
        'Provide as JSON format: {"answer_choice":""}\n\n{options}\n\nAnswer:',
        question_format="{question} ", control_format="{question} "),
    BlendTemplate(
        "question_first",
        "Answer the multiple-choice question below by picking exactly one option.\n\n"
        "{question}{options}\n\n"
        'Reply with JSON only, in the form {"answer_choice":"<letter>"}, where <letter> is one of {letters}.',
        question_format="Question: {question}\n"),
    BlendTemplate(
        "options_first",
        "Options:\n{options}\n\n{question}"
        'Which option is the answer? Give its letter ({letters}) as JSON, {"answer_choice":"<letter>"}, '
        "with no explanation.",
        question_format="{question}\n",
        option_format="({letter}) {option}"),
    BlendTemplate(
        "terse",
        '{question}{options}\nRespond with {"answer_choice":"<letter>"} and nothing else.',
        question_format="{question}\n",
        option_format="{letter}) {option}"),
)}

#: The culture method's template.
DEFAULT_TEMPLATE = BLEND_TEMPLATES["blend"]


def blend_prompt_format(**options):
    """``PromptFormat.chat(prefill='{"answer_choice":"', **options)``: the culture method's input format."""
    from neurospec.data.prompts import PromptFormat

    return PromptFormat.chat(prefill=BLEND_PREFILL, **options)


# ----------------------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlendSummary:
    """Counts of one build: items and questions per country and topic, skips per country and reason, ties."""

    countries: tuple[str, ...]
    topics: tuple[str, ...]
    items: Mapping[tuple[str, str], int]          # (country, topic) -> items
    questions: Mapping[tuple[str, str], int]      # (country, topic) -> questions that gave items
    considered: Mapping[tuple[str, str], int]     # (country, topic) -> questions looked at
    skipped: Mapping[tuple[str, str], int]        # (country, reason) -> questions
    ties: Mapping[str, int]                       # country -> answered questions whose top vote is shared
    answered: Mapping[str, int]                   # country -> questions with an annotation
    settings: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def from_build(cls, build: BlendBuild) -> "BlendSummary":
        countries = tuple(dict.fromkeys(r.country for r in build.records))
        present = {r.topic for r in build.records}
        topics = tuple(t for t in ALL_TOPICS if t in present) + tuple(sorted(present - set(ALL_TOPICS)))
        items = Counter((i.group, i.metadata["topic"]) for i in build.items)
        questions = Counter((i.group, i.metadata["topic"]) for i in
                            {(i.group, i.metadata["question_id"]): i for i in build.items}.values())
        considered = Counter((r.country, r.topic) for r in build.records)
        skipped = Counter((s.country, s.reason) for s in build.skipped)
        ties = Counter(r.country for r in build.records if r.is_tie)
        answered = Counter(r.country for r in build.records if r.annotations)
        return cls(countries, topics, dict(items), dict(questions), dict(considered), dict(skipped),
                   dict(ties), dict(answered), dict(build.settings))

    def total_items(self, country: str | None = None, topics: Iterable[str] | None = None) -> int:
        chosen = set(self.topics if topics is None else resolve_topics(topics) or ())
        return sum(n for (c, t), n in self.items.items() if (country is None or c == country) and t in chosen)

    def format(self) -> str:
        """Markdown tables: items per country and topic (with find / test totals), skips, ties."""
        def short(topic: str) -> str:
            return topic.split("/")[0]

        find = [t for t in self.topics if t in FIND_TOPICS]
        test = [t for t in self.topics if t in TEST_TOPICS]
        lines = [f"settings: {', '.join(f'{k}={v}' for k, v in self.settings.items() if k != 'countries')}", "",
                 "Items per country and topic (questions that gave items in brackets):", "",
                 "| country | " + " | ".join(short(t) for t in self.topics) + " | find | test | total |",
                 "|---|" + "---:|" * (len(self.topics) + 3)]
        for country in self.countries + ("all",):
            cells = []
            for topic in self.topics:
                if country == "all":
                    n = sum(v for (c, t), v in self.items.items() if t == topic)
                    q = sum(v for (c, t), v in self.questions.items() if t == topic)
                else:
                    n, q = self.items.get((country, topic), 0), self.questions.get((country, topic), 0)
                cells.append(f"{n} ({q})")
            who = None if country == "all" else country
            lines.append(f"| {country} | " + " | ".join(cells) +
                         f" | {self.total_items(who, find)} | {self.total_items(who, test)} "
                         f"| {self.total_items(who)} |")
        lines += ["", "Questions without an item, by reason; ties = answered questions whose top vote count is shared:",
                  "", "| country | questions | " + " | ".join(SKIP_REASONS) + " | answered | ties | tie rate |",
                  "|---|" + "---:|" * (len(SKIP_REASONS) + 4)]
        def pick(mapping, country):
            return sum(mapping.values()) if country == "all" else mapping.get(country, 0)
        for country in self.countries + ("all",):
            considered = (sum(self.considered.values()) if country == "all"
                          else sum(v for (c, _), v in self.considered.items() if c == country))
            reasons = [sum(v for (c, r), v in self.skipped.items() if r == reason and country in ("all", c))
                       for reason in SKIP_REASONS]
            answered, ties = pick(self.answered, country), pick(self.ties, country)
            rate = f"{ties / answered:.1%}" if answered else "-"
            lines.append(f"| {country} | {considered} | " + " | ".join(map(str, reasons)) +
                         f" | {answered} | {ties} | {rate} |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def blend_summary(data: Mapping[str, Mapping[str, BlendQuestion]] | None = None, **options) -> BlendSummary:
    """Counts of :func:`build_blend` with the same options: ``print(blend_summary(topics="find").format())``."""
    return build_blend(data, **options).summary()
