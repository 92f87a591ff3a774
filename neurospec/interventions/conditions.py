"""The conditions of an intervention experiment, built once for every evaluation verb.

    from neurospec.interventions.conditions import build_conditions
    built = build_conditions(lape, "set:p_max", verb="ppl", stats=stats, random_seeds=(0, 1))
    built.names                 # ["none", "eng_Latn", "fra_Latn", "random0:eng_Latn", "random0:fra_Latn", "random1:..."]
    built["fra_Latn"].edit      # the Edit of the French neurons under set:p_max
    built.empty                 # {"deu_Latn": "no neurons selected by lape (top_rate 0.01)"}: set aside

A :class:`Condition` is one way of running the model; its ``kind`` is one of

``none``    the unmodified model (no edit), named ``none``;
``target``  a target group's neurons given the recipe, named after the group;
``random``  size-matched random neurons standing in for a target group, named ``random<seed>:<group>``: drawn with
            :func:`~neurospec.select.baselines.select_random` (as many per group, site and layer as the group has,
            one draw per seed, seeds in the order given, groups in target order within a seed), or taken from a
            given random set whose groups carry those names (its own order, e.g. the pooled baselines of
            :func:`~neurospec.select.culture.select_random_pooled`). The recipe is applied to them, a corpus
            statistic read from the target's own statistics at the random neurons;
``other``   another language's neurons with that language's own values (a control for a target), named
            ``other:<group>``; the group is chosen by :func:`other_group`.

They come in that order: ``none``, the targets, the random conditions, the other ones. Masking's modes are
recipes (:func:`mode_recipe`): ``suppress`` is ``zero``, ``enhance`` is ``scale*factor`` (2 by default).

Empty groups, one rule for every verb:

1. A target group without neurons gets no condition. It is skipped with one
   :class:`~neurospec.util.errors.EmptyGroupWarning` naming every such group and kept, with the reason, in
   ``empty`` (written as ``"empty_groups"`` in the verb's output). Naming only empty groups is a
   NeurospecError: there would be nothing to measure (:func:`~neurospec.interventions.targets.target_groups`).
2. Random conditions are made for the kept targets only. Drawn ones are size-matched, so never empty. With a
   given random set, every kept target must have at least one ``random<seed>:<group>`` group: a missing one is a
   NeurospecError, never a silently missing baseline.
3. An ``other`` condition is drawn from the groups that have neurons only; where none is left
   (:func:`other_group` returns None) the verb has no ``other`` control for that cell.

Where the verbs differed the difference is an explicit option: ``exact_names`` (masking: a requested group must
be spelt as in the neuron set; elsewhere any alias of a language is accepted), ``default`` (the targets when none
are named: downstream and LSS), ``random_exclude`` (perplexity: draw outside every group's neurons), ``sites``
(masking: edit only these sites), ``random_set`` (masking: given random baselines) and ``other_sources`` (LSS).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterator, Literal, Sequence

from neurospec.core.edits import Edit
from neurospec.interventions.recipes import Recipe
from neurospec.interventions.targets import TargetGroups, target_groups
from neurospec.select.baselines import select_random
from neurospec.util.errors import NeurospecError

__all__ = ["BASELINE", "KINDS", "MODES", "Condition", "ConditionKind", "ConditionSet", "build_conditions",
           "groups_with_neurons", "mode_recipe", "other_group", "other_name", "random_group", "random_name"]

ConditionKind = Literal["none", "target", "random", "other"]
KINDS: tuple[str, ...] = ("none", "target", "random", "other")
BASELINE = "none"
MODES: tuple[str, ...] = ("suppress", "enhance")
_RANDOM = re.compile(r"^random(\d+):(.+)$")


@dataclass(frozen=True)
class Condition:
    """One way of running the model (see the module docstring).

    ``group``: for ``target`` and ``other`` the group whose neurons are edited, for ``random`` the target group
    the random neurons are matched to, for ``none`` None. ``seed``: the random draw's seed (``random`` only).
    """

    name: str
    kind: ConditionKind
    group: str | None = None
    seed: int | None = None
    edit: Edit | None = None

    @property
    def size(self) -> int:
        """How many neurons the edit touches (0 for ``none``)."""
        return self.edit.count if self.edit is not None else 0


@dataclass(frozen=True)
class ConditionSet:
    """The ordered conditions of an experiment, and the target groups set aside for having no neurons.

    ``built["fra_Latn"]`` is a condition by name; iterating gives them in order. ``candidates`` are the groups an
    ``other`` condition is chosen from (those with neurons).
    """

    conditions: tuple[Condition, ...]
    empty: dict[str, str] = field(default_factory=dict)
    candidates: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Condition]:
        return iter(self.conditions)

    def __len__(self) -> int:
        return len(self.conditions)

    def __contains__(self, name: object) -> bool:
        return any(condition.name == name for condition in self.conditions)

    def __getitem__(self, name: str) -> Condition:
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [condition.name for condition in self.conditions]

    @property
    def targets(self) -> list[str]:
        """The target groups that got a condition, in order."""
        return [condition.group for condition in self.of_kind("target")]  # type: ignore[misc]

    def of_kind(self, kind: ConditionKind) -> list[Condition]:
        return [condition for condition in self.conditions if condition.kind == kind]

    def random_of(self, group: str) -> list[Condition]:
        """The random conditions standing in for target ``group``, in order."""
        return [condition for condition in self.of_kind("random") if condition.group == group]

    def other_for(self, target: str, besides: str | None = None) -> Condition | None:
        """The ``other`` condition controlling ``target`` (a group) when ``besides`` (a source group) is also
        excluded, or None when no group is left; it must have been built (``other_sources``)."""
        group = other_group(self.candidates, besides, target)
        return None if group is None else self[other_name(group)]

    def edits(self) -> dict[str, Edit | None]:
        """``{name: edit}`` in order (``none`` -> None)."""
        return {condition.name: condition.edit for condition in self.conditions}


def random_name(seed: int, group: str) -> str:
    """``random_name(0, "fra_Latn")`` -> ``"random0:fra_Latn"``."""
    return f"random{seed}:{group}"


def random_group(name: str) -> str | None:
    """The group a ``random<seed>:<group>`` condition stands in for, else None."""
    match = _RANDOM.match(name)
    return match.group(2) if match else None


def random_seed(name: str) -> int | None:
    """The seed of a ``random<seed>:<group>`` condition, else None."""
    match = _RANDOM.match(name)
    return int(match.group(1)) if match else None


def other_name(group: str) -> str:
    """``other_name("deu_Latn")`` -> ``"other:deu_Latn"``."""
    return f"other:{group}"


def groups_with_neurons(neurons) -> tuple[str, ...]:
    """The groups of ``neurons`` that hold at least one neuron, in the set's order."""
    return tuple(group for group in neurons.groups if not neurons.is_empty(group))


def other_group(candidates: Sequence[str], besides: str | None, target: str) -> str | None:
    """``other_group(["en", "fr", "de"], "en", "fr")`` -> ``"de"``: the first candidate after ``target`` (wrapping
    around) that is neither ``target`` nor ``besides``; None when there is none. ``target`` must be a candidate."""
    start = list(candidates).index(target)
    for step in range(1, len(candidates)):
        candidate = candidates[(start + step) % len(candidates)]
        if candidate not in (besides, target):
            return candidate
    return None


def mode_recipe(mode: str, factor: float = 2.0) -> Recipe:
    """Masking's modes as recipes: ``mode_recipe("suppress")`` is ``zero``, ``mode_recipe("enhance", 2)`` is
    ``scale*2``. ``factor`` is checked in both modes."""
    if mode not in MODES:
        raise NeurospecError(f"mode={mode!r}: use suppress (set to 0) or enhance (multiply by factor)")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
        raise NeurospecError(f"factor {factor!r} is not a finite number; give a real number such as 2")
    return Recipe.zero() if mode == "suppress" else Recipe("scale", None, factor)


def build_conditions(neurons, recipe: Recipe | str | None, targets: TargetGroups | Sequence[str] | None = None, *,
                     verb: str, default: Sequence[str] | None = None, stats=None, random_seeds: Sequence[int] = (),
                     random_exclude: bool = False, random_set=None, random_option: str | None = None,
                     sites: Sequence[str] | None = None, other_sources: Sequence[str | None] | None = None,
                     exact_names: bool = False) -> ConditionSet:
    """``build_conditions(lape, "zero", ["fr"], verb="ppl", random_seeds=(0,))``: the conditions of one experiment.

    ``neurons`` None gives ``none`` only. ``targets`` names the target groups (any alias; see ``exact_names``), or
    is a :class:`TargetGroups` already chosen; None takes ``default`` (else every group). ``verb`` names the caller
    in warnings and errors. ``random_seeds`` draws size-matched random conditions (outside every group's neurons
    with ``random_exclude``); ``random_set`` takes them from a set of ``random<seed>:<group>`` groups instead
    (``random_option`` names it in errors, e.g. ``--random-neurons FILE``). ``other_sources``: build the ``other``
    condition of every target for each of these source groups (None: a source without a group). The empty-group
    rule and the order are in the module docstring.
    """
    if neurons is None:
        return ConditionSet((Condition(BASELINE, "none"),))
    recipe = Recipe.parse(recipe)
    if exact_names:
        check_exact_names(neurons, targets)
    chosen = targets if isinstance(targets, TargetGroups) else target_groups(neurons, targets, verb=verb,
                                                                             default=default)
    conditions = [Condition(BASELINE, "none")]
    conditions += [Condition(group, "target", group, None, recipe.edit(neurons, group, stats, sites=sites))
                   for group in chosen.groups]
    if random_set is not None:
        conditions += given_random_conditions(random_set, chosen.groups, recipe, stats, sites, random_option)
    conditions += drawn_random_conditions(neurons, chosen.groups, recipe, stats, sites, random_seeds, random_exclude)
    candidates = groups_with_neurons(neurons)
    if other_sources is not None:
        conditions += other_conditions(neurons, chosen.groups, candidates, other_sources, recipe, stats, sites)
    return ConditionSet(tuple(conditions), dict(chosen.empty), candidates)


def check_exact_names(neurons, requested: TargetGroups | Sequence[str] | None) -> None:
    """Refuse a requested group not spelt exactly as a group of ``neurons`` (masking's rule: no aliases)."""
    names = requested.groups if isinstance(requested, TargetGroups) else list(requested or ())
    for group in names:
        if group not in neurons.groups:
            raise NeurospecError(f"group {group!r} is not in the neuron set (groups: {', '.join(neurons.groups)})")


def drawn_random_conditions(neurons, groups: Sequence[str], recipe: Recipe, stats, sites, seeds: Sequence[int],
                            exclude: bool) -> list[Condition]:
    """Per seed (each once, in order) and target group: the recipe at size-matched random neurons."""
    conditions = []
    for seed in dict.fromkeys(seeds):
        control = select_random(neurons, seed=seed, exclude=exclude)
        conditions += [Condition(random_name(seed, group), "random", group, seed,
                                 recipe.edit(control, group, stats, sites=sites)) for group in groups]
    return conditions


def given_random_conditions(random_set, groups: Sequence[str], recipe: Recipe, stats, sites,
                            option: str | None) -> list[Condition]:
    """The ``random<seed>:<group>`` groups of ``random_set`` that stand in for ``groups``, in the set's order;
    a target without any is a NeurospecError naming ``random_set`` as ``option``."""
    missing = [group for group in groups if not any(random_group(name) == group for name in random_set.groups)]
    if missing:
        label = option or (f"random ({random_set.path})" if getattr(random_set, "path", None) else "random")
        shown = ", ".join(random_set.groups[:6]) + (", ..." if len(random_set.groups) > 6 else "") or "none"
        raise NeurospecError(
            f"{label} has no random<seed>:<group> group for {', '.join(missing)} (its groups: {shown}): give random "
            "baselines made for these groups, e.g. by `neurospec select culture --random-sets N`")
    conditions = []
    for name in random_set.groups:
        group = random_group(name)
        if group in groups:
            as_target = random_set.select(name).rename({name: group})  # a corpus statistic is the target's
            edit = recipe.edit(as_target, group, stats, sites=sites, label=f"{name} ({recipe.name})")
            conditions.append(Condition(name, "random", group, random_seed(name), edit))
    return conditions


def other_conditions(neurons, groups: Sequence[str], candidates: Sequence[str], sources: Sequence[str | None],
                     recipe: Recipe, stats, sites) -> list[Condition]:
    """One ``other`` condition per group that :func:`other_group` picks for some (source, target) pair of
    ``sources`` x ``groups`` (a source that is the target itself has no pair), in the order first picked."""
    picked = [other_group(candidates, source, target) for source in sources for target in groups if source != target]
    return [Condition(other_name(group), "other", group, None, recipe.edit(neurons, group, stats, sites=sites))
            for group in dict.fromkeys(picked) if group is not None]
