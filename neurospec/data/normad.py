"""NormAd (Rao et al. 2024) as multiple-choice items, from a local export of ``akhilayerukola/NormAd``.

    from neurospec.data.normad import load_normad
    items = load_normad("normad_etiquette_final_data.csv")                     # every country, yes/no/neutral
    find = load_normad("normad.csv", countries=["USA", "South Korea"], split="find", with_rule=True)

The hub dataset is one CSV, ``normad_etiquette_final_data.csv`` (download it, or export
``load_dataset("akhilayerukola/NormAd", split="train")`` with ``to_json``/``to_csv``; ``.parquet``
needs pandas and pyarrow). Columns: ``ID, Country, Background, Axis, Subaxis, Value, Rule-of-Thumb,
Story, Explanation, Gold Label``; ``Country`` is snake case (``united_states_of_america``,
``south_korea``), ``Gold Label`` is ``yes``, ``no`` or ``neutral``.

How an item is made, per row:

- question: ``"Task: you are in <country>. Is what the person in the story does socially acceptable
  there?"``, then (``with_background=True``) ``"Background: ..."``, (``with_rule=True``)
  ``"Rule of thumb: ..."``, and ``"Story: ..."``, one per line;
- options: ``yes``, ``no``, ``neutral`` in an order shuffled by a generator seeded with (seed, ID);
  ``MCItem.gold`` is where the gold label went.

Groups: a country :func:`neurospec.data.languages.resolve_country` knows becomes its key
(``united_states_of_america`` -> ``US``, ``united_kingdom`` -> ``UK``, ``south_korea`` ->
``South_Korea``), and the question uses its display name; any other becomes a title-cased name
(``saudi_arabia`` -> ``Saudi Arabia``). Splits, as the culture-neuron reference does: per (country,
gold label), ``"find"`` = the first half (rounded down) of its rows in file order, ``"test"`` = the
rest, ``"all"`` = every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Literal

from neurospec.data.culturalbench import (
    check_columns,
    check_split,
    country_group,
    first_half,
    match_countries,
    need,
    read_rows,
    requested_countries,
    stable_rng,
)
from neurospec.data.items import MCItem
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = ["NORMAD_COLUMNS", "NORMAD_HF", "NORMAD_LABELS", "load_normad", "normad_question"]

#: Where NormAd lives (one CSV, ``normad_etiquette_final_data.csv``, split ``train``).
NORMAD_HF = "akhilayerukola/NormAd"
#: The columns every item needs (``Background`` and ``Rule-of-Thumb`` too when asked for).
NORMAD_COLUMNS: tuple[str, ...] = ("ID", "Country", "Story", "Gold Label")
#: The answer options, in the order the split counts them.
NORMAD_LABELS: tuple[str, ...] = ("yes", "no", "neutral")


def normad_question(country: str, story: str, *, rule: str | None = None, background: str | None = None) -> str:
    """The question text of an item: the task naming the country, optional background and rule, the story."""
    lines = [f"Task: you are in {country}. Is what the person in the story does socially acceptable there?"]
    if background is not None:
        lines.append(f"Background: {background.strip()}")
    if rule is not None:
        lines.append(f"Rule of thumb: {rule.strip()}")
    lines.append(f"Story: {story.strip()}")
    return "\n".join(lines)


def _label(value: Any, where: str) -> str:
    text = str(value).strip().lower()
    if text not in NORMAD_LABELS:
        raise FileFormatError(f"{where}: Gold Label {value!r} is not one of {', '.join(NORMAD_LABELS)}")
    return text


def _optional(record: dict, name: str) -> str | None:
    value = record.get(name)
    return None if value is None or str(value).strip() == "" else str(value).strip()


def load_normad(path: str | Path, *, countries: Iterable[str] | None = None,
                split: Literal["all", "find", "test"] = "all", seed: int = 0, with_rule: bool = False,
                with_background: bool = False) -> list[MCItem]:
    """NormAd items from a local file (see the module docstring for the rules).

    path             the hub's ``normad_etiquette_final_data.csv`` or any ``.jsonl/.json/.csv/.tsv/.parquet``
                     export with its columns
    countries        names to keep (``"USA"``, ``"south_korea"``, ``"Saudi Arabia"``); one the file lacks
                     is an error listing the countries it has. None = all
    split            ``"all"``, ``"find"`` (per country and label the first half) or ``"test"`` (the rest)
    seed             seeds each row's option order, with its ID
    with_rule        add the row's ``Rule-of-Thumb`` to the question
    with_background  add the row's ``Background`` (the country's etiquette notes) to the question

    Items are in file order: ``MCItem(question, options, gold, group=<country group>, id="normad-<ID>",
    metadata=...)`` with metadata ``benchmark`` (``"normad"``), ``country`` (as in the file), ``label``,
    ``axis``, ``subaxis``, ``value``, ``rule_of_thumb``, ``explanation`` (None when the file lacks them).
    """
    check_split(split, "NormAd")
    countries = requested_countries(countries)
    columns = NORMAD_COLUMNS + (("Rule-of-Thumb",) if with_rule else ()) + (("Background",) if with_background else ())
    rows = list(read_rows(path, "NormAd"))
    if not rows:
        raise FileFormatError(f"{path} holds no records")
    check_columns(rows[0][1], columns, rows[0][0],
                  f"NormAd ({NORMAD_HF}, normad_etiquette_final_data.csv) has the columns ID, Country, "
                  f"Background, Axis, Subaxis, Value, Rule-of-Thumb, Story, Explanation, Gold Label.")

    parsed: list[tuple[str, str, str, str, dict]] = []      # (group, display, label, where, record)
    for where, record in rows:
        raw_country = str(need(record, "Country", where, columns)).strip()
        group, display = country_group(raw_country, titlecase=True)
        parsed.append((group, display, _label(need(record, "Gold Label", where, columns), where), where, record))
    present = list(dict.fromkeys(p[0] for p in parsed))
    wanted = None if countries is None else set(
        match_countries(countries, present, what="NormAd", titlecase=True, source=path))

    keep: set[int] | None = None
    if split != "all":
        keep = set()
        by_cell: dict[tuple[str, str], list[int]] = {}
        for index, (group, _, label, _, _) in enumerate(parsed):
            by_cell.setdefault((group, label), []).append(index)
        for indices in by_cell.values():
            find, test = first_half(indices)
            keep |= find if split == "find" else test

    items: list[MCItem] = []
    for index, (group, display, label, where, record) in enumerate(parsed):
        if wanted is not None and group not in wanted:
            continue
        if keep is not None and index not in keep:
            continue
        row_id = str(need(record, "ID", where, columns)).strip()
        story = str(need(record, "Story", where, columns))
        rule = str(need(record, "Rule-of-Thumb", where, columns)) if with_rule else None
        background = str(need(record, "Background", where, columns)) if with_background else None
        options = list(NORMAD_LABELS)
        stable_rng("normad", seed, row_id).shuffle(options)

        items.append(MCItem(
            normad_question(display, story, rule=rule, background=background), tuple(options),
            options.index(label), group=group, id=f"normad-{row_id}",
            metadata={"benchmark": "normad", "country": str(record["Country"]).strip(), "label": label,
                      "axis": _optional(record, "Axis"), "subaxis": _optional(record, "Subaxis"),
                      "value": _optional(record, "Value"), "rule_of_thumb": _optional(record, "Rule-of-Thumb"),
                      "explanation": _optional(record, "Explanation")}))
    if not items:
        raise NeurospecError(f"NormAd from {path}: no items left with countries={countries!r}, split={split!r}. "
                             f"The file holds: {', '.join(sorted(present))}.")
    return items
