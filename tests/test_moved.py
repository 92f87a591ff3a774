"""Old module paths keep working for one release: the same module object, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from neurospec.moved import MOVED, new_name


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_new_module(old):
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        sys.modules.pop(old, None)
        aliased = importlib.import_module(old)
    assert aliased is importlib.import_module(MOVED[old])
    assert aliased.__name__ == MOVED[old] and aliased.__spec__.name == MOVED[old]


def test_a_submodule_of_a_moved_package_is_not_loaded_twice():
    import neurospec.evaluate.tasks.xcopa as new

    sys.modules.pop("neurospec.tasks.xcopa", None)
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("neurospec.tasks.xcopa")
    assert old is new
    assert new_name("neurospec.tasks.xcopa") == "neurospec.evaluate.tasks.xcopa"
    assert new_name("neurospec.taskset") is None


def test_documented_imports_of_the_old_layout_still_work():
    """The imports docs/api.md showed before the split, in a fresh interpreter."""
    code = """
import warnings; warnings.simplefilter("ignore")
from neurospec.collect import collect
from neurospec.stats import ActivationStats
from neurospec.hooks import intervene, record
from neurospec.models import load_model
from neurospec.neurons import NeuronSet
from neurospec.interventions import InterventionSpec, EditSpec
from neurospec.recipes import Recipe
from neurospec.scoring import score_continuations
from neurospec.tasks import TASKS
from neurospec.culnig import load_culnig
from neurospec.languages import resolve
from neurospec.provenance import provenance
import neurospec.measure.collect as m
assert collect is m.collect
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_core_imports_without_the_optional_packages():
    """load_model, record, intervene, NeuronSet, collect, select_lape need torch, transformers, safetensors only."""
    code = """
import importlib.abc, sys
BLOCKED = {"typer", "rich", "click", "yaml", "matplotlib", "sacrebleu", "py3langid", "accelerate", "gguf", "lm_eval",
           "pandas"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked {name}", name=name)
sys.meta_path.insert(0, Block())
from neurospec import load_model, record, intervene, NeuronSet, Edit
from neurospec.measure.collect import collect
from neurospec.select import select_lape
from neurospec.verbs.measure import collect as collect_verb
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_artifact_format_ids_did_not_move_with_the_modules():
    """Files written before the split must still read: a format id names a file format, not a module path."""
    from neurospec.interventions.files import FORMAT as intervention
    from neurospec.measure.attribution import FORMAT as attribution
    from neurospec.measure.stats import FORMAT as stats
    from neurospec.neurons.neuron_set import FORMAT as neuron_set

    assert (stats, attribution, neuron_set, intervention) == (
        "neurospec.stats", "neurospec.attribution", "neurospec.neuronset", "neurospec.intervention")


def test_python_dash_m_neurospec_cli_still_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "neurospec.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("neurospec "), done.stderr
