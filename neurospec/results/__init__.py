"""Typed results: each artifact kind as a class that owns its JSON form (format id, version, to/from JSON).

    from neurospec.results import read
    matrix = read("runs/ppl/ppl.json")              # a PerplexityMatrix, whatever verb wrote the file
    matrix.summary()["fra_Latn"], read("runs/lss/lss.json").pooled.lss
    LSSRecord.from_json(document, "runs/lss/lss.json")   # from JSON already parsed
    tables = load("runs/study")                     # {"ppl": DataFrame, "lss": ...}: tidy tables (needs pandas)

One class per format (:data:`TYPES`), each with ``FORMAT``, ``VERSION``, ``COMMAND`` (the command that writes
it), ``to_json()`` and ``from_json(document, where, fix=None)``. ``from_json`` checks every field and that the
rebuilt result writes the document back exactly; a bad file raises :class:`ResultError` in one line naming
the file, the field and the fix. The evaluate modules compute the results and build these classes; the
report reads files only through them. Perplexity matrices, downstream tables and the fine-tuning result
are computed from their own fields; the other kinds are records of statistics computed in evaluate/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

from neurospec.results.downstream import DownstreamTable, TaskScore
from neurospec.results.fields import ResultError
from neurospec.results.finetune import FinetuneRecord, FinetuneResult
from neurospec.results.lmeval import LmevalResult
from neurospec.results.lss import LSSRecord
from neurospec.results.masking import MaskingRecord
from neurospec.results.perplexity import PerplexityMatrix
from neurospec.results.steering import SteeringRecord
from neurospec.results.sweep import SweepRecord
from neurospec.results.tidy import load, write_tidy_csv

Result = Union[PerplexityMatrix, LSSRecord, SweepRecord, SteeringRecord, DownstreamTable, MaskingRecord,
               FinetuneRecord, LmevalResult]

NEURON_SET_FORMAT = "neurospec.neuronset"  # an artifact, but no result: neurospec.neurons reads it

#: format id -> the result type that reads and writes it
TYPES: dict[str, type] = {cls.FORMAT: cls for cls in (PerplexityMatrix, LSSRecord, SweepRecord, SteeringRecord,
                                                      DownstreamTable, MaskingRecord, FinetuneRecord, LmevalResult)}


def from_document(document: Any, where: str, fix: str | None = None) -> Result:
    """The typed result of parsed JSON, chosen by its ``format`` (``where`` names the file in errors)."""
    tag = document.get("format") if isinstance(document, dict) else None
    if tag not in TYPES:
        known = ", ".join(TYPES)
        shown = "no format" if tag is None else f"format {tag!r}"
        if tag == NEURON_SET_FORMAT:
            fix = "load a neuron set with neurospec.neurons.neuron_set.NeuronSet.load"
        raise ResultError(f"{where}: {shown} is not a neurospec result ({known}); "
                          f"{fix or 'give a file a neurospec command wrote'}")
    return TYPES[tag].from_json(document, where, fix)


def read(path: str | os.PathLike) -> Result:
    """The typed result of the JSON file at ``path``, chosen by its ``format``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultError(f"{path} does not exist; give the path of a result file (ppl.json, lss.json, ...)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ResultError(f"{path} cannot be read ({err}); check the file and its permissions") from None
    try:
        document = json.loads(text)
    except ValueError as err:
        raise ResultError(f"{path} is not valid JSON ({err}); the file is truncated or corrupt: regenerate it with "
                          "the command that wrote it") from None
    return from_document(document, str(path))


__all__ = ["TYPES", "NEURON_SET_FORMAT", "Result", "ResultError", "read", "from_document", "PerplexityMatrix",
           "LSSRecord", "SweepRecord", "SteeringRecord", "DownstreamTable", "TaskScore", "MaskingRecord",
           "FinetuneRecord", "FinetuneResult", "LmevalResult", "load", "write_tidy_csv"]
