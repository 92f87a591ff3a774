"""CountryRC: reading-comprehension passages whose answer is a country (the culture method's control set).

    from neurospec.data.countryrc import build_countryrc_items, load_countryrc, CULTURE_COUNTRIES
    items = build_countryrc_items(split="find")          # 8 countries x the first 25 passages = 200 items
    tests = build_countryrc_items(["USA", "South Korea"], split="test", seed=1)
    passages = load_countryrc()                          # the 50 raw templates, in file order

Data: the CULNIG repository's ``data/CountryRC/data.json``: 50 records ``{"id", "context",
"question"}``; every context contains ``{country}``, 20 also ``{country_dummy}`` (another country
the passage mentions). METHODS section 3: neurons that rank high on CountryRC only track country
names and are removed from culture neurons.

How an item is made, per (country, passage):

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
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

from neurospec.data.culturalbench import check_split, first_half, stable_rng
from neurospec.data.items import MCItem
from neurospec.data.locate import locate
from neurospec.errors import FileFormatError, NeurospecError
from neurospec.languages import CULTURE_SPECIFIC_COUNTRIES, Country, all_countries, resolve_country

__all__ = ["CULTURE_COUNTRIES", "CountryRCPassage", "build_countryrc_items", "countryrc_data_path", "load_countryrc"]

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

    countries  gold countries, any name :func:`neurospec.languages.resolve_country` knows (default: the
               8 of :data:`CULTURE_COUNTRIES`)
    split      ``"find"`` (first half of the passages), ``"test"`` (the rest) or ``"all"``
    pool       the countries distractors come from (default: BLEnD's 16); the gold one is never drawn
    seed       with the passage id and country, seeds each item's generator (hashlib, stable across runs)

    Items are ordered by country (as given), then passage (file order): ``MCItem(passage + "\\n" +
    question, options, gold, group=<country key>, id=f"countryrc-{passage id}-{country key}")`` with
    metadata ``benchmark`` (``"countryrc"``), ``passage_id``, ``country``, ``dummy`` (the key of the
    country filled into ``{country_dummy}``, or None) and ``option_countries`` (keys, option order).
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
                          "option_countries": tuple(entries[i].key for i in order)}))
    if not items:
        raise NeurospecError(f"CountryRC: no items for split={split!r} ({len(load_countryrc(data_dir))} "
                             f"passages in {countryrc_data_path(data_dir)}).")
    return items
