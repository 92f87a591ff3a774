"""Recipes: one intervention setting, applied to whichever target group's neurons an experiment asks for.

    from neurospec.interventions.recipes import Recipe
    Recipe.parse("zero")                         # deactivate (LAPE)
    Recipe.parse("set:p_max")                    # replace by the target language's p_max (Rahmanisa et al.)
    Recipe.parse("set:p_median*2")               # ... by 2 x p_median
    Recipe.parse("set:mean@continuation")        # corpus mean of the target, generated tokens only
    Recipe.parse("set:runtime:percentile90*3")   # 3 x the 90th percentile of the layer's current tensor
    Recipe.parse("add:0.5"), Recipe.parse("scale*2")
    edit = Recipe.parse("set:p_max").edit(lape, "fra_Latn", stats)      # -> neurospec.interventions.edits.Edit

A perplexity matrix, an LSS matrix, a steering table or a self/cross downstream table applies one
recipe to each target group in turn (and to matched random neurons). The value kinds stay apart as
METHODS section 2 asks: ``p_max``, ``p_median`` and ``mean`` are corpus statistics of the TARGET
language, fixed per neuron (read from an :class:`~neurospec.measure.stats.ActivationStats`); ``runtime:...``
is a statistic of the current activation tensor, recomputed on every forward call; a number is a
constant.

Grammar: ``OP[:VALUE][*FACTOR][@POSITIONS]`` with OP one of zero, scale, set, add; VALUE one of
p_max, p_median, mean, a number, ``runtime:max|min|mean|median|percentileQ``; FACTOR any number
(2, 0.5, 10); POSITIONS all (default), prompt or continuation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from neurospec.interventions.edits import OPERATIONS, POSITIONS, STATISTICS, Edit, RuntimeStatistic, check_positions
from neurospec.util.errors import NeurospecError
from neurospec.data.languages import language_of

CORPUS_STATISTICS: tuple[str, ...] = ("p_max", "p_median", "mean")
RecipeValue = Union[None, str, float, RuntimeStatistic]

_GRAMMAR = ("OP[:VALUE][*FACTOR][@POSITIONS], e.g. zero, scale*2, set:p_max, set:p_median*2, "
            "set:runtime:percentile90*3, add:0.5@continuation")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _parse_runtime(text: str, where: str) -> RuntimeStatistic:
    name = text
    q = None
    if text.startswith("percentile"):
        name, number = "percentile", text[len("percentile"):]
        if not _NUMBER.match(number):
            raise NeurospecError(f"{where}: 'runtime:percentile' needs a number right after it, e.g. runtime:percentile90")
        q = float(number)
    if name not in STATISTICS:
        raise NeurospecError(f"{where}: unknown run-time statistic {name!r}; use one of {', '.join(STATISTICS)}")
    return RuntimeStatistic(name, q)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Recipe:
    """What to do to a target group's neurons. See the module docstring; :meth:`parse` reads the short form."""

    op: str = "set"
    value: RecipeValue = "p_max"
    factor: float = 1.0
    positions: str = "all"

    def __post_init__(self) -> None:
        if self.op not in OPERATIONS:
            raise NeurospecError(f"unknown operation {self.op!r}: use one of {', '.join(OPERATIONS)}")
        check_positions(self.positions)
        if self.op in ("zero", "scale") and self.value is not None:
            raise NeurospecError(f"{self.op!r} takes no value; write '{self.op}' or 'scale*FACTOR'")
        if self.op in ("set", "add"):
            if self.value is None:
                raise NeurospecError(f"{self.op!r} needs a value: p_max, p_median, mean, a number or runtime:STAT")
            if isinstance(self.value, str) and self.value not in CORPUS_STATISTICS:
                raise NeurospecError(f"unknown corpus statistic {self.value!r}: use one of {', '.join(CORPUS_STATISTICS)}")
            if isinstance(self.value, (int, float)) and not isinstance(self.value, bool):
                object.__setattr__(self, "value", float(self.value))
                if not math.isfinite(self.value):
                    raise NeurospecError(f"value {self.value!r} is not a finite number; give a real number such as 0.5")
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, float)):
            raise NeurospecError(f"factor must be a number, got {self.factor!r}")
        object.__setattr__(self, "factor", float(self.factor))
        if not math.isfinite(self.factor):
            raise NeurospecError(f"factor {self.factor!r} is not a finite number; give a real number such as 2")

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
        body = str(text).strip()
        positions = "all"
        if "@" in body:
            body, _, positions = body.rpartition("@")
            if positions not in POSITIONS:
                raise NeurospecError(f"{where}: positions {positions!r} is not one of {', '.join(POSITIONS)}")
        factor = 1.0
        if "*" in body:
            body, _, raw = body.rpartition("*")
            if not _NUMBER.match(raw):
                raise NeurospecError(f"{where}: factor {raw!r} is not a number. Grammar: {_GRAMMAR}")
            factor = float(raw)
        op, _, raw_value = body.partition(":")
        if op not in OPERATIONS:
            raise NeurospecError(f"{where}: unknown operation {op!r}. Grammar: {_GRAMMAR}")
        value: RecipeValue = None
        if raw_value:
            if raw_value.startswith("runtime:"):
                value = _parse_runtime(raw_value[len("runtime:"):], where)
            elif _NUMBER.match(raw_value):
                value = float(raw_value)
            else:
                value = raw_value
        elif op in ("set", "add"):
            raise NeurospecError(f"{where}: {op!r} needs a value. Grammar: {_GRAMMAR}")
        if op == "scale" and "*" not in str(text):
            raise NeurospecError(f"{where}: 'scale' needs a factor, e.g. scale*2")
        try:
            return cls(op, value, factor, positions)
        except NeurospecError as err:
            raise NeurospecError(f"{where}: {err}") from None

    @classmethod
    def from_json(cls, raw: Any) -> "Recipe":
        """The dict written by :meth:`to_json`, or the short form as a string."""
        if isinstance(raw, str):
            return cls.parse(raw)
        if not isinstance(raw, dict) or "op" not in raw:
            raise NeurospecError(f"a recipe is a string such as 'set:p_max' or a dict with 'op'; got {raw!r}")
        value = raw.get("value")
        if isinstance(value, dict):
            value = RuntimeStatistic(value["runtime"], value.get("q"))
        return cls(raw["op"], value, raw.get("factor", 1.0), raw.get("positions", "all"))

    # ---- description

    @property
    def value_kind(self) -> str:
        """``none``, ``constant``, ``corpus`` (a statistic of the target language) or ``runtime``."""
        if self.value is None:
            return "none"
        if isinstance(self.value, RuntimeStatistic):
            return "runtime"
        return "corpus" if isinstance(self.value, str) else "constant"

    @property
    def name(self) -> str:
        """The short form: ``set:p_max*2``. ``Recipe.parse(r.name) == r``."""
        text = self.op
        if isinstance(self.value, RuntimeStatistic):
            stat = self.value.name + (f"{self.value.q:g}" if self.value.q is not None else "")
            text += f":runtime:{stat}"
        elif isinstance(self.value, float):
            text += f":{self.value:g}"
        elif self.value is not None:
            text += f":{self.value}"
        if self.factor != 1.0 or self.op == "scale":
            text += f"*{self.factor:g}"
        if self.positions != "all":
            text += f"@{self.positions}"
        return text

    def __str__(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        value: Any = self.value
        if isinstance(value, RuntimeStatistic):
            stat = value.to_json()
            value = {"runtime": stat.pop("name"), **stat}
        return {"name": self.name, "op": self.op, "value": value, "kind": self.value_kind,
                "factor": self.factor, "positions": self.positions}

    # ---- application

    def edit(self, neurons, group: str, stats=None) -> Edit:
        """The :class:`Edit` of ``neurons``' group ``group`` under this recipe.

        A corpus statistic is read from ``stats`` for language ``group``, the target itself (a random control
        set, whose groups are named after the targets, so gets the target's values at its own neurons).
        """
        group = match_group(group, neurons.groups)
        value: Any = self.value
        if self.value_kind == "corpus":
            if stats is None:
                raise NeurospecError(
                    f"recipe {self.name!r} reads the target language's {self.value} from activation statistics; "
                    "pass stats= (a folder written by `neurospec collect --mode sentence`)"
                )
            sites = set(neurons.sites(group))
            if sites - {stats.site}:
                raise NeurospecError(
                    f"recipe {self.name!r}: group {group!r} has neurons at {', '.join(sorted(sites))} but the "
                    f"statistics were collected at {stats.site!r}; use neurons and statistics of the same site"
                )
            value = stats.amplification_values(group, str(self.value))
        label = f"group {group} ({self.name})"
        return Edit.make(self.op, neurons, value, self.factor, self.positions, [group], None, label)  # type: ignore[arg-type]


def write_intervention(recipe: "Recipe | str", neurons_path: str | Path, group: str, out: str | Path, stats=None) -> Path:
    """``write_intervention("set:p_max", "lape.json", "fr", "steer_fr.json", stats)``: the recipe for one group as an
    intervention file (for ``intervene``, ``neurospec intervention check`` and the lm-eval bridge).

    A corpus statistic is written, as a (layers, width) tensor, to ``<out stem>.values.safetensors`` beside the file.
    """
    from neurospec.interventions.files import EditSpec, InterventionSpec, ValuesRef
    from neurospec.util.io import atomic_save_safetensors
    from neurospec.neurons.neuron_set import NeuronSet

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


def match_group(name: str, groups) -> str:
    """The group of ``groups`` that ``name`` denotes: itself, or the same language under another code
    (``fr`` for ``fra_Latn``). Unknown names raise an error listing the groups."""
    groups = list(groups)
    if name in groups:
        return name
    key = language_of(name)
    matches = [g for g in groups if key is not None and language_of(g) == key]
    if len(matches) == 1:
        return matches[0]
    raise NeurospecError(f"no group {name!r} in the neuron set; it has: {', '.join(groups) or 'none'}")


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
