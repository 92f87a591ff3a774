"""Interventions: what is done to which neurons.

The in-memory :class:`Edit` the hooks apply, and the one check of its operation, live below, in
``neurospec.core.edits`` and ``neurospec.core.operations``; re-exported here. ``recipes`` (one setting
applied to whichever target group an experiment asks for), ``files`` (intervention files written once and
reused), ``targets`` (the target groups of an experiment, empty ones set aside), ``conditions`` (the none / target /
random / other-language conditions every evaluation verb runs, built once).

    from neurospec.interventions import Edit, InterventionSpec
"""

from neurospec.core.edits import Edit, RuntimeStatistic
from neurospec.interventions.files import EditSpec, InterventionSpec, ValuesRef

__all__ = ["Edit", "EditSpec", "InterventionSpec", "RuntimeStatistic", "ValuesRef"]
