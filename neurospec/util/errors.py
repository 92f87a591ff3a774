"""Error types of neurospec. Every message names the bad input and the fix.

    try:
        site_map(model)
    except NeurospecError as err:
        print(err)
"""


class NeurospecError(Exception):
    """Base class: a user-facing error whose message says what was wrong and how to fix it."""


class UnsupportedModelError(NeurospecError):
    """The model's layers or neuron sites cannot be located."""


class ShapeMismatchError(NeurospecError):
    """A neuron file or value tensor does not fit the model it is used with."""


class FileFormatError(NeurospecError):
    """A file is not in the format neurospec expected."""


class ConfigError(NeurospecError):
    """A config file (a study) is wrong; the message starts with FILE:LINE."""


class NeurospecWarning(UserWarning):
    """Base class: something a user should know that did not stop the work (the CLI prints one yellow line)."""


class EmptyGroupWarning(NeurospecWarning):
    """A requested group holds no neurons and was skipped (recorded as ``empty_groups`` in the output)."""


class OtherWeightsWarning(NeurospecWarning):
    """A neuron file or statistics folder was made on other weights than the model it is used with (the shapes
    match, the fingerprints differ; see :mod:`neurospec.core.provenance`)."""


class RenamedWarning(NeurospecWarning, FutureWarning):
    """An option or argument was given under its old name; it still works for one release (the message names
    the new one). A FutureWarning, so Python shows it by default."""
