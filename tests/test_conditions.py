"""The one builder of an experiment's conditions (none / target / random / other), checked against the neuron
lists written out by hand: which neurons each edit touches, the empty-group rule, size-matched random draws."""

from __future__ import annotations

import warnings

import pytest
import torch

from neurospec.interventions.conditions import (
    build_conditions,
    mode_recipe,
    other_group,
    random_group,
)
from neurospec.interventions.recipes import Recipe
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.util.errors import EmptyGroupWarning, NeurospecError

LAYERS, WIDTH = 3, 16
#: group -> site -> layer -> indices: the neuron set every test builds on (German has none)
DATA = {
    "eng_Latn": {"act": {0: [1, 5], 2: [7]}, "gate_pre": {1: [0, 2, 3]}},
    "fra_Latn": {"act": {1: [4], 2: [7, 9, 11]}},
    "deu_Latn": {},
    "spa_Latn": {"act": {0: [15]}},
}
EMPTY_REASON = "no neurons selected by lape (top_rate 0.01)"


def neurons() -> NeuronSet:
    meta = NeuronSetMeta(num_layers=LAYERS, widths={"act": WIDTH, "gate_pre": WIDTH}, method="lape",
                         params={"top_rate": 0.01})
    return NeuronSet(DATA, meta)


def touched(edit) -> set[tuple[str, int, int]]:
    """(site, layer, index) of every neuron an Edit changes."""
    return {(site, layer, int(i)) for site, layers in edit.neurons.items() for layer, idx in layers.items() for i in idx}


def hand_written(group: str) -> set[tuple[str, int, int]]:
    return {(site, layer, i) for site, layers in DATA[group].items() for layer, idx in layers.items() for i in idx}


def per_site_layer(keys: set[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    counts: dict[tuple[str, int], int] = {}
    for site, layer, _ in keys:
        counts[(site, layer)] = counts.get((site, layer), 0) + 1
    return counts


class Stats:
    """Stand-in activation statistics: every neuron of language ``g`` has the value ``VALUES[g]``."""

    site = "act"
    VALUES = {"eng_Latn": 1.0, "fra_Latn": 2.0, "spa_Latn": 3.0}

    def amplification_values(self, group: str, statistic: str) -> torch.Tensor:
        assert statistic == "p_max"
        return torch.full((LAYERS, WIDTH), self.VALUES[group])


def build_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyGroupWarning)
        return build_conditions(*args, **kwargs)


def test_names_kinds_and_the_neurons_each_edit_touches():
    built = build_quietly(neurons(), "scale*3", verb="test", random_seeds=(4, 1))
    kept = ["eng_Latn", "fra_Latn", "spa_Latn"]
    expected = [("none", "none", None, None)] + [(g, "target", g, None) for g in kept] + [
        (f"random{seed}:{g}", "random", g, seed) for seed in (4, 1) for g in kept]
    assert [(c.name, c.kind, c.group, c.seed) for c in built] == expected
    assert built["none"].edit is None and built["none"].size == 0
    for group in kept:
        edit = built[group].edit
        assert touched(edit) == hand_written(group)
        assert (edit.op, edit.factor, edit.value) == ("scale", 3.0, None)
        assert built[group].size == len(hand_written(group))
    assert built.targets == kept and built.names == [name for name, *_ in expected]
    assert [c.name for c in built.random_of("fra_Latn")] == ["random4:fra_Latn", "random1:fra_Latn"]


def test_random_conditions_are_size_matched_per_site_and_layer_and_reproducible_per_seed():
    first = build_quietly(neurons(), "zero", verb="test", random_seeds=(0, 1))
    again = build_quietly(neurons(), "zero", verb="test", random_seeds=(1,))
    for group in first.targets:
        by_seed = {c.seed: touched(c.edit) for c in first.random_of(group)}
        for drawn in by_seed.values():
            assert per_site_layer(drawn) == per_site_layer(hand_written(group))
            assert all(0 <= i < WIDTH for _, _, i in drawn)
        assert touched(again.random_of(group)[0].edit) == by_seed[1]
    assert any(touched(c.edit) != touched(first[f"random1:{c.group}"].edit) for c in first.of_kind("random")
               if c.seed == 0 and len(hand_written(c.group)) > 1)


def test_random_exclude_draws_outside_every_groups_neurons():
    built = build_quietly(neurons(), "zero", verb="test", random_seeds=range(5), random_exclude=True)
    everyone = set().union(*(hand_written(g) for g in DATA))
    for condition in built.of_kind("random"):
        assert not touched(condition.edit) & everyone
        assert per_site_layer(touched(condition.edit)) == per_site_layer(hand_written(condition.group))


def test_an_empty_group_is_skipped_with_one_warning_and_recorded():
    with pytest.warns(EmptyGroupWarning) as caught:
        built = build_conditions(neurons(), "zero", verb="ppl", random_seeds=(0,))
    assert len(caught) == 1 and "skipping deu_Latn" in str(caught[0].message)
    assert built.empty == {"deu_Latn": EMPTY_REASON}
    assert not [c for c in built if c.group == "deu_Latn"]
    with pytest.raises(NeurospecError, match="every group asked for has no neurons: deu_Latn"):
        build_conditions(neurons(), "zero", ["de"], verb="ppl")
    with pytest.warns(EmptyGroupWarning):
        assert build_conditions(neurons(), "zero", ["de", "fr"], verb="ppl").names == ["none", "fra_Latn"]


def test_no_neuron_set_gives_the_unmodified_model_only():
    built = build_conditions(None, None, ["fr"], verb="ppl", random_seeds=(0,))
    assert built.names == ["none"] and built.empty == {}


def test_exact_names_refuse_an_alias_that_the_default_accepts():
    assert build_conditions(neurons(), "zero", ["fr"], verb="eval").targets == ["fra_Latn"]
    with pytest.raises(NeurospecError, match="group 'fr' is not in the neuron set"):
        build_conditions(neurons(), "zero", ["fr"], verb="mask-eval", exact_names=True)


def given_random_set() -> NeuronSet:
    data = {"random0:fra_Latn": {"act": {0: [3]}}, "random0:eng_Latn": {"act": {1: [2, 6]}},
            "random1:fra_Latn": {"act": {2: [0]}}}
    return NeuronSet(data, NeuronSetMeta(num_layers=LAYERS, widths={"act": WIDTH}))


def test_a_given_random_set_keeps_its_order_and_must_cover_every_kept_target():
    built = build_conditions(neurons(), "set:p_max", ["fra_Latn", "eng_Latn"], verb="test", stats=Stats(),
                             random_set=given_random_set(), sites=["act"])
    assert [(c.name, c.group, c.seed) for c in built.of_kind("random")] == [
        ("random0:fra_Latn", "fra_Latn", 0), ("random0:eng_Latn", "eng_Latn", 0), ("random1:fra_Latn", "fra_Latn", 1)]
    assert touched(built["random0:eng_Latn"].edit) == {("act", 1, 2), ("act", 1, 6)}
    assert touched(built["eng_Latn"].edit) == {k for k in hand_written("eng_Latn") if k[0] == "act"}  # sites=["act"]
    for condition in built.of_kind("random"):  # the target's own statistics, at the random neurons
        values = condition.edit.value
        assert all(float(values[layer][i]) == Stats.VALUES[condition.group] for _, layer, i in touched(condition.edit))
    with pytest.raises(NeurospecError, match="--random r.json has no random<seed>:<group> group for spa_Latn"):
        build_conditions(neurons(), "zero", ["fra_Latn", "spa_Latn"], verb="test", random_set=given_random_set(),
                         random_option="--random r.json")
    assert random_group("random12:China") == "China" and random_group("China") is None


def test_corpus_values_are_the_targets_own_at_random_neurons_and_the_other_groups_own():
    built = build_quietly(neurons(), "set:p_max*2", ["fra_Latn", "eng_Latn"], verb="test", stats=Stats(),
                          random_seeds=(0,), sites=["act"], other_sources=["eng_Latn", None])
    for condition in built:
        if condition.edit is not None:
            own = Stats.VALUES[condition.group]
            assert {float(condition.edit.value[layer][i]) for _, layer, i in touched(condition.edit)} == {own}
            assert condition.edit.factor == 2.0


def test_other_is_the_next_group_with_neurons_that_is_neither_source_nor_target():
    candidates = ["eng_Latn", "fra_Latn", "spa_Latn"]  # German, empty, is no candidate
    assert other_group(candidates, "eng_Latn", "fra_Latn") == "spa_Latn"
    assert other_group(candidates, None, "spa_Latn") == "eng_Latn"
    assert other_group(candidates, "eng_Latn", "spa_Latn") == "fra_Latn"
    assert other_group(["eng_Latn", "fra_Latn"], "eng_Latn", "fra_Latn") is None
    built = build_quietly(neurons(), "zero", ["fra_Latn", "eng_Latn"], verb="lss", other_sources=["eng_Latn", "fra_Latn"])
    assert built.candidates == tuple(candidates)
    # pairs (en -> fr): spa; (fr -> en): spa; (en -> en), (fr -> fr): none. Only spa is needed.
    assert [(c.name, c.kind, c.group) for c in built.of_kind("other")] == [("other:spa_Latn", "other", "spa_Latn")]
    assert touched(built["other:spa_Latn"].edit) == hand_written("spa_Latn")
    assert built.other_for("fra_Latn", "eng_Latn") is built["other:spa_Latn"]


@pytest.mark.parametrize("mode,factor,op", [("suppress", 2.0, "zero"), ("enhance", 2.0, "scale"), ("enhance", 0.5, "scale")])
def test_masking_modes_are_recipes_with_the_same_numbers(mode, factor, op):
    recipe = mode_recipe(mode, factor)
    assert recipe == (Recipe.zero() if op == "zero" else Recipe.parse(f"scale*{factor:g}"))
    edit = build_quietly(neurons(), recipe, ["eng_Latn"], verb="mask-eval", exact_names=True)["eng_Latn"].edit
    assert (edit.op, edit.factor, edit.value, edit.positions) == (op, 1.0 if op == "zero" else factor, None, "all")


def test_masking_modes_refuse_a_bad_mode_or_factor():
    with pytest.raises(NeurospecError, match="mode='amplify'"):
        mode_recipe("amplify")
    with pytest.raises(NeurospecError, match="factor nan is not a finite number"):
        mode_recipe("suppress", float("nan"))
    with pytest.raises(NeurospecError, match="factor True"):
        mode_recipe("enhance", True)
