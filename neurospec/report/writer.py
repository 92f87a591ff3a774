"""``write_report(run_dir, out=None)``: discover, draw and write OUT/report.html plus OUT/figures/*.png (and the
neuron explorer's pages, OUT/explorer/*.html, where the run's statistics keep top contexts).

    from neurospec.report.writer import write_report
    path = write_report("runs/study")                  # runs/study/report/report.html
    path = write_report("runs/study", out="/tmp/rep")  # /tmp/rep/report.html

Nothing is written until every section is built and rendered in memory: a malformed artifact
raises :class:`neurospec.report.fields.ReportError` (naming the file and the fix) and leaves the
output folder as it was. Then OUT/report.json (the manifest) lists the figures this report and the one
before it wrote, each figure is written atomically into OUT/figures/, the previous report's figures this
one no longer draws are removed, report.json is written again with this report's figures only, and
report.html is written last, atomically. The explorer's pages follow the same rules as the figures (the
manifest's ``pages``, paths relative to OUT). Only files a report wrote (those in its manifest) are ever
replaced or removed: any other file in OUT/figures/ or OUT/explorer/ stays, and a file of the same name as a
figure, an explorer page, a report.html or a report.json neurospec did not write is an error that changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from neurospec.report.discover import discover
from neurospec.report.explorer import EXPLORER_DIR
from neurospec.report.fields import ReportError
from neurospec.report.html import render
from neurospec.report.page import Page, build_page
from neurospec.util.io import atomic_write_bytes, atomic_write_json, atomic_write_text

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
DEFAULT_OUT = "report"
MANIFEST_FILE = "report.json"
MANIFEST_FORMAT = "neurospec.report"
_LEGACY_MARK = "Written by <code>neurospec report</code>"  # the footer of a report.html from before the manifest


def report_folder(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """The folder the report of ``run_dir`` goes to (``out``, default ``run_dir/report``), once ``run_dir`` is
    known to be a folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        discover(run_dir)  # raises the error that says what is wrong with it
    target = Path(out) if out is not None else run_dir / DEFAULT_OUT
    if target.exists() and not target.is_dir():
        raise ReportError(f"--out '{target}' is a file; give a folder for report.html and figures/")
    return target


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, quiet: bool = True) -> Path:
    """Write the report of ``run_dir`` into ``out`` (default ``run_dir/report``); return the HTML's path. Unless
    ``quiet``, a progress bar over the artifacts whose figures are drawn."""
    run_dir = Path(run_dir)
    target = report_folder(run_dir, out)
    found = discover(run_dir, exclude=(target,))
    page = build_page(found, quiet=quiet)
    html = render(page)
    _write(target, page, html)
    return target / REPORT_FILE


def _written_before(target: Path) -> set[str] | None:
    """The figure files an earlier report wrote into ``target`` (its manifest, or the figures a report.html from
    before the manifest shows); None when no report of neurospec's is there. A report.json or report.html
    neurospec did not write is an error."""
    manifest, html = target / MANIFEST_FILE, target / REPORT_FILE
    if manifest.exists():
        try:
            document = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = None
        if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
            raise ReportError(f"{manifest} is not the manifest of a neurospec report, and the report would replace "
                              "it; move it away or choose another --out")
        return {name for name in document.get("figures", []) if _figure_name(name)}
    if html.exists():
        text = html.read_text(encoding="utf-8", errors="replace")
        if _LEGACY_MARK not in text:
            raise ReportError(f"{html} was not written by neurospec report, and the report would replace it; move it "
                              "away or choose another --out")
        return {f"{slug}.png" for slug in re.findall(r'<figure data-figure="([^"]+)"', text) if _figure_name(f"{slug}.png")}
    return None


def _pages_before(target: Path) -> set[str]:
    """The explorer pages an earlier report's manifest lists (none in a manifest from before the explorer)."""
    manifest = target / MANIFEST_FILE
    if not manifest.exists():
        return set()
    document = json.loads(manifest.read_text(encoding="utf-8"))  # _written_before has checked it
    pages = document.get("pages", [])
    return {name for name in pages if _page_name(name)} if isinstance(pages, list) else set()


def _page_name(name: object) -> bool:
    """``explorer/<plain name>.html``: all a manifest may name for removal among the pages."""
    if not isinstance(name, str) or not name.startswith(f"{EXPLORER_DIR}/"):
        return False
    rest = name[len(EXPLORER_DIR) + 1:]
    return rest.endswith(".html") and not rest.startswith(".") and Path(rest).name == rest


def _figure_name(name: object) -> bool:
    """A plain PNG file name (no folder, nothing hidden): all a manifest may name for removal."""
    return isinstance(name, str) and name.endswith(".png") and not name.startswith(".") and Path(name).name == name


def _save_manifest(target: Path, names: set[str], pages: set[str]) -> None:
    atomic_write_json(target / MANIFEST_FILE, {"format": MANIFEST_FORMAT, "version": 1, "report": REPORT_FILE,
                                               "figures": sorted(names), "pages": sorted(pages)})


def _check_pages(target: Path, pages: set[str], before: set[str]) -> None:
    """Raise unless every page this report writes is absent or an earlier report's, and explorer/ is a folder."""
    folder = target / EXPLORER_DIR
    if pages and folder.exists() and not folder.is_dir():
        raise ReportError(f"{folder} is a file; the report writes its neuron explorer pages into a folder of that "
                          "name: move the file away or choose another --out")
    foreign = sorted(name for name in pages - before if (target / name).exists() or (target / name).is_symlink())
    if foreign:
        raise ReportError(f"{target / foreign[0]} was not written by neurospec report (it is not in "
                          f"{target / MANIFEST_FILE}), and the report would replace it; move it away or choose "
                          "another --out")


def _write(target: Path, page: Page, html: str) -> None:
    figures = target / FIGURES_DIR
    if figures.exists() and not figures.is_dir():
        raise ReportError(f"{figures} is a file; the report writes its figures into a folder of that name: move the "
                          "file away or choose another --out")
    before = _written_before(target) or set()
    names = {f"{figure.slug}.png" for figure in page.figures}
    foreign = sorted(name for name in names - before if (figures / name).exists() or (figures / name).is_symlink())
    if foreign:
        raise ReportError(f"{figures / foreign[0]} was not written by neurospec report (it is not in "
                          f"{target / MANIFEST_FILE}), and the report would replace it; move it away or choose "
                          "another --out")
    pages_before = _pages_before(target)
    pages = {explorer_page.name for explorer_page in page.pages}
    _check_pages(target, pages, pages_before)
    # the manifest names every figure and page this report may write before it writes one: a failure midway
    # leaves no file of neurospec's that a later report would take for the user's
    _save_manifest(target, before | names, pages_before | pages)
    figures.mkdir(exist_ok=True)
    for figure in page.figures:
        atomic_write_bytes(figures / f"{figure.slug}.png", figure.png)
    for name in sorted(before - names):  # the previous report's figures this one does not draw
        with contextlib.suppress(FileNotFoundError):
            (figures / name).unlink()
    _write_pages(target, page, pages_before - pages)
    _save_manifest(target, names, pages)
    try:
        atomic_write_text(target / REPORT_FILE, html)
    except BaseException:
        with contextlib.suppress(OSError):
            (target / REPORT_FILE).unlink()  # no report.html beside figures it does not describe
        raise


def _write_pages(target: Path, page: Page, stale: set[str]) -> None:
    """Each explorer page atomically, then the earlier report's pages this one does not write removed (and
    explorer/ with them when nothing is left in it)."""
    if page.pages:
        (target / EXPLORER_DIR).mkdir(exist_ok=True)
    for explorer_page in page.pages:
        atomic_write_text(target / explorer_page.name, explorer_page.html)
    for name in sorted(stale):
        with contextlib.suppress(FileNotFoundError):
            (target / name).unlink()
    if stale and not page.pages:
        with contextlib.suppress(OSError):
            (target / EXPLORER_DIR).rmdir()  # only an empty folder goes
