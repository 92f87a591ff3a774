"""Toy models: held-out ids never trained on, seeded determinism, the cached small fixture."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from neurospec.data.locate import mirror_root
from neurospec.toy import RECIPES, Recipe, heldout_ids, load_toy_data, read_report, train_toy

DATA = mirror_root()
pytestmark = pytest.mark.skipif(not (DATA / "ntrex128").exists(), reason=f"shared data not found at {DATA}")

MICRO = Recipe("micro", languages=("eng_Latn", "deu_Latn", "rus_Cyrl"), vocab_size=700, hidden_size=32, num_layers=2,
               num_heads=2, intermediate_size=48, seq_len=64, batch_size=8, steps=12, warmup_steps=3)


def _file_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]


def test_heldout_sentence_ids_are_never_trained_in_any_language():
    recipe = RECIPES["main"]
    data = load_toy_data(recipe)
    ntrex_out, flores_out = heldout_ids(recipe)
    assert len(ntrex_out) == round(0.1 * 1997) and len(flores_out) == 204
    codes = {"eng_Latn": "src.eng", "deu_Latn": "ref.deu", "zho_Hans": "ref.zho-CN", "swh_Latn": "ref.swa",
             "arb_Arab": "ref.arb", "jpn_Jpan": "ref.jpn"}
    for key, code in codes.items():
        lines = _file_lines(DATA / "ntrex128" / f"newstest2019-{code}.txt")
        trained = Counter(data.train[key])
        for i in ntrex_out:  # a held-out line is only "in training" if the same text also sits at a kept id
            kept_twins = sum(1 for j, line in enumerate(lines) if line == lines[i] and j not in ntrex_out)
            assert trained[lines[i]] == 0 or kept_twins > 0, (key, i, lines[i])
    for key in recipe.languages:  # FLORES: read the TSVs directly
        folder = DATA / "sib200_flores" / key
        test_texts = {line.split("\t")[2] for line in _file_lines(folder / "test.tsv")[1:]}
        assert not test_texts & set(data.train[key]), key
        assert len(data.heldout[key]) == len(ntrex_out) + 204
    assert set(data.train) == set(recipe.languages)


def test_same_seed_and_threads_give_the_same_weights(tmp_path):
    first = read_report(train_toy(MICRO, tmp_path / "a", quiet=True))
    second = read_report(train_toy(MICRO, tmp_path / "b", quiet=True))
    other = read_report(train_toy(dataclasses.replace(MICRO, seed=1), tmp_path / "c", quiet=True))
    assert first["weights_sha256"] == second["weights_sha256"]
    assert other["weights_sha256"] != first["weights_sha256"]
    assert set(first["heldout_loss"]) == set(MICRO.languages)
    assert (tmp_path / "a" / "config.json").exists() and (tmp_path / "a" / "tokenizer.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_saved_toy_loads_like_any_model(tmp_path):
    import torch

    from neurospec.core.models import load_model
    from neurospec.toy import weights_checksum

    folder = train_toy(MICRO, tmp_path / "m", quiet=True)
    lm = load_model(folder, device="cpu")
    assert weights_checksum(lm.model) == read_report(folder)["weights_sha256"]
    assert lm.sites.width("act") == MICRO.intermediate_size and lm.sites.num_layers == MICRO.num_layers
    prompt = lm.tokenizer.apply_chat_template([{"role": "user", "content": "Hallo"}], tokenize=False,
                                              add_generation_prompt=True)
    assert prompt.startswith("<bos><|user|>Hallo<|end|>")
    with torch.no_grad():
        assert lm.model(**lm.tokenizer(["Hallo Welt"], return_tensors="pt")).logits.shape[-1] == len(lm.tokenizer)


@pytest.mark.slow
def test_small_fixture_is_built_when_missing_and_learned_something():
    import math

    from neurospec.toy import default_cache_dir, ensure_toy

    folder = ensure_toy("small")  # the user cache, shared with tests/test_findings.py: trained there when missing
    assert folder.parent == default_cache_dir()
    report = json.loads((folder / "training.json").read_text())
    uniform = math.log(RECIPES["small"].vocab_size)
    assert max(report["heldout_loss"].values()) < uniform - 1.0
    assert report["weights_sha256"].startswith("sha256:")
    assert ensure_toy("small") == folder  # cached: not trained again
