"""Bad values (issue 21, items 4, 5, 8, 9), refused as a user sees it: one `error:` line naming the option, exit 2,
nothing written. Attribution runs in the wrong roles; non-finite factors and values on every path to an edit;
lengths beyond the model's positions; LAPE on one language, random baselines without random groups, an output that
is its own input, one language named twice.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from bad_input_common import refuses, run_cli
from families import family
from interventions_common import neuron_set, saved_study, tiny_llama, tok

from neurospec.core.edits import Edit
from neurospec.evaluate.masking import masking_conditions
from neurospec.interventions.files import InterventionSpec
from neurospec.interventions.recipes import Recipe
from neurospec.measure.attribution import AttributionScores
from neurospec.measure.stats import ActivationStats
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.select import select_lape, select_lape_top_k
from neurospec.select.culture import select_culture_general, select_culture_specific, select_random_pooled
from neurospec.util.errors import NeurospecError

NAN, INF = float("nan"), float("inf")


def fake_run(dataset: str | None, seed: int = 0) -> AttributionScores:
    """A small attribution run (2 countries, 2 layers) as `neurospec attribute --data DATASET` records it."""
    generator = torch.Generator().manual_seed(seed)
    widths = {"gate_pre": 32, "q": 16, "k": 8, "v": 8}
    scores = {site: torch.rand(2, 2, width, generator=generator, dtype=torch.float64) for site, width in widths.items()}
    return AttributionScores(scores, ["China", "Iran"], torch.tensor([3, 3]), torch.tensor([1.5, 1.5], dtype=torch.float64),
                             torch.tensor([1, 2]), {"dataset": dataset, "target": "letter"})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A saved tiny Llama (128 positions), lape.json (eng/fra/deu at act), sentence statistics, three attribution
    runs in attr/, a tiny GPT-2 (n_positions 128) in gpt2/ and intervention files with non-finite numbers."""
    root = saved_study(tmp_path_factory.mktemp("bad-values"), lambda model: {"lape.json": neuron_set(model)})
    for name, dataset in (("blend", "blend"), ("control", "blend-control"), ("countryrc", "countryrc"), ("unnamed", None)):
        fake_run(dataset).save(root / "attr" / name)
    t = tok()
    gpt2 = family("gpt2").build(0, vocab_size=len(t), pad_token_id=t.pad_token_id, bos_token_id=t.bos_token_id,
                                eos_token_id=t.eos_token_id)
    gpt2.save_pretrained(root / "gpt2")
    t.save_pretrained(root / "gpt2")
    values = torch.full((2, 96), NAN)  # act of the tiny Llama: 2 layers x 96
    from safetensors.torch import save_file
    save_file({"p_max.fra_Latn": values}, str(root / "nan.values.safetensors"))
    for name, edit in INTERVENTION_FILES.items():
        document = {"format": "neurospec.intervention", "version": 1,
                    "edits": [{"neurons": "lape.json", "groups": ["fra_Latn"], **edit}]}
        (root / f"{name}.json").write_text(json.dumps(document))  # json.dumps writes NaN / Infinity as Python reads them
    return root


# --------------------------------------------------------------------------------------------
# Item 4: attribution runs in the wrong roles


def culture(study, blend="blend", control="control", countryrc="countryrc"):
    return ["select", "culture", "--blend", study / "attr" / blend, "--control", study / "attr" / control,
            "--countryrc", study / "attr" / countryrc, "--countries", "China,Iran", "--out", "culture.json"]


@pytest.mark.parametrize("roles, match", [
    (dict(blend="control", control="blend"), r"--blend .*blend-control.*not blend"),
    (dict(control="blend", countryrc="blend"), r"--control .*made on blend, not blend-control"),
    (dict(blend="countryrc", control="countryrc"), r"--blend .*countryrc.*not blend"),
    (dict(countryrc="control"), r"--countryrc .*blend-control.*not countryrc"),
    (dict(blend="unnamed", control="unnamed", countryrc="unnamed"), r"--blend and --control .*same attribution run"),
], ids=["swapped", "blend-thrice", "countryrc-as-blend", "control-as-countryrc", "unrecorded-run-twice"])
def test_select_culture_refuses_runs_in_the_wrong_role(study, tmp_path, roles, match):
    refuses(culture(study, **roles), match=match, watch=[study, tmp_path], cwd=tmp_path)


def test_select_culture_refuses_random_out_equal_to_out(study, tmp_path):
    refuses([*culture(study), "--random-sets", 1, "--random-out", "culture.json"], match=r"--random-out .*--out",
            watch=[study, tmp_path], cwd=tmp_path)


def test_select_culture_accepts_the_right_roles(study, tmp_path):
    done = run_cli([*culture(study), "--kind", "general", "--mlp-rate", 0.2, "--attention-rate", 0.2], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert NeuronSet.load(tmp_path / "culture.json").count("culture-general") > 0


def test_select_culture_api_refuses_runs_in_the_wrong_role():
    blend, control, countryrc = fake_run("blend"), fake_run("blend-control"), fake_run("countryrc")
    for select in (select_culture_general, select_culture_specific):
        with pytest.raises(NeurospecError, match=r"^control: .*made on blend, not blend-control"):
            select(blend, blend, countryrc)
        with pytest.raises(NeurospecError, match=r"^countryrc: .*made on blend-control, not countryrc"):
            select(blend, control, control)
    select_culture_general(blend, control, countryrc, mlp_rate=0.2)  # the right roles pass
    select_culture_general(fake_run(None), fake_run(None), fake_run(None), mlp_rate=0.2)  # unrecorded: no check
    select_culture_general(fake_run("BLEnD"), fake_run("blend_control"), countryrc, mlp_rate=0.2)  # as --data takes it
    with pytest.raises(NeurospecError, match=r"z_threshold=nan"):
        select_culture_specific(blend, control, countryrc, countries=["China"], z_threshold=NAN)


# --------------------------------------------------------------------------------------------
# Item 5: non-finite numbers on every path to an edit

INTERVENTION_FILES = {
    "factor-nan": {"op": "scale", "factor": NAN},
    "factor-inf": {"op": "scale", "factor": INF},
    "factor-minus-inf": {"op": "set", "value": 1.0, "factor": -INF},
    "value-nan": {"op": "set", "value": NAN},
    "value-inf": {"op": "add", "value": INF},
    "values-file-nan": {"op": "set", "value": {"file": "nan.values.safetensors", "key": "p_max.fra_Latn"}},
}
INTERVENTION_MATCH = {"factor-nan": r"factor .*nan.*finite", "factor-inf": r"factor .*inf.*finite",
                      "factor-minus-inf": r"factor .*-inf.*finite", "value-nan": r"value .*nan.*finite",
                      "value-inf": r"value .*inf.*finite", "values-file-nan": r"in layer \d .*nan.*finite"}


@pytest.mark.parametrize("name", list(INTERVENTION_FILES))
def test_intervention_file_with_a_non_finite_number_is_refused(study, name):
    with pytest.raises(NeurospecError, match=INTERVENTION_MATCH[name]):
        InterventionSpec.load(study / f"{name}.json").edits_for(tiny_llama())


@pytest.mark.parametrize("name", ["factor-nan", "value-inf", "values-file-nan"])
def test_intervention_check_refuses_a_non_finite_number(study, tmp_path, name):
    refuses(["intervention", "check", study / f"{name}.json", "--model", study / "model"], match=INTERVENTION_MATCH[name],
            watch=[study, tmp_path], cwd=tmp_path)


def model_args(study):
    return ["--model", study / "model", "--neurons", study / "lape.json", "--stats", study / "stats", "--quiet"]


LSS_ITEMS = ["--parallel", "ntrex", "--languages", "en,fr", "--limit", 2, "--bootstrap", 10]


@pytest.mark.parametrize("args, match", [
    (["sweep", *LSS_ITEMS, "--factors", "nan"], r"--factors 'nan'.*finite"),
    (["sweep", *LSS_ITEMS, "--factors", "1,inf"], r"--factors '1,inf'.*finite"),
    (["sweep", *LSS_ITEMS, "--values", "p_max,1e999"], r"--values .*1e999.*finite"),
    (["sweep", *LSS_ITEMS, "--recipe", "set:p_max*1e999"], r"--recipe 'set:p_max\*1e999'.*finite"),
    (["sweep", *LSS_ITEMS, "--recipe", "set:p_max*nan"], r"--recipe 'set:p_max\*nan'.*factor"),
    (["lss", *LSS_ITEMS, "--recipe", "add:-1e999"], r"--recipe 'add:-1e999'.*finite"),
    (["steer", "--prompts", "en=eng_Latn.txt", "--recipe", "set:p_max*1e400"], r"--recipe .*finite"),
    (["ppl", "--corpus", "fr=fra_Latn.txt", "--recipe", "scale*-1e999"], r"--recipe .*finite"),
    (["eval", "xcopa", "--languages", "et", "--groups", "fr", "--limit", 2, "--recipe", "set:1e999"],
     r"--recipe .*finite"),
], ids=["sweep-factors-nan", "sweep-factors-inf", "sweep-values", "sweep-recipe-inf", "sweep-recipe-nan", "lss",
        "steer", "ppl", "eval"])
def test_verbs_refuse_non_finite_recipe_values_up_front(study, tmp_path, args, match):
    refuses([*args, *model_args(study), "--out", tmp_path / "out"], match=match, watch=[study, tmp_path], cwd=study)


def test_mask_eval_refuses_a_non_finite_factor_up_front(study, tmp_path):
    refuses(["mask-eval", "--model", study / "model", "--neurons", study / "lape.json", "--mode", "enhance",
             "--factor", "nan", "--benchmarks", "qnli", "--limit", 1, "--quiet", "--out", tmp_path / "mask"],
            match=r"--factor nan.*finite", watch=[study, tmp_path], cwd=tmp_path)


def test_intervention_make_refuses_a_non_finite_recipe(study, tmp_path):
    refuses(["intervention", "make", "--neurons", study / "lape.json", "--groups", "fr", "--recipe", "scale*1e999",
             "--out", tmp_path / "i.json"], match=r"--recipe 'scale\*1e999'.*finite", watch=[study, tmp_path],
            cwd=tmp_path)


@pytest.mark.parametrize("make, match", [
    (lambda: Recipe.parse("set:p_max*1e999"), r"factor .*finite"),
    (lambda: Recipe.parse("set:p_max*nan"), r"factor 'nan' is not a number"),
    (lambda: Recipe.parse("add:1e999"), r"value .*inf.*finite"),
    (lambda: Recipe("scale", None, NAN), r"factor .*nan.*finite"),
    (lambda: Recipe("set", INF), r"value .*inf.*finite"),
    (lambda: Recipe.from_json({"op": "set", "value": "p_max", "factor": NAN}), r"factor .*nan.*finite"),
    (lambda: Recipe.from_json({"op": "add", "value": -INF}), r"value .*-inf.*finite"),
], ids=["parse-factor-inf", "parse-factor-nan", "parse-value-inf", "factor-nan", "value-inf", "json-factor",
        "json-value"])
def test_recipes_refuse_non_finite_numbers(make, match):
    with pytest.raises(NeurospecError, match=match):
        make()


NEURONS = {"act": {0: torch.tensor([1, 3]), 1: torch.tensor([2])}}


def _values(layer: int, index: int, bad: float) -> torch.Tensor:
    values = torch.ones(2, 8)
    values[layer, index] = bad
    return values


@pytest.mark.parametrize("make, match", [
    (lambda: Edit.scale(NEURONS, NAN), r"factor nan.*finite"),
    (lambda: Edit.scale(NEURONS, -INF), r"factor -inf.*finite"),
    (lambda: Edit.set(NEURONS, 1.0, factor=INF), r"factor inf.*finite"),
    (lambda: Edit.set(NEURONS, NAN), r"value nan.*finite"),
    (lambda: Edit.add(NEURONS, INF), r"value inf.*finite"),
    (lambda: Edit.set(NEURONS, torch.tensor(NAN)), r"value nan.*finite"),
    (lambda: Edit.set(NEURONS, _values(0, 3, NAN)), r"neuron 3 in layer 0 .*nan.*finite"),
    (lambda: Edit.add(NEURONS, _values(1, 2, INF)), r"neuron 2 in layer 1 .*inf.*finite"),
    (lambda: Edit.set(NEURONS, {0: torch.ones(8), 1: torch.tensor([0, 0, -INF, 0, 0, 0, 0, 0])}),
     r"neuron 2 in layer 1 .*-inf.*finite"),
    (lambda: Edit(NEURONS, "scale", None, NAN), r"factor nan.*finite"),
], ids=["scale-nan", "scale-minus-inf", "set-factor-inf", "set-nan", "add-inf", "set-0d-nan", "set-table-nan",
        "add-table-inf", "set-mapping-minus-inf", "direct"])
def test_edits_refuse_non_finite_numbers(make, match):
    with pytest.raises(NeurospecError, match=match):
        make()


def test_edits_ignore_non_finite_values_of_neurons_they_do_not_touch():
    edit = Edit.set(NEURONS, _values(0, 0, NAN))  # neuron 0 of layer 0 is not selected
    assert edit.value_kind == "per_neuron"


def test_masking_conditions_refuse_a_non_finite_factor(study):
    with pytest.raises(NeurospecError, match=r"factor nan.*finite"):
        masking_conditions(NeuronSet.load(study / "lape.json"), mode="enhance", factor=NAN)


# --------------------------------------------------------------------------------------------
# Item 8: lengths beyond the model's positions


@pytest.mark.parametrize("model, args, match", [
    ("model", ["ppl", "--corpus", "fr=fra_Latn.txt", "--max-length", 256], r"--max-length 256 .*128 positions"),
    ("gpt2", ["ppl", "--corpus", "fr=fra_Latn.txt", "--max-length", 129], r"--max-length 129 .*128 positions.*n_positions"),
    ("model", ["collect", "--corpus", "fr=fra_Latn.txt", "--seq-len", 256], r"--seq-len 256 .*128 positions"),
    ("gpt2", ["collect", "--corpus", "fr=fra_Latn.txt", "--mode", "sentence", "--seq-len", 1000],
     r"--seq-len 1000 .*128 positions"),
], ids=["ppl-llama", "ppl-gpt2", "collect-llama", "collect-gpt2"])
def test_lengths_beyond_the_models_positions_are_refused(study, tmp_path, model, args, match):
    refuses([*args, "--model", study / model, "--quiet", "--out", tmp_path / "out"], match=match,
            watch=[study, tmp_path], cwd=study)


def test_length_checks_in_the_api(study):
    from neurospec.measure.collect import check_length, max_positions
    llama, gpt2 = family("llama").build(0), family("gpt2").build(0)
    assert max_positions(llama) == (128, "max_position_embeddings") and max_positions(gpt2) == (128, "n_positions")
    check_length(llama, 128, "max_length")  # the limit itself is fine
    with pytest.raises(NeurospecError, match=r"max_length=129 .*128 positions"):
        check_length(llama, 129, "max_length")
    unlimited = SimpleNamespace(config=SimpleNamespace(hidden_size=64))  # a config that declares no limit: unchecked
    assert max_positions(unlimited) is None
    check_length(unlimited, 10_000, "max_length")
    from neurospec.data.corpora import open_corpus
    from neurospec.evaluate.perplexity import perplexity
    from neurospec.measure.collect import CollectOptions, collect
    with pytest.raises(NeurospecError, match=r"max_length=300 "):
        perplexity(gpt2, tok(), ["Le chat dort."], max_length=300)
    with pytest.raises(NeurospecError, match=r"seq_len=200 "):
        collect(gpt2, tok(), [open_corpus("fr", study / "fra_Latn.txt")], study / "never",
                CollectOptions(seq_len=200), quiet=True)
    assert not (study / "never").exists()


# --------------------------------------------------------------------------------------------
# Item 9: LAPE on one language, random baselines without random groups, an output that is its input, a language twice


@pytest.mark.parametrize("extra", [[], ["--top-k", 3]], ids=["top-rate", "top-k"])
def test_select_lape_refuses_one_language(study, tmp_path, extra):
    refuses(["select", "lape", "--stats", study / "stats", "--languages", "fr", *extra, "--out", "lape1.json"],
            match=r"at least two languages.*in --languages,", watch=[study, tmp_path], cwd=tmp_path)


def test_select_lape_api_refuses_one_language(study):
    stats = ActivationStats.load(study / "stats")
    for select in (lambda: select_lape(stats, languages=["fr"]), lambda: select_lape_top_k(stats, 3, languages="fr"),
                   lambda: select_lape(stats.probabilities()[:1], languages=["fr"])):
        with pytest.raises(NeurospecError, match="at least two languages"):
            select()
    assert select_lape(stats, languages=["fr", "de"]).groups == ("fra_Latn", "deu_Latn")


def test_mask_eval_refuses_random_baselines_without_random_groups(study, tmp_path):
    refuses(["mask-eval", "--model", study / "model", "--neurons", study / "lape.json", "--random-neurons", study / "lape.json",
             "--benchmarks", "qnli", "--limit", 1, "--quiet", "--out", tmp_path / "mask"],
            match=r"--random-neurons .*lape\.json.*no random<seed>:<group> group", watch=[study, tmp_path], cwd=tmp_path)


def test_masking_conditions_refuse_groups_without_baselines(study):
    neurons = NeuronSet.load(study / "lape.json")
    with pytest.raises(NeurospecError, match=r"random .*no random<seed>:<group> group"):
        masking_conditions(neurons, random=neurons)
    partial = select_random_pooled(neurons.select("fra_Latn"), seeds=[0])
    with pytest.raises(NeurospecError, match=r"eng_Latn, deu_Latn"):
        masking_conditions(neurons, random=partial)
    assert list(masking_conditions(neurons, ["fra_Latn"], random=partial)) == ["none", "fra_Latn", "random0:fra_Latn"]


@pytest.mark.parametrize("out", ["lape.json", "./sub/../lape.json"])
def test_select_random_refuses_to_overwrite_its_input(study, tmp_path, out):
    (study / "sub").mkdir(exist_ok=True)
    refuses(["select", "random", "--like", "lape.json", "--out", out], match=r"--out .*is the --like file",
            watch=[study, tmp_path], cwd=study)


def test_ppl_refuses_one_language_given_twice(study, tmp_path):
    refuses(["ppl", "--model", study / "model", "--corpus", "fr=fra_Latn.txt", "--corpus", "fra=deu_Latn.txt", "--quiet",
             "--out", tmp_path / "ppl"], match=r"--corpus .*fra_Latn.*once", watch=[study, tmp_path], cwd=study)


def test_ppl_targets_naming_one_group_twice_give_one_row(study, tmp_path):
    done = run_cli(["ppl", *model_args(study), "--corpus", "fr=fra_Latn.txt", "--groups", "fr,fra,fra_Latn",
                    "--random-seeds", "0", "--out", tmp_path / "ppl"], cwd=study)
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "ppl" / "ppl.json").read_text())
    assert [row["name"] for row in saved["rows"]] == ["none", "fra_Latn", "random0:fra_Latn"]
    lines = (tmp_path / "ppl" / "ppl.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["row", "none", "fra_Latn", "random0:fra_Latn"]
    assert not math.isnan(saved["cells"]["fra_Latn"]["fra_Latn"]["ppl"])
