"""Intervals of `eval` (downstream) and `mask-eval` effects against independent computations: Wilson and
Newcombe's paired interval written out here from their formulas, the bootstraps by brute-force resampling with
the same seed (corpus chrF++ recomputed by sacrebleu itself on each resample); a 30/30 cell keeps a width; files
written before the intervals still read."""

from __future__ import annotations

import copy
import csv
import json
import math
import random

import numpy as np
import pytest
import sacrebleu
import torch
from interventions_common import neuron_set, tiny_llama, tok

from neurospec.data.items import MCItem
from neurospec.evaluate.downstream import self_cross, with_intervals
from neurospec.evaluate.masking import MaskingResult
from neurospec.evaluate.tasks import get_task
from neurospec.evaluate.tasks.mt_metrics import chrf_statistics
from neurospec.interventions.recipes import Recipe
from neurospec.results.downstream import DownstreamTable, TaskScore
from neurospec.results.masking import MaskingRecord

Z = 1.959963984540054  # the 97.5% normal quantile


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """Wilson's score interval in its textbook form (2k + z^2 -/+ z sqrt(z^2 + 4k(1 - k/n))) / (2(n + z^2))."""
    root = Z * math.sqrt(Z * Z + 4 * k * (1 - k / n))
    return max(0.0, (2 * k + Z * Z - root) / (2 * (n + Z * Z))), min(1.0, (2 * k + Z * Z + root) / (2 * (n + Z * Z)))


def newcombe_by_hand(first: list, second: list) -> tuple[float, float]:
    """Newcombe (1998) method 10 for mean(first) - mean(second) on paired 0/1 values, from the 2x2 table a b c d."""
    pairs = list(zip(first, second))
    a, b = pairs.count((1, 1)), pairs.count((1, 0))
    c, d = pairs.count((0, 1)), pairs.count((0, 0))
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_by_hand(a + b, n)
    l2, u2 = wilson_by_hand(a + c, n)
    ad_bc = a * d - b * c
    numerator = ad_bc - n / 2 if ad_bc > n / 2 else (0 if ad_bc >= 0 else ad_bc)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = numerator / math.sqrt(margins) if margins else 0.0
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    return max(-1.0, low), min(1.0, high)


def percentile(values) -> tuple[float, float]:
    low, high = np.percentile(np.asarray(values, dtype=np.float64), [2.5, 97.5])
    return float(low), float(high)


def picks_per_language(sizes: list[int], resamples: int, seed: int) -> list[list[list[int]]]:
    """The items each resample draws, per language in order: one generator seeded once, as the bootstrap does."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, n, (resamples, n), generator=generator).tolist() for n in sizes]


def accuracy_cell(language: str, correct: list[int]) -> TaskScore:
    k, n = sum(correct), len(correct)
    return TaskScore("xcopa", language, "accuracy", k / n, wilson_by_hand(k, n), n, {"accuracy": k / n},
                     {"correct": k}, correct)


LANGUAGES = ["ita_Latn", "est_Latn"]
ROWS = ["none", "ita_Latn", "est_Latn"]


def synthetic_accuracy_table() -> DownstreamTable:
    """Italian: 30 items, the unmodified model and the Italian row right on all 30 (a 30/30 cell); Estonian: 20."""
    rng = random.Random(4)
    items = {
        "none": {"ita_Latn": [1] * 30, "est_Latn": [rng.random() < 0.5 for _ in range(20)]},
        "ita_Latn": {"ita_Latn": [1] * 30, "est_Latn": [rng.random() < 0.4 for _ in range(20)]},
        "est_Latn": {"ita_Latn": [rng.random() < 0.8 for _ in range(30)], "est_Latn": [rng.random() < 0.7 for _ in range(20)]},
    }
    cells = {row: {lang: accuracy_cell(lang, [int(v) for v in items[row][lang]]) for lang in LANGUAGES} for row in ROWS}
    return DownstreamTable("xcopa", ROWS, LANGUAGES, cells, Recipe.parse("scale*3"))


# ------------------------------------------------------------------------------------------------
# eval: downstream tasks


def test_accuracy_cells_changes_and_summary_against_hand_computations():
    table = with_intervals(synthetic_accuracy_table(), resamples=300, seed=5)
    for row in ROWS:
        for lang in LANGUAGES:
            cell = table.cells[row][lang]
            assert cell.ci95 == pytest.approx(wilson_by_hand(sum(cell.item_correct), cell.n), abs=1e-12)
            if row != "none":
                expected = newcombe_by_hand(cell.item_correct, table.cells["none"][lang].item_correct)
                assert table.change_ci95[row][lang] == pytest.approx(expected, abs=1e-12)
    # the 30/30 cells keep a width: Wilson below 1, and no change between two 30/30 rows is not [0, 0]
    low, high = table.cells["ita_Latn"]["ita_Latn"].ci95
    assert high == 1.0 and low == pytest.approx(30 / (30 + Z * Z)) and low < 0.9
    low, high = table.change_ci95["ita_Latn"]["ita_Latn"]
    assert low < 0 < high and high - low > 0.2

    # the summary: every row's accuracy recomputed on the same drawn items per language, by brute force
    picks = dict(zip(LANGUAGES, picks_per_language([30, 20], 300, 5)))

    def change(row, lang, drawn):
        items = table.cells[row][lang].item_correct, table.cells["none"][lang].item_correct
        return sum(items[0][i] for i in drawn) / len(drawn) - sum(items[1][i] for i in drawn) / len(drawn)

    selfs, crosses, ita_cross = [], [], []
    for r in range(300):
        own = [change("ita_Latn", "ita_Latn", picks["ita_Latn"][r]), change("est_Latn", "est_Latn", picks["est_Latn"][r])]
        other = [change("ita_Latn", "est_Latn", picks["est_Latn"][r]), change("est_Latn", "ita_Latn", picks["ita_Latn"][r])]
        selfs.append(sum(own) / 2)
        crosses.append(sum(other) / 2)
        ita_cross.append(other[0])
    summary = table.summary()
    assert summary["self_mean_ci95"] == pytest.approx(percentile(selfs), abs=1e-12)
    assert summary["cross_mean_ci95"] == pytest.approx(percentile(crosses), abs=1e-12)
    assert summary["self_minus_cross_ci95"] == pytest.approx(percentile(np.subtract(selfs, crosses)), abs=1e-12)
    assert summary["self_minus_cross"] == pytest.approx(summary["self_mean"] - summary["cross_mean"])
    assert summary["per_target"]["ita_Latn"]["cross_mean_ci95"] == pytest.approx(percentile(ita_cross), abs=1e-12)
    assert summary["per_target"]["est_Latn"]["self_ci95"] == list(table.change_ci95["est_Latn"]["est_Latn"])
    assert table.interval_method == {"score": "wilson", "change": "newcombe paired score",
                                     "summary": table.interval_method["summary"]}
    assert "bootstrap" in table.interval_method["summary"]


def test_self_cross_keeps_each_items_correctness_and_pairs_it(tmp_path):
    model = tiny_llama()
    neurons = neuron_set(model, per_group=30).rename({"eng_Latn": "ita_Latn", "deu_Latn": "est_Latn"})
    recipe = Recipe.parse("scale*3")
    table = self_cross(model, tok(), "xcopa", ["it", "et"], neurons, recipe=recipe, limit=6, batch_size=4)
    direct = get_task("xcopa").evaluate(model, tok(), "et", intervention=recipe.edit(neurons, "ita_Latn"), limit=6)
    assert table.cells["ita_Latn"]["est_Latn"].item_correct == direct.item_correct
    for row in ROWS:
        for lang in LANGUAGES:
            cell = table.cells[row][lang]
            assert len(cell.item_correct) == cell.n == 6 and sum(cell.item_correct) == cell.details["correct"]
            if row != "none":
                assert table.change_ci95[row][lang] == pytest.approx(
                    newcombe_by_hand(cell.item_correct, table.cells["none"][lang].item_correct), abs=1e-12)
    path = table.save(tmp_path)
    again = DownstreamTable.from_json(json.loads(path.read_text()), str(path))
    assert again.change_ci95 == table.change_ci95 and again.summary() == table.summary()
    assert again.cells["none"]["ita_Latn"].item_correct == table.cells["none"]["ita_Latn"].item_correct


SOURCES = ["the cat sat on the mat", "a dog runs in the park today", "we buy bread and cheese at the market",
           "it rains a lot in autumn", "the train leaves every hour", "she reads a long book slowly",
           "birds sing early in the morning", "the river flows to the sea"]
REFERENCES = ["le chat est assis sur le tapis", "un chien court dans le parc aujourd'hui",
              "nous achetons du pain et du fromage au marché", "il pleut beaucoup en automne",
              "le train part toutes les heures", "elle lit lentement un long livre",
              "les oiseaux chantent tôt le matin", "la rivière coule vers la mer"]
OUTPUTS = {
    "none": ["le chat assis sur tapis", "un chien court parc", "nous achetons pain fromage marché",
             "il pleut en automne", "le train part heure", "elle lit un livre", "oiseaux chantent matin", "rivière mer"],
    "fra_Latn": ["le chat est assis sur le tapis", "un chien court dans le parc", "nous achetons du pain au marché",
                 "il pleut beaucoup", "le train part toutes les heures", "elle lit un long livre",
                 "les oiseaux chantent le matin", "la rivière coule vers la mer"],
}


def translation_cell(row: str, keep_statistics: bool = True) -> TaskScore:
    hypotheses = OUTPUTS[row]
    score = sacrebleu.corpus_chrf(hypotheses, [REFERENCES], word_order=2).score
    return TaskScore("flores", "fra_Latn", "chrf++", score, None, len(hypotheses), {"chrf++": score}, {},
                     sentence_statistics=chrf_statistics(hypotheses, REFERENCES) if keep_statistics else None)


def test_translation_change_is_a_paired_bootstrap_of_corpus_chrf():
    cells = {row: {"fra_Latn": translation_cell(row)} for row in OUTPUTS}
    table = with_intervals(DownstreamTable("flores", list(OUTPUTS), ["fra_Latn"], cells, Recipe.parse("scale*2")),
                           resamples=60, seed=2)
    (picks,) = picks_per_language([len(SOURCES)], 60, 2)

    def corpus(row, drawn):
        return sacrebleu.corpus_chrf([OUTPUTS[row][i] for i in drawn], [[REFERENCES[i] for i in drawn]],
                                     word_order=2).score

    changes = [corpus("fra_Latn", drawn) - corpus("none", drawn) for drawn in picks]
    assert table.change_ci95["fra_Latn"]["fra_Latn"] == pytest.approx(percentile(changes), abs=1e-9)
    assert table.summary()["self_mean_ci95"] == pytest.approx(percentile(changes), abs=1e-9)
    assert table.summary()["cross_mean_ci95"] is None      # no other language: no cross cell
    assert "corpus chrF++ recomputed" in table.interval_method["change"]
    # a cell that kept no sentence statistics (a table read from a file) gets no interval, not a wrong one
    cells["fra_Latn"]["fra_Latn"] = translation_cell("fra_Latn", keep_statistics=False)
    bare = with_intervals(DownstreamTable("flores", list(OUTPUTS), ["fra_Latn"], cells, None), resamples=20)
    assert bare.change_ci95["fra_Latn"]["fra_Latn"] is None and bare.summary()["self_mean_ci95"] is None


def test_downstream_file_without_the_intervals_still_reads():
    table = with_intervals(synthetic_accuracy_table(), resamples=50)
    doc = copy.deepcopy(table.to_json())
    for key in ("change_ci95", "interval_method"):
        del doc[key]
    for key in ("self_mean_ci95", "cross_mean_ci95", "self_minus_cross", "self_minus_cross_ci95"):
        del doc["summary"][key]
    for entry in doc["summary"]["per_target"].values():
        del entry["self_ci95"], entry["cross_mean_ci95"]
    for cols in doc["cells"].values():
        for cell in cols.values():
            del cell["item_correct"]
    old = DownstreamTable.from_json(doc, "old/xcopa.json")
    assert old.to_json() == doc and old.change_ci95 is None and old.interval_method is None
    assert old.self_cross().intervals is None and old.cells["none"]["ita_Latn"].item_correct is None
    assert DownstreamTable.from_json(table.to_json(), "new/xcopa.json").to_json() == table.to_json()


# ------------------------------------------------------------------------------------------------
# mask-eval


ITEMS = [MCItem(f"Question {k}?", ("yes", "no"), k % 2, ["France", "Spain"][k % 2], f"i{k}") for k in range(30)]


def masking_result(correct: dict[str, list[list[int]]], resamples: int = 400) -> MaskingResult:
    """A mask-eval result over ITEMS from given correctness (condition -> templates x items)."""
    templates = [f"t{i}" for i in range(len(next(iter(correct.values()))))]
    tensors = {condition: {"blend": torch.tensor(rows, dtype=torch.bool)} for condition, rows in correct.items()}
    return MaskingResult(list(correct), {"blend": ITEMS}, tensors, templates, {"blend": "cultural"},
                         resamples=resamples, seed=3)


def random_items(rate: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.random() < rate) for _ in ITEMS]


def test_one_template_gets_wilson_and_newcombe_and_a_30_of_30_cell_keeps_a_width(tmp_path):
    none, france, randomized = [1] * 30, random_items(0.6, 1), random_items(0.9, 2)
    result = masking_result({"none": [none], "France": [france], "random0:France": [randomized]})
    record = result.record()
    base = record.cell("none", "blend")
    assert base.accuracy == 1.0 and base.ci95 == pytest.approx(wilson_by_hand(30, 30), abs=1e-12)
    assert base.ci95[0] < 0.9                                   # a percentile bootstrap said [1, 1]
    cell = record.cell("France", "blend")
    assert cell.ci95 == pytest.approx(wilson_by_hand(sum(france), 30), abs=1e-12)
    assert cell.change_ci95 == pytest.approx(newcombe_by_hand(france, none), abs=1e-12)
    assert cell.margin_ci95 == pytest.approx(newcombe_by_hand(france, randomized), abs=1e-12)
    spain = record.cell("France", "blend", "Spain")            # a group's items: the same methods on its 15
    assert spain.change_ci95 == pytest.approx(newcombe_by_hand(france[1::2], none[1::2]), abs=1e-12)
    assert record.interval_method == {"accuracy": "wilson", "change": "newcombe paired score",
                                      "margin_over_random": "newcombe paired score against the group's random condition"}
    result.save(tmp_path)
    with open(tmp_path / "accuracy.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["condition", "benchmark", "group", "n", "accuracy", "ci95_low", "ci95_high", "change",
                      "change_ci95_low", "change_ci95_high", "margin_over_random", "margin_ci95_low", "margin_ci95_high"]


def test_several_templates_or_random_conditions_keep_the_paired_bootstrap():
    rows = {"none": [random_items(0.7, 3), random_items(0.8, 4)], "France": [random_items(0.5, 5), random_items(0.6, 6)],
            "random0:France": [random_items(0.7, 7), random_items(0.7, 8)]}
    result = masking_result(rows, resamples=300)
    record = result.record()
    means = {condition: np.mean(np.asarray(values, dtype=np.float64), axis=0) for condition, values in rows.items()}
    (picks,) = picks_per_language([30], 300, 3)                 # bootstrap_mean draws with a generator seeded 3

    def resampled(values):
        return percentile([values[drawn].mean() for drawn in np.asarray(picks)])

    cell = record.cell("France", "blend")
    assert cell.ci95 == pytest.approx(resampled(means["France"]), abs=1e-12)
    assert cell.change_ci95 == pytest.approx(resampled(means["France"] - means["none"]), abs=1e-12)
    assert cell.margin_ci95 == pytest.approx(resampled(means["France"] - means["random0:France"]), abs=1e-12)
    assert "over 2 templates" in record.interval_method["accuracy"]
    assert record.interval_method["change"].startswith("paired percentile bootstrap over items")

    one_template = masking_result({"none": [rows["none"][0]], "France": [rows["France"][0]],
                                   "random0:France": [rows["random0:France"][0]],
                                   "random1:France": [rows["random0:France"][1]]}, resamples=300)
    cell = one_template.record().cell("France", "blend")
    random_mean = (np.asarray(rows["random0:France"][0]) + np.asarray(rows["random0:France"][1])) / 2
    assert cell.change_ci95 == pytest.approx(newcombe_by_hand(rows["France"][0], rows["none"][0]), abs=1e-12)
    assert cell.margin_ci95 == pytest.approx(resampled(np.asarray(rows["France"][0]) - random_mean), abs=1e-12)
    assert "random conditions' mean" in one_template.interval_method()["margin_over_random"]


def test_mask_file_without_interval_method_still_reads():
    result = masking_result({"none": [[1] * 30], "France": [random_items(0.5, 9)]})
    doc = result.record().to_json()
    assert list(doc)[-1] == "interval_method"
    del doc["interval_method"]
    old = MaskingRecord.from_json(doc, "old/mask_eval.json")
    assert old.interval_method is None and old.to_json() == doc
