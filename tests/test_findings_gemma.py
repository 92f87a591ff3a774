"""The LAPE paper's findings on a real pretrained model, Gemma 3 270M, whose weights are the same on every
machine (a pinned GGUF file, dequantized exactly): what holds here holds everywhere.

Slow (`-m slow`): about 2 minutes on 2 CPU cores once the model is cached (the first use converts it,
about a minute). Settings, smaller than the paper's: LAPE at the paper's 1% (369 of 36,864 MLP
neurons) from 5,000 packed NTREX tokens per language in six scripts; zeroing each language's neurons,
mean NLL on 10 FLORES test sentences per language, with matched random neurons as the control.

Measured with these settings (2026-12-05, transformers 5.25.0), change of mean NLL (nats/token), rows
switched off, columns evaluated:

| row | eng | rus | zho | jpn | arb | hin |
|---|---|---|---|---|---|---|
| eng (24 neurons) | 0.031 | 0.083 | 0.037 | -0.012 | 0.027 | 0.090 |
| rus (80) | 0.038 | **3.583** | 0.381 | 0.244 | 0.995 | 3.067 |
| zho (95) | 0.050 | 1.592 | **3.321** | 1.104 | 0.576 | 1.144 |
| jpn (209) | 0.095 | 2.965 | 2.340 | **3.429** | 1.642 | 4.149 |
| arb (112) | 0.073 | 2.129 | 0.789 | 0.583 | **5.441** | 3.509 |
| hin (142) | 0.040 | 4.330 | 0.619 | 0.708 | 2.933 | **6.052** |
| random rows, largest | 0.115 | 0.189 | 0.138 | 0.284 | 0.228 | 0.291 |

Columns zho, jpn, arb and hin rise most under their own row; rus rises more under Hindi's (whose 142
neurons share many with it: LAPE gives a neuron to every language above the bar); English has few
neurons and barely moves. Per layer, the 369 neurons are [14, 4, 0, 2, 2, 3, 3, 8, 7, 6, 13, 12, 23,
30, 28, 41, 59, 114]: 80% in the top six layers, with a small bump at layer 0. With the intervention
disabled (`intervene` registering no hook) the perplexity test fails (no column is hit at all).
"""

from __future__ import annotations

import pytest

from neurospec.core.models import load_model
from neurospec.data.corpora import corpora_in_directory
from neurospec.data.locate import mirror_root
from neurospec.data.parallel import sib200_sentences
from neurospec.evaluate.perplexity import perplexity_matrix
from neurospec.measure.collect import CollectOptions, collect
from neurospec.select import select_lape

pytestmark = pytest.mark.slow

DATA = mirror_root()
LANGUAGES = ["eng_Latn", "rus_Cyrl", "zho_Hans", "jpn_Jpan", "arb_Arab", "hin_Deva"]


@pytest.fixture(scope="module")
def gemma():
    if not (DATA / "ntrex128").is_dir():
        pytest.skip(f"{DATA} is absent (the data mirror, NEUROSPEC_DATA)")
    return load_model("gemma-3-270m", device="cpu")


@pytest.fixture(scope="module")
def lape(gemma, tmp_path_factory):
    stats = collect(gemma.model, gemma.tokenizer, corpora_in_directory(DATA / "ntrex128", LANGUAGES),
                    tmp_path_factory.mktemp("gemma") / "stats",
                    CollectOptions(mode="packed", seq_len=256, max_tokens=5_000, batch_size=8), quiet=True)
    return select_lape(stats, top_rate=0.01)


@pytest.fixture(scope="module")
def change(gemma, lape):
    texts = {lang: [text for _, text in sib200_sentences(lang, "test", DATA / "sib200_flores")][:10]
             for lang in LANGUAGES}
    matrix = perplexity_matrix(gemma.model, gemma.tokenizer, texts, lape, recipe="zero", random_seeds=[0],
                               batch_size=10)
    return matrix.change("nll")


def hit_most_by_its_own(change: dict, rows: dict[str, str]) -> list[str]:
    """Languages whose mean NLL rises more under their own row than under any other language's row."""
    return [lang for lang, row in rows.items()
            if change[row][lang] > max(change[other][lang] for other in rows.values() if other != row)]


def test_deactivating_a_languages_neurons_raises_its_own_perplexity_more_than_others_and_random(change):
    ours = {lang: lang for lang in LANGUAGES}
    # each language's perplexity rises most when its own neurons are switched off (LAPE assigns a neuron to
    # every language above the bar, so rows overlap: one row moves several columns)
    assert len(hit_most_by_its_own(change, ours)) >= 4, change
    # by far more than matched random neurons move it: the paper's perplexity multiplies
    own = {lang: change[lang][lang] for lang in LANGUAGES if lang != "eng_Latn"}  # English: few neurons
    random_own = {lang: change[f"random0:{lang}"][lang] for lang in own}
    assert all(own[lang] > 1.0 and own[lang] > 5 * max(random_own[lang], 0.05) for lang in own), (own, random_own)
    # and matched random neurons move no language much
    assert max(abs(v) for lang in LANGUAGES for v in change[f"random0:{lang}"].values()) < 0.5, change


def test_language_neurons_concentrate_in_the_top_layers(lape):
    counts = lape.per_layer_counts(None, "act").tolist()
    top = counts[-len(counts) // 3:]
    # the top third of 18 layers would hold a third of the neurons if they were spread evenly
    assert sum(top) > 0.5 * sum(counts), counts
