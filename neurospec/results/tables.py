"""Tidy CSV tables of the results (rows x columns), written atomically.

    from neurospec.results.tables import write_matrix_csv
    write_matrix_csv("ppl.csv", ["none", "fra_Latn"], ["fra_Latn", "deu_Latn"], {"none": {...}, ...})
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping, Sequence

from neurospec.util.io import atomic_write_text


def write_matrix_csv(path: str | Path, rows: Sequence[str], columns: Sequence[str],
                     values: Mapping[str, Mapping[str, Any]], corner: str = "row") -> Path:
    """A rows x columns CSV (header: ``corner``, then the columns); missing cells are left empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([corner, *columns])
    for row in rows:
        cells = values.get(row, {})
        writer.writerow([row, *("" if cells.get(col) is None else csv_cell(cells[col]) for col in columns)])
    return atomic_write_text(path, buffer.getvalue())


def csv_cell(value: Any) -> str:
    """A number as a CSV cell: floats with 6 significant digits, anything else as its text."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
