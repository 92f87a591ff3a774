"""The LAPE and amplification papers' findings on the small toy model, with margins a broken pipeline misses.

Slow (`-m slow`): the small toy model is trained first when it is not cached (about 2 minutes). Each
finding is checked twice: on the language-specific neurons it must hold, and the same pipeline
pointed at matched random neurons must not show it, so the test fails when the intervention is
disabled (nothing changes: both tests then fail, checked) or lands on the wrong neurons.

A toy's weights differ from machine to machine (fp32 sums in another order), so only what held on
three training seeds of the toy is asserted (`python benchmarks/findings_seeds.py`, 2026-12-05, 2 CPU
cores, transformers 5.25.0; seed 0 is the cached toy the tests use; the LSS margin is over 5 random draws' mean):

| seed | own ΔNLL largest (of 8) | same, random rows | mean excess, ours / random | LSS margin [95% CI] | per draw |
|---|---|---|---|---|---|
| 0 | 8 | 1 | +0.0077 / +0.0004 | +0.101 [+0.059, +0.138] | +0.145 +0.017 +0.088 +0.186 +0.068 |
| 1 | 5 | 0 | +0.0114 / -0.0007 | +0.132 [+0.092, +0.171] | +0.140 +0.220 +0.121 +0.076 +0.100 |
| 2 | 6 | 0 | +0.0059 / -0.0003 | +0.154 [+0.120, +0.188] | +0.153 +0.247 +0.071 +0.182 +0.116 |

Dropped for failing on a seed: the LSS margin at ``set:p_max`` over one matched random draw (seed 1:
-0.035 [-0.079, +0.013]), and "random neurons in LAPE's place show no margin" (seed 0: +0.106
[+0.052, +0.156], the failure a fresh machine hit). A single random draw is a noisy control here: the
per-draw margins above range from +0.017 to +0.247, so the test compares with the mean of five.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neurospec.core.models import load_model
from neurospec.data.corpora import corpora_in_directory
from neurospec.data.locate import mirror_root
from neurospec.data.lss_items import items_from_parallel, parallel_sentences
from neurospec.data.parallel import sib200_sentences
from neurospec.evaluate.intervals import bootstrap_clustered_mean
from neurospec.evaluate.lss import lss_matrix
from neurospec.evaluate.perplexity import perplexity_matrix
from neurospec.measure.collect import CollectOptions, collect
from neurospec.select import select_lape, select_random
from neurospec.toy import RECIPES, ensure_toy

pytestmark = pytest.mark.slow

DATA = mirror_root()
LANGUAGES = list(RECIPES["small"].languages)
LSS_LANGUAGES = ["eng_Latn", "fra_Latn", "rus_Cyrl", "zho_Hans"]
TOP_RATE = 0.05          # of 1408 neurons: about 100, where 1% of a 7B model's is thousands


@pytest.fixture(scope="module")
def small():
    if not (DATA / "ntrex128").is_dir():
        pytest.skip(f"{DATA} is absent (the data mirror, NEUROSPEC_DATA)")
    return load_model(ensure_toy("small"), device="cpu")


def lape_neurons(lm, folder: Path):
    """LAPE neurons from packed NTREX rows (40k tokens per language), as `neurospec select lape --top-rate 0.05`."""
    stats = collect(lm.model, lm.tokenizer, corpora_in_directory(DATA / "ntrex128", LANGUAGES), folder / "packed",
                    CollectOptions(mode="packed", seq_len=128, max_tokens=40_000, batch_size=16), quiet=True)
    return select_lape(stats, top_rate=TOP_RATE)


def sentence_statistics(lm, folder: Path):
    """Per-sentence means of the first 100 NTREX sentences per language (p_max, p_median)."""
    return collect(lm.model, lm.tokenizer, corpora_in_directory(DATA / "ntrex128", LSS_LANGUAGES), folder / "sentence",
                   CollectOptions(mode="sentence", max_tokens=6_000, batch_size=16), quiet=True)


@pytest.fixture(scope="module")
def lape(small, tmp_path_factory):
    return lape_neurons(small, tmp_path_factory.mktemp("findings"))


@pytest.fixture(scope="module")
def sentence_stats(small, tmp_path_factory):
    return sentence_statistics(small, tmp_path_factory.mktemp("findings"))


def dominated(change: dict[str, dict[str, float]], rows: dict[str, str]) -> list[str]:
    """Languages whose row raises their own mean NLL more than any other language's."""
    return [language for language, row in rows.items()
            if change[row][language] > max(0.0, *(v for lang, v in change[row].items() if lang != language))]


def mean_excess(change: dict[str, dict[str, float]], rows: dict[str, str]) -> float:
    """Mean over languages of (own NLL change - mean change on the other languages)."""
    excess = [change[row][language] - sum(v for lang, v in change[row].items() if lang != language)
              / (len(change[row]) - 1) for language, row in rows.items()]
    return sum(excess) / len(excess)


def perplexity_finding(lm, lape) -> dict:
    """Zeroing each language's LAPE neurons (and matched random ones): languages whose own NLL rises most, and the
    mean excess of the own-language rise over the others'."""
    texts = {lang: [text for _, text in sib200_sentences(lang, "test", DATA / "sib200_flores")][:60]
             for lang in LANGUAGES}
    matrix = perplexity_matrix(lm.model, lm.tokenizer, texts, lape, recipe="zero", random_seeds=[0], batch_size=32)
    change = matrix.change("nll")
    ours = {lang: lang for lang in LANGUAGES}
    random = {lang: f"random0:{lang}" for lang in LANGUAGES}
    return {"dominated": dominated(change, ours), "random_dominated": dominated(change, random),
            "excess": mean_excess(change, ours), "random_excess": mean_excess(change, random), "change": change}


def lss_finding(lm, lape, sentence_stats, recipe: str = "set:p_max*5", decoys: tuple[int, ...] = (1, 2, 3, 4, 5)) -> dict:
    """LSS under ``recipe`` of the LAPE neurons and of random neurons put in their place (decoys: matched counts,
    LAPE's neurons excluded, one draw per seed), compared item for item over all cells: per decoy, and against
    the decoys' mean, the difference of the shift indicators with its interval (items resampled with all their
    cells). One random draw alone is a poor control: on a toy, single draws shift from as much as LAPE's
    neurons to far less."""
    items = items_from_parallel(parallel_sentences("flores", LSS_LANGUAGES, split="test",
                                                   data_dir=DATA / "sib200_flores"), limit=60)
    chosen = lape.select(*LSS_LANGUAGES)

    def shifted(neurons):
        matrix = lss_matrix(lm.model, lm.tokenizer, items, neurons, recipe=recipe, stats=sentence_stats,
                            batch_size=32, bootstrap=1000)
        cells = sorted(matrix.cells.items())
        return matrix, torch.cat([cell.shifted.double() for _, cell in cells]), [i for _, c in cells for i in c.ids]

    def compared(other: torch.Tensor) -> dict:
        difference = real - other
        return {"margin": float(difference.mean()),
                "margin_ci95": bootstrap_clustered_mean(difference, ids, resamples=1000)}

    matrix, real, ids = shifted(chosen)
    found: dict = {"recipe": recipe, "mean_d0": matrix.mean_d0, "lss": float(real.mean()), "decoys": {}}
    draws = []
    for seed in decoys:
        _, values, decoy_ids = shifted(select_random(chosen, seed=seed, exclude=True))
        assert decoy_ids == ids
        draws.append(values)
        found["decoys"][str(seed)] = {"lss": float(values.mean()), **compared(values)}
    found["over_decoy_mean"] = compared(torch.stack(draws).mean(0))
    return found


def test_deactivating_a_languages_neurons_raises_its_own_perplexity_most(small, lape):
    found = perplexity_finding(small, lape)
    assert len(found["dominated"]) >= 5, found
    assert len(found["random_dominated"]) <= 2, found
    assert found["excess"] > 5 * max(found["random_excess"], 0.001), found


def test_amplifying_a_languages_neurons_shifts_answers_toward_it_more_than_random_neurons(
        small, lape, sentence_stats):
    found = lss_finding(small, lape, sentence_stats)
    assert found["mean_d0"] < 0  # the cut is sound: unmodified, the source ending is the likelier one
    # item for item, LAPE's neurons shift more answers than random neurons in their place, on average over draws
    assert found["over_decoy_mean"]["margin_ci95"][0] > 0, found
