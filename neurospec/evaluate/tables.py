"""Small shared pieces of the evaluation tables: CSV matrices and language matching.

    from neurospec.evaluate.tables import write_matrix_csv, language_of
    write_matrix_csv("ppl.csv", ["none", "fra_Latn"], ["fra_Latn", "deu_Latn"], {"none": {...}, ...})
    language_of("fr") == language_of("fra_Latn") == "fra_Latn"; language_of("Japan") is None
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping, Sequence

from neurospec.errors import NeurospecError
from neurospec.io import atomic_write_text


def language_of(name: str) -> str | None:
    """The registry key of the language ``name`` denotes, or None when it is not a language name."""
    from neurospec.languages import resolve

    try:
        return resolve(name).key
    except NeurospecError:
        return None


def write_matrix_csv(path: str | Path, rows: Sequence[str], columns: Sequence[str],
                     values: Mapping[str, Mapping[str, Any]], corner: str = "row") -> Path:
    """A rows x columns CSV (header: ``corner``, then the columns); missing cells are left empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([corner, *columns])
    for row in rows:
        cells = values.get(row, {})
        writer.writerow([row, *("" if cells.get(col) is None else _cell(cells[col]) for col in columns)])
    return atomic_write_text(path, buffer.getvalue())


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
