"""CountryRC: reading-comprehension passages whose answer is a country (the culture method's control set).

    from neurospec.data.countryrc import (build_countryrc_items, load_countryrc, countryrc_prompts,
                                          COUNTRYRC_TEMPLATES, CULTURE_COUNTRIES)
    items = build_countryrc_items(split="find")          # 8 countries x the first 25 passages = 200 items
    tests = build_countryrc_items(["USA", "South Korea"], split="test", seed=1)
    passages = load_countryrc()                          # the 50 raw templates, in file order
    templates, fmt = countryrc_prompts()                 # the reference's 4 prompts, chat, no prefill
    attribute(model, tok, items, templates=templates, fmt=fmt)   # 200 x 4 = 800 examples, as the reference
    COUNTRYRC_TEMPLATES["countryrc_number_1"].render(items[0])   # one prompt's text for one item

Data: the CULNIG repository's ``data/CountryRC/data.json``: 50 records ``{"id", "context",
"question"}``; every context contains ``{country}``, 20 also ``{country_dummy}`` (another country
the passage mentions). METHODS section 3: neurons that rank high on CountryRC only track country
names and are removed from culture neurons.

How an item is made, per (country, passage) (its own options: what BLEnD's templates and ``mask-eval``
show; the reference's prompts draw theirs again, see Prompts below):

1. A generator seeded by SHA-256 of (seed, passage id, country key) draws 3 distractor countries
   from the pool (default: BLEnD's 16 countries; never the gold country), then shuffles the 4
   options (gold + distractors); ``MCItem.gold`` records where the gold went.
2. ``{country_dummy}``, where present, is filled with one of the 3 distractors, drawn by the same
   generator, so the passage names the gold country and one wrong option.
3. Passage, options and question use each country's display name (``Country.name``: "United
   States", "South Korea"); the item's question is the filled passage, a newline and the question.

Splits: ``"find"`` = the first half of the passages in file order (25; the reference computes
CountryRC neuron scores on these), ``"test"`` = the rest, ``"all"`` = every passage. The data path
defaults to the ``countryrc`` data set's ``data.json`` (:mod:`neurospec.data.locate`); ``data_dir=``
takes a folder holding ``data.json`` or the file itself.

Prompts. The reference (CULNIG ``prompt.py`` ``COUNTRYRC_PROMPTS``, ``dataset.py``) scores every
(country, passage) with 4 prompts of its own: 2 lettered (A-D), 2 numbered (1-4), each ending in
the option lines and a newline, in the chat template WITHOUT an answer prefill. Each prompt draws
its own options: a ``random.Random`` seeded by MD5 of ``f"{context}_{question}_{prompt}_{country}"``
(raw context, the reference's country spelling, :data:`REFERENCE_COUNTRY_NAMES`) samples 3 of the
other 15 BLEnD countries in the reference's order, appends the gold country, shuffles, then picks
``{country_dummy}`` among the 3. :data:`COUNTRYRC_TEMPLATES` reproduce this: ``template.view(item)``
is the item as that prompt shows it (the reference's passage, options and gold; ``pool=`` and
``seed=`` do not apply), ``template.render(item)`` its text, and :func:`neurospec.measure.attribution.attribute`
renders each item through each template's view, scoring the letter or digit token as the reference
does (``letters`` and ``form="bare"`` on the template). :func:`countryrc_prompts` gives the
reference's protocol (the default of ``neurospec attribute --data countryrc``) or, with
``"blend"``, neurospec's earlier one: the items above in BLEnD's prompt with the JSON prefill
(``--templates blend``).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal

from neurospec.data.culturalbench import check_split, first_half, stable_rng
from neurospec.data.items import MCItem
from neurospec.data.languages import CULTURE_SPECIFIC_COUNTRIES, Country, all_countries, resolve_country
from neurospec.data.locate import locate
from neurospec.util.errors import FileFormatError, NeurospecError

if TYPE_CHECKING:
    from neurospec.data.prompts import PromptFormat

__all__ = [
    "COUNTRYRC_PROMPTS", "COUNTRYRC_PROTOCOLS", "COUNTRYRC_TEMPLATES", "CULTURE_COUNTRIES", "CountryRCPassage",
    "CountryRCTemplate", "REFERENCE_COUNTRY_NAMES", "build_countryrc_items", "countryrc_data_path",
    "countryrc_prompts", "load_countryrc",
]

#: The 8 countries the culture paper builds culture-specific neurons for (BLEnD country keys).
CULTURE_COUNTRIES: tuple[str, ...] = tuple(c.key for c in CULTURE_SPECIFIC_COUNTRIES)

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
_KNOWN = {"country", "country_dummy"}
_N_OPTIONS = 4


@dataclass(frozen=True)
class CountryRCPassage:
    """One template: its id, the context with ``{country}`` (and maybe ``{country_dummy}``), the question."""

    id: str
    context: str
    question: str

    @property
    def has_dummy(self) -> bool:
        return "{country_dummy}" in self.context or "{country_dummy}" in self.question


def countryrc_data_path(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` (a folder holding ``data.json``, or the file), else the ``countryrc`` data set's
    ``data.json`` (:func:`neurospec.data.locate.locate`)."""
    if data_dir is not None:
        path = Path(data_dir)
        return path / "data.json" if path.is_dir() else path
    return locate("countryrc") / "data.json"


def load_countryrc(data_dir: str | Path | None = None) -> list[CountryRCPassage]:
    """The CountryRC templates in file order; a missing or malformed file is an error naming it."""
    path = countryrc_data_path(data_dir)
    if not path.is_file():
        raise NeurospecError(f"CountryRC file {path} not found. It is CULNIG's data/CountryRC/data.json "
                             f"(github.com/ynklab/CULNIG); pass data_dir= (its folder or the file), or leave it "
                             f"out to use the countryrc data set (neurospec data fetch countryrc).")
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise FileFormatError(f"{path} is not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(raw, list) or not raw:
        raise FileFormatError(f"{path}: expected a non-empty JSON array of {{\"id\", \"context\", \"question\"}} "
                              f"records")
    passages: list[CountryRCPassage] = []
    seen: set[str] = set()
    for number, record in enumerate(raw, 1):
        where = f"{path} record {number}"
        if not isinstance(record, dict):
            raise FileFormatError(f"{where}: expected a JSON object, found {type(record).__name__}")
        missing = [k for k in ("id", "context", "question") if not str(record.get(k) or "").strip()]
        if missing:
            raise FileFormatError(f"{where}: field(s) {missing} missing or empty; records need id, context, question")
        passage = CountryRCPassage(str(record["id"]).strip(), str(record["context"]), str(record["question"]))
        if passage.id in seen:
            raise FileFormatError(f"{where}: id {passage.id!r} appears twice; ids must be unique")
        seen.add(passage.id)
        if "{country}" not in passage.context:
            raise FileFormatError(f"{where} (id {passage.id}): the context has no {{country}} placeholder")
        unknown = sorted({m for m in _PLACEHOLDER.findall(passage.context + passage.question)} - _KNOWN)
        if unknown:
            raise FileFormatError(f"{where} (id {passage.id}): unknown placeholder(s) {unknown}; only "
                                  f"{{country}} and {{country_dummy}} are filled")
        passages.append(passage)
    return passages


def _fill(text: str, country: Country, dummy: Country | None) -> str:
    text = text.replace("{country}", country.name)
    return text.replace("{country_dummy}", dummy.name) if dummy is not None else text


def build_countryrc_items(countries: Iterable[str | Country] = CULTURE_COUNTRIES, *,
                          split: Literal["find", "test", "all"] = "all",
                          pool: Iterable[str | Country] | None = None, seed: int = 0,
                          data_dir: str | Path | None = None) -> list[MCItem]:
    """CountryRC multiple-choice items (4 options), per chosen country and passage; see the module docstring.

    countries  gold countries, any name :func:`neurospec.data.languages.resolve_country` knows (default: the
               8 of :data:`CULTURE_COUNTRIES`)
    split      ``"find"`` (first half of the passages), ``"test"`` (the rest) or ``"all"``
    pool       the countries distractors come from (default: BLEnD's 16); the gold one is never drawn
    seed       with the passage id and country, seeds each item's generator (hashlib, stable across runs)

    Items are ordered by country (as given), then passage (file order): ``MCItem(passage + "\\n" +
    question, options, gold, group=<country key>, id=f"countryrc-{passage id}-{country key}")`` with
    metadata ``benchmark`` (``"countryrc"``), ``passage_id``, ``country``, ``dummy`` (the key of the
    country filled into ``{country_dummy}``, or None), ``option_countries`` (keys, option order) and
    ``passage_template`` / ``passage_question`` (the raw record, from which :data:`COUNTRYRC_TEMPLATES`
    redraw the reference's options per prompt).
    """
    check_split(split, "CountryRC")
    if isinstance(countries, (str, Country)):
        countries = [countries]
    targets = list({c.key: c for c in (resolve_country(c) for c in countries)}.values())
    if not targets:
        raise NeurospecError("CountryRC: countries= is empty; name at least one country (e.g. CULTURE_COUNTRIES).")
    candidates = all_countries() if pool is None else [resolve_country(c) for c in
                                                       ([pool] if isinstance(pool, (str, Country)) else pool)]
    candidates = sorted({c.key: c for c in candidates}.values(), key=lambda c: c.key)
    passages = load_countryrc(data_dir)
    if split != "all":
        find, test = first_half([p.id for p in passages])
        chosen = find if split == "find" else test
        passages = [p for p in passages if p.id in chosen]
    items: list[MCItem] = []
    for gold in targets:
        others = [c for c in candidates if c.key != gold.key]
        if len(others) < _N_OPTIONS - 1:
            raise NeurospecError(f"CountryRC: the distractor pool has {len(others)} countries besides "
                                 f"{gold.key}; {_N_OPTIONS - 1} are needed. Pass a larger pool= (default: "
                                 f"BLEnD's 16 countries).")
        for passage in passages:
            rng = stable_rng("countryrc", seed, passage.id, gold.key)
            distractors = rng.sample(others, _N_OPTIONS - 1)
            entries = [gold, *distractors]
            order = list(range(len(entries)))
            rng.shuffle(order)
            dummy = rng.choice(distractors) if passage.has_dummy else None
            text = _fill(passage.context, gold, dummy) + "\n" + _fill(passage.question, gold, dummy)
            items.append(MCItem(
                text, tuple(entries[i].name for i in order), order.index(0), group=gold.key,
                id=f"countryrc-{passage.id}-{gold.key}",
                metadata={"benchmark": "countryrc", "passage_id": passage.id, "country": gold.key,
                          "dummy": None if dummy is None else dummy.key,
                          "option_countries": tuple(entries[i].key for i in order),
                          "passage_template": passage.context, "passage_question": passage.question}))
    if not items:
        raise NeurospecError(f"CountryRC: no items for split={split!r} ({len(load_countryrc(data_dir))} "
                             f"passages in {countryrc_data_path(data_dir)}).")
    return items


# ----------------------------------------------------------------------------------------------------------
# The reference's prompts (CULNIG prompt.py COUNTRYRC_PROMPTS; its draw: dataset.py)
# ----------------------------------------------------------------------------------------------------------

#: The reference's spelling of BLEnD's 16 countries (BLEnD key -> name), in the reference's order
#: (CULNIG ``dataset.py`` ``COUNTRY_TO_NAME['blend']``): the names its CountryRC prompts show and the
#: order its distractor pool is sampled in.
REFERENCE_COUNTRY_NAMES: dict[str, str] = {
    "US": "USA", "UK": "UK", "South_Korea": "South Korea", "Algeria": "Algeria", "Indonesia": "Indonesia",
    "Spain": "Spain", "Iran": "Iran", "Mexico": "Mexico", "Assam": "Assam", "Greece": "Greece",
    "Ethiopia": "Ethiopia", "Northern_Nigeria": "Nigeria", "North_Korea": "North Korea", "West_Java": "West Java",
    "China": "China", "Azerbaijan": "Azerbaijan",
}
_REFERENCE_KEYS = {name: key for key, name in REFERENCE_COUNTRY_NAMES.items()}

_PASSAGE_LINES = "\n\npassage: {passage}\nquestion: {question}\n"
_LETTER_LINES = "A. {option_a}\nB. {option_b}\nC. {option_c}\nD. {option_d}\n"
_NUMBER_LINES = "1. {option_a}\n2. {option_b}\n3. {option_c}\n4. {option_d}\n"

#: The reference's 4 CountryRC prompts, verbatim (``str.format`` fields), in its order: 2 lettered, 2 numbered.
COUNTRYRC_PROMPTS: tuple[str, ...] = (
    "Read the passage carefully and choose a single option from A, B, C, D to answer the question. "
    "Do not output any other text." + _PASSAGE_LINES + _LETTER_LINES,
    "Read the following passage and question. Then, pick the most suitable answer from the four options. "
    "Only return the letter of your choice (A, B, C, or D)." + _PASSAGE_LINES + _LETTER_LINES,
    "From the information provided in the passage, choose the best answer to the question. You must select "
    "a single choice: 1, 2, 3, or 4, and do not include any other text." + _PASSAGE_LINES + _NUMBER_LINES,
    "Determine the correct answer to the question based on the content of the passage. Respond with one of "
    "the following: 1, 2, 3, or 4. No additional text is needed." + _PASSAGE_LINES + _NUMBER_LINES,
)


def _reference_view(item: MCItem, prompt: str) -> tuple[str, str, tuple[str, ...], int, str | None]:
    """The reference's draw for one (item, prompt): (passage, question, options, gold index, dummy name or None)."""
    meta = item.metadata
    context, question, key = meta.get("passage_template"), meta.get("passage_question"), meta.get("country")
    if not isinstance(context, str) or not isinstance(question, str) or key is None:
        raise NeurospecError(f"item {item.id!r} is not a CountryRC item (no passage_template / passage_question / "
                             f"country metadata); build it with build_countryrc_items.")
    country = REFERENCE_COUNTRY_NAMES.get(str(key))
    if country is None:
        raise NeurospecError(f"item {item.id!r}: country {key!r} is not one of BLEnD's 16 the reference draws "
                             f"from ({', '.join(REFERENCE_COUNTRY_NAMES)}); use one of those.")
    digest = hashlib.md5(f"{context}_{question}_{prompt}_{country}".encode("utf-8")).hexdigest()
    rng = random.Random(int(digest[:8], 16) % (2 ** 32))
    options = rng.sample([c for c in REFERENCE_COUNTRY_NAMES.values() if c != country], _N_OPTIONS - 1)
    options.append(country)
    rng.shuffle(options)
    dummy = rng.choice([c for c in options if c != country]) if "country_dummy" in context else None

    def fill(text: str) -> str:
        text = text.replace("{country}", country)
        return text.replace("{country_dummy}", dummy) if dummy is not None else text

    return fill(context), fill(question), tuple(options), options.index(country), dummy


@dataclass(frozen=True)
class CountryRCTemplate:
    """One of the reference's CountryRC prompts. ``template.render(item)`` is the text the reference scores.

        t = COUNTRYRC_TEMPLATES["countryrc_letter_1"]
        shown = t.view(item)     # the item as this prompt shows it: the reference's passage, options, gold
        text = t(shown)          # the prompt text; == t.render(item)

    ``prompt`` is the reference's text (``str.format`` fields ``passage``, ``question``,
    ``option_a``..``option_d``); ``letters`` the option labels it asks for (``"ABCD"`` or ``"1234"``);
    ``form="bare"``: the label is scored as its own token ("A", "1"), as the reference reads it
    (``convert_tokens_to_ids``). :func:`neurospec.measure.attribution.prepare_examples` uses ``view``,
    ``letters`` and ``form``. Calling the template on an item that is not its own view is an error,
    so a scorer that does not know views cannot grade against the wrong gold.
    """

    name: str
    prompt: str
    letters: str
    form: Literal["bare"] = "bare"

    def view(self, item: MCItem) -> MCItem:
        """``item`` with the reference's passage, options (its spelling) and gold for this prompt."""
        passage, question, options, gold, dummy = _reference_view(item, self.prompt)
        metadata = {**item.metadata, "prompt": self.name, "passage": passage, "question_text": question,
                    "dummy": None if dummy is None else _REFERENCE_KEYS[dummy],
                    "option_countries": tuple(_REFERENCE_KEYS[o] for o in options), "draw": "reference"}
        return MCItem(passage + "\n" + question, options, gold, group=item.group, id=item.id, metadata=metadata)

    def __call__(self, item: MCItem) -> str:
        if item.metadata.get("prompt") != self.name:
            raise NeurospecError(f"item {item.id!r} is not a view of CountryRC prompt {self.name!r}: render "
                                 f"template.view(item) (attribute does), or call template.render(item).")
        meta, options = item.metadata, item.options
        if len(options) != len(self.letters):
            raise NeurospecError(f"item {item.id!r} has {len(options)} options; CountryRC prompts show "
                                 f"{len(self.letters)}.")
        return self.prompt.format(passage=meta["passage"], question=meta["question_text"], option_a=options[0],
                                  option_b=options[1], option_c=options[2], option_d=options[3])

    def render(self, item: MCItem) -> str:
        """The text of this prompt for a CountryRC item (``self(self.view(item))``)."""
        return self(self.view(item))


#: The reference's 4 CountryRC prompts as templates, by name, in its order.
COUNTRYRC_TEMPLATES: dict[str, CountryRCTemplate] = {t.name: t for t in (
    CountryRCTemplate("countryrc_letter_1", COUNTRYRC_PROMPTS[0], "ABCD"),
    CountryRCTemplate("countryrc_letter_2", COUNTRYRC_PROMPTS[1], "ABCD"),
    CountryRCTemplate("countryrc_number_1", COUNTRYRC_PROMPTS[2], "1234"),
    CountryRCTemplate("countryrc_number_2", COUNTRYRC_PROMPTS[3], "1234"),
)}

#: How CountryRC can be attributed: the reference's protocol (default) or neurospec's earlier one.
COUNTRYRC_PROTOCOLS: tuple[str, ...] = ("reference", "blend")


def countryrc_prompts(protocol: Literal["reference", "blend"] = "reference", *,
                      chat: bool = True) -> tuple[list, "PromptFormat"]:
    """``(templates, fmt)`` to attribute CountryRC items with: ``attribute(m, tok, items, templates=t, fmt=f)``.

        templates, fmt = countryrc_prompts()                 # the reference: its 4 prompts, chat, no prefill
        templates, fmt = countryrc_prompts("blend")          # earlier neurospec: BLEnD's prompt + JSON prefill
        templates, fmt = countryrc_prompts(chat=False)       # plain text, for a tokenizer without a chat template

    ``"reference"`` (the default of ``neurospec attribute --data countryrc``): :data:`COUNTRYRC_TEMPLATES`
    in ``PromptFormat.chat()`` with no prefill; the find split over the 8 countries gives 25 x 8 x 4 =
    800 examples. ``"blend"``: BLEnD's ``blend`` template with ``{"answer_choice":"`` prefilled
    (``neurospec attribute --data countryrc --templates blend``), 200 examples.
    """
    from neurospec.data.blend import BLEND_TEMPLATES, blend_prompt_format
    from neurospec.data.prompts import PLAIN, PromptFormat

    if protocol == "reference":
        return list(COUNTRYRC_TEMPLATES.values()), PromptFormat.chat() if chat else PLAIN
    if protocol == "blend":
        return [BLEND_TEMPLATES["blend"]], blend_prompt_format() if chat else PLAIN
    raise NeurospecError(f"CountryRC protocol {protocol!r}: use one of {', '.join(COUNTRYRC_PROTOCOLS)}.")
