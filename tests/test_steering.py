"""Steering by generation: every batch element is steered, shares match the identified languages."""

from __future__ import annotations

import json
import math

import pytest
import torch
from interventions_common import TEXTS, neuron_set, sentence_stats, tiny_llama, tok

from neurospec.data.lss_items import parallel_sentences
from neurospec.evaluate.fluency import FLUENCY_MEASURES, distinct_n, repeated_token_share
from neurospec.evaluate.intervals import newcombe_paired, wilson
from neurospec.evaluate.scoring import generate_texts
from neurospec.evaluate.steering import LanguageIdentifier, prompts_from_parallel, steer_generation
from neurospec.interventions.recipes import Recipe
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.report.discover import Artifact
from neurospec.report.sections.steering import steer_section
from neurospec.results.steering import SteeringRecord
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
    assert saved["interval_method"] == {"share": "wilson", "change": "newcombe paired score",
                                        "fluency": "percentile bootstrap over prompts",
                                        "fluency_change": "paired percentile bootstrap over prompts"}
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


def test_distinct_n_and_repeated_tokens_by_hand():
    tokens = [7, 7, 3, 7, 3, 9]
    assert distinct_n(tokens, 1) == 3 / 6                  # {7, 3, 9} of 6 tokens
    assert distinct_n(tokens, 2) == 4 / 5                  # (7,7) (7,3) (3,7) (7,3) (3,9): 4 distinct of 5
    assert repeated_token_share(tokens) == 1 / 5           # only 7 -> 7 repeats the token before it
    assert distinct_n([5, 5, 5, 5], 2) == 1 / 3 and repeated_token_share([5, 5, 5, 5]) == 1.0
    assert distinct_n([4], 2) is None and repeated_token_share([4]) is None and distinct_n([], 1) is None


def test_fluency_is_measured_on_the_generated_tokens_under_the_unmodified_model(tmp_path):
    model = tiny_llama()
    neurons, stats = neuron_set(model), sentence_stats(model, tmp_path)
    prompts = {"eng_Latn": TEXTS["eng_Latn"][:4]}
    result = steer_generation(model, tok(), prompts, neurons, recipe="set:p_max*3", stats=stats, targets=["de"],
                              max_new_tokens=6, candidates=["en", "fr", "de"])
    steered, unmodified = result.outputs["deu_Latn"]["eng_Latn"], result.outputs["none"]["eng_Latn"]
    for output in steered + unmodified:  # an independent forward pass of prompt + continuation, no intervention
        assert output["token_ids"] and output["nll"] > 0
        prompt_ids = tok()(output["prompt"])["input_ids"]
        ids = torch.tensor([prompt_ids + output["token_ids"]])
        with torch.no_grad():
            logprobs = model(ids).logits[0, :-1].float().log_softmax(-1)
        picked = logprobs[torch.arange(ids.shape[1] - 1), ids[0, 1:]][len(prompt_ids) - 1:]
        assert output["nll"] == pytest.approx(-float(picked.sum()), abs=1e-4)
    assert [o["token_ids"] for o in steered] != [o["token_ids"] for o in unmodified]  # the edit changed the text
    line = SteeringRecord.from_json(result.to_json(), "steer.json").table[0]
    assert list(line.fluency) == list(FLUENCY_MEASURES)
    ppl = line.fluency["perplexity"]
    tokens = sum(len(o["token_ids"]) for o in steered)
    assert ppl.steered.value == pytest.approx(math.exp(sum(o["nll"] for o in steered) / tokens))
    assert ppl.baseline.value == pytest.approx(
        math.exp(sum(o["nll"] for o in unmodified) / sum(len(o["token_ids"]) for o in unmodified)))
    distinct = line.fluency["distinct_2"]
    per_prompt = [distinct_n(o["token_ids"], 2) for o in steered]
    assert distinct.steered.value == pytest.approx(sum(per_prompt) / len(per_prompt))
    assert distinct.steered.n == 4 and distinct.baseline.n == 4
    for name, comparison in line.fluency.items():
        for measured in (comparison.steered, comparison.baseline):
            assert measured.ci95[0] <= measured.value + 1e-12 and measured.value <= measured.ci95[1] + 1e-12, name
        assert comparison.change == comparison.steered.value - comparison.baseline.value
        assert comparison.change_ci95[0] <= comparison.change_ci95[1]
    check_report_shows_fluency(result, tmp_path)
    again = steer_generation(model, tok(), prompts, neurons, recipe="set:p_max*3", stats=stats, targets=["de"],
                             max_new_tokens=6, candidates=["en", "fr", "de"])
    assert again.to_json()["table"] == result.to_json()["table"]  # seeded bootstrap: the same intervals


def test_a_steer_json_without_fluency_still_reads(tmp_path):
    model = tiny_llama()
    result = steer_generation(model, tok(), {"eng_Latn": TEXTS["eng_Latn"][:2]}, neuron_set(model), recipe="zero",
                              targets=["de"], max_new_tokens=3)
    document = result.to_json()
    for line in document["table"]:
        del line["fluency"]
    document["interval_method"] = {"share": "wilson", "change": "newcombe paired score"}
    record = SteeringRecord.from_json(document, "old/steer.json")
    assert record.table[0].fluency is None and record.to_json() == document
    section = steer_section(Artifact("steer", "steer/steer.json", tmp_path / "steer.json", document))
    share = next(t for b in section.blocks for t in b.tables if t.id == "share")
    assert not any(c.startswith("distinct") for c in share.columns)
    assert all(t.id != "fluency" for b in section.blocks for t in b.tables)


def check_report_shows_fluency(result, folder) -> None:
    """The report's share table holds each fluency value and change; the fluency table their intervals."""
    path = result.save(folder / "steer")
    section = steer_section(Artifact("steer", "steer/steer.json", path, json.loads(path.read_text())))
    tables = {t.id: t for b in section.blocks for t in b.tables}
    share, fluency = tables["share"], tables["fluency"]
    for line, cells in zip(result.record().table, share.rows):
        values = dict(zip(share.columns, cells))
        ppl = line.fluency["perplexity"]
        assert values["ppl (unmodified model)"].value == ppl.steered.value
        assert values["ppl (unmodified model) change"].value == ppl.change
        assert values["distinct-2"].value == line.fluency["distinct_2"].steered.value
    first = dict(zip(fluency.columns, fluency.rows[0]))
    comparison = result.record().table[0].fluency["distinct_1"]
    assert (first["measure"].text, first["CI low"].value, first["unmodified"].value, first["change CI high"].value) == (
        "distinct-1", comparison.steered.ci95[0], comparison.baseline.value, comparison.change_ci95[1])
