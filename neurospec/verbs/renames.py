"""The one vocabulary of the verbs, and the old spellings each verb still accepts for one release.

    from neurospec.verbs.renames import RENAMED, old_flags
    RENAMED["ppl"]            # {'targets': 'groups', 'max_texts': 'limit'}: Python names, old -> new
    old_flags("ppl")          # {'--targets': '--groups', '--max-texts': '--limit'}

The same word means the same thing in every verb (docs/cli.md, "One vocabulary"):
``--groups`` the neuron groups an intervention acts on; ``--recipe`` what is done to them; ``--random-seeds``
the seeds of size-matched random control sets ('' for none); ``--seed`` the verb's own randomness; ``--limit``
the most items, texts or prompts per language or country; ``--data-dir`` the data root (as NEUROSPEC_DATA);
``--prompt-format`` a prompt format and ``--format`` a file format.

An old name given to an options class (Python, or a study config) or an old flag given to the command line is
taken as the new one with a :class:`~neurospec.util.errors.RenamedWarning`.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

from neurospec.util.errors import NeurospecError, RenamedWarning

# verb -> {old Python name: new Python name}
RENAMED: dict[str, dict[str, str]] = {
    "ppl": {"targets": "groups", "max_texts": "limit"},
    "steer": {"targets": "groups"},
    "lss": {"targets": "groups", "random_seed": "random_seeds"},
    "sweep": {"targets": "groups"},
    "eval": {"targets": "groups"},
    "attribute": {"fmt": "prompt_format"},
    "mask-eval": {"random": "random_neurons", "fmt": "prompt_format"},
    "finetune": {"group": "groups", "eval_limit": "limit", "fmt": "prompt_format", "evaluate": "benchmarks"},
    "select culture": {"random_seeds": "random_sets"},
    "intervention make": {"group": "groups"},
    "toy blend-accuracy": {"per_country": "limit"},
}
# old Python names whose old flag is not --NAME-WITH-DASHES
OLD_FLAG_OF = {"fmt": "--format"}


def flag_of(name: str) -> str:
    """``max_texts`` -> ``--max-texts``."""
    return OLD_FLAG_OF.get(name) or "--" + name.replace("_", "-")


def old_flags(verb: str) -> dict[str, str]:
    """``{old flag: new flag}`` of ``verb`` (``"select culture"``: the command path after ``neurospec``)."""
    return {flag_of(old): "--" + new.replace("_", "-") for old, new in RENAMED.get(verb, {}).items()}


def renamed_message(verb: str, old: str, new: str) -> str:
    return f"neurospec {verb}: {old} is now {new}; the old name goes in the next release"


def take_renamed(verb: str, values: Mapping[str, Any], *, flags: bool = False) -> dict[str, Any]:
    """``values`` with every old name of ``verb`` replaced by its new one (one RenamedWarning each); both names
    at once is an error."""
    renamed = RENAMED.get(verb, {})
    result = dict(values)
    for old, new in renamed.items():
        if old not in result:
            continue
        shown_old, shown_new = (flag_of(old), "--" + new.replace("_", "-")) if flags else (old, new)
        if new in result:
            raise NeurospecError(f"neurospec {verb}: give {shown_new} only ({shown_old} is its old name)")
        warnings.warn(renamed_message(verb, shown_old, shown_new), RenamedWarning, stacklevel=4)
        result[new] = result.pop(old)
    return result
