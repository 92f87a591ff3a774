"""BLEnD multiple-choice builder: the rules of METHODS section 3, on a hand-made folder and on the real data."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

import pytest
import torch

from neurospec.data.blend import (
    ALL_TOPICS,
    BLEND_PREFILL,
    BLEND_TEMPLATES,
    CONTROL_INSTRUCTION,
    FIND_TOPICS,
    TEST_TOPICS,
    blend_data_dir,
    blend_prompt_format,
    blend_summary,
    build_blend,
    build_blend_items,
    control_items,
    load_blend,
    resolve_topic,
    resolve_topics,
)
from neurospec.util.errors import NeurospecError

REAL = blend_data_dir()
needs_real = pytest.mark.skipif(not (REAL / "annotations").is_dir(),
                                reason=f"BLEnD data not staged at {REAL} (set NEUROSPEC_DATA to the folder holding blend/)")


def norm(text: str) -> str:
    return text.strip().lower()


# ----------------------------------------------------------------------------------------------------------
# A hand-made folder: three countries, four questions, every rule with an exact expected output
# ----------------------------------------------------------------------------------------------------------

def ann(en, count, local=None):
    return {"answers": list(local or [f"local-{en[0] if en else 'x'}"]), "en_answers": list(en), "count": count}


NO_IDK = {"idk": 0, "no-answer": 0, "not-applicable": 0}
TOPICS = {"Fx-01": "Food", "Fx-02": "Sport", "Fx-03": "Holidays/Celebration/Leisure", "Fx-04": "Education"}
FIXTURE = {
    "China": {
        "Fx-01": [ann(["rice"], 3, ["米饭"]), ann(["noodles", "noodle"], 1, ["面条"])],
        "Fx-02": [],                                                            # all idk
        "Fx-03": [ann(["mooncake"], 4)],
        "Fx-04": [ann(["", "abacus"], 2)],                                      # first English variant empty
    },
    "UK": {
        "Fx-01": [ann(["Bread", " toast"], 2), ann(["rice"], 2)],               # tie: Bread (first in file)
        "Fx-02": [ann(["football", "soccer"], 3)],
        "Fx-03": [ann(["turkey"], 2), ann(["pudding"], 2), ann(["crackers"], 1)],
        "Fx-04": [ann(["pencil"], 1)],
    },
    "US": {
        "Fx-01": [ann(["burger"], 1), ann(["hot dog"], 3), ann(["pizza"], 3)],  # tie at 3: hot dog, not pizza
        "Fx-02": [ann(["American football"], 3), ann(["Soccer "], 1)],          # "Soccer " = UK's "soccer"
        "Fx-03": [ann(["turkey"], 5), ann(["pie"], 2), ann(["ham"], 1)],
        "Fx-04": [ann([], 2, ["something"]), ann(["ruler"], 1)],               # gold without English text
    },
}


def write_fixture(folder: Path) -> Path:
    (folder / "annotations").mkdir(parents=True)
    (folder / "questions").mkdir()
    for country, questions in FIXTURE.items():
        data = {}
        for qid, answers in questions.items():
            idks = dict(NO_IDK, idk=4) if not answers else dict(NO_IDK)
            data[qid] = {"question": f"local {qid} {country}?", "en_question": f"What is {qid} in {country}?",
                         "annotations": answers, "idks": idks}
        (folder / "annotations" / f"{country}_data.json").write_text(json.dumps(data, ensure_ascii=False),
                                                                      encoding="utf-8")
        with (folder / "questions" / f"{country}_questions.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["", "ID", "Topic", "Source", "Question", "Translation"])
            for i, qid in enumerate(questions):
                writer.writerow([i, qid, TOPICS[qid], "English (US)", f"local {qid} {country}?",
                                 f"What is {qid} in {country}?"])
    return folder


@pytest.fixture
def fixture_data(tmp_path):
    return load_blend(write_fixture(tmp_path / "blend"), countries=["China", "UK", "US"])


def by_question(items):
    out = defaultdict(list)
    for item in items:
        out[(item.group, item.metadata["question_id"])].append(item)
    return dict(out)


def distractor_sets(items):
    return [frozenset(o for i, o in enumerate(item.options) if i != item.gold) for item in items]


def test_fixture_records_keep_the_files_content(fixture_data):
    assert list(fixture_data) == ["China", "UK", "US"]
    uk = fixture_data["UK"]["Fx-01"]
    assert (uk.topic, uk.en_question, uk.local_question) == ("Food", "What is Fx-01 in UK?", "local Fx-01 UK?")
    assert [a.en_answers for a in uk.annotations] == [("Bread", " toast"), ("rice",)]
    assert [a.count for a in uk.annotations] == [2, 2]
    assert fixture_data["China"]["Fx-02"].annotations == () and fixture_data["China"]["Fx-02"].idks["idk"] == 4


def test_fixture_gold_is_the_most_voted_with_first_in_file_on_ties(fixture_data):
    expected = {("China", "Fx-01"): ("rice", 3, False), ("UK", "Fx-01"): ("Bread", 2, True),
                ("US", "Fx-01"): ("hot dog", 3, True), ("UK", "Fx-03"): ("turkey", 2, True),
                ("China", "Fx-04"): ("abacus", 2, False), ("US", "Fx-03"): ("turkey", 5, False)}
    for (country, qid), (text, votes, tie) in expected.items():
        record = fixture_data[country][qid]
        assert (record.gold.text(), record.gold_votes, record.is_tie) == (text, votes, tie)
    items = by_question(build_blend_items(fixture_data, distractors="answers"))
    assert {("UK", "Fx-01"), ("US", "Fx-01"), ("UK", "Fx-03")} <= set(items)  # the tie cases give items
    for (country, qid), (text, votes, tie) in expected.items():
        for item in items.get((country, qid), []):
            assert item.options[item.gold] == text
            assert item.metadata["gold_votes"] == votes and item.metadata["tie"] is tie


def test_fixture_exact_items_from_all_answers(fixture_data):
    """distractors="answers": every other country's answers, minus the gold country's own, deduplicated."""
    build = build_blend(fixture_data, distractors="answers")
    items = by_question(build.items)
    # (country, qid) -> (gold, the valid distractor pool): items use every 3-subset, at most 5
    pools = {("China", "Fx-01"): ("rice", {"Bread", "hot dog", "pizza", "burger"}),   # UK "rice" is China's own
             ("UK", "Fx-01"): ("Bread", {"noodles", "hot dog", "pizza", "burger"}),   # China "rice" is UK's too
             ("US", "Fx-01"): ("hot dog", {"rice", "noodles", "Bread"}),              # UK "rice" = China's: once
             ("China", "Fx-03"): ("mooncake", {"turkey", "pudding", "crackers", "pie", "ham"}),
             ("UK", "Fx-03"): ("turkey", {"mooncake", "pie", "ham"}),                  # exactly 3: one item
             ("US", "Fx-03"): ("turkey", {"mooncake", "pudding", "crackers"})}
    assert set(items) == set(pools)
    for key, (gold, pool) in pools.items():
        got = items[key]
        n_subsets = len(list(combinations(pool, 3)))
        assert len(got) == min(5, n_subsets)
        assert [i.id for i in got] == [f"{key[1]}#{k}" for k in range(len(got))]
        sets = distractor_sets(got)
        assert len(set(sets)) == len(sets) and all(s <= pool and len(s) == 3 for s in sets)
        if n_subsets <= 5:
            assert set(sets) == {frozenset(c) for c in combinations(pool, 3)}
        for item in got:
            assert item.options[item.gold] == gold and len(item.options) == 4 and item.group == key[0]
            assert item.metadata == {**item.metadata, "topic": TOPICS[key[1]], "question_id": key[1],
                                     "country": key[0], "control": False}
            assert item.metadata["option_countries"][item.gold] == key[0]
            assert key[0] not in [c for i, c in enumerate(item.metadata["option_countries"]) if i != item.gold]
    skipped = {(s.country, s.question_id): (s.reason, s.detail) for s in build.skipped}
    assert skipped == {
        ("China", "Fx-02"): ("no_annotation", "idks {'idk': 4, 'no-answer': 0, 'not-applicable': 0}"),
        ("UK", "Fx-02"): ("too_few_distractors", "1 valid distractor(s), 3 needed"),   # US "Soccer " is UK's
        ("US", "Fx-02"): ("too_few_distractors", "0 valid distractor(s), 3 needed"),
        ("China", "Fx-04"): ("too_few_distractors", "2 valid distractor(s), 3 needed"),
        ("UK", "Fx-04"): ("too_few_distractors", "2 valid distractor(s), 3 needed"),
        ("US", "Fx-04"): ("gold_without_text", skipped[("US", "Fx-04")][1]),
    }


def test_fixture_gold_distractors_and_fewer_than_needed_give_no_item(fixture_data):
    # three countries give at most two other golds: with 4 options nothing can be built
    build = build_blend(fixture_data)
    assert build.items == ()
    assert Counter(s.reason for s in build.skipped) == {"too_few_distractors": 10, "no_annotation": 1,
                                                         "gold_without_text": 1}
    # with 3 options: exactly the questions where both other golds are valid and different
    items = by_question(build_blend_items(fixture_data, num_options=3))
    assert {k: [set(i.options) for i in v] for k, v in items.items()} == {
        ("China", "Fx-01"): [{"rice", "Bread", "hot dog"}],
        ("US", "Fx-01"): [{"hot dog", "rice", "Bread"}],
    }
    # "best": a country whose gold is not valid offers its next answer (US turkey -> pie for China)
    items = by_question(build_blend_items(fixture_data, num_options=3, distractors="best"))
    assert [set(i.options) for i in items[("China", "Fx-03")]] == [{"mooncake", "turkey", "pie"}]


def test_fixture_local_language_and_options(fixture_data):
    items = by_question(build_blend_items(fixture_data, distractors="answers", language="local"))
    item = items[("China", "Fx-01")][0]
    assert item.question == "local Fx-01 China?" and item.options[item.gold] == "米饭"
    with pytest.raises(NeurospecError, match="num_options"):
        build_blend(fixture_data, num_options=1)
    with pytest.raises(NeurospecError, match="distractors"):
        build_blend(fixture_data, distractors="some")


def test_fixture_summary_counts(fixture_data):
    summary = blend_summary(fixture_data, distractors="answers")
    assert summary.items == {("China", "Food"): 4, ("UK", "Food"): 4, ("US", "Food"): 1,
                             ("China", "Holidays/Celebration/Leisure"): 5, ("UK", "Holidays/Celebration/Leisure"): 1,
                             ("US", "Holidays/Celebration/Leisure"): 1}
    assert summary.skipped == {("China", "no_annotation"): 1, ("UK", "too_few_distractors"): 2,
                               ("US", "too_few_distractors"): 1, ("China", "too_few_distractors"): 1,
                               ("US", "gold_without_text"): 1}
    assert summary.ties == {"UK": 2, "US": 1} and summary.answered == {"China": 3, "UK": 4, "US": 4}
    assert summary.total_items(topics="find") == 9 and summary.total_items(topics="test") == 7
    text = summary.format()
    assert "| China | 4 (1) | 0 (0) | 0 (0) | 5 (1) | 4 | 5 | 9 |" in text
    assert "| all | 12 | 1 | 1 | 4 | 11 | 3 | 27.3% |" in text


def test_missing_folder_or_file_is_a_clear_error(tmp_path):
    with pytest.raises(NeurospecError, match="annotations/<Country>_data.json"):
        load_blend(tmp_path / "nowhere")
    folder = write_fixture(tmp_path / "blend")
    with pytest.raises(NeurospecError, match=r"Spain_data\.json not found"):
        load_blend(folder, countries=["China", "Spain"])
    (folder / "questions" / "UK_questions.csv").unlink()
    with pytest.raises(NeurospecError, match=r"UK_questions\.csv not found.*questions/<Country>_questions.csv"):
        load_blend(folder, countries=["UK"])


def test_topic_names():
    assert resolve_topic("Holidays") == resolve_topic("holidays/celebration/leisure") == "Holidays/Celebration/Leisure"
    assert resolve_topic("work-life") == "Work life"
    assert resolve_topics("find") == FIND_TOPICS and resolve_topics("test") == TEST_TOPICS
    assert resolve_topics(["sport", "Family"]) == ("Sport", "Family")
    with pytest.raises(NeurospecError, match="Unknown BLEnD topic"):
        resolve_topic("Music")


# ----------------------------------------------------------------------------------------------------------
# Control items and templates
# ----------------------------------------------------------------------------------------------------------

def test_control_items_keep_options_and_gold_and_drop_the_question(fixture_data):
    items = build_blend_items(fixture_data, distractors="answers")
    controls = control_items(items)
    assert len(controls) == len(items)
    for item, control in zip(items, controls):
        assert (control.options, control.gold, control.group, control.id) == (item.options, item.gold, item.group,
                                                                              item.id)
        assert control.question == "" and control.metadata["control"] is True  # the reference: no question
        assert control.metadata["original_question"] == item.question and item.metadata["control"] is False
        for template in BLEND_TEMPLATES.values():
            text = template(control)
            assert item.question not in text and CONTROL_INSTRUCTION not in text
            assert text == text.strip() and "\n\n\n" not in text  # no stray leading newline or blank line
            assert all(option in text for option in item.options)
    # the option: the old sentence where the question was
    sentence = control_items(items, instruction=CONTROL_INSTRUCTION)
    assert {c.question for c in sentence} == {CONTROL_INSTRUCTION}
    for template in BLEND_TEMPLATES.values():
        assert CONTROL_INSTRUCTION in template(sentence[0]) and items[0].question not in template(sentence[0])
    assert BLEND_TEMPLATES["blend"](sentence[0]).startswith(CONTROL_INSTRUCTION + " Without any explanation")


# CULNIG dataset.py, 'blendcontrol': control_input_text (formatted with BLEnD's choices A-D), written out
REFERENCE_CONTROL_TEMPLATE = (
    "Without any explanation, choose only one from the given alphabet choices(e.g., A, B, C). "
    "Provide as JSON format: {{\"answer_choice\":\"\"}}\n\nA. {option_a}\nB. {option_b}\nC. {option_c}\n"
    "D. {option_d}\n\nAnswer:")


def test_control_prompt_is_the_reference_text(fixture_data):
    """The default control item in the blend template, plain and in the chat template with the prefill, is
    the reference's control prompt (its template text, and the text for one item written out)."""
    from tiny_tokenizer import tiny_tokenizer

    from neurospec.data.prompts import encode

    items = build_blend_items(fixture_data, distractors="answers")
    control = control_items(items)[0]
    assert control.options == ("rice", "hot dog", "burger", "Bread")
    reference = ('Without any explanation, choose only one from the given alphabet choices(e.g., A, B, C). '
                 'Provide as JSON format: {"answer_choice":""}\n\nA. rice\nB. hot dog\nC. burger\nD. Bread\n\n'
                 'Answer:')
    assert BLEND_TEMPLATES["blend"](control) == reference
    for item, ctrl in zip(items, control_items(items)):
        expected = REFERENCE_CONTROL_TEMPLATE.format(**dict(zip(("option_a", "option_b", "option_c", "option_d"),
                                                                item.options)))
        assert BLEND_TEMPLATES["blend"](ctrl) == expected
    # as the model reads it: the chat template around the reference text, then {"answer_choice":" (dataset.py)
    tok = tiny_tokenizer()
    chat = tok.apply_chat_template([{"role": "user", "content": reference}], tokenize=False,
                                   add_generation_prompt=True, enable_thinking=False)
    assert encode(tok, BLEND_TEMPLATES["blend"](control), blend_prompt_format()).text == chat + '{"answer_choice":"'


def test_templates_letter_the_options_and_ask_for_json(fixture_data):
    item = build_blend_items(fixture_data, distractors="answers")[0]
    texts = {name: template(item) for name, template in BLEND_TEMPLATES.items()}
    assert len(set(texts.values())) == len(texts) >= 3
    for text in texts.values():
        assert item.question in text and '"answer_choice"' in text
        positions = [text.index(option) for option in item.options]
        assert positions == sorted(positions)  # options in item order, lettered A-D
    assert texts["blend"] == (
        f"{item.question} Without any explanation, choose only one from the given alphabet choices(e.g., A, B, C). "
        'Provide as JSON format: {"answer_choice":""}\n\n'
        + "\n".join(f"{letter}. {option}" for letter, option in zip("ABCD", item.options)) + "\n\nAnswer:")
    assert blend_prompt_format().prefill == BLEND_PREFILL == '{"answer_choice":"'


def test_templates_work_with_choose_by_letter(fixture_data):
    """Each template as choose_by_letter's prompt, chat + prefill: the scores are the bare letters' probabilities."""
    from families import family
    from tiny_tokenizer import tiny_tokenizer

    from neurospec.data.prompts import encode
    from neurospec.evaluate.scoring import choose_by_letter

    tok = tiny_tokenizer()
    model = family("llama").build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                  eos_token_id=tok.eos_token_id)
    items = build_blend_items(fixture_data, distractors="answers")[:3]
    fmt = blend_prompt_format()
    letter_ids = [tok(letter, add_special_tokens=False)["input_ids"][0] for letter in "ABCD"]
    for template in BLEND_TEMPLATES.values():
        predictions = choose_by_letter(model, tok, items, fmt=fmt, prompt=template, batch_size=2)
        for item, prediction in zip(items, predictions):
            enc = encode(tok, template(item), fmt)
            assert enc.text.endswith(BLEND_PREFILL)
            with torch.no_grad():
                probs = model(input_ids=torch.tensor([enc.input_ids])).logits[0, -1].softmax(-1)
            assert prediction.scores == pytest.approx(probs[letter_ids].tolist(), abs=1e-5)
            assert prediction.gold == item.gold


# ----------------------------------------------------------------------------------------------------------
# The real data (skipped where it is not staged)
# ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real():
    if not (REAL / "annotations").is_dir():
        pytest.skip(f"BLEnD data not staged at {REAL}")
    data = load_blend()
    return data, build_blend(data)


@pytest.fixture(scope="module")
def raw_json():
    """The annotation files read directly, with no neurospec code."""
    return {path.name[:-len("_data.json")]: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted((REAL / "annotations").glob("*_data.json"))}


def first_max(annotations):
    top = max(a["count"] for a in annotations)
    return next(a for a in annotations if a["count"] == top)


@needs_real
def test_real_data_shape(real):
    data, _ = real
    assert len(data) == 16 and all(len(questions) == 500 for questions in data.values())
    assert set(data) == {"Algeria", "Assam", "Azerbaijan", "China", "Ethiopia", "Greece", "Indonesia", "Iran",
                         "Mexico", "North_Korea", "Northern_Nigeria", "South_Korea", "Spain", "UK", "US", "West_Java"}
    china = data["China"]["Al-en-01"]
    assert china.en_question == "What is a common snack for preschool kids in China?"
    assert china.local_question == "在中国，学龄前儿童常见的零食是什么？" and china.topic == "Food"
    assert Counter(r.topic for r in data["US"].values()) == {"Food": 105, "Holidays/Celebration/Leisure": 92,
                                                             "Sport": 88, "Education": 84, "Work life": 68,
                                                             "Family": 63}


@needs_real
def test_real_gold_is_max_count_first_in_file(real, raw_json):
    data, build = real
    # hand-checked: a 6-way tie of single votes -> the first, "cheese stick"; a clear winner -> "orange"
    assert data["China"]["Al-en-01"].gold.text() == "cheese stick" and data["China"]["Al-en-01"].n_tied == 6
    assert raw_json["China"]["Al-en-01"]["annotations"][-1]["en_answers"][0] == "ad calcium milk"
    assert data["China"]["Al-en-04"].gold.text() == "orange" and data["China"]["Al-en-04"].gold_votes == 4
    ties = 0
    for item in build.items:
        raw = raw_json[item.group][item.metadata["question_id"]]["annotations"]
        gold = first_max(raw)
        assert item.options[item.gold] == next(v.strip() for v in gold["en_answers"] if v.strip())
        assert item.metadata["gold_votes"] == gold["count"]
        tied = [a for a in raw if a["count"] == gold["count"]]
        if len(tied) > 1 and {norm(v) for v in tied[-1]["en_answers"]}.isdisjoint({norm(v) for v in gold["en_answers"]}):
            ties += 1
            assert item.metadata["tie"] is True
            assert item.options[item.gold] != tied[-1]["en_answers"][0]  # not the last tied answer
    assert ties > 1000  # the tie rule is exercised thousands of times


@needs_real
def test_real_no_distractor_is_among_the_gold_countrys_annotations(real, raw_json):
    _, build = real
    assert len(build.items) > 30000
    for item in build.items:
        own = {norm(v) for a in raw_json[item.group][item.metadata["question_id"]]["annotations"]
               for v in a["en_answers"]}
        for i, option in enumerate(item.options):
            if i != item.gold:
                assert norm(option) not in own, (item.group, item.id, option)
    # not vacuous: other countries' gold answers often are among a country's own annotations
    collisions = 0
    for country, questions in raw_json.items():
        for qid, entry in questions.items():
            own = {norm(v) for a in entry["annotations"] for v in a["en_answers"]}
            for other, other_questions in raw_json.items():
                annotations = other_questions[qid]["annotations"]
                if other != country and annotations and first_max(annotations)["en_answers"]:
                    collisions += norm(first_max(annotations)["en_answers"][0]) in own
    assert collisions > 10000


@needs_real
def test_real_items_have_distinct_options_and_at_most_five_draws(real):
    _, build = real
    groups = by_question(build.items)
    for (country, qid), items in groups.items():
        assert len(items) <= 5
        sets = distractor_sets(items)
        assert len(set(sets)) == len(sets), (country, qid)
        assert [i.id for i in items] == [f"{qid}#{k}" for k in range(len(items))]
        for item in items:
            assert len(item.options) == 4 and len({norm(o) for o in item.options}) == 4
            assert item.group == item.metadata["country"] == country
    sizes = Counter(len(items) for items in groups.values())
    assert sizes[5] > 5000 and set(sizes) <= {1, 2, 3, 4, 5}
    golds = Counter(item.gold for item in build.items)
    assert all(abs(golds[i] / len(build.items) - 0.25) < 0.02 for i in range(4))  # shuffled positions


@needs_real
def test_real_topic_split_is_exact(real):
    data, build = real
    find = build_blend(data, topics="find")
    test = build_blend(data, topics=["Education", "Family", "Holidays"])
    assert {i.metadata["topic"] for i in find.items} == set(FIND_TOPICS)
    assert {i.metadata["topic"] for i in test.items} == set(TEST_TOPICS)
    csv_topics = {}
    with (REAL / "questions" / "US_questions.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            csv_topics[row["ID"]] = row["Topic"]
    assert set(csv_topics.values()) == set(ALL_TOPICS)
    for item in find.items + test.items:
        assert item.metadata["topic"] == csv_topics[item.metadata["question_id"]]
    # items do not depend on which topics are built: find + test = everything
    key = lambda i: (i.group, i.id, i.question, i.options, i.gold)  # noqa: E731
    assert sorted(map(key, find.items + test.items)) == sorted(map(key, build.items))
    assert {s.question_id for s in find.skipped}.isdisjoint({s.question_id for s in test.skipped})


@needs_real
def test_real_builds_are_seeded(real):
    data, build = real
    china = build_blend(data, countries=["China", "UK"], seed=0)
    assert china.items == build_blend(data, countries=["UK", "China"], seed=0).items
    assert china.items == tuple(i for i in build.items if i.group in ("China", "UK"))  # countries only filter
    other = build_blend(data, countries=["China", "UK"], seed=1)
    assert [(i.group, i.id) for i in other.items] == [(i.group, i.id) for i in china.items]
    changed = sum(a.options != b.options for a, b in zip(china.items, other.items))
    assert changed > len(china.items) // 2
    assert sum(set(a.options) != set(b.options) for a, b in zip(china.items, other.items)) > 100  # other draws


@needs_real
def test_real_summary(real):
    data, build = real
    summary = build.summary()
    assert summary.total_items() == len(build.items)
    assert sum(summary.skipped.values()) == len(build.skipped)
    assert sum(summary.skipped.get((c, "no_annotation"), 0) for c in data) == sum(
        not r.annotations for q in data.values() for r in q.values())
    assert summary.total_items(topics="find") + summary.total_items(topics="test") == len(build.items)
