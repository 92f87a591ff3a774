"""Steering by generation: every batch element is steered, shares match the identified languages."""

from __future__ import annotations

import json

import pytest
import torch
from interventions_common import TEXTS, neuron_set, sentence_stats, tiny_llama, tok

from neurospec.data.lss_items import parallel_sentences
from neurospec.evaluate.intervals import newcombe_paired, wilson
from neurospec.evaluate.scoring import generate_texts
from neurospec.evaluate.steering import LanguageIdentifier, prompts_from_parallel, steer_generation
from neurospec.interventions.recipes import Recipe
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.util.errors import NeurospecError


def test_language_identifier_covers_the_amplification_papers_languages():
    ident = LanguageIdentifier()
    assert ident.identify("Le chat dort sur le tapis parce qu'il fait chaud.") == "fra_Latn"
    assert ident.identify("Die Katze schläft auf der Matte, weil es warm ist.") == "deu_Latn"
    assert ident.identify(" 12, 13 ...") is None
    eighteen = "eng nld ind zsm vie jpn zho_Hans fra por rus_Cyrl est hat ita quy swh tam tha tur".split()
    assert len(LanguageIdentifier(eighteen).candidates) == 18  # each has a py3langid label
    with pytest.raises(NeurospecError, match="cannot identify"):
        LanguageIdentifier(["aka_Latn"])
    restricted = LanguageIdentifier(["en", "de"])
    assert restricted.identify("Le chat dort sur le tapis parce qu'il fait chaud.") in ("eng_Latn", "deu_Latn")


def steering_model():
    """Layer-1 down_in neuron 0 writes toward token " A" only, so setting it high makes every next token " A"."""
    model = tiny_llama()
    a = tok()(" A", add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        model.lm_head.weight[a] = 0
        model.lm_head.weight[a, 0] = 5.0
        down = model.model.layers[-1].mlp.down_proj.weight
        down[:, 0] = 0
        down[0, 0] = 1.0
    return model, a


def test_every_batch_element_is_steered_and_rows_equal_direct_generation():
    model, a = steering_model()
    width = model.config.intermediate_size
    neurons = NeuronSet({"fra_Latn": {"down_in": {1: [0]}}}, NeuronSetMeta(num_layers=2, widths={"down_in": width}))
    prompts = {"eng_Latn": TEXTS["eng_Latn"], "deu_Latn": TEXTS["deu_Latn"]}
    result = steer_generation(model, tok(), prompts, neurons, recipe="set:1000", max_new_tokens=4, batch_size=3)
    for source, texts in prompts.items():
        for output in result.outputs["fra_Latn"][source]:
            ids = tok()(output["text"], add_special_tokens=False)["input_ids"]
            assert ids == [a] * 4  # every element of every batch, not only the first
        alone = [generate_texts(model, tok(), [t], max_new_tokens=4)[0].text for t in texts]
        assert [o["text"] for o in result.outputs["none"][source]] == alone


def test_shares_count_the_identified_languages(tmp_path):
    model = tiny_llama()
    neurons = neuron_set(model)
    stats = sentence_stats(model, tmp_path)
    prompts = {"eng_Latn": TEXTS["eng_Latn"][:3], "fra_Latn": TEXTS["fra_Latn"][:3]}
    result = steer_generation(model, tok(), prompts, neurons, recipe="set:p_max*3", stats=stats, targets=["de"],
                              random_seeds=(0,), max_new_tokens=6, candidates=["en", "fr", "de"])
    assert [r.name for r in result.rows] == ["none", "deu_Latn", "random0:deu_Latn"]
    direct = generate_texts(model, tok(), prompts["eng_Latn"], max_new_tokens=6,
                            intervention=Recipe.parse("set:p_max*3").edit(neurons, "deu_Latn", stats))
    assert [o["text"] for o in result.outputs["deu_Latn"]["eng_Latn"]] == [g.text for g in direct]
    ident = LanguageIdentifier(["en", "fr", "de"])
    k = sum(ident.identify(g.text) == "deu_Latn" for g in direct)
    share = result.share("deu_Latn", "eng_Latn")
    assert (share.k, share.n) == (k, 3)
    result.save(tmp_path / "steer")
    saved = json.loads((tmp_path / "steer" / "steer.json").read_text())
    assert len(saved["table"]) == 2 * 2
    lines = (tmp_path / "steer" / "generations.jsonl").read_text().splitlines()
    assert len(lines) == 3 * 2 * 3
    # intervals: Wilson for each share, Newcombe's paired interval for the change on the same prompts
    generations = [json.loads(line) for line in lines]
    assert saved["interval_method"] == {"share": "wilson", "change": "newcombe paired score"}
    for line in saved["table"]:
        steered = in_target(generations, line["row"], line["source"], line["target"])
        baseline = in_target(generations, "none", line["source"], line["target"])
        assert line["ci95"] == list(wilson(sum(steered), 3)) and line["baseline"]["ci95"] == list(wilson(sum(baseline), 3))
        assert line["change"] == line["share"] - line["baseline"]["share"]
        assert line["change_ci95"] == list(newcombe_paired(steered, baseline))
        assert line["change_ci95"][0] <= line["change"] <= line["change_ci95"][1]
        assert line["change_ci95"][0] < line["change_ci95"][1]


def in_target(generations: list[dict], row: str, source: str, target: str) -> list[bool]:
    """Per prompt of ``source``, in order: whether ``row``'s continuation was identified as ``target``."""
    return [g["language"] == target for g in generations if (g["row"], g["source"]) == (row, source)]


def test_prompts_from_parallel_and_bad_input():
    prompts = prompts_from_parallel(parallel_sentences("ntrex", ["en", "zh"]), limit=3)
    assert len(prompts["eng_Latn"]) == 3 and all(p for p in prompts["zho_Hans"])
    model = tiny_llama()
    with pytest.raises(NeurospecError, match="no prompts for eng_Latn"):
        steer_generation(model, tok(), {"eng_Latn": []}, neuron_set(model), recipe="zero")
