"""Optional dependencies: imported where they are needed, with the extra that installs them named on failure.

    sacrebleu = require("sacrebleu", "chrF++ and BLEU")   # missing -> "chrF++ and BLEU need the optional package
                                                           #   'sacrebleu': pip install 'neurospec[eval]' ..."

The core (load_model, record, intervene, NeuronSet, collect, select_lape) needs torch, transformers and
safetensors alone; each extra adds one job: ``cli`` (typer, rich, pyyaml), ``report`` (matplotlib), ``eval``
(sacrebleu, py3langid), ``models`` (accelerate, gguf), ``tables`` (pandas: ``neurospec.results.load``); ``all`` is
every one of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from neurospec.util.errors import NeurospecError

EXTRAS = {"typer": "cli", "rich": "cli", "yaml": "cli", "matplotlib": "report", "sacrebleu": "eval",
          "py3langid": "eval", "accelerate": "models", "gguf": "models", "pandas": "tables"}


def missing_extra(module: str, purpose: str = "this") -> NeurospecError:
    """The one-line error for an optional package that is not installed."""
    top = module.split(".")[0]
    package = "pyyaml" if top == "yaml" else top
    extra = EXTRAS.get(top, "all")
    either = "" if extra == "all" else " (or 'neurospec[all]')"
    return NeurospecError(f"{purpose} needs the optional package {package!r}, which is not installed: "
                          f"pip install 'neurospec[{extra}]'{either}")


def require(module: str, purpose: str = "this") -> ModuleType:
    """Import ``module`` (``"sacrebleu.metrics"``); a one-line error naming the extra when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name and err.name.split(".")[0] == module.split(".")[0]:
            raise missing_extra(module, purpose) from None
        raise
