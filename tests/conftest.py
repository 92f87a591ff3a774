"""Test set-up: no network, deterministic CPU threads, tiny models from tests/families.py."""

import logging
import os
from pathlib import Path

# The one place the tests name the data mirror: ../shared/data beside the repository (the layout of
# `neurospec data fetch`'s cache). Set NEUROSPEC_DATA to test against another copy.
os.environ.setdefault("NEUROSPEC_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _WarningClassArgument(logging.Filter):
    """transformers 4.46 logs ``logger.warning_once(message, UserWarning)`` in GenerationConfig.validate
    (``use_cache=False`` with a cache_implementation, as Gemma-2 sets): the stray argument breaks
    %-formatting, which pytest's log capture turns into a test failure. Drop such arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args and all(
            isinstance(arg, type) and issubclass(arg, Warning) for arg in record.args
        ):
            record.args = ()
        return True


logging.getLogger("transformers.generation.configuration_utils").addFilter(_WarningClassArgument())


def pytest_collection_modifyitems(items):
    """A test parametrized with a family the installed transformers lacks is skipped, with the reason."""
    import pytest

    for item in items:
        for value in getattr(getattr(item, "callspec", None), "params", {}).values():
            reason = getattr(value, "unavailable", None)
            if isinstance(reason, str):
                item.add_marker(pytest.mark.skip(reason=reason))
                break
