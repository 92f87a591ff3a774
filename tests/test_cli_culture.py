"""`neurospec attribute / select culture / mask-eval / finetune` as a user runs them: files equal the Python API's results."""

from __future__ import annotations

import json

import pytest
import torch
from interventions_common import tiny_llama, tok
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.core.models import load_model
from neurospec.data.blend import BLEND_TEMPLATES, blend_prompt_format
from neurospec.data.mc_sets import load_mc_set
from neurospec.evaluate.masking import mask_eval, masking_conditions
from neurospec.measure.attribution import AttributionScores, attribute
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.select.culture import select_culture_general, select_culture_specific, select_random_pooled

runner = CliRunner()
COUNTRIES = "China,Iran"


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A saved tiny Llama and the three attribution runs the selection needs."""
    root = tmp_path_factory.mktemp("culture")
    tiny_llama().save_pretrained(root / "model")
    tok().save_pretrained(root / "model")
    common = ["--model", root / "model", "--countries", COUNTRIES, "--limit", 3, "--quiet", "--batch-size", 4]
    for data in ("blend", "blend-control", "countryrc"):
        run("attribute", *common, "--data", data, "--templates", "blend,terse", "--out", root / data)
    return root


def triples(neurons, group):
    return {(site, layer, int(i)) for _, site, layer, idx in neurons.entries([group]) for i in idx}


def loaded(study):
    return load_model(study / "model", device="cpu")


def test_attribute_equals_the_api(study):
    lm = loaded(study)
    items = load_mc_set("blend", countries=["China", "Iran"], split="find", limit=3)
    api = attribute(lm.model, lm.tokenizer, items, fmt=blend_prompt_format(),
                    templates=[BLEND_TEMPLATES["blend"], BLEND_TEMPLATES["terse"]], batch_size=4, quiet=True)
    saved = AttributionScores.load(study / "blend")
    assert saved.groups == ["China", "Iran"] and saved.counts.tolist() == [6, 6]
    for site in ("gate_pre", "up_pre", "q", "k", "v"):
        torch.testing.assert_close(saved.scores[site], api.scores[site], rtol=1e-6, atol=1e-12)
    assert saved.meta["templates"] == ["blend", "terse"] and saved.meta["dataset"] == "blend"
    control = AttributionScores.load(study / "blend-control")
    assert control.meta["clamped_examples"] == control.num_examples
    assert (control.scores["gate_pre"] >= 0).all()
    crc = AttributionScores.load(study / "countryrc")
    assert crc.groups == ["China", "Iran"] and crc.meta["clamped_examples"] == 0


def test_resume_of_a_finished_run_keeps_it(study):
    before = (study / "blend" / "scores.safetensors").read_bytes()
    run("attribute", "--model", study / "model", "--countries", COUNTRIES, "--limit", 3, "--quiet", "--batch-size", 4,
        "--data", "blend", "--templates", "blend,terse", "--out", study / "blend", "--resume")
    assert (study / "blend" / "scores.safetensors").read_bytes() == before
    again = runner.invoke(app, ["attribute", "--model", str(study / "model"), "--data", "blend", "--countries", COUNTRIES,
                                "--limit", "3", "--out", str(study / "blend"), "--quiet"])
    assert again.exit_code == 2 and "resume" in again.output


def test_select_culture_equals_the_api(study, tmp_path):
    out = tmp_path / "culture.json"
    run("select", "culture", "--blend", study / "blend", "--control", study / "blend-control", "--countryrc",
        study / "countryrc", "--countries", COUNTRIES, "--mlp-rate", 0.02, "--attention-rate", 0.02,
        "--specific-rate", 0.02, "--random-seeds", 2, "--out", out)
    runs = [AttributionScores.load(study / name) for name in ("blend", "blend-control", "countryrc")]
    general = select_culture_general(*runs, mlp_rate=0.02, attention_rate=0.02)
    specific = select_culture_specific(*runs, countries=["China", "Iran"], rate=0.02)
    saved = NeuronSet.load(out)
    assert saved.groups == ("culture-general", "China", "Iran")
    for group, source in (("culture-general", general), ("China", specific), ("Iran", specific)):
        assert saved.count(group) == source.count(group) > 0
        assert triples(saved, group) == triples(source, group)
    randoms = NeuronSet.load(tmp_path / "culture.random.json")
    assert randoms == select_random_pooled(saved, seeds=range(2))


def test_mask_eval_equals_the_api(study, tmp_path):
    run("select", "culture", "--blend", study / "blend", "--control", study / "blend-control", "--countryrc",
        study / "countryrc", "--countries", COUNTRIES, "--mlp-rate", 0.02, "--attention-rate", 0.02,
        "--specific-rate", 0.02, "--random-seeds", 1, "--out", tmp_path / "culture.json")
    run("mask-eval", "--model", study / "model", "--neurons", tmp_path / "culture.json", "--random",
        tmp_path / "culture.random.json", "--groups", "culture-general,China", "--benchmarks", "blend,qnli",
        "--countries", COUNTRIES, "--limit", 3, "--quiet", "--out", tmp_path / "mask")
    saved = json.loads((tmp_path / "mask" / "mask_eval.json").read_text())
    assert saved["conditions"] == ["none", "culture-general", "China", "random0:culture-general", "random0:China"]
    lm = loaded(study)
    neurons = NeuronSet.load(tmp_path / "culture.json")
    conditions = masking_conditions(neurons, ["culture-general", "China"],
                                    random=NeuronSet.load(tmp_path / "culture.random.json"))
    sets = {"blend": load_mc_set("blend", countries=["China", "Iran"], split="test", limit=3),
            "qnli": load_mc_set("qnli", limit=3)}
    api = mask_eval(lm.model, lm.tokenizer, sets, conditions, fmt=blend_prompt_format(),
                    templates=[BLEND_TEMPLATES["blend"]], kinds={"qnli": "nlu"}, quiet=True)
    expected = api.table()
    assert [(c["condition"], c["benchmark"], c["group"]) for c in saved["cells"]] == \
        [(c["condition"], c["benchmark"], c["group"]) for c in expected]
    for got, want in zip(saved["cells"], expected):
        assert got["accuracy"] == pytest.approx(want["accuracy"])
    assert set(saved["related"]["blend"]) == {"culture-general", "China"}
    assert (tmp_path / "mask" / "related_blend.csv").exists() and (tmp_path / "mask" / "accuracy.csv").exists()


def test_finetune_trains_only_the_chosen_mlp(study, tmp_path):
    run("select", "culture", "--blend", study / "blend", "--control", study / "blend-control", "--countryrc",
        study / "countryrc", "--countries", COUNTRIES, "--kind", "general", "--mlp-rate", 0.02, "--out",
        tmp_path / "culture.json")
    neurons = NeuronSet.load(tmp_path / "culture.json")
    counts = neurons.per_layer_counts("culture-general")
    richest = int(torch.argmax(counts))
    run("finetune", "--model", study / "model", "--neurons", tmp_path / "culture.json", "--layers", "richest:1",
        "--data", "qnli", "--samples", 6, "--lr", 1e-3, "--evaluate", "qnli", "--eval-limit", 4, "--quiet",
        "--save-model", "--out", tmp_path / "ft")
    document = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert document["layers"] == [richest]
    assert document["training"]["items_used"] == 6
    assert set(document["evaluation"]["qnli"]) == {"kind", "before", "after", "change"}
    before = loaded(study).model.state_dict()
    after = load_model(tmp_path / "ft" / "model", device="cpu").model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith(f"model.layers.{richest}.mlp.") for name in changed)


def _qnli_file(path, rows: int):
    lines = ["index\tquestion\tsentence\tlabel"]
    lines += [f"{i}\tWhere is item {i}?\tItem {i} is in box {i}.\t{'entailment' if i % 2 else 'not_entailment'}"
              for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_finetune_never_evaluates_on_items_it_trained_on(study, tmp_path):
    """Training on QNLI and evaluating QNLI from one file cuts it in two; the recorded ids show it, and the
    same file given as the training file too is refused unless --allow-overlap."""
    qnli = _qnli_file(tmp_path / "qnli.tsv", 8)
    common = ["--model", study / "model", "--layers", "0", "--data", "qnli", "--path", f"qnli={qnli}",
              "--samples", 100, "--lr", 1e-3, "--evaluate", "qnli", "--quiet"]
    run("finetune", *common, "--out", tmp_path / "ft")
    splits = json.loads((tmp_path / "ft" / "finetune.json").read_text())["splits"]
    trained, evaluated = set(splits["train"]["ids"]), set(splits["evaluation"]["qnli"])
    assert trained and evaluated and not trained & evaluated
    assert trained | evaluated == {f"qnli-{i}" for i in range(8)}
    assert splits["shared_items"] == {"qnli": 0}

    refused = runner.invoke(app, [str(a) for a in ["finetune", *common, "--train-path", qnli,
                                                   "--out", tmp_path / "ft2"]])
    assert refused.exit_code == 2
    assert "also evaluation items of qnli (8 of 8)" in " ".join(refused.output.split())
    assert not (tmp_path / "ft2").exists()
    run("finetune", *common, "--train-path", qnli, "--allow-overlap", "--out", tmp_path / "ft3")
    overlap = json.loads((tmp_path / "ft3" / "finetune.json").read_text())["splits"]
    assert overlap["shared_items"] == {"qnli": 8} and overlap["overlap_allowed"]


def test_attribute_countryrc_defaults_to_the_reference_prompts(study, tmp_path):
    """`attribute --data countryrc` with no --templates: the reference's 4 prompts, no prefill (the Python
    countryrc_prompts()); `--templates blend` keeps the earlier protocol (the study fixture's run)."""
    from neurospec.data.countryrc import COUNTRYRC_TEMPLATES, countryrc_prompts

    run("attribute", "--model", study / "model", "--countries", COUNTRIES, "--limit", 2, "--quiet", "--batch-size", 4,
        "--data", "countryrc", "--out", tmp_path / "crc")
    saved = AttributionScores.load(tmp_path / "crc")
    assert saved.meta["templates"] == list(COUNTRYRC_TEMPLATES) and saved.counts.tolist() == [8, 8]
    lm = loaded(study)
    templates, fmt = countryrc_prompts()
    items = load_mc_set("countryrc", countries=["China", "Iran"], split="find", limit=2)
    api = attribute(lm.model, lm.tokenizer, items, fmt=fmt, templates=templates, batch_size=4, quiet=True)
    for site in ("gate_pre", "q"):
        torch.testing.assert_close(saved.scores[site], api.scores[site], rtol=1e-6, atol=1e-12)
    earlier = AttributionScores.load(study / "countryrc")
    assert earlier.meta["templates"] == ["blend", "terse"] and earlier.counts.tolist() == [6, 6]
    mixed = runner.invoke(app, ["attribute", "--model", str(study / "model"), "--data", "countryrc", "--templates",
                                "countryrc,blend", "--out", str(tmp_path / "mixed"), "--quiet"])
    assert mixed.exit_code == 2 and "separate runs" in " ".join(mixed.output.split())
