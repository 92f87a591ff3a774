"""Downstream tasks against hand computations: strings built from the raw files, log-probs from raw logits,
metrics from sacrebleu called directly, counts recounted from the shared data."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest
import sacrebleu
import torch
from families import family
from tiny_tokenizer import tiny_tokenizer

from neurospec.core.edits import Edit
from neurospec.core.hooks import intervene
from neurospec.core.sites import site_map
from neurospec.data.locate import mirror_root
from neurospec.evaluate.tasks import TASKS, TaskResult, get_task
from neurospec.evaluate.tasks.belebele import load_belebele
from neurospec.evaluate.tasks.include import load_include
from neurospec.evaluate.tasks.mt_metrics import bleu_tokenizer, translation_scores
from neurospec.evaluate.tasks.translation import flores_pairs, ntrex_pairs
from neurospec.evaluate.tasks.xcopa import load_xcopa, xcopa_pairs
from neurospec.evaluate.tasks.xwinograd import load_xwinograd, xwinograd_pairs
from neurospec.util.errors import NeurospecError

DATA = mirror_root()
needs_data = pytest.mark.skipif(not (DATA / "xcopa").is_dir(), reason=f"shared data not found at {DATA}")


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    # long positions: Belebele passages are a few hundred byte-level tokens
    return family("llama").build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                 eos_token_id=tok.eos_token_id, max_position_embeddings=2048)


def loglik(model, tok, context: str, continuation: str, edit=None) -> float:
    """Summed log-softmax of the continuation tokens after BOS + context, on one unpadded sequence."""
    ctx = tok(context)["input_ids"]
    cont = tok(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        if edit is None:
            logits = model(input_ids=ids).logits[0]
        else:
            with intervene(model, edit):
                logits = model(input_ids=ids).logits[0]
    logprobs = logits.double().log_softmax(-1)
    return sum(float(logprobs[len(ctx) + k - 1, t]) for k, t in enumerate(cont))


def letter_probs(model, tok, prompt: str, ids: list[int] | None = None) -> list[float]:
    """Next-token probabilities of ``ids`` (default " A" .. " D") after BOS + prompt."""
    if ids is None:
        spaced = [tok(" " + letter, add_special_tokens=False)["input_ids"] for letter in "ABCD"]
        assert all(len(i) == 1 for i in spaced)
        ids = [i[0] for i in spaced]
    with torch.no_grad():
        probs = model(input_ids=torch.tensor([tok(prompt)["input_ids"]])).logits[0, -1].double().softmax(-1)
    return [float(probs[i]) for i in ids]


def appended_ids(tok, prefix: str, suffixes: list[str]) -> list[int]:
    """The one token id each suffix adds after ``prefix`` (tokenised without special tokens)."""
    before = tok(prefix, add_special_tokens=False)["input_ids"]
    ids = []
    for suffix in suffixes:
        after = tok(prefix + suffix, add_special_tokens=False)["input_ids"]
        assert after[:-1] == before, (prefix, suffix)
        ids.append(after[-1])
    return ids


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def check_accuracy(result: TaskResult, expected_chosen: list[int], golds: list[int]) -> None:
    correct = sum(c == g for c, g in zip(expected_chosen, golds))
    assert [o["chosen"] for o in result.details["outputs"]] == expected_chosen
    assert result.n == len(golds) and result.details["correct"] == correct
    assert result.score == pytest.approx(correct / len(golds)) and result.metrics == {"accuracy": result.score}
    assert result.ci95 == pytest.approx(wilson_by_hand(correct, len(golds)))
    json.dumps(result.to_json())


def raw_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# Registry and bad input


def test_registry_and_unknown_task():
    assert set(TASKS) == {"xcopa", "xwinograd", "belebele", "include", "flores", "ntrex"}
    assert get_task("XCOPA") is TASKS["xcopa"]
    with pytest.raises(NeurospecError, match="unknown task 'copa'.*xcopa, xwinograd, belebele, include, flores, ntrex"):
        get_task("copa")


@needs_data
def test_languages_the_data_lacks_are_named_with_the_ones_it_has(model, tok):
    with pytest.raises(NeurospecError, match=r"no German \(deu_Latn\).*est_Latn.*zho_Hans"):
        get_task("xcopa").evaluate(model, tok, "de")
    with pytest.raises(NeurospecError, match=r"no German.*eng_Latn, fra_Latn, jpn_Jpan"):
        load_xwinograd("de")
    with pytest.raises(NeurospecError, match=r"no French.*deu_Latn, eng_Latn"):
        load_belebele("fr")
    with pytest.raises(NeurospecError, match=r"no Cebuano.*zho_Hans"):
        flores_pairs("ceb")
    with pytest.raises(NeurospecError, match="translates from English"):
        get_task("ntrex").evaluate(model, tok, "en")


@needs_data
def test_bad_options_splits_and_paths(model, tok, tmp_path):
    task = get_task("xcopa")
    with pytest.raises(NeurospecError, match="does not take option.*colour.*connectors"):
        task.evaluate(model, tok, "et", colour="red")
    with pytest.raises(NeurospecError, match="no split 'train'"):
        task.evaluate(model, tok, "et", split="train")
    with pytest.raises(NeurospecError, match="limit must be a positive integer"):
        task.evaluate(model, tok, "et", limit=0)
    with pytest.raises(NeurospecError, match="not found at .*missing.jsonl"):
        task.evaluate(model, tok, "et", data_dir=tmp_path / "missing.jsonl")
    with pytest.raises(NeurospecError, match="INCLUDE data not found"):
        load_include("et", tmp_path / "nothing_here")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(NeurospecError, match="empty.jsonl is empty"):
        load_include("et", empty)
    with pytest.raises(NeurospecError, match="empty.jsonl is empty"):
        load_xcopa("et", data_dir=empty)


# --------------------------------------------------------------------------------------------
# XCOPA


CONNECTORS = {"et": ("sest", "seetõttu"), "zh": ("因为", "所以"), "th": ("เพราะ", "ดังนั้น")}


@needs_data
def test_xcopa_counts():
    for code in ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"):
        assert len(load_xcopa(code)) == 500 and len(load_xcopa(code, "val")) == 100
    assert len(load_xcopa("est_Latn", "validation")) == 100


@needs_data
def test_xcopa_strings_from_the_spec():
    [et] = load_xcopa("et")[:1]
    assert xcopa_pairs(et) == [("Ese oli mullikilesse mässitud sest", " see oli õrn."),
                               ("Ese oli mullikilesse mässitud sest", " see oli väike.")]
    assert et.gold == 0 and et.group == "est_Latn" and et.id == "xcopa-et-test-0"
    zh = load_xcopa("zh")[0]
    assert xcopa_pairs(zh)[0] == ("该物品用气泡包装纸包着 因为", " 它很易碎。")  # "。" removed
    th = load_xcopa("th")[0]  # Thai premises have no full stop: nothing is cut
    assert xcopa_pairs(th)[1] == ("สิ่งของถูกห่อไว้ในพลาสติก ดังนั้น", " มันเล็ก")


@needs_data
@pytest.mark.parametrize("code", ["et", "zh", "th"])
def test_xcopa_choice_equals_hand_computation(model, tok, code):
    records = raw_jsonl(DATA / "xcopa" / code / f"test.{code}.jsonl")[:3]
    result = get_task("xcopa").evaluate(model, tok, code, limit=3, batch_size=2, keep_outputs=True)
    chosen = []
    for record, output in zip(records, result.details["outputs"]):
        premise = record["premise"].strip()
        premise = premise[:-1] if premise[-1] in ".。" else premise
        context = premise + " " + CONNECTORS[code][record["question"] == "effect"]
        scores = [loglik(model, tok, context, " " + choice[0].lower() + choice[1:])
                  for choice in (record["choice1"], record["choice2"])]
        assert output["scores"] == pytest.approx(scores, abs=1e-4)
        chosen.append(scores.index(max(scores)))
    check_accuracy(result, chosen, [r["label"] for r in records])
    assert result.task == "xcopa" and result.metric == "accuracy" and result.details["chance"] == 0.5


@needs_data
def test_xcopa_hf_file_and_english_connectors(model, tok, tmp_path):
    path = tmp_path / "copa_en.jsonl"
    rows = [{"premise": "The man broke his toe.", "choice1": "He dropped a hammer on his foot.",
             "choice2": "He got a hole in his sock.", "question": "cause", "label": 0, "idx": 1},
            {"premise": "She went to the market.", "choice1": "She bought bread.", "choice2": "The cat sat.",
             "question": "effect", "label": 0, "idx": 2}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = load_xcopa("en", data_dir=path)
    assert xcopa_pairs(items[0])[0] == ("The man broke his toe because", " he dropped a hammer on his foot.")
    assert xcopa_pairs(items[1])[1] == ("She went to the market therefore", " the cat sat.")
    result = get_task("xcopa").evaluate(model, tok, "English", data_dir=path, keep_outputs=True)
    expected = [loglik(model, tok, "The man broke his toe because", " " + o) for o in
                ("he dropped a hammer on his foot.", "he got a hole in his sock.")]
    assert result.details["outputs"][0]["scores"] == pytest.approx(expected, abs=1e-4)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rows[0], "question": "why"}) + "\n")
    with pytest.raises(NeurospecError, match="bad.jsonl line 1: question must be 'cause' or 'effect'"):
        load_xcopa("en", data_dir=bad)


# --------------------------------------------------------------------------------------------
# XWinograd


@needs_data
def test_xwinograd_counts_match_the_tsv():
    with open(DATA / "xwinograd" / "dataset.tsv", encoding="utf-8", newline="") as f:
        counts = Counter(row[0] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert set(counts) == {"en", "fr", "jp", "pt", "ru", "zh"}
    for code, n in counts.items():
        items = load_xwinograd(code)
        assert len(items) == n
        assert all(item.question.count("_") == 1 and item.question.split("_")[1].strip() for item in items)
    assert get_task("xwinograd").languages() == ["eng_Latn", "fra_Latn", "jpn_Jpan", "rus_Cyrl", "zho_Hans", "por_Latn"]


@needs_data
def test_xwinograd_underscore_sentences():
    en = load_xwinograd("en")[0]
    assert en.question == "The city councilmen refused the demonstrators a permit because _ feared violence."
    assert en.options == ("The city councilmen", "the demonstrators") and en.gold == 0
    assert xwinograd_pairs(en)[1] == ("The city councilmen refused the demonstrators a permit because the demonstrators",
                                      " feared violence.")
    jp = load_xwinograd("jp")[0]
    assert jp.question == "狙撃兵はテロリストを撃った。_は悪漢だったからだ。" and jp.gold == 1
    assert xwinograd_pairs(jp)[0] == ("狙撃兵はテロリストを撃った。狙撃兵", "は悪漢だったからだ。")
    assert xwinograd_pairs(jp, " ")[0] == ("狙撃兵はテロリストを撃った。狙撃兵", " は悪漢だったからだ。")
    # the pronoun span "его." includes the full stop: the stop stays after "_"
    ru = next(i for i in load_xwinograd("ru") if "передумал и включил" in i.question)
    assert ru.question.endswith("поэтому он передумал и включил _.")


@needs_data
@pytest.mark.parametrize("code", ["en", "jp"])
def test_xwinograd_choice_equals_hand_computation(model, tok, code):
    items = load_xwinograd(code)[:3]
    result = get_task("xwinograd").evaluate(model, tok, code, limit=3, keep_outputs=True)
    chosen = []
    for item, output in zip(items, result.details["outputs"]):
        before, after = item.question.split("_")
        scores = [loglik(model, tok, before + option, after) for option in item.options]
        assert output["scores"] == pytest.approx(scores, abs=1e-4)
        chosen.append(scores.index(max(scores)))
    check_accuracy(result, chosen, [item.gold for item in items])


def test_xwinograd_hf_format(tmp_path):
    path = tmp_path / "xwinograd.jsonl"
    rows = [{"sentence": "The trophy does not fit because _ is too big.", "option1": "the trophy",
             "option2": "the suitcase", "answer": "1", "lang": "en"},
            {"sentence": "Le chat dort parce que _ est fatigué.", "option1": "le chat", "option2": "le tapis",
             "answer": "1", "lang": "fr"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    [item] = load_xwinograd("en", path)
    assert item.question == rows[0]["sentence"] and item.options == ("the trophy", "the suitcase") and item.gold == 0
    assert get_task("xwinograd").languages(path) == ["eng_Latn", "fra_Latn"]
    with pytest.raises(NeurospecError, match="no Japanese.*eng_Latn, fra_Latn"):
        load_xwinograd("ja", path)


# --------------------------------------------------------------------------------------------
# Belebele


@needs_data
def test_belebele_counts_and_both_formats(tmp_path):
    for code in ("eng_Latn", "deu_Latn"):
        passages = raw_jsonl(DATA / "belebele_en_de" / f"{code}.jsonl")
        assert len(load_belebele(code)) == sum(len(p["items"]) for p in passages) == 900
    repackaged = load_belebele("en")[:5]
    original = tmp_path / "eng_Latn.jsonl"
    lines = []
    for item in repackaged:
        row = {"flores_passage": item.metadata["passage"], "question": item.question, "dialect": "eng_Latn",
               "correct_answer_num": str(item.gold + 1)}
        row.update({f"mc_answer{k + 1}": option for k, option in enumerate(item.options)})
        lines.append(json.dumps(row))
    original.write_text("\n".join(lines))
    for source in (original, tmp_path):
        again = load_belebele("eng_Latn", source)
        assert [(i.question, i.options, i.gold, i.metadata["passage"]) for i in again] == \
            [(i.question, i.options, i.gold, i.metadata["passage"]) for i in repackaged]
    assert get_task("belebele").languages(tmp_path) == ["eng_Latn"]


@needs_data
def test_belebele_choice_equals_hand_computation(model, tok):
    passage = raw_jsonl(DATA / "belebele_en_de" / "deu_Latn.jsonl")[0]
    result = get_task("belebele").evaluate(model, tok, "de", limit=2, keep_outputs=True)
    chosen, golds = [], []
    for question, output in zip(passage["items"], result.details["outputs"]):
        answers = [a["text"] for a in question["answers"]]
        prompt = (f"P: {passage['text']}\nQ: {question['question'].strip()}\nA: {answers[0]}\nB: {answers[1]}\n"
                  f"C: {answers[2]}\nD: {answers[3]}\nAnswer:")
        probs = letter_probs(model, tok, prompt)
        assert output["scores"] == pytest.approx(probs, abs=1e-5)
        chosen.append(probs.index(max(probs)))
        golds.append([a["correct"] for a in question["answers"]].index(True))
    check_accuracy(result, chosen, golds)
    assert result.details["chance"] == 0.25


# --------------------------------------------------------------------------------------------
# INCLUDE


INCLUDE_ROWS = [
    {"language": "Estonian", "country": "Estonia", "domain": "STEM", "subject": "Math", "level": "High school",
     "question": "Mis on 2 + 2? ", "option_a": "3", "option_b": "4", "option_c": "5", "option_d": "22", "answer": 1},
    {"language": "German", "subject": "Geography", "question": "Hauptstadt von Deutschland?",
     "option_a": "Berlin", "option_b": "Bonn", "option_c": "Wien", "option_d": "Bern", "answer": 0},
    {"language": "Estonian", "subject": "Geography", "question": "Mis on Eesti pealinn?",
     "option_a": "Tartu", "option_b": "Pärnu", "option_c": "Tallinn", "option_d": "Narva", "answer": 2},
    {"language": "Estonian", "subject": "History", "question": "Millal sai Eesti iseseisvaks?",
     "option_a": "1918", "option_b": "1940", "option_c": "1991", "option_d": "2004", "answer": 0},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("form", [None, "bare", "space", "auto"])
def test_include_choice_equals_hand_computation(model, tok, tmp_path, form):
    """By default INCLUDE scores the reference's bare "A".."D" tokens after "Answer:" (the ids "Answer:A" adds
    to "Answer:"); form="space" scores " A".." D". The tiny tokenizer, like Gemma-3's, gives them different ids."""
    bare = appended_ids(tok, "Answer:", list("ABCD"))
    space = appended_ids(tok, "Answer:", [" " + letter for letter in "ABCD"])
    assert bare == tok.convert_tokens_to_ids(list("ABCD")) and not set(bare) & set(space)
    used = {None: "bare", "bare": "bare", "space": "space", "auto": "space"}[form]  # auto: " A" after "Answer:"
    ids = bare if used == "bare" else space
    path = write_jsonl(tmp_path / "include.jsonl", INCLUDE_ROWS)
    options = {} if form is None else {"form": form}
    result = get_task("include").evaluate(model, tok, "et", data_dir=path, keep_outputs=True, **options)
    assert result.details["form"] == used
    estonian = [r for r in INCLUDE_ROWS if r["language"] == "Estonian"]
    chosen = []
    for row, output in zip(estonian, result.details["outputs"]):
        prompt = (f"{row['question'].strip()}\nA) {row['option_a']}\nB) {row['option_b']}\nC) {row['option_c']}\n"
                  f"D) {row['option_d']}\nAnswer:")
        probs = letter_probs(model, tok, prompt, ids)
        assert output["scores"] == pytest.approx(probs, abs=1e-5)
        other = letter_probs(model, tok, prompt, space if used == "bare" else bare)
        assert output["scores"] != pytest.approx(other, abs=1e-5)  # the other form would score differently
        chosen.append(probs.index(max(probs)))
    check_accuracy(result, chosen, [r["answer"] for r in estonian])
    assert result.language == "est_Latn" and get_task("include").languages(path) == ["est_Latn", "deu_Latn"]


def test_include_unknown_form_is_a_one_line_error(model, tok, tmp_path):
    path = write_jsonl(tmp_path / "include.jsonl", INCLUDE_ROWS)
    with pytest.raises(NeurospecError, match="unknown form 'spaced'.*bare.*space.*auto"):
        get_task("include").evaluate(model, tok, "et", data_dir=path, form="spaced")


def test_include_csv_folder_and_metadata(tmp_path):
    folder = tmp_path / "include"
    folder.mkdir()
    with open(folder / "part1.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["language", "subject", "question", "option_a", "option_b", "option_c",
                                               "option_d", "answer"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(INCLUDE_ROWS[:2])
    write_jsonl(folder / "part2.jsonl", [{**INCLUDE_ROWS[2], "choices": ["Tartu", "Pärnu", "Tallinn", "Narva"]}])
    items = load_include("Estonian", folder)
    assert [(i.question, i.options, i.gold) for i in items] == [
        ("Mis on 2 + 2?", ("3", "4", "5", "22"), 1), ("Mis on Eesti pealinn?", ("Tartu", "Pärnu", "Tallinn", "Narva"), 2)]
    assert items[0].metadata == {"subject": "Math"} and items[0].group == "est_Latn"
    assert [i.question for i in load_include("de", folder)] == ["Hauptstadt von Deutschland?"]


def test_include_reads_the_hub_layout_of_a_fetch(tmp_path, monkeypatch):
    """`neurospec data fetch include` gives <Language>/test-*.parquet files (and the hub client's hidden
    .cache folder); without data_dir, load_include reads them and gives the items of the same rows as JSONL."""
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    folder = tmp_path / "mirror" / "include"
    for language in ("Estonian", "German"):
        (folder / language).mkdir(parents=True)
        rows = [r for r in INCLUDE_ROWS if r["language"] == language]
        pandas.DataFrame(rows).to_parquet(folder / language / "test-00000-of-00001.parquet")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "stale.jsonl").write_text("not json\n")
    monkeypatch.setenv("NEUROSPEC_DATA", str(tmp_path / "mirror"))
    expected = load_include("et", write_jsonl(tmp_path / "rows.jsonl", INCLUDE_ROWS))
    got = load_include("et")
    assert [(i.question, i.options, i.gold, i.metadata) for i in got] == \
        [(i.question, i.options, i.gold, i.metadata) for i in expected]
    assert get_task("include").languages() == ["est_Latn", "deu_Latn"]


def test_include_bad_files_name_the_field_and_line(tmp_path):
    rows = [dict(r) for r in INCLUDE_ROWS[:3]]
    del rows[1]["option_c"]
    with pytest.raises(NeurospecError, match=r"bad.jsonl line 2: field 'option_c' is missing"):
        load_include("et", write_jsonl(tmp_path / "bad.jsonl", rows))
    rows = [dict(r) for r in INCLUDE_ROWS[:2]]
    rows[1]["answer"] = 7
    with pytest.raises(NeurospecError, match=r"line 2: answer must be 0-3"):
        load_include("et", write_jsonl(tmp_path / "bad_answer.jsonl", rows))
    rows = [{k: v for k, v in INCLUDE_ROWS[0].items() if k != "language"}]
    with pytest.raises(NeurospecError, match=r"line 1: field 'language' is missing"):
        load_include("et", write_jsonl(tmp_path / "no_language.jsonl", rows))
    (tmp_path / "broken.jsonl").write_text('{"question": "x"\n')
    with pytest.raises(NeurospecError, match=r"broken.jsonl line 1: not valid JSON"):
        load_include("et", tmp_path / "broken.jsonl")
    with pytest.raises(NeurospecError, match=r"no Finnish \(fin_Latn\).*est_Latn, deu_Latn"):
        load_include("fi", write_jsonl(tmp_path / "ok.jsonl", INCLUDE_ROWS))


# --------------------------------------------------------------------------------------------
# Translation


HYPOTHESES = ["猫坐在垫子上。", "今天天气很好", "我们明天去市场买面包和奶酪。", "", "这是一个测试句子"]
REFERENCES = ["猫坐在垫子上。", "今天的天气非常好。", "明天我们去市场买面包和奶酪。", "空的。", "这是一个测试。"]


@pytest.mark.parametrize("language, tokenize", [("zho_Hans", "zh"), ("ja", "char"), ("tha_Thai", "char"),
                                                ("mya_Mymr", "char"), ("km", "char"), ("de", "13a"), ("fra", "13a")])
def test_translation_metrics_equal_sacrebleu(language, tokenize):
    assert bleu_tokenizer(language) == tokenize
    scores = translation_scores(HYPOTHESES, REFERENCES, language, bootstrap=200, seed=3)
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES], word_order=2).score)
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES], tokenize=tokenize).score)
    assert f"tok:{tokenize}" in scores.signatures["bleu"] and "nw:2" in scores.signatures["chrf++"]
    low, high = scores.chrf_ci95
    assert 0 <= low <= scores.chrf <= high <= 100
    assert translation_scores(HYPOTHESES, REFERENCES, language, bootstrap=200, seed=3).chrf_ci95 == (low, high)
    assert translation_scores(HYPOTHESES, REFERENCES, language, bootstrap=0).chrf_ci95 is None


@needs_data
def test_translation_pairs_match_the_files():
    with open(DATA / "sib200_flores" / "eng_Latn" / "test.tsv", encoding="utf-8", newline="") as f:
        english = {int(r["index_id"]): r["text"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}
    with open(DATA / "sib200_flores" / "zho_Hans" / "test.tsv", encoding="utf-8", newline="") as f:
        chinese = {int(r["index_id"]): r["text"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}
    pairs = flores_pairs("zh")
    assert len(pairs) == len(english) == 204
    assert all(english[p.id] == p.source and chinese[p.id] == p.reference for p in pairs)
    assert len(flores_pairs("zh", "dev")) == 99 and len(flores_pairs("zh", "all")) == 1004
    source = (DATA / "ntrex128" / "newstest2019-src.eng.txt").read_text(encoding="utf-8").splitlines()
    german = (DATA / "ntrex128" / "newstest2019-ref.deu.txt").read_text(encoding="utf-8").splitlines()
    pairs = ntrex_pairs("de")
    assert len(pairs) == len(source) == len(german) == 1997
    assert (pairs[5].source, pairs[5].reference) == (source[5].strip(), german[5].strip())


def flores_release(tmp_path: Path) -> Path:
    """A two-language FLORES-200 release layout with three devtest lines."""
    root = tmp_path / "flores200"
    (root / "devtest").mkdir(parents=True)
    (root / "devtest" / "eng_Latn.devtest").write_text("The cat sat.\nIt is warm.\nGood day.\n", encoding="utf-8")
    (root / "devtest" / "fra_Latn.devtest").write_text("Le chat dort.\nIl fait chaud.\nBonjour.\n", encoding="utf-8")
    return root


def test_flores_release_layout(tmp_path):
    root = flores_release(tmp_path)
    assert get_task("flores").languages(root) == ["fra_Latn"]
    pairs = flores_pairs("fr", data_dir=root)
    assert [(p.id, p.source, p.reference) for p in pairs] == [
        (997, "The cat sat.", "Le chat dort."), (998, "It is warm.", "Il fait chaud."), (999, "Good day.", "Bonjour.")]
    with pytest.raises(NeurospecError, match="splits dev and devtest"):
        flores_pairs("fr", "test", root)


@needs_data
def test_flores_evaluation_equals_direct_metrics(model, tok):
    result = get_task("flores").evaluate(model, tok, "zh", limit=3, max_new_tokens=6, keep_outputs=True, bootstrap=50)
    outputs = result.details["outputs"]
    pairs = flores_pairs("zho_Hans")[:3]
    assert outputs[0]["prompt"] == (f"Translate the following sentence from English to Chinese.\n"
                                    f"English: {pairs[0].source}\nChinese:")
    assert [o["reference"] for o in outputs] == [p.reference for p in pairs]
    hypotheses = [o["hypothesis"] for o in outputs]
    assert hypotheses == [o["generated"].split("\n")[0].strip() for o in outputs]
    assert result.metric == "chrf++" and result.n == 3 and result.language == "zho_Hans"
    assert result.score == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [[p.reference for p in pairs]], word_order=2).score)
    assert result.metrics["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(hypotheses, [[p.reference for p in pairs]], tokenize="zh").score)
    assert "tok:zh" in result.details["signatures"]["bleu"] and result.details["split"] == "test"
    json.dumps(result.to_json())


@needs_data
def test_ntrex_evaluation_with_an_intervention_and_the_reference_template(model, tok):
    edit = Edit.zero({"act": {0: torch.arange(site_map(model).width("act"))}})
    result = get_task("ntrex").evaluate(model, tok, "de", limit=2, max_new_tokens=4, template="reference",
                                        intervention=edit, keep_outputs=True, bootstrap=0)
    first = ntrex_pairs("de")[0]
    assert result.details["outputs"][0]["prompt"] == f"Translate from English to German.\n\nEnglish: {first.source}\nGerman: "
    assert result.details["bleu_tokenize"] == "13a" and result.details["intervention"] is True
    assert result.ci95 is None and result.n == 2


# --------------------------------------------------------------------------------------------
# Interventions reach the scorer


@needs_data
def test_an_edit_changes_scores_and_matches_an_edited_hand_computation(model, tok):
    width = site_map(model).width("act")
    edit = Edit.zero({"act": {0: torch.arange(width), 1: torch.arange(0, width, 2)}})
    task = get_task("xcopa")
    plain = task.evaluate(model, tok, "et", limit=4, keep_outputs=True)
    edited = task.evaluate(model, tok, "et", limit=4, keep_outputs=True, intervention=edit)
    assert edited.details["intervention"] is True and plain.details["intervention"] is False
    differences = [abs(a - b) for p, e in zip(plain.details["outputs"], edited.details["outputs"])
                   for a, b in zip(p["scores"], e["scores"])]
    assert max(differences) > 1e-3
    item = load_xcopa("et")[0]
    by_hand = [loglik(model, tok, context, continuation, edit) for context, continuation in xcopa_pairs(item)]
    assert edited.details["outputs"][0]["scores"] == pytest.approx(by_hand, abs=1e-4)
