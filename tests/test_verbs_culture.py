"""The culture verbs called from Python (neurospec.verbs.culture): options built from plain values, a shared
loaded model, results and files equal to the engines' own, stamped with the verb's provenance."""

from __future__ import annotations

import json

import pytest
import torch
from interventions_common import tiny_llama, tok

from neurospec.core.models import load_model
from neurospec.core.provenance import describe_model
from neurospec.data.blend import BLEND_TEMPLATES, blend_prompt_format
from neurospec.data.mc_sets import load_mc_set
from neurospec.evaluate.masking import mask_eval as engine_mask_eval
from neurospec.evaluate.masking import masking_conditions
from neurospec.measure.attribution import AttributionScores
from neurospec.measure.attribution import attribute as engine_attribute
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.select.culture import select_culture_general, select_culture_specific, select_random_pooled
from neurospec.util.errors import NeurospecError
from neurospec.verbs.culture import (
    AttributeOptions,
    FinetuneOptions,
    MaskEvalOptions,
    SelectCultureOptions,
    attribute,
    finetune,
    mask_eval,
    select_culture,
)

COMMON = {"countries": "China,Iran", "limit": "3", "templates": "blend,terse", "batch_size": "4", "quiet": "true"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A saved tiny Llama, loaded once, and the three attribution runs made by the verb with that model."""
    root = tmp_path_factory.mktemp("verbs-culture")
    tiny_llama().save_pretrained(root / "model")
    tok().save_pretrained(root / "model")
    lm = load_model(root / "model", device="cpu")
    for data in ("blend", "blend-control", "countryrc"):
        attribute(AttributeOptions.from_values({"model": str(root / "model"), "data": data, "out": str(root / data),
                                                **COMMON}), lm=lm)
    return root, lm


def selection_options(root, out, **more) -> SelectCultureOptions:
    return SelectCultureOptions.from_values({
        "blend": str(root / "blend"), "control": str(root / "blend-control"), "countryrc": str(root / "countryrc"),
        "out": str(out), "countries": "China,Iran", "mlp_rate": "0.02", "attention_rate": "0.02",
        "specific_rate": "0.02", **more})


def test_attribute_with_a_shared_model_equals_the_engine_and_is_stamped(study, capsys):
    root, lm = study
    options = AttributeOptions.from_values({"model": str(root / "model"), "data": "blend", "out": str(root / "again"),
                                            **{**COMMON, "quiet": "false"}})
    scores = attribute(options, lm=lm)
    items = load_mc_set("blend", countries=["China", "Iran"], split="find", limit=3)
    api = engine_attribute(lm.model, lm.tokenizer, items, fmt=blend_prompt_format(),
                           templates=[BLEND_TEMPLATES["blend"], BLEND_TEMPLATES["terse"]], batch_size=4, quiet=True)
    for site in ("gate_pre", "q"):
        torch.testing.assert_close(scores.scores[site], api.scores[site], rtol=1e-6, atol=1e-12)
    assert scores.groups == ["China", "Iran"] and scores.counts.tolist() == [6, 6]
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in printed] == [["China", "examples", "6"], ["Iran", "examples", "6"]]
    record = json.loads((root / "again" / "attribution.json").read_text())["provenance"]
    assert record["command"] == "neurospec attribute" and record["options"]["data"] == "blend"
    assert record["options"]["limit"] == 3 and "out" not in record["options"]
    assert record["model"]["weights_fingerprint"] == describe_model(lm.model)["weights_fingerprint"]


def test_select_culture_returns_and_saves_the_selection_and_its_baselines(study, tmp_path):
    root, _ = study
    selection = select_culture(selection_options(root, tmp_path / "culture.json", random_sets="2"))
    runs = [AttributionScores.load(root / name) for name in ("blend", "blend-control", "countryrc")]
    expected = select_culture_general(*runs, mlp_rate=0.02, attention_rate=0.02).union(
        select_culture_specific(*runs, countries=["China", "Iran"], rate=0.02))
    saved = NeuronSet.load(tmp_path / "culture.json")
    assert selection.neurons == saved == expected and saved.groups == ("culture-general", "China", "Iran")
    assert selection.random_out == tmp_path / "culture.random.json"
    assert selection.random == NeuronSet.load(selection.random_out) == select_random_pooled(saved, seeds=range(2))
    for neurons in (saved, NeuronSet.load(selection.random_out)):
        record = neurons.meta.source["provenance"]
        assert record["command"] == "neurospec select culture" and record["options"]["random_sets"] == 2
        assert record["options"]["z_threshold"] == 0.5 and "out" not in record["options"]
        assert set(record["inputs"]) == {"blend", "control", "countryrc"}


def test_select_culture_without_random_sets_writes_only_the_selection(study, tmp_path):
    root, _ = study
    selection = select_culture(selection_options(root, tmp_path / "general.json", kind="general"))
    assert selection.random is None and selection.random_out is None
    assert selection.neurons.groups == ("culture-general",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["general.json"]


@pytest.mark.parametrize("more, match", [
    ({"kind": "all"}, r"--kind 'all': use general, specific or both"),
    ({"z_threshold": "nan"}, r"--z nan: give a finite number"),
    ({"random_sets": "1", "random_out": "SAME"}, r"--random-out .* is the --out")])
def test_select_culture_refuses_bad_options_before_writing(study, tmp_path, more, match):
    root, _ = study
    out = tmp_path / "culture.json"
    more = {key: str(out) if value == "SAME" else value for key, value in more.items()}
    with pytest.raises(NeurospecError, match=match):
        select_culture(selection_options(root, out, **more))
    assert not out.exists()


def test_mask_eval_with_a_shared_model_equals_the_engine(study, tmp_path):
    root, lm = study
    selection = select_culture(selection_options(root, tmp_path / "culture.json", random_sets="1"))
    options = MaskEvalOptions.from_values({
        "model": str(root / "model"), "neurons": str(tmp_path / "culture.json"),
        "random": str(tmp_path / "culture.random.json"), "groups": "culture-general,China", "benchmarks": "blend,qnli",
        "countries": "China,Iran", "limit": "3", "quiet": "true", "out": str(tmp_path / "mask")})
    result = mask_eval(options, lm=lm)
    conditions = masking_conditions(selection.neurons, ["culture-general", "China"], random=selection.random)
    sets = {"blend": load_mc_set("blend", countries=["China", "Iran"], split="test", limit=3),
            "qnli": load_mc_set("qnli", limit=3)}
    api = engine_mask_eval(lm.model, lm.tokenizer, sets, conditions, fmt=blend_prompt_format(),
                           templates=[BLEND_TEMPLATES["blend"]], kinds={"blend": "cultural", "qnli": "nlu"}, quiet=True)
    assert [(c["condition"], c["benchmark"], c["group"], c["accuracy"]) for c in result.table()] == \
        [(c["condition"], c["benchmark"], c["group"], c["accuracy"]) for c in api.table()]
    saved = json.loads((tmp_path / "mask" / "mask_eval.json").read_text())
    assert saved["conditions"] == ["none", "culture-general", "China", "random0:culture-general", "random0:China"]
    assert saved["provenance"]["command"] == "neurospec mask-eval"
    assert saved["provenance"]["options"]["benchmarks"] == "blend,qnli"


def test_finetune_trains_only_the_chosen_block_and_returns_its_document(study, tmp_path):
    root, _ = study
    options = FinetuneOptions.from_values({
        "model": str(root / "model"), "layers": "1", "data": "qnli", "samples": "4", "lr": "0.001",
        "evaluate": "qnli", "eval_limit": "2", "quiet": "true", "device": "cpu", "save_model": "true",
        "out": str(tmp_path / "ft")})
    run = finetune(options)
    document = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert run.document == document and run.layers == [1] and run.training.items_used == 4
    before = load_model(root / "model", device="cpu").model.state_dict()
    after = load_model(tmp_path / "ft" / "model", device="cpu").model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and changed <= set(run.training.parameter_names)
    assert all(name.startswith("model.layers.1.mlp.") for name in run.training.parameter_names)
    assert document["provenance"]["command"] == "neurospec finetune"
    assert document["provenance"]["options"]["layers"] == "1" and document["provenance"]["options"]["samples"] == 4


def test_finetune_refuses_an_unknown_block_before_loading(tmp_path):
    options = FinetuneOptions(model="no/such-model", layers="0", block="ffn", out=tmp_path / "ft")
    with pytest.raises(NeurospecError, match=r"--block 'ffn': use mlp or attention"):
        finetune(options)
    assert not (tmp_path / "ft").exists()
