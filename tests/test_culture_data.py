"""Cultural and NLU multiple-choice loaders: CountryRC, QNLI and MRPC on the shared files; CulturalBench,
NormAd, WorldValuesBench and CommonsenseQA on small files written here in their public formats; the
load_mc_set registry."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from neurospec.data.blend import BLEND_TEMPLATES, CONTROL_INSTRUCTION, blend_data_dir
from neurospec.data.countryrc import (
    CULTURE_COUNTRIES,
    build_countryrc_items,
    countryrc_data_path,
    load_countryrc,
)
from neurospec.data.culturalbench import country_group, load_culturalbench, stable_rng
from neurospec.data.items import MCItem
from neurospec.data.languages import all_countries, resolve_country
from neurospec.data.locate import mirror_root
from neurospec.data.mc_sets import MC_SETS, load_mc_set, mc_set_names
from neurospec.data.nlu import load_commonsenseqa, load_mrpc, load_qnli
from neurospec.data.normad import load_normad
from neurospec.data.worldvaluesbench import load_worldvaluesbench
from neurospec.util.errors import FileFormatError, NeurospecError

CRC = countryrc_data_path()
QNLI = mirror_root() / "glue_qnli" / "dev.tsv"
MRPC = mirror_root() / "glue_mrpc"
needs_crc = pytest.mark.skipif(not CRC.is_file(), reason=f"CountryRC not staged at {CRC}")
needs_qnli = pytest.mark.skipif(not QNLI.is_file(), reason=f"QNLI not staged at {QNLI}")
needs_mrpc = pytest.mark.skipif(not (MRPC / "dev.tsv").is_file(), reason=f"MRPC not staged at {MRPC}")
needs_blend = pytest.mark.skipif(not (blend_data_dir() / "annotations").is_dir(), reason="BLEnD not staged")

BLEND_KEYS = {c.key for c in all_countries()}
NAME_TO_KEY = {c.name: c.key for c in all_countries()}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_table(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


# ----------------------------------------------------------------------------------------------------------
# CountryRC (the shared data.json)
# ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def raw_crc():
    return json.loads(CRC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def crc_find():
    return build_countryrc_items(split="find")


def test_culture_countries_are_the_papers_eight():
    names = ["China", "Indonesia", "Iran", "Mexico", "South Korea", "Spain", "UK", "USA"]
    assert CULTURE_COUNTRIES == tuple(resolve_country(n).key for n in names)
    assert CULTURE_COUNTRIES == ("China", "Indonesia", "Iran", "Mexico", "South_Korea", "Spain", "UK", "US")


@needs_crc
def test_countryrc_find_is_8_countries_by_the_first_25_passages(crc_find, raw_crc):
    assert len(raw_crc) == 50
    first = [str(r["id"]) for r in raw_crc[:25]]
    assert len(crc_find) == 8 * 25
    assert Counter(i.group for i in crc_find) == {c: 25 for c in CULTURE_COUNTRIES}
    for country in CULTURE_COUNTRIES:
        assert [i.metadata["passage_id"] for i in crc_find if i.group == country] == first
    test = build_countryrc_items(split="test")
    assert len(test) == 200 and {i.metadata["passage_id"] for i in test} == {str(r["id"]) for r in raw_crc[25:]}
    assert len(build_countryrc_items(split="all")) == 400
    assert crc_find[0].id == f"countryrc-{first[0]}-China"


@needs_crc
def test_countryrc_options_gold_and_distractors(crc_find):
    for item in crc_find:
        gold = resolve_country(item.group)
        keys = item.metadata["option_countries"]
        assert len(item.options) == 4 and len(set(item.options)) == 4
        assert item.options[item.gold] == gold.name and keys[item.gold] == gold.key
        assert keys.count(gold.key) == 1                       # the gold is never a distractor
        assert set(keys) <= BLEND_KEYS
        assert [NAME_TO_KEY[o] for o in item.options] == list(keys)
        assert item.metadata["benchmark"] == "countryrc" and item.metadata["country"] == gold.key


@needs_crc
def test_countryrc_texts_are_filled(crc_find, raw_crc):
    by_id = {str(r["id"]): r for r in raw_crc}
    for item in crc_find + build_countryrc_items(split="test"):
        assert "{" not in item.question and "}" not in item.question
        assert not any("{" in o for o in item.options)
        raw = by_id[item.metadata["passage_id"]]
        gold = resolve_country(item.group)
        dummy = item.metadata["dummy"]
        if "{country_dummy}" in raw["context"]:
            assert dummy is not None and dummy != gold.key and dummy in item.metadata["option_countries"]
            filled = raw["context"].replace("{country}", gold.name).replace(
                "{country_dummy}", resolve_country(dummy).name)
        else:
            assert dummy is None
            filled = raw["context"].replace("{country}", gold.name)
        assert item.question == filled + "\n" + raw["question"]


@needs_crc
def test_countryrc_independent_recount(crc_find, raw_crc):
    """Counts recomputed from the raw JSON: per passage, per country, dummies, gold positions."""
    dummies_first_half = sum("{country_dummy}" in r["context"] for r in raw_crc[:25])
    assert sum("{country_dummy}" in r["context"] for r in raw_crc) == 20
    assert sum(i.metadata["dummy"] is not None for i in crc_find) == 8 * dummies_first_half
    per_passage = Counter(i.metadata["passage_id"] for i in crc_find)
    assert set(per_passage.values()) == {8}
    positions = Counter(i.gold for i in crc_find)
    assert set(positions) == {0, 1, 2, 3} and min(positions.values()) > 200 / 4 / 2   # shuffled, not degenerate
    distractors = Counter(k for i in crc_find for j, k in enumerate(i.metadata["option_countries"]) if j != i.gold)
    assert sum(distractors.values()) == 3 * 200 and len(distractors) >= 12            # drawn from the whole pool


@needs_crc
def test_countryrc_is_seeded(crc_find):
    again = build_countryrc_items(split="find")
    assert [(i.options, i.gold, i.question) for i in again] == [(i.options, i.gold, i.question) for i in crc_find]
    other = build_countryrc_items(split="find", seed=1)
    changed = sum(a.options != b.options for a, b in zip(crc_find, other))
    assert 0 < changed and [a.id for a in other] == [a.id for a in crc_find]
    # an item depends on its own (seed, passage, country) only, not on which other countries are built
    alone = build_countryrc_items(["USA"], split="find")
    assert [(i.options, i.gold) for i in alone] == [(i.options, i.gold) for i in crc_find if i.group == "US"]


@needs_crc
def test_countryrc_pool_and_errors(tmp_path):
    items = build_countryrc_items(["US"], split="all", pool=["UK", "China", "Iran", "US"])
    assert all(set(i.metadata["option_countries"]) == {"US", "UK", "China", "Iran"} for i in items)
    with pytest.raises(NeurospecError, match="pool"):
        build_countryrc_items(["US"], pool=["UK", "China", "US"])
    with pytest.raises(NeurospecError, match="split"):
        build_countryrc_items(split="train")
    with pytest.raises(NeurospecError, match="not found"):
        build_countryrc_items(data_dir=tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "data.json").write_text(json.dumps([{"id": "0", "context": "In {country} and {city}.", "question": "?"}]))
    with pytest.raises(FileFormatError, match="city"):
        load_countryrc(bad)
    (bad / "data.json").write_text(json.dumps([{"id": "0", "context": "No placeholder.", "question": "?"}]))
    with pytest.raises(FileFormatError, match="placeholder"):
        load_countryrc(bad / "data.json")
    good = tmp_path / "good"
    good.mkdir()
    (good / "data.json").write_text(json.dumps([
        {"id": "a", "context": "Ann flew to {country}.", "question": "Where did Ann fly?"},
        {"id": "b", "context": "Bo left {country_dummy} for {country}.", "question": "Where is Bo now?"}]))
    items = build_countryrc_items(["Spain"], split="all", data_dir=good)
    assert [i.id for i in items] == ["countryrc-a-Spain", "countryrc-b-Spain"]
    assert [i.id for i in build_countryrc_items(["Spain"], split="find", data_dir=good)] == ["countryrc-a-Spain"]


@needs_crc
def test_countryrc_reference_views(crc_find, raw_crc):
    """Each reference prompt redraws the item as the reference does: its spelling, the gold once, the dummy among
    the options, a different draw per prompt; rendering needs the view. The earlier protocol stays reachable."""
    from neurospec.data.blend import BLEND_TEMPLATES, blend_prompt_format
    from neurospec.data.countryrc import COUNTRYRC_TEMPLATES, REFERENCE_COUNTRY_NAMES, countryrc_prompts
    from neurospec.data.prompts import PLAIN, PromptFormat

    assert set(REFERENCE_COUNTRY_NAMES) == BLEND_KEYS and len(set(REFERENCE_COUNTRY_NAMES.values())) == 16
    by_id = {str(r["id"]): r for r in raw_crc}
    differ = 0
    for item in crc_find:
        gold = REFERENCE_COUNTRY_NAMES[item.group]
        views = [t.view(item) for t in COUNTRYRC_TEMPLATES.values()]
        differ += len({v.options for v in views}) > 1
        for template, view in zip(COUNTRYRC_TEMPLATES.values(), views):
            assert (view.group, view.id, view.metadata["prompt"]) == (item.group, item.id, template.name)
            assert view.options[view.gold] == gold and view.options.count(gold) == 1 and len(set(view.options)) == 4
            assert [REFERENCE_COUNTRY_NAMES[k] for k in view.metadata["option_countries"]] == list(view.options)
            raw = by_id[item.metadata["passage_id"]]
            dummy = view.metadata["dummy"]
            assert (dummy is not None) == ("{country_dummy}" in raw["context"])
            fill = {"country": gold, "country_dummy": REFERENCE_COUNTRY_NAMES.get(dummy, "")}
            assert view.metadata["passage"] == raw["context"].format(**fill)
            if dummy is not None:
                assert dummy != item.group and REFERENCE_COUNTRY_NAMES[dummy] in view.options
            text = template(view)
            assert text == template.render(item) and text.endswith(f"{template.letters[3]}. {view.options[3]}\n")
            with pytest.raises(NeurospecError, match="not a view"):
                template(item)
    assert differ > 150  # the reference draws the options again for every prompt
    with pytest.raises(NeurospecError, match="not a CountryRC item"):
        COUNTRYRC_TEMPLATES["countryrc_letter_1"].view(MCItem("Which country?", ("Spain", "UK"), 0, group="Spain"))
    assert countryrc_prompts() == (list(COUNTRYRC_TEMPLATES.values()), PromptFormat.chat())
    assert countryrc_prompts(chat=False)[1] == PLAIN
    assert countryrc_prompts("blend") == ([BLEND_TEMPLATES["blend"]], blend_prompt_format())
    with pytest.raises(NeurospecError, match="protocol"):
        countryrc_prompts("paper")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------
# QNLI and MRPC (the shared GLUE files)
# ----------------------------------------------------------------------------------------------------------

@needs_qnli
def test_qnli_dev():
    items = load_qnli()
    assert len(items) == 5463
    assert Counter(i.options[i.gold] for i in items) == {"no": 2761, "yes": 2702}   # SOURCE.md's balance
    first = items[0]
    assert first.options == ("yes", "no") and first.group == "qnli" and first.metadata["benchmark"] == "qnli"
    assert first.question.startswith("Question: ") and "\nSentence: " in first.question
    assert first.question.endswith("Does the sentence answer the question?")
    assert len({i.id for i in items}) == 5463
    assert [i.id for i in load_qnli(limit=7)] == [i.id for i in items[:7]]


@needs_mrpc
def test_mrpc_dev_and_test():
    dev, test = load_mrpc(split="dev"), load_mrpc(split="test")
    assert len(dev) == 408 and Counter(i.metadata["label"] for i in dev) == {1: 279, 0: 129}
    assert len(test) == 1725 and Counter(i.metadata["label"] for i in test) == {1: 1147, 0: 578}
    assert Counter(i.options[i.gold] for i in test) == {"yes": 1147, "no": 578}
    assert load_mrpc()[0].id == test[0].id == "mrpc-1089874-1089925"            # default: the test file
    assert not dev[0].question.startswith("\ufeff") and dev[0].question.startswith("Sentence 1: ")
    assert dev[0].group == "mrpc" and dev[0].question.endswith("Do these two sentences mean the same thing?")
    assert len(load_mrpc(MRPC / "dev.tsv")) == 408


def test_glue_errors(tmp_path):
    bad = tmp_path / "dev.tsv"
    bad.write_text("index\tquestion\tsentence\tlabel\n0\tq?\ts.\tentailment\n1\tq?\ts.\tcontradiction\n")
    with pytest.raises(FileFormatError, match=r"dev\.tsv line 3.*contradiction"):
        load_qnli(bad)
    bad.write_text("index\tquestion\tlabel\n0\tq?\tentailment\n")
    with pytest.raises(FileFormatError, match="sentence"):
        load_qnli(bad)
    mrpc = tmp_path / "m.tsv"
    mrpc.write_text("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\t\"A\tB\n2\t3\t4\tC\tD\n",
                    encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"m\.tsv line 3.*'2'"):
        load_mrpc(mrpc)
    with pytest.raises(NeurospecError, match="not found"):
        load_qnli(tmp_path / "missing.tsv")
    with pytest.raises(NeurospecError, match="split"):
        load_mrpc(split="train")


def test_glue_hub_exports(tmp_path):
    qnli = write_jsonl(tmp_path / "qnli.jsonl", [{"question": "q?", "sentence": "s.", "label": 1, "idx": 4}])
    assert [(i.id, i.gold) for i in load_qnli(qnli)] == [("qnli-4", 1)]
    mrpc = write_jsonl(tmp_path / "mrpc.jsonl", [{"sentence1": "a", "sentence2": "b", "label": 1, "idx": 9}])
    assert [(i.id, i.gold) for i in load_mrpc(mrpc)] == [("mrpc-9", 0)]


# ----------------------------------------------------------------------------------------------------------
# CulturalBench (files in the hub's column layout)
# ----------------------------------------------------------------------------------------------------------

CB_COUNTRIES = ["United States"] * 4 + ["Hong Kong"] * 3 + ["United Kingdom"] * 2 + ["South Korea"]


def easy_rows() -> list[dict]:
    rows = []
    for n, country in enumerate(CB_COUNTRIES):
        rows.append({"data_idx": n, "question_idx": 100 + n, "prompt_question": f"Question {n} about {country}?",
                     "prompt_option_a": f"a{n}", "prompt_option_b": f"b{n}", "prompt_option_c": f"c{n}",
                     "prompt_option_d": f"d{n}", "answer": "ABCD"[n % 4], "country": country})
    return rows


def hard_rows() -> list[dict]:
    rows = []
    for n, country in enumerate(CB_COUNTRIES):
        for k, letter in enumerate("ABCD"):
            rows.append({"data_idx": 4 * n + k, "question_idx": 100 + n, "prompt_question": f"Question {n}?",
                         "prompt_option": f"{letter.lower()}{n}", "answer": k == n % 4, "country": country})
    return rows


def test_culturalbench_easy_items_and_gold(tmp_path):
    path = write_jsonl(tmp_path / "easy.jsonl", easy_rows())
    items = load_culturalbench(path)
    assert len(items) == 10
    assert [i.group for i in items] == ["US"] * 4 + ["Hong Kong"] * 3 + ["UK"] * 2 + ["South_Korea"]
    for n, item in enumerate(items):
        assert item.options[item.gold] == f"{'abcd'[n % 4]}{n}"
        assert sorted(item.options) == [f"a{n}", f"b{n}", f"c{n}", f"d{n}"]
        assert item.question == f"Question {n} about {CB_COUNTRIES[n]}?" and item.id == f"culturalbench-easy-{n}"
        assert item.metadata["country"] == CB_COUNTRIES[n] and item.metadata["benchmark"] == "culturalbench"
        assert [f"{'abcd'[k]}{n}" for k in item.metadata["option_order"]] == list(item.options)
    # shuffled: not all in file order; deterministic per seed; another seed changes some
    assert any(item.options != (f"a{n}", f"b{n}", f"c{n}", f"d{n}") for n, item in enumerate(items))
    assert [i.options for i in load_culturalbench(path)] == [i.options for i in items]
    assert [i.options for i in load_culturalbench(path, seed=3)] != [i.options for i in items]
    # the same rows as CSV give the same items
    csv_items = load_culturalbench(write_table(tmp_path / "easy.csv", easy_rows()))
    assert [(i.question, i.options, i.gold, i.group) for i in csv_items] == \
        [(i.question, i.options, i.gold, i.group) for i in items]


def test_culturalbench_splits_and_countries(tmp_path):
    path = write_jsonl(tmp_path / "easy.jsonl", easy_rows())
    find = load_culturalbench(path, split="find")
    test = load_culturalbench(path, split="test")
    assert [i.metadata["data_idx"] for i in find] == ["0", "1", "4", "7"]                 # 4//2, 3//2, 2//2, 1//2
    assert [i.metadata["data_idx"] for i in test] == ["2", "3", "5", "6", "8", "9"]
    chosen = load_culturalbench(path, countries=["USA", "hong_kong"])
    assert {i.group for i in chosen} == {"US", "Hong Kong"} and len(chosen) == 7
    assert {i.group for i in load_culturalbench(path, countries="United Kingdom")} == {"UK"}
    with pytest.raises(NeurospecError, match=r"\['Japan'\].*Hong Kong.*South_Korea.*UK.*US"):
        load_culturalbench(path, countries=["Japan"])
    with pytest.raises(NeurospecError, match=r"no items left.*South Korea.*find"):
        load_culturalbench(path, countries=["South Korea"], split="find")     # 1 question: none in the find half
    with pytest.raises(NeurospecError, match="split"):
        load_culturalbench(path, split="dev")


def test_culturalbench_hard(tmp_path):
    path = write_jsonl(tmp_path / "hard.jsonl", hard_rows())
    items = load_culturalbench(path, config="hard")
    assert len(items) == 40 and all(i.options == ("True", "False") for i in items)
    assert sum(i.gold == 0 for i in items) == 10                               # one true option per question
    assert items[0].question.startswith("Question 0?\n") and "a0" in items[0].question
    assert items[0].gold == 0 and items[1].gold == 1 and items[0].metadata["answer"] is True
    # the same questions go to find as in easy
    easy_find = {i.metadata["question_idx"] for i in load_culturalbench(
        write_jsonl(tmp_path / "easy.jsonl", easy_rows()), split="find")}
    assert {i.metadata["question_idx"] for i in load_culturalbench(path, config="hard", split="find")} == easy_find
    # CSV booleans
    rows = hard_rows()
    for row in rows:
        row["answer"] = str(row["answer"])
    csv_items = load_culturalbench(write_table(tmp_path / "hard.csv", rows), config="hard")
    assert [i.gold for i in csv_items] == [i.gold for i in items]


def test_culturalbench_bad_input(tmp_path):
    rows = easy_rows()
    for row in rows:
        del row["prompt_option_d"]
    with pytest.raises(FileFormatError, match="prompt_option_d"):
        load_culturalbench(write_jsonl(tmp_path / "a.jsonl", rows))
    rows = easy_rows()
    rows[2]["answer"] = "E"
    with pytest.raises(FileFormatError, match=r"b\.jsonl line 3.*'E'"):
        load_culturalbench(write_jsonl(tmp_path / "b.jsonl", rows))
    rows = hard_rows()
    rows[5]["answer"] = "maybe"
    with pytest.raises(FileFormatError, match=r"c\.jsonl line 6.*maybe"):
        load_culturalbench(write_jsonl(tmp_path / "c.jsonl", rows), config="hard")
    with pytest.raises(FileFormatError, match="config='hard'"):                # a hard file read as easy
        load_culturalbench(write_jsonl(tmp_path / "d.jsonl", hard_rows()))
    with pytest.raises(NeurospecError, match="not found"):
        load_culturalbench(tmp_path / "missing.jsonl")
    with pytest.raises(NeurospecError, match="config"):
        load_culturalbench(tmp_path / "b.jsonl", config="medium")


def test_culturalbench_parquet(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    pandas = pytest.importorskip("pandas")
    path = tmp_path / "easy.parquet"
    pandas.DataFrame(easy_rows()).to_parquet(path)
    items = load_culturalbench(path)
    reference = load_culturalbench(write_jsonl(tmp_path / "easy.jsonl", easy_rows()))
    assert [(i.id, i.options, i.gold, i.group) for i in items] == [(i.id, i.options, i.gold, i.group) for i in reference]
    monkeypatch.setitem(sys.modules, "pandas", None)                         # as if pandas were not installed
    with pytest.raises(NeurospecError, match="pip install pandas pyarrow"):
        load_culturalbench(path)


def test_country_group_and_stable_rng():
    assert country_group("United States") == ("US", "United States")
    assert country_group("Great Britain") == ("UK", "United Kingdom")
    assert country_group("Korea") == ("Korea", "Korea")                       # ambiguous: kept, never fails
    assert country_group("bosnia_and_herzegovina", titlecase=True) == ("Bosnia and Herzegovina",) * 2
    assert stable_rng("x", 0).random() == stable_rng("x", 0).random() != stable_rng("x", 1).random()


# ----------------------------------------------------------------------------------------------------------
# NormAd
# ----------------------------------------------------------------------------------------------------------

NORMAD_PLAN = [("united_states_of_america", "yes")] * 3 + [("united_states_of_america", "no")] * 2 + \
    [("united_states_of_america", "neutral"), ("south_korea", "no"), ("south_korea", "yes"),
     ("saudi_arabia", "neutral"), ("saudi_arabia", "neutral")]


def normad_rows() -> list[dict]:
    return [{"ID": f"n{k}", "Country": country, "Background": f"background {k}", "Axis": "etiquette",
             "Subaxis": "gifts", "Value": f"value {k}", "Rule-of-Thumb": f"rule {k}", "Story": f"Story {k}.",
             "Explanation": f"why {k}", "Gold Label": label} for k, (country, label) in enumerate(NORMAD_PLAN)]


def test_normad_items(tmp_path):
    path = write_table(tmp_path / "normad.csv", normad_rows())
    items = load_normad(path)
    assert len(items) == 10
    assert [i.group for i in items[:6]] == ["US"] * 6
    assert {i.group for i in items} == {"US", "South_Korea", "Saudi Arabia"}
    assert items[0].question == ("Task: you are in United States. Is what the person in the story does socially "
                                 "acceptable there?\nStory: Story 0.")
    assert items[8].question.startswith("Task: you are in Saudi Arabia.")
    for item, (_, label) in zip(items, NORMAD_PLAN):
        assert sorted(item.options) == ["neutral", "no", "yes"] and item.options[item.gold] == label
        assert item.metadata["label"] == label and item.metadata["benchmark"] == "normad"
    assert len({i.options for i in items}) > 1                                       # shuffled
    assert [i.options for i in load_normad(path)] == [i.options for i in items]
    assert [i.options for i in load_normad(path, seed=5)] != [i.options for i in items]
    ruled = load_normad(path, with_rule=True, with_background=True)[0].question
    assert ruled.split("\n")[1:] == ["Background: background 0", "Rule of thumb: rule 0", "Story: Story 0."]
    jsonl = load_normad(write_jsonl(tmp_path / "normad.jsonl", normad_rows()))
    assert [(i.question, i.options, i.gold) for i in jsonl] == [(i.question, i.options, i.gold) for i in items]


def test_normad_splits_and_countries(tmp_path):
    path = write_table(tmp_path / "normad.csv", normad_rows())
    find = [i.id for i in load_normad(path, split="find")]
    test = [i.id for i in load_normad(path, split="test")]
    # per (country, label), first half rounded down: US yes 3 -> n0; US no 2 -> n3; the rest of size 1 -> none;
    # Saudi neutral 2 -> n8
    assert find == ["normad-n0", "normad-n3", "normad-n8"]
    assert sorted(find + test) == sorted(f"normad-n{k}" for k in range(10))
    assert {i.group for i in load_normad(path, countries=["South Korea", "saudi_arabia"])} == \
        {"South_Korea", "Saudi Arabia"}
    assert len(load_normad(path, countries=["Saudi Arabia"])) == 2
    with pytest.raises(NeurospecError, match=r"\['Japan'\].*Saudi Arabia"):
        load_normad(path, countries=["Japan"])
    with pytest.raises(NeurospecError, match="no items left"):
        load_normad(path, countries=["South Korea"], split="find")


def test_normad_bad_input(tmp_path):
    rows = normad_rows()
    rows[4]["Gold Label"] = "maybe"
    with pytest.raises(FileFormatError, match=r"a\.csv line 6.*maybe"):
        load_normad(write_table(tmp_path / "a.csv", rows))
    rows = [{k: v for k, v in r.items() if k != "Story"} for r in normad_rows()]
    with pytest.raises(FileFormatError, match="Story"):
        load_normad(write_table(tmp_path / "b.csv", rows))
    rows = [{k: v for k, v in r.items() if k != "Rule-of-Thumb"} for r in normad_rows()]
    assert len(load_normad(write_table(tmp_path / "c.csv", rows))) == 10
    with pytest.raises(FileFormatError, match="Rule-of-Thumb"):
        load_normad(tmp_path / "c.csv", with_rule=True)


# ----------------------------------------------------------------------------------------------------------
# WorldValuesBench
# ----------------------------------------------------------------------------------------------------------

# participants per country: answers to Q1 (scale 1-4), Q2 (1-2), Q3 (1-10); "" = not answered
WVB_ANSWERS = {
    "United States": [(1, 1, 10)] * 6 + [(2, 2, 10)] * 4 + [(3, "", 10)],
    "Great Britain": [(4, 1, 5)] * 5 + [(3, 2, 5)] * 5 + [(2, 2, "")],
    "Japan": [(1, 2, 1)] * 3,
}


def write_wvb(folder: Path, split: str = "full", answers=WVB_ANSWERS) -> Path:
    (folder / split).mkdir(parents=True)
    meta = {"D_INTERVIEW": {"question": "id?", "use_case": "demographic", "answer_scale_min": "",
                            "answer_scale_max": ""},
            "Q1": {"question": "On a scale of 1 to 4, how important is family?", "use_case": "value",
                   "answer_scale_min": 1, "answer_scale_max": 4, "category": "Social"},
            "Q2": {"question": "On a scale of 1 to 2, yes or no?", "use_case": "value",
                   "answer_scale_min": 1, "answer_scale_max": 2, "category": "Social"},
            "Q3": {"question": "On a scale of 1 to 10, how happy?", "use_case": "value",
                   "answer_scale_min": 1, "answer_scale_max": 10, "category": "Happiness"}}
    (folder / "question_metadata.json").write_text(json.dumps(meta))
    demo, values = [], []
    n = 0
    for country, rows in answers.items():
        for row in rows:
            n += 1
            demo.append({"D_INTERVIEW": str(n), "B_COUNTRY": country, "H_URBRURAL": "Urban"})
            values.append({"D_INTERVIEW": str(n), "Q1": row[0], "Q2": row[1], "Q3": row[2]})
    write_table(folder / split / f"{split}_demographic_qa.tsv", demo, "\t")
    write_table(folder / split / f"{split}_value_qa.tsv", values, "\t")
    return folder


def kl(country: Counter, overall: Counter) -> float:
    nc, na = sum(country.values()), sum(overall.values())
    return sum(c / nc * math.log((c / nc) / (overall[v] / na)) for v, c in country.items())


def test_wvb_items_gold_and_ranking(tmp_path):
    folder = write_wvb(tmp_path / "WorldValuesBench")
    items = load_worldvaluesbench(folder, countries=["USA", "UK"])
    by = {(i.group, i.metadata["question_id"]): i for i in items}
    assert set(by) == {("US", "Q1"), ("US", "Q2"), ("US", "Q3"), ("UK", "Q1"), ("UK", "Q2"), ("UK", "Q3")}
    q1 = by[("US", "Q1")]
    assert q1.options == ("1", "2", "3", "4") and q1.options[q1.gold] == "1"
    assert q1.question == ("How would a typical person from United States answer the following survey question?\n"
                           "On a scale of 1 to 4, how important is family?")
    assert q1.metadata["distribution"] == {"1": 6, "2": 4, "3": 1} and q1.metadata["n_answers"] == 11
    assert q1.metadata["country"] == "United States" and q1.id == "wvb-US-Q1"
    assert by[("UK", "Q1")].options[by[("UK", "Q1")].gold] == "3"          # 5 x 4 and 5 x 3 tie: the smaller
    assert by[("UK", "Q2")].options[by[("UK", "Q2")].gold] == "2"
    assert len(by[("UK", "Q3")].options) == 10 and by[("UK", "Q3")].options[by[("UK", "Q3")].gold] == "5"
    assert by[("UK", "Q1")].question.startswith("How would a typical person from United Kingdom")
    # ranking by KL(country || everyone), recomputed here
    overall = {q: Counter() for q in ("Q1", "Q2", "Q3")}
    per = {c: {q: Counter() for q in overall} for c in WVB_ANSWERS}
    for country, rows in WVB_ANSWERS.items():
        for row in rows:
            for q, a in zip(("Q1", "Q2", "Q3"), row):
                if a != "":
                    overall[q][a] += 1
                    per[country][q][a] += 1
    for group, country in (("US", "United States"), ("UK", "Great Britain")):
        expected = sorted(overall, key=lambda q: -kl(per[country][q], overall[q]))
        got = [i for i in items if i.group == group]
        assert [i.metadata["question_id"] for i in got] == expected
        assert [i.metadata["kl"] for i in got] == pytest.approx([kl(per[country][q], overall[q]) for q in expected])
    find = load_worldvaluesbench(folder, countries=["USA"], select="find", find_questions=1)
    test = load_worldvaluesbench(folder, countries=["USA"], select="test", find_questions=1)
    assert [i.id for i in find + test] == [i.id for i in items if i.group == "US"]
    assert len(find) == 1 and find[0].metadata["select"] == "find" and find[0].metadata["rank"] == 0


def test_wvb_min_answers_countries_and_errors(tmp_path):
    folder = write_wvb(tmp_path / "WorldValuesBench")
    assert load_worldvaluesbench(folder, countries=["Japan"], min_answers=3)[0].group == "Japan"
    with pytest.raises(NeurospecError, match="no items"):
        load_worldvaluesbench(folder, countries=["Japan"])                      # 3 answers < 10
    with pytest.raises(NeurospecError, match=r"\['Iran'\].*Japan.*UK.*US"):
        load_worldvaluesbench(folder, countries=["Iran"])
    with pytest.raises(NeurospecError, match="not found"):
        load_worldvaluesbench(folder, countries=["USA"], split="train")
    with pytest.raises(NeurospecError, match="split"):
        load_worldvaluesbench(folder, countries=["USA"], split="dev")
    demo = folder / "full" / "full_demographic_qa.tsv"
    demo.write_text(demo.read_text().replace("B_COUNTRY", "COUNTRY"))
    with pytest.raises(FileFormatError, match="B_COUNTRY"):
        load_worldvaluesbench(folder, countries=["USA"])
    other = write_wvb(tmp_path / "other", answers={"United States": [(1, "x", 2)] * 10})
    with pytest.raises(FileFormatError, match=r"line 2, column Q2.*'x'"):
        load_worldvaluesbench(other, countries=["USA"])


# ----------------------------------------------------------------------------------------------------------
# CommonsenseQA
# ----------------------------------------------------------------------------------------------------------

def csqa_rows() -> list[dict]:
    return [{"id": f"q{n}", "question": f"Where is thing {n}?", "question_concept": "thing",
             "choices": {"label": list("ABCDE"), "text": [f"place {n}{c}" for c in "abcde"]},
             "answerKey": "ABCDE"[n % 5]} for n in range(6)]


def test_commonsenseqa_formats(tmp_path):
    items = load_commonsenseqa(write_jsonl(tmp_path / "csqa.jsonl", csqa_rows()))
    assert len(items) == 6 and items[0].group == "commonsenseqa" and items[0].metadata["benchmark"] == "commonsenseqa"
    for n, item in enumerate(items):
        assert item.options == tuple(f"place {n}{c}" for c in "abcde") and item.gold == n % 5
        assert item.id == f"commonsenseqa-q{n}"
    as_json = [dict(r, choices=json.dumps(r["choices"])) for r in csqa_rows()]
    as_literal = [dict(r, choices=repr(r["choices"])) for r in csqa_rows()]
    for rows, name in ((as_json, "j.csv"), (as_literal, "l.csv")):
        got = load_commonsenseqa(write_table(tmp_path / name, rows))
        assert [(i.options, i.gold) for i in got] == [(i.options, i.gold) for i in items]
    array = tmp_path / "a.json"
    array.write_text(json.dumps(csqa_rows()))
    assert len(load_commonsenseqa(array, limit=2)) == 2


def test_commonsenseqa_bad_input(tmp_path):
    rows = csqa_rows()
    rows[3]["answerKey"] = "F"
    with pytest.raises(FileFormatError, match=r"b\.jsonl line 4.*'F'"):
        load_commonsenseqa(write_jsonl(tmp_path / "b.jsonl", rows))
    rows = csqa_rows()
    rows[0]["answerKey"] = ""
    with pytest.raises(FileFormatError, match="validation"):
        load_commonsenseqa(write_jsonl(tmp_path / "c.jsonl", rows))
    rows = [dict(r, choices="{not valid") for r in csqa_rows()]
    with pytest.raises(FileFormatError, match=r"d\.csv line 2.*choices"):
        load_commonsenseqa(write_table(tmp_path / "d.csv", rows))


# ----------------------------------------------------------------------------------------------------------
# load_mc_set
# ----------------------------------------------------------------------------------------------------------

def test_registry():
    assert set(MC_SETS) == {"blend", "blend-control", "countryrc", "culturalbench", "normad", "worldvaluesbench",
                            "qnli", "mrpc", "commonsenseqa"}
    assert mc_set_names("nlu") == ["qnli", "mrpc", "commonsenseqa"]
    assert {n for n, s in MC_SETS.items() if s.needs_path} == {"worldvaluesbench", "commonsenseqa"}
    assert all(s.kind in ("cultural", "nlu") and s.description for s in MC_SETS.values())


@needs_blend
def test_load_mc_set_blend_and_control():
    items = load_mc_set("blend", countries=["US", "UK", "China"], split="find", limit=3)
    assert Counter(i.group for i in items) == {"China": 3, "UK": 3, "US": 3}
    assert all(i.metadata["topic"] in ("Food", "Work life", "Sport") for i in items)
    ctrl = load_mc_set("blend_control", countries=["US", "UK", "China"], split="find", limit=3)
    assert [(i.options, i.gold) for i in ctrl] == [(i.options, i.gold) for i in items]
    assert {i.question for i in ctrl} == {""}  # the reference's control prompt: no question, no extra sentence
    first = ctrl[0]
    reference = ("Without any explanation, choose only one from the given alphabet choices(e.g., A, B, C). "
                 "Provide as JSON format: {{\"answer_choice\":\"\"}}\n\nA. {option_a}\nB. {option_b}\n"
                 "C. {option_c}\nD. {option_d}\n\nAnswer:")  # CULNIG dataset.py control_input_text, written out
    assert BLEND_TEMPLATES["blend"](first) == reference.format(option_a=first.options[0], option_b=first.options[1],
                                                                option_c=first.options[2], option_d=first.options[3])
    sentence = load_mc_set("blend-control", countries=["US"], split="find", limit=2, instruction=CONTROL_INSTRUCTION)
    assert {i.question for i in sentence} == {CONTROL_INSTRUCTION}
    with pytest.raises(NeurospecError, match="unknown option"):
        load_mc_set("blend", countries=["US"], split="find", limit=2, instruction=CONTROL_INSTRUCTION)
    default = load_mc_set("blend", countries=["US", "UK", "China"], limit=1)
    assert default[0].metadata["topic"] in ("Education", "Family", "Holidays/Celebration/Leisure")


@needs_crc
@needs_qnli
@needs_mrpc
def test_load_mc_set_shared_sets():
    assert len(load_mc_set("countryrc")) == 400
    find = load_mc_set("countryrc", split="find", limit=5)
    assert Counter(i.group for i in find) == {c: 5 for c in CULTURE_COUNTRIES}
    assert {i.group for i in load_mc_set("countryrc", countries=["USA"], pool=["UK", "Spain", "Iran"])} == {"US"}
    assert len(load_mc_set("qnli", limit=10)) == 10
    assert len(load_mc_set("mrpc", split="dev")) == 408 and len(load_mc_set("mrpc")) == 1725


def test_load_mc_set_file_sets(tmp_path):
    cb = write_jsonl(tmp_path / "hard.jsonl", hard_rows())
    items = load_mc_set("culturalbench", path=cb, config="hard", split="find", limit=2)
    assert Counter(i.group for i in items) == {"US": 2, "Hong Kong": 2, "UK": 2}
    normad = write_table(tmp_path / "normad.csv", normad_rows())
    assert len(load_mc_set("normad", path=normad, countries=["USA"], with_rule=True)) == 6
    wvb = write_wvb(tmp_path / "WorldValuesBench")
    got = load_mc_set("worldvaluesbench", path=wvb, countries=["UK"], split="find", find_questions=2)
    assert [i.metadata["rank"] for i in got] == [0, 1]
    assert len(load_mc_set("worldvaluesbench", path=wvb, countries=["UK", "USA"], data_split="full")) == 6
    csqa = write_jsonl(tmp_path / "csqa.jsonl", csqa_rows())
    assert len(load_mc_set("commonsenseqa", path=csqa, limit=4)) == 4


def test_hub_sets_read_their_fetched_copy_by_default(tmp_path, monkeypatch):
    """Without path=, CulturalBench and NormAd read the files of their fetched data set (the hub's names)."""
    mirror = tmp_path / "mirror"
    (mirror / "culturalbench").mkdir(parents=True)
    (mirror / "normad").mkdir()
    hard = write_table(mirror / "culturalbench" / "CulturalBench-Hard.csv", hard_rows())
    normad = write_table(mirror / "normad" / "normad_etiquette_final_data.csv", normad_rows())
    monkeypatch.setenv("NEUROSPEC_DATA", str(mirror))
    assert load_mc_set("culturalbench", config="hard") == load_mc_set("culturalbench", path=hard, config="hard")
    assert load_mc_set("normad", countries=["USA"]) == load_mc_set("normad", path=normad, countries=["USA"])
    with pytest.raises(NeurospecError, match=r"CulturalBench.*CulturalBench-Easy.csv not found"):
        load_mc_set("culturalbench")  # the easy file is not there


def test_load_mc_set_errors(tmp_path, monkeypatch):
    with pytest.raises(NeurospecError, match="blend, blend-control, countryrc"):
        load_mc_set("xnli")
    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path / "cache"))
    with pytest.raises(NeurospecError, match=r"data set 'culturalbench' is not here.*neurospec data fetch culturalbench"):
        load_mc_set("culturalbench")
    with pytest.raises(NeurospecError, match="tau/commonsense_qa"):
        load_mc_set("commonsenseqa")
    with pytest.raises(NeurospecError, match="unknown option.*config"):
        load_mc_set("normad", path=tmp_path / "x.csv", config="hard")
    with pytest.raises(NeurospecError, match="split='find'.*'dev'"):
        load_mc_set("qnli", split="find")
    with pytest.raises(NeurospecError, match="drop split"):
        load_mc_set("commonsenseqa", path=tmp_path / "x.jsonl", split="test")
    with pytest.raises(NeurospecError, match="limit"):
        load_mc_set("qnli", limit=0)
    path = write_jsonl(tmp_path / "easy.jsonl", easy_rows())
    with pytest.raises(NeurospecError, match=r"South Korea.*find"):
        load_mc_set("culturalbench", path=path, countries=["South Korea"], split="find")


def test_no_placeholder_text_left_anywhere(tmp_path):
    """Every loader's question text is plain: no template braces left."""
    items = (load_culturalbench(write_jsonl(tmp_path / "e.jsonl", easy_rows()))
             + load_normad(write_table(tmp_path / "n.csv", normad_rows()), with_rule=True)
             + load_worldvaluesbench(write_wvb(tmp_path / "W"), countries=["USA"]))
    assert not any(re.search(r"\{\w+\}", i.question) for i in items)
