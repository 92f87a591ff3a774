"""Recipes: the short form, its inverse, and the Edit each builds."""

from __future__ import annotations

import pytest
import torch
from interventions_common import neuron_set, sentence_stats, tiny_llama

from neurospec.core.edits import RuntimeStatistic
from neurospec.interventions.recipes import Recipe, match_group, parse_recipes
from neurospec.util.errors import NeurospecError


@pytest.mark.parametrize("text, op, value, factor, positions", [
    ("zero", "zero", None, 1.0, "all"),
    ("scale*2", "scale", None, 2.0, "all"),
    ("set:p_max", "set", "p_max", 1.0, "all"),
    ("set:p_median*2.5@continuation", "set", "p_median", 2.5, "continuation"),
    ("add:-0.5@prompt", "add", -0.5, 1.0, "prompt"),
    ("set:runtime:percentile90*3", "set", RuntimeStatistic("percentile", 90.0), 3.0, "all"),
    ("add:runtime:max", "add", RuntimeStatistic("max"), 1.0, "all"),
])
def test_short_form_round_trips(text, op, value, factor, positions):
    recipe = Recipe.parse(text)
    assert (recipe.op, recipe.value, recipe.factor, recipe.positions) == (op, value, factor, positions)
    assert Recipe.parse(recipe.name) == recipe
    assert Recipe.from_json(recipe.to_json()) == recipe


@pytest.mark.parametrize("text, match", [
    ("set", "needs a value"), ("scale", "needs a factor"), ("zero:p_max", "takes no value"),
    ("set:p_mean", "unknown corpus statistic"), ("set:p_max*x", "not a number"), ("boost", "unknown operation"),
    ("set:p_max@middle", "positions"), ("set:runtime:percentile", "needs a number"), ("set:runtime:mode", "run-time"),
])
def test_bad_recipes_name_the_fix(text, match):
    with pytest.raises(NeurospecError, match=match):
        Recipe.parse(text)
    with pytest.raises(NeurospecError, match="repeat"):
        parse_recipes("zero, zero")


def test_edit_reads_the_target_languages_statistic(tmp_path):
    model = tiny_llama()
    neurons = neuron_set(model)
    stats = sentence_stats(model, tmp_path)
    edit = Recipe.parse("set:p_median*2").edit(neurons, "fr", stats)
    assert torch.equal(edit.value, stats.amplification_values("fra_Latn", "p_median"))
    assert edit.factor == 2.0 and edit.neurons["act"].keys() == neurons.layer_indices(["fra_Latn"], "act").keys()
    assert match_group("French", neurons.groups) == "fra_Latn"
    with pytest.raises(NeurospecError, match="no group 'jpn'"):
        Recipe.zero().edit(neurons, "jpn", stats)
    with pytest.raises(NeurospecError, match="jpn_Jpan|Japanese"):
        Recipe.parse("set:p_max").edit(neurons.rename({"fra_Latn": "jpn_Jpan"}), "jpn_Jpan", stats)


def test_an_intervention_file_written_from_a_recipe_acts_like_the_recipe(tmp_path):
    from interventions_common import tok
    from typer.testing import CliRunner

    from neurospec.cli.main import app
    from neurospec.core.hooks import intervene
    from neurospec.interventions.files import InterventionSpec

    model = tiny_llama()
    neurons = neuron_set(model)
    neurons.save(tmp_path / "neurons.json")
    stats = sentence_stats(model, tmp_path)
    result = CliRunner().invoke(app, ["intervention", "make", "--neurons", str(tmp_path / "neurons.json"), "--group", "fr",
                                      "--recipe", "set:p_max*3@continuation", "--stats", str(stats.path),
                                      "--out", str(tmp_path / "specs" / "steer_fr.json")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "specs" / "steer_fr.values.safetensors").exists()
    ids = tok()("Le chat dort sur le tapis.", return_tensors="pt")
    from neurospec.core.hooks import prompt_boundary

    outputs = []
    for edit in (Recipe.parse("set:p_max*3@continuation").edit(neurons, "fra_Latn", stats),
                 InterventionSpec.load(tmp_path / "specs" / "steer_fr.json")):
        with torch.no_grad(), intervene(model, edit), prompt_boundary(model, 3):
            outputs.append(model(**ids).logits)
    with torch.no_grad(), prompt_boundary(model, 3):
        plain = model(**ids).logits
    assert torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[0], plain)
    missing = CliRunner().invoke(app, ["intervention", "make", "--neurons", str(tmp_path / "neurons.json"), "--group", "fr",
                                       "--recipe", "set:p_max", "--out", str(tmp_path / "x.json")])
    assert missing.exit_code == 2 and "pass --stats" in missing.output and not (tmp_path / "x.json").exists()
