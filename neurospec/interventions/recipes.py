"""Recipes: one intervention setting, applied to whichever target group's neurons an experiment asks for.

    from neurospec.interventions.recipes import Recipe
    Recipe.parse("zero")                         # deactivate (LAPE)
    Recipe.parse("set:p_max")                    # replace by the target language's p_max (Rahmanisa et al.)
    Recipe.parse("set:p_median*2")               # ... by 2 x p_median
    Recipe.parse("set:mean@continuation")        # corpus mean of the target, generated tokens only
    Recipe.parse("set:runtime:percentile90*3")   # 3 x the 90th percentile of the layer's current tensor
    Recipe.parse("add:0.5"), Recipe.parse("scale*2")
    edit = Recipe.parse("set:p_max").edit(lape, "fra_Latn", stats)      # -> neurospec.core.edits.Edit

A perplexity matrix, an LSS matrix, a steering table or a self/cross downstream table applies one
recipe to each target group in turn (and to matched random neurons). The value kinds stay apart as
METHODS section 2 asks: ``p_max``, ``p_median`` and ``mean`` are corpus statistics of the TARGET
language, fixed per neuron (read from an :class:`~neurospec.measure.stats.ActivationStats`); ``runtime:...``
is a statistic of the current activation tensor, recomputed on every forward call; a number is a
constant.

Grammar: ``OP[:VALUE][*FACTOR][@POSITIONS]`` with OP one of zero, scale, set, add; VALUE one of
p_max, p_median, mean, a number, ``runtime:max|min|mean|median|percentileQ``; FACTOR any number
(2, 0.5, 10); POSITIONS all (default), prompt or continuation. The rules on op, value, factor and
positions, and the JSON form (:meth:`Recipe.to_json`), are those of :mod:`neurospec.core.operations`, shared
with edits and intervention files; the short form adds one: ``scale`` writes its factor (``scale*2``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from neurospec.core.edits import Edit
from neurospec.core.operations import (  # noqa: F401 - CORPUS_STATISTICS: public here too
    CORPUS_STATISTICS,
    OpSpec,
    RuntimeStatistic,
    check_op,
    check_operation,
    operation_from_json,
)
from neurospec.neurons.neuron_set import match_group
from neurospec.util.errors import NeurospecError

RecipeValue = Union[None, str, float, RuntimeStatistic]

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _short_number(number: float) -> str:
    """``2.0`` -> ``2``: the shortest text that reads back as ``number`` (``:g`` where it is exact)."""
    text = f"{number:g}"
    return text if float(text) == number else repr(float(number))


def _number_or_text(text: str) -> float | str:
    """``"2.5"`` -> 2.5; text that is not a number stays text (the checks of the spec module refuse it)."""
    return float(text) if _NUMBER.match(text) else text


def _parse_runtime(text: str) -> RuntimeStatistic:
    """``"percentile90"`` -> ``RuntimeStatistic("percentile", 90.0)``; ``"max"`` -> ``RuntimeStatistic("max")``."""
    if not text.startswith("percentile") or text == "percentile":
        return RuntimeStatistic(text)  # type: ignore[arg-type]  # refuses an unknown name, or percentile without q
    number = text[len("percentile"):]
    if not _NUMBER.match(number):
        raise NeurospecError(f"'runtime:percentile' needs a number right after it, e.g. runtime:percentile90; "
                             f"got {number!r}")
    return RuntimeStatistic("percentile", float(number))


def _parse_value(text: str) -> RecipeValue:
    """The VALUE of ``OP:VALUE``: ``runtime:STAT``, a number or a corpus statistic's name (None when empty)."""
    if not text:
        return None
    if text.startswith("runtime:"):
        return _parse_runtime(text[len("runtime:"):])
    return _number_or_text(text)


@dataclass(frozen=True)
class Recipe:
    """What to do to a target group's neurons. See the module docstring; :meth:`parse` reads the short form."""

    op: str = "set"
    value: RecipeValue = "p_max"
    factor: float = 1.0
    positions: str = "all"

    def __post_init__(self) -> None:
        checked = check_operation(self.op, self.value, self.factor, self.positions, per_neuron="corpus")
        object.__setattr__(self, "value", checked.value)
        object.__setattr__(self, "factor", checked.factor)

    # ---- construction

    @classmethod
    def zero(cls, positions: str = "all") -> "Recipe":
        return cls("zero", None, 1.0, positions)

    @classmethod
    def parse(cls, text: str, option: str | None = None) -> "Recipe":
        """``Recipe.parse("set:p_max*2@continuation")``; the inverse of :attr:`name`. ``option`` (e.g. ``--recipe``)
        names the input in an error message."""
        if isinstance(text, Recipe):
            return text
        where = f"{option} {text!r}" if option else f"intervention recipe {text!r}"
        try:
            return cls._from_short_form(str(text).strip())
        except NeurospecError as err:
            raise NeurospecError(f"{where}: {err}") from None

    @classmethod
    def _from_short_form(cls, body: str) -> "Recipe":
        """``OP[:VALUE][*FACTOR][@POSITIONS]`` read; the checks are those of every form, plus the factor of scale."""
        body, at, positions = body.rpartition("@") if "@" in body else (body, "", "all")
        body, star, factor = body.rpartition("*") if "*" in body else (body, "", "1")
        op, _, value = body.partition(":")
        recipe = cls(check_op(op), _parse_value(value), _number_or_text(factor), positions)  # the op before its value
        if recipe.op == "scale" and not star:
            raise NeurospecError("'scale' needs a factor, e.g. scale*2")
        return recipe

    @classmethod
    def from_json(cls, raw: Any) -> "Recipe":
        """The dict written by :meth:`to_json` (any JSON form of an operation), or the short form as a string."""
        if isinstance(raw, str):
            return cls.parse(raw)
        if not isinstance(raw, dict):
            raise NeurospecError(f"a recipe is a string such as 'set:p_max' or a dict with op, value, factor and "
                                 f"positions; got {raw!r}")
        checked = operation_from_json(raw, per_neuron="corpus")
        return cls(checked.op, checked.value, checked.factor, checked.positions)

    # ---- description

    @property
    def value_kind(self) -> str:
        """``none``, ``constant``, ``corpus`` (a statistic of the target language) or ``runtime``."""
        kind = self.operation.value_kind
        return "corpus" if kind == "per_neuron" else kind

    @property
    def operation(self) -> OpSpec:
        """``recipe.operation.to_json()``: op, value, factor and positions (see :mod:`neurospec.core.operations`)."""
        return OpSpec(self.op, self.value, self.factor, self.positions)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        """The short form: ``set:p_max*2``. ``Recipe.parse(r.name) == r``."""
        text = self.op
        if isinstance(self.value, RuntimeStatistic):
            stat = self.value.name + (_short_number(self.value.q) if self.value.q is not None else "")
            text += f":runtime:{stat}"
        elif isinstance(self.value, float):
            text += f":{_short_number(self.value)}"
        elif self.value is not None:
            text += f":{self.value}"
        if self.factor != 1.0 or self.op == "scale":
            text += f"*{_short_number(self.factor)}"
        if self.positions != "all":
            text += f"@{self.positions}"
        return text

    def __str__(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        """``{"name", "op", "value", "kind", "factor", "positions"}``: the JSON form of the operation (``value``
        null where there is none) with the short form and the kind of value, as result files hold it."""
        operation = self.operation.to_json()
        return {"name": self.name, "op": self.op, "value": operation.get("value"), "kind": self.value_kind,
                "factor": self.factor, "positions": self.positions}

    # ---- application

    def edit(self, neurons, group: str, stats=None, *, sites=None, label: str | None = None) -> Edit:
        """The :class:`Edit` of ``neurons``' group ``group`` under this recipe.

        A corpus statistic is read from ``stats`` for language ``group``, the target itself (a random control
        set, whose groups are named after the targets, so gets the target's values at its own neurons).
        ``sites`` keeps only the group's neurons at those sites (default: all of them); ``label`` names the edit in
        error messages (default ``group <group> (<recipe>)``).
        """
        group = match_group(group, neurons.groups)
        value: Any = self.value
        if self.value_kind == "corpus":
            if stats is None:
                raise NeurospecError(
                    f"recipe {self.name!r} reads the target language's {self.value} from activation statistics; "
                    "pass stats= (a folder written by `neurospec collect --mode sentence`)"
                )
            used = set(neurons.sites(group)) & set(sites or neurons.sites(group))
            if used - {stats.site}:
                raise NeurospecError(
                    f"recipe {self.name!r}: group {group!r} has neurons at {', '.join(sorted(used))} but the "
                    f"statistics were collected at {stats.site!r}; use neurons and statistics of the same site"
                )
            value = stats.amplification_values(group, str(self.value))
        label = label or f"group {group} ({self.name})"
        return Edit.make(self.op, neurons, value, self.factor, self.positions, [group], sites, label)  # type: ignore[arg-type]


def write_intervention(recipe: "Recipe | str", neurons_path: str | Path, group: str, out: str | Path, stats=None) -> Path:
    """``write_intervention("set:p_max", "lape.json", "fr", "steer_fr.json", stats)``: the recipe for one group as an
    intervention file (for ``intervene``, ``neurospec intervention check`` and the lm-eval bridge).

    A corpus statistic is written, as a (layers, width) tensor, to ``<out stem>.values.safetensors`` beside the file.
    """
    from neurospec.core.operations import ValuesRef
    from neurospec.interventions.files import EditSpec, InterventionSpec
    from neurospec.neurons.neuron_set import NeuronSet
    from neurospec.util.io import atomic_save_safetensors

    recipe = Recipe.parse(recipe)
    out = Path(out)
    neurons = NeuronSet.load(neurons_path)
    group = match_group(group, neurons.groups)
    value: Any = recipe.value
    if recipe.value_kind == "corpus":
        values = recipe.edit(neurons, group, stats).value
        values_path = out.with_name(out.name.removesuffix(".json") + ".values.safetensors")
        key = f"{recipe.value}.{group}"
        atomic_save_safetensors(values_path, {key: values.contiguous()}, {"statistics": str(stats.path)})
        value = ValuesRef(values_path.name, key)
    spec = InterventionSpec([EditSpec(str(Path(neurons_path).resolve()), [group], None, recipe.op, value, recipe.factor,
                                      recipe.positions)], out.parent.resolve())
    spec.save(out)
    return out


def parse_recipes(texts, option: str | None = None) -> list[Recipe]:
    """``parse_recipes("set:p_max, set:p_median*2")`` or a list of strings / Recipes, each once (``option`` names
    the input in an error message)."""
    if isinstance(texts, str):
        texts = [t for t in texts.split(",") if t.strip()]
    recipes = [Recipe.parse(t, option) if not isinstance(t, Recipe) else t for t in texts]
    if not recipes:
        raise NeurospecError("no recipe given: write at least one, e.g. set:p_max")
    names = [r.name for r in recipes]
    if len(set(names)) != len(names):
        raise NeurospecError(f"recipes repeat: {', '.join(names)}")
    return recipes
