"""``write_report(run_dir, out=None)``: discover, draw and write OUT/report.html plus OUT/figures/*.png.

    from neurospec.report.writer import write_report
    path = write_report("runs/study")                  # runs/study/report/report.html
    path = write_report("runs/study", out="/tmp/rep")  # /tmp/rep/report.html

Nothing is written until every section is built and rendered in memory: a malformed artifact
raises :class:`neurospec.report.fields.ReportError` (naming the file and the fix) and leaves the
output folder as it was. The figures are written to a temporary folder that then replaces
OUT/figures whole (the folder belongs to the report), and report.html is written last, atomically.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from neurospec.io import atomic_write_bytes, current_umask, atomic_write_text
from neurospec.report.discover import discover
from neurospec.report.fields import ReportError
from neurospec.report.html import render
from neurospec.report.page import Page, build_page

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
DEFAULT_OUT = "report"


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of ``run_dir`` into ``out`` (default ``run_dir/report``); return the HTML's path."""
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / DEFAULT_OUT
    if target.exists() and not target.is_dir():
        raise ReportError(f"--out '{target}' is a file; give a folder for report.html and figures/")
    found = discover(run_dir, exclude=(target,))
    page = build_page(found)
    html = render(page)
    _write(target, page, html)
    return target / REPORT_FILE


def _write(target: Path, page: Page, html: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{FIGURES_DIR}.", suffix=".tmp", dir=target))
    figures = target / FIGURES_DIR
    retired: Path | None = None
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes 0700; give the folder the usual permissions
        for figure in page.figures:
            atomic_write_bytes(staging / f"{figure.slug}.png", figure.png)
        if figures.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{FIGURES_DIR}.old.", suffix=".tmp", dir=target))
            os.rmdir(retired)
            os.replace(figures, retired)
        os.replace(staging, figures)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired is not None and retired.exists() and not figures.exists():
            os.replace(retired, figures)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
    try:
        atomic_write_text(target / REPORT_FILE, html)
    except BaseException:
        with contextlib.suppress(OSError):
            (target / REPORT_FILE).unlink()  # no report.html beside figures it does not describe
        raise
