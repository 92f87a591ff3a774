"""Reading benchmark records: kept here for old imports; the code is :mod:`neurospec.data.records`.

    from neurospec.evaluate.tasks.records import read_records, field      # same as neurospec.data.records
"""

from __future__ import annotations

from neurospec.data.records import RECORD_SUFFIXES, field, read_records, require

__all__ = ["RECORD_SUFFIXES", "field", "read_records", "require"]
