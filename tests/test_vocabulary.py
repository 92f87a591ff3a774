"""One vocabulary across the verbs (neurospec.verbs.renames): the same option name means the same thing in every
command and options class; the old spellings still work for one release, with a warning; group names take the
same aliases in Python as on the command line; the model options (--revision, --model-arg) reach the loader and
the provenance record."""

from __future__ import annotations

import json
import warnings

import pytest
from interventions_common import neuron_set, saved_study
from test_verbs import commands
from typer.testing import CliRunner

from neurospec.cli.base import new_flags
from neurospec.cli.main import app
from neurospec.core.edits import Edit
from neurospec.core.models import load_model, parse_model_args
from neurospec.core.provenance import describe_model
from neurospec.data.locate import locate
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.util.errors import NeurospecError, RenamedWarning
from neurospec.verbs.base import ModelOptions
from neurospec.verbs.evaluate import PplOptions, ppl
from neurospec.verbs.registry import STEP_FUNCTIONS, verb_spec
from neurospec.verbs.renames import RENAMED, old_flags

runner = CliRunner()
OLD_ONLY = ("--targets", "--max-texts", "--random-seed", "--eval-limit", "--per-country", "--group", "--evaluate",
            "--random")


def flags(command) -> dict[str, object]:
    return {opt: param for param in command.params for opt in getattr(param, "opts", ()) if opt.startswith("--")}


def test_no_command_shows_an_old_spelling():
    for verb, command in commands().items():
        shown = {flag for flag, param in flags(command).items() if not param.hidden}
        assert not shown & set(OLD_ONLY), (verb, shown & set(OLD_ONLY))
        if verb != "neurons export":
            assert "--format" not in shown, f"{verb}: a prompt format is --prompt-format; --format is a file format"


def test_every_intervention_verb_chooses_groups_and_recipe_alike():
    intervening = [verb for verb, command in commands().items() if "--neurons" in flags(command)
                   and "--model" in flags(command) and verb not in ("finetune", "neurons import")]
    assert {"ppl", "steer", "lss", "eval", "mask-eval"} <= set(intervening)
    for verb in intervening:
        found = flags(commands()[verb])
        assert "--groups" in found and "--recipe" in found, verb
        seeds = found.get("--random-seeds")
        if seeds is not None:   # always a list of seeds ('' for none), never a count
            assert isinstance(seeds.default, str), (verb, seeds.default)


@pytest.mark.parametrize("verb", sorted(v for v in STEP_FUNCTIONS if issubclass(verb_spec(v).options, ModelOptions)))
def test_every_model_verb_takes_the_model_options(verb):
    found = flags(commands()[verb])
    for flag in ("--model", "--revision", "--model-arg", "--dtype", "--device", "--device-map", "--trust-remote-code"):
        assert flag in found, (verb, flag)
    assert found["--model-arg"].multiple


@pytest.mark.parametrize("verb", sorted(RENAMED))
def test_old_flags_become_the_new_ones_with_a_warning(verb, capsys):
    command = commands()[verb]
    for old, new in old_flags(verb).items():
        assert new in flags(command), (verb, new)
        assert new_flags(verb, ["--x", old, "v", f"{old}=w", "--", old]) == ["--x", new, "v", f"{new}=w", "--", old]
        assert f"{old} is now {new}" in capsys.readouterr().err


@pytest.mark.parametrize("verb", sorted(v for v in RENAMED if v in STEP_FUNCTIONS))
def test_old_python_names_give_the_same_options(verb):
    options = verb_spec(verb).options
    required = {name: "x" for name, spec in options.fields().items() if spec.required}
    for old, new in RENAMED[verb].items():
        value = options.fields()[new].default
        value = "1" if value in (None, "", 0, "auto") else value
        with pytest.warns(RenamedWarning, match=f"{old} is now {new}"):
            via_old = options.from_values({**required, old: value})
        assert via_old == options.from_values({**required, new: value})
        given = {name: value for name, value in via_old.option_values().items() if name != new}
        with pytest.warns(RenamedWarning):
            assert options(**given, **{old: via_old.option_values()[new]}) == via_old
        with pytest.raises(NeurospecError, match=f"give {new} only"):
            options.from_values({**required, old: value, new: value})


def test_the_cli_accepts_an_old_flag_as_the_new_one(monkeypatch):
    seen = []
    monkeypatch.setattr("neurospec.cli.evaluate.ppl", seen.append)
    result = runner.invoke(app, ["ppl", "--model", "m", "--out", "o", "--targets", "fr", "--max-texts=3"])
    assert result.exit_code == 0, result.output
    assert seen[0].groups == "fr" and seen[0].limit == 3
    assert "--targets is now --groups" in result.output and "--max-texts is now --limit" in result.output


def test_switches_show_no_value_in_help():
    result = runner.invoke(app, ["neurons", "show", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if "--json" in line)
    assert "<bool>" not in result.output and "<str>" in result.output, line


def test_group_aliases_work_in_python_as_on_the_command_line():
    groups = {"fra_Latn": {"act": {0: [1, 2]}}, "deu_Latn": {"act": {1: [3]}}, "UK": {"act": {1: [4, 5]}}}
    lape = NeuronSet(groups, num_layers=2)
    exact = Edit.zero(lape, groups=["fra_Latn", "UK"])
    for names in (["fr", "United Kingdom"], ["French", "GB"], ["fra", "UK"]):
        edited = Edit.zero(lape, groups=names).neurons
        assert {site: {layer: idx.tolist() for layer, idx in layers.items()} for site, layers in edited.items()} == {
            "act": {0: [1, 2], 1: [4, 5]}} == {site: {layer: idx.tolist() for layer, idx in layers.items()}
                                              for site, layers in exact.neurons.items()}
    assert lape.count("de") == 1 and lape.select("French").groups == ("fra_Latn",)
    with pytest.raises(NeurospecError, match="unknown group 'es'.*'fra_Latn', 'deu_Latn', 'UK'"):
        Edit.zero(lape, groups=["es"])


def test_model_args_are_parsed_like_lm_eval_and_checked():
    assert parse_model_args(["attn_implementation=eager", "low_cpu_mem_usage=true", "max_memory_gb=2.5", "n=3"]) == {
        "attn_implementation": "eager", "low_cpu_mem_usage": True, "max_memory_gb": 2.5, "n": 3}
    for bad, message in (["nokey"], "give KEY=VALUE"), (["a=1", "a=2"], "given twice"), (
            ["trust_remote_code=true"], "use --trust-remote-code"), (["revision=x"], "use --revision"):
        with pytest.raises(NeurospecError, match=message):
            parse_model_args(bad)
    with pytest.raises(NeurospecError, match="--model-arg 'x y=1'"):   # checked when the options are built
        PplOptions(model="m", out="o", model_args=["x y=1"])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return saved_study(tmp_path_factory.mktemp("vocabulary"), lambda model: {"neurons.json": neuron_set(model)})


def test_revision_and_model_args_reach_the_model_and_its_provenance(study):
    lm = load_model(study / "model", device="cpu", revision="main", model_args={"attn_implementation": "eager"})
    assert lm.model.config._attn_implementation == "eager"
    described = describe_model(lm.model)
    assert described["revision"] == "main" and described["model_args"] == {"attn_implementation": "eager"}
    assert "revision" not in describe_model(load_model(study / "model", device="cpu").model)


def test_ppl_under_new_names_records_them_and_random_seeds_empty_means_none(study, tmp_path):
    corpus = tmp_path / "fr.txt"
    corpus.write_text("le chat dort\nla maison est grande\nil pleut\n", encoding="utf-8")
    options = PplOptions(model=str(study / "model"), revision="main", model_args=["attn_implementation=eager"],
                         neurons=study / "neurons.json", corpus=[f"fr={corpus}"], limit=2, groups="fr",
                         random_seeds="", device="cpu", out=tmp_path / "ppl", quiet=True)
    matrix = ppl(options)
    assert [row.kind for row in matrix.rows] == ["none", "group"]
    written = json.loads((tmp_path / "ppl" / "ppl.json").read_text())
    record = written["provenance"]
    assert record["options"]["groups"] == "fr" and record["options"]["limit"] == 2
    assert record["model"]["revision"] == "main" and record["model"]["model_args"] == {"attn_implementation": "eager"}


def test_data_dir_is_the_data_root_or_a_data_sets_own_folder(tmp_path):
    (tmp_path / "xcopa").mkdir()
    assert locate("xcopa", tmp_path) == tmp_path / "xcopa"
    assert locate("xcopa", tmp_path / "xcopa") == tmp_path / "xcopa"
    with pytest.raises(NeurospecError, match="not found"):
        locate("xcopa", tmp_path / "missing")


def test_mask_eval_old_mode_and_factor_are_a_recipe():
    from neurospec.verbs.culture import MaskEvalOptions, masking_recipe

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert masking_recipe(MaskEvalOptions(model="m", neurons="n", out="o")).name == "zero"
        assert masking_recipe(MaskEvalOptions(model="m", neurons="n", out="o", recipe="scale*3")).name == "scale*3"
    with pytest.warns(RenamedWarning, match="--recipe scale\\*3"):
        assert masking_recipe(MaskEvalOptions(model="m", neurons="n", out="o", mode="enhance", factor=3)).name == "scale*3"
    with pytest.warns(RenamedWarning, match="--recipe zero"):
        assert masking_recipe(MaskEvalOptions(model="m", neurons="n", out="o", mode="suppress")).name == "zero"
    with pytest.raises(NeurospecError, match="give --recipe only"):
        masking_recipe(MaskEvalOptions(model="m", neurons="n", out="o", recipe="scale*2", mode="enhance"))
