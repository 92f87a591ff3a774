"""The intervention recipe a result file records, read back as a :class:`~neurospec.interventions.recipes.Recipe`.

    from neurospec.results.recipes import read_recipe
    recipe = read_recipe(doc["recipe"])      # a Doc of {"name": "set:p_max*2", "op": "set", ...}
"""

from __future__ import annotations

from neurospec.interventions.recipes import Recipe
from neurospec.results.fields import Doc
from neurospec.util.errors import NeurospecError


def read_recipe(doc: Doc) -> Recipe:
    """The recipe of a ``{"name", "op", "value", "kind", "factor", "positions"}`` object; a malformed one raises
    :class:`~neurospec.results.fields.ResultError` naming the field."""
    doc.object()
    try:
        return Recipe.from_json(doc.raw)
    except (NeurospecError, KeyError, TypeError) as err:
        raise doc.error(f"is not a recipe ({err})") from None
