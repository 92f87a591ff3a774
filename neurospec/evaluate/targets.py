"""Target groups of an intervention: the groups asked for, with those that hold no neuron set aside.

    from neurospec.evaluate.targets import target_groups
    chosen = target_groups(neurons, ["fr", "China"], verb="ppl")   # warns once: China has no neurons
    chosen.groups          # ["fra_Latn"]: the groups to intervene on, in the order asked
    chosen.empty           # {"China": "no neurons selected by culture-specific (rate 0.003, ...)"}

A group that ends up with no neurons (a country whose scores pass no filter, a language LAPE finds
nothing specific to) is a result, not an error: every verb that intervenes on groups skips it with one
warning line (:class:`~neurospec.errors.EmptyGroupWarning`) and records it under ``"empty_groups"`` in
its output JSON, with the reason. Naming only empty groups explicitly is still an error: there would be
nothing to measure.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

from neurospec.errors import EmptyGroupWarning, NeurospecError
from neurospec.recipes import match_group

__all__ = ["TargetGroups", "empty_reason", "target_groups"]


@dataclass(frozen=True)
class TargetGroups:
    """``groups``: the chosen groups that hold neurons, in order; ``empty``: the others, each with its reason."""

    groups: list[str]
    empty: dict[str, str] = field(default_factory=dict)


def empty_reason(neurons, group: str) -> str:
    """Why ``group`` of ``neurons`` holds no neuron, from the selection that made the set (its method and options)."""
    meta = neurons.meta
    options = ", ".join(f"{key} {value}" for key, value in meta.params.items()
                        if isinstance(value, (int, float, str)) and not isinstance(value, bool))
    made_by = f" by {meta.method}{f' ({options})' if options else ''}" if meta.method else ""
    return f"no neurons selected{made_by}"


def target_groups(neurons, requested: Sequence[str] | None, *, verb: str,
                  default: Sequence[str] | None = None) -> TargetGroups:
    """The groups of ``neurons`` named by ``requested`` (any alias, see :func:`~neurospec.recipes.match_group`), else
    ``default`` (else every group), split into those with neurons and the empty ones.

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
            f"{verb}: every group asked for has no neurons: {', '.join(empty)}; {next(iter(empty.values()))}. "
            "Name groups that have neurons (see `neurospec neurons show`) or select again with looser thresholds")
    if empty:
        warnings.warn(f"{verb}: skipping {', '.join(empty)}: {next(iter(empty.values()))}", EmptyGroupWarning,
                      stacklevel=2)
    return TargetGroups(kept, empty)

