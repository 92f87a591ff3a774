"""Interventions: what is done to which neurons.

``edits`` (the in-memory :class:`Edit` every hook applies, and run-time statistics), ``recipes`` (one setting
applied to whichever target group an experiment asks for), ``files`` (intervention files written once and
reused), ``targets`` (the target groups of an experiment, empty ones set aside), ``conditions`` (the none / target /
random / other-language conditions every evaluation verb runs, built once).

    from neurospec.interventions import Edit, InterventionSpec
"""

from neurospec.interventions.edits import Edit, RuntimeStatistic
from neurospec.interventions.files import EditSpec, InterventionSpec, ValuesRef

__all__ = ["Edit", "EditSpec", "InterventionSpec", "RuntimeStatistic", "ValuesRef"]
