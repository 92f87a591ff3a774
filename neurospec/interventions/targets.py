"""Target groups of an intervention: the groups asked for, with those that hold no neuron set aside.

    from neurospec.interventions.targets import target_groups
    chosen = target_groups(neurons, ["fr", "China"], verb="ppl")   # warns once: China has no neurons
    chosen.groups          # ["fra_Latn"]: the groups to intervene on, in the order asked
    chosen.empty           # {"China": "no neurons selected by culture-specific (rate 0.003, ...)"}

A group that ends up with no neurons (a country whose scores pass no filter, a language LAPE finds
nothing specific to) is a result, not an error: every verb that intervenes on groups skips it with one
warning line (:class:`~neurospec.util.errors.EmptyGroupWarning`) and records it under ``"empty_groups"`` in
its output JSON, with the reason. Naming only empty groups explicitly is still an error: there would be
nothing to measure.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

from neurospec.interventions.recipes import match_group
from neurospec.util.errors import EmptyGroupWarning, NeurospecError

__all__ = ["TargetGroups", "empty_reason", "selection_reason", "summary_reason", "target_groups"]


@dataclass(frozen=True)
class TargetGroups:
    """``groups``: the chosen groups that hold neurons, in order; ``empty``: the others, each with its reason."""

    groups: list[str]
    empty: dict[str, str] = field(default_factory=dict)


def empty_reason(neurons, group: str) -> str:
    """Why ``group`` of ``neurons`` holds no neuron (see :func:`selection_reason`)."""
    return selection_reason(neurons.meta.method, neurons.meta.params, group)


def summary_reason(empty: dict[str, str], where: str = "under empty_groups in the output") -> str:
    """One reason for several empty groups: theirs when they share it, else the common part and ``where`` each
    group's own reason is written."""
    reasons = list(dict.fromkeys(empty.values()))
    if len(reasons) == 1:
        return reasons[0]
    stems = {reason.split(" (")[0] for reason in reasons}
    stem = stems.pop() if len(stems) == 1 else "no neurons selected"
    return f"{stem} (each group's counts {where})"


def selection_reason(method: str | None, params: dict, group: str) -> str:
    """Why ``group`` got no neuron from the selection ``method`` with ``params`` (a neuron set's meta): the
    per-group counts where the selection recorded them (culture-specific: ``top 44, removed_by_countryrc 21,
    below_z 23, kept 0``), found inside unions too, else its method and options."""
    method, params = _selection_of(method, params, group) or (method, params)
    options = [f"{key} {value}" for key, value in params.items() if _short(value)]
    counts = (params.get("counts") or {}).get(group)
    if isinstance(counts, dict):
        options = options[:4] + [f"{key} {value}" for key, value in counts.items() if _short(value)]
    detail = f" ({', '.join(options)})" if options else ""
    return f"no neurons selected by {method}{detail}" if method else "no neurons selected"


def _short(value: Any) -> bool:
    """A number, or a string without spaces: worth quoting in a one-line reason."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (isinstance(value, str) and " " not in value and len(value) <= 40)


def _selection_of(method: str | None, params: dict, group: str) -> tuple[str | None, dict] | None:
    """The (method, params) that recorded counts for ``group``: this selection's, or one a union was made of."""
    counts = params.get("counts")
    if isinstance(counts, dict) and isinstance(counts.get(group), dict):
        return method, params
    for side in ("left", "right"):
        inner = params.get(side)
        if isinstance(inner, dict) and isinstance(inner.get("params"), dict):
            found = _selection_of(inner.get("method"), inner["params"], group)
            if found is not None:
                return found
    return None


def target_groups(neurons, requested: Sequence[str] | None, *, verb: str,
                  default: Sequence[str] | None = None) -> TargetGroups:
    """The groups of ``neurons`` named by ``requested`` (any alias, see
    :func:`~neurospec.interventions.recipes.match_group`), else ``default`` (else every group), split into those
    with neurons and the empty ones.

    Empty groups are skipped with one :class:`EmptyGroupWarning` naming them all. When ``requested`` names only
    empty groups, a NeurospecError says so; when the default holds only empty groups, the result has none to run.
    """
    explicit = bool(requested)
    names = [match_group(name, neurons.groups) for name in requested] if explicit else list(
        neurons.groups if default is None else default)
    names = list(dict.fromkeys(names))
    empty = {name: empty_reason(neurons, name) for name in names if neurons.is_empty(name)}
    kept = [name for name in names if name not in empty]
    if explicit and empty and not kept:
        raise NeurospecError(
            f"{verb}: every group asked for has no neurons: {', '.join(empty)}; {summary_reason(empty)}. "
            "Name groups that have neurons (see `neurospec neurons show`) or select again with looser thresholds")
    if empty:
        warnings.warn(f"{verb}: skipping {', '.join(empty)}: {summary_reason(empty)}", EmptyGroupWarning,
                      stacklevel=2)
    return TargetGroups(kept, empty)

