"""The verbs a study step can run: name -> options class and function.

    spec = verb_spec("ppl")
    spec.options                     # PplOptions
    spec.run(spec.options.from_values({...}), lm=shared_model)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from neurospec.util.errors import NeurospecError

# verb -> (module, options class, function, shares the study's loaded model)
STEP_FUNCTIONS: dict[str, tuple[str, str, str, bool]] = {
    "collect": ("neurospec.verbs.measure", "CollectOptions", "collect", True),
    "select lape": ("neurospec.verbs.measure", "SelectLapeOptions", "select_lape", False),
    "select all-active": ("neurospec.verbs.measure", "SelectAllActiveOptions", "select_all_active", False),
    "select top-mean": ("neurospec.verbs.measure", "SelectTopMeanOptions", "select_top_mean", False),
    "select random": ("neurospec.verbs.measure", "SelectRandomOptions", "select_random", False),
    "neurons import": ("neurospec.verbs.measure", "NeuronsImportOptions", "neurons_import", False),
    "ppl": ("neurospec.verbs.evaluate", "PplOptions", "ppl", True),
    "steer": ("neurospec.verbs.evaluate", "SteerOptions", "steer", True),
    "lss": ("neurospec.verbs.evaluate", "LssOptions", "lss", True),
    "sweep": ("neurospec.verbs.evaluate", "SweepOptions", "sweep", True),
    "eval": ("neurospec.verbs.evaluate", "EvalOptions", "evaluate_task", True),
    "lmeval": ("neurospec.verbs.lmeval", "LmevalOptions", "lmeval", True),
    "attribute": ("neurospec.verbs.culture", "AttributeOptions", "attribute", True),
    "select culture": ("neurospec.verbs.culture", "SelectCultureOptions", "select_culture", False),
    "mask-eval": ("neurospec.verbs.culture", "MaskEvalOptions", "mask_eval", True),
    "finetune": ("neurospec.verbs.culture", "FinetuneOptions", "finetune", False),   # trains: its own copy
}


@dataclass(frozen=True)
class VerbSpec:
    """A verb's options class and function, and whether it may use a model loaded for earlier steps."""

    name: str
    options: type
    function: Callable[..., Any]
    shares_model: bool

    def run(self, options: Any, *, lm: Any = None) -> Any:
        """Run the verb; ``lm`` is passed only to verbs that load a model and leave it unchanged."""
        return self.function(options, lm=lm) if self.shares_model else self.function(options)


def verb_spec(name: str) -> VerbSpec:
    """The verb ``name`` as a Python function; a one-line error naming the verbs for any other name."""
    if name not in STEP_FUNCTIONS:
        raise NeurospecError(f"{name!r} is not a verb a step can run; choose one of {', '.join(STEP_FUNCTIONS)}")
    module, options, function, shares = STEP_FUNCTIONS[name]
    loaded = importlib.import_module(module)
    return VerbSpec(name, getattr(loaded, options), getattr(loaded, function), shares)
