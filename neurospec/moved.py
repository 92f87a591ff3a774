"""Old module paths of neurospec, kept importable for one release after the package was split into layers.

    import neurospec.collect            # works, warns once: "neurospec.collect moved to neurospec.measure.collect"

The old name is an alias of the new module (the same object), so ``from neurospec.hooks import intervene``
and ``mock.patch("neurospec.models.load_model")`` keep meaning what they meant.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

MOVED: dict[str, str] = {
    "neurospec.attribution": "neurospec.measure.attribution",
    "neurospec.collect": "neurospec.measure.collect",
    "neurospec.culnig": "neurospec.neurons.formats.culture",
    "neurospec.distributed": "neurospec.util.distributed",
    "neurospec.edits": "neurospec.core.edits",
    "neurospec.errors": "neurospec.util.errors",
    "neurospec.evaluate.targets": "neurospec.interventions.targets",
    "neurospec.hooks": "neurospec.core.hooks",
    "neurospec.io": "neurospec.util.io",
    "neurospec.languages": "neurospec.data.languages",
    "neurospec.lmeval": "neurospec.integrations.lmeval",
    "neurospec.locks": "neurospec.util.locks",
    "neurospec.model_sources": "neurospec.core.model_sources",
    "neurospec.models": "neurospec.core.models",
    "neurospec.outputs": "neurospec.measure.run_folder",
    "neurospec.progress": "neurospec.util.progress",
    "neurospec.prompts": "neurospec.data.prompts",
    "neurospec.provenance": "neurospec.core.provenance",
    "neurospec.recipes": "neurospec.interventions.recipes",
    "neurospec.scoring": "neurospec.evaluate.scoring",
    "neurospec.sites": "neurospec.core.sites",
    "neurospec.stats": "neurospec.measure.stats",
    "neurospec.tasks": "neurospec.evaluate.tasks",
    "neurospec.data.lss": "neurospec.data.lss_items",
}


def new_name(old: str) -> str | None:
    """``new_name("neurospec.tasks.xcopa")`` -> ``"neurospec.evaluate.tasks.xcopa"``; None for a path that did not move."""
    for prefix, target in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return target + old[len(prefix):]
    return None


class _Alias(importlib.abc.Loader):
    """Loads an old path as the new module itself, leaving the new module's own import attributes untouched."""

    def __init__(self, target: str):
        self.target = target
        self.saved: dict = {}

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self.saved = {name: getattr(module, name) for name in ("__spec__", "__loader__", "__path__", "__file__")
                      if hasattr(module, name)}
        return module

    def exec_module(self, module) -> None:
        for name in ("__spec__", "__loader__", "__path__", "__file__"):   # undo what importlib set for the alias
            if name in self.saved:
                setattr(module, name, self.saved[name])
            elif hasattr(module, name):
                delattr(module, name)


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves an old neurospec module path to the module that replaced it."""

    def find_spec(self, fullname, path=None, target=None):
        new = new_name(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new}; the old path will be removed in neurospec 0.3.",
                      DeprecationWarning, stacklevel=3)
        return importlib.machinery.ModuleSpec(fullname, _Alias(new), is_package=True)


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (before the path finder would load a second copy), once."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
