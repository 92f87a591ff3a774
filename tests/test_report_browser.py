"""The report page in a real browser (Debian chromium driven by Playwright), at 1400 and 800 CSS pixels wide:
no network, no errors, every figure loaded, nothing running off the page (wide tables scroll inside their own
box, figures shrink to the page), every table equal to the JSON, and a full-page screenshot at each width.

Needs chromium on PATH (`bash tests/install_browser.sh`); NEUROSPEC_SKIP_BROWSER=1 skips the test where
chromium is missing instead of failing it. The run folder is the one test_report.py builds. Screenshots go to
runs/test-artifacts/report-<width>.png; with NEUROSPEC_DOC_IMAGES=1 the top of each page is also written,
reduced to a 128-colour PNG, to docs/images/report-<width>.png (the figures of docs/report.md).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from test_report import FIGURES, assert_same_rows, expected_tables, shared_run, table_rows

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (1400, 800)
ARTIFACTS = ROOT / "runs" / "test-artifacts"
DOC_IMAGES = ROOT / "docs" / "images"
DOC_IMAGE_HEIGHT = {1400: 2300, 800: 2600}  # CSS pixels from the top of the page in each doc image
DOC_IMAGE_LIMIT = 300_000  # bytes
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

READ_TABLES = """() => Array.from(document.querySelectorAll('table[data-table]')).map(t => ({
    artifact: t.dataset.artifact, table: t.dataset.table,
    rows: Array.from(t.rows).map(r => Array.from(r.cells).map(c => [c.tagName.toLowerCase(), c.textContent,
                                                                  c.hasAttribute('data-value') ? c.dataset.value : null]))
}))"""

READ_IMAGES = """() => Array.from(document.images).map(i => ({
    figure: i.closest('figure') ? i.closest('figure').dataset.figure : null,
    complete: i.complete, width: i.naturalWidth, height: i.naturalHeight, scheme: i.currentSrc.split(':')[0],
    type: i.currentSrc.slice(0, 40).split(';')[0]
}))"""

READ_LAYOUT = """() => {
    const box = e => e.getBoundingClientRect();
    const scrolled = e => e.closest('.table-wrap, pre');
    return {
        scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
        overflowing: Array.from(document.querySelectorAll('body *'))
            .filter(e => !scrolled(e) && box(e).width > 0 && box(e).right > window.innerWidth + 0.5)
            .map(e => e.tagName.toLowerCase() + '.' + e.className),
        figures: Array.from(document.querySelectorAll('figure img')).map(i => ({
            figure: i.closest('figure').dataset.figure, shown: box(i).width, right: box(i).right,
            page: Number(i.getAttribute('width')), room: box(i.closest('figure')).width
        })),
        tables: Array.from(document.querySelectorAll('.table-wrap')).filter(w => box(w).width > 0).map(w => ({
            table: w.querySelector('table').dataset.table, right: box(w).right,
            scrolls: w.scrollWidth > w.clientWidth
        }))
    };
}"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("NEUROSPEC_SKIP_BROWSER") == "1":
            pytest.skip("chromium is missing and NEUROSPEC_SKIP_BROWSER=1: browser test left out")
        pytest.fail("chromium is not installed: run `bash tests/install_browser.sh` (Debian's chromium), or set "
                    "NEUROSPEC_SKIP_BROWSER=1 to skip this test", pytrace=False)
    return path


def browse(html: Path, screenshot: Path, *, width: int = 1400) -> SimpleNamespace:
    """Open ``html`` from file:// in a window ``width`` CSS pixels wide, with every request routed (only file:
    and data: let through); what was requested, refused, logged and raised, the images, figures, tables and
    layout, and a full-page screenshot."""
    executable = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('playwright is not installed: pip install -e ".[test]"', pytrace=False)
    seen = SimpleNamespace(html=html, width=width, screenshot=screenshot, requests=[], refused=[], console=[],
                           errors=[])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": 900})

            def route(handle):
                url = handle.request.url
                if url.startswith(("file:", "data:")):
                    handle.continue_()
                else:
                    seen.refused.append(url)
                    handle.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("request", lambda request: seen.requests.append(request.url))
            page.on("console", lambda message: seen.console.append((message.type, message.text)))
            page.on("pageerror", lambda error: seen.errors.append(str(error)))
            page.goto(html.as_uri(), wait_until="load")
            seen.images = page.evaluate(READ_IMAGES)
            seen.figures = page.evaluate("() => Array.from(document.querySelectorAll('figure[data-figure]'))"
                                         ".map(f => [f.dataset.figure, f.querySelectorAll('img').length])")
            seen.tables = page.evaluate(READ_TABLES)
            seen.layout = page.evaluate(READ_LAYOUT)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return seen


def save_doc_image(screenshot: Path, width: int) -> Path:
    """The top of a full-page screenshot as a small 128-colour PNG in docs/images/report-<width>.png."""
    target = DOC_IMAGES / f"report-{width}.png"
    with Image.open(screenshot) as full:
        top = full.convert("RGB").crop((0, 0, full.width, min(full.height, DOC_IMAGE_HEIGHT[width])))
    top.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(target, optimize=True)
    return target


@pytest.fixture(scope="module", params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def opened(request, tmp_path_factory):
    """The shared run's report.html as the browser saw it, at each width."""
    chromium()
    run, html = shared_run(tmp_path_factory)
    seen = browse(html, ARTIFACTS / f"report-{request.param}.png", width=request.param)
    seen.run = run
    return seen


def test_no_request_leaves_the_machine_and_nothing_errs(opened):
    assert opened.refused == []
    assert [u for u in opened.requests if not u.startswith(("file:", "data:"))] == []
    assert opened.requests and opened.requests[0].startswith("file:")
    assert [text for kind, text in opened.console if kind == "error"] == []
    assert opened.errors == []


def test_every_figure_is_a_loaded_svg(opened):
    expected = {slug for slugs in FIGURES.values() for slug in slugs}
    assert opened.images, "no image on the page"
    for image in opened.images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["scheme"] == "data" and image["type"] == "data:image/svg+xml", image
    assert {slug for slug, _ in opened.figures} == expected
    assert all(count == 1 for _, count in opened.figures), opened.figures
    assert {image["figure"] for image in opened.images} == expected


def test_nothing_runs_off_the_page(opened):
    layout = opened.layout
    assert layout["innerWidth"] == opened.width
    assert layout["scrollWidth"] <= layout["innerWidth"], layout["overflowing"]
    assert layout["overflowing"] == []
    assert all(table["right"] <= opened.width + 0.5 for table in layout["tables"]), layout["tables"]
    for figure in layout["figures"]:  # shown at its page size, or shrunk to the room there is, never more
        assert figure["right"] <= opened.width + 0.5, figure
        assert math.isclose(figure["shown"], min(figure["page"], figure["room"]), abs_tol=1.5), figure
    if opened.width == 800:  # at this width some figures shrink, and the widest tables scroll in their own box
        assert any(f["page"] > f["room"] + 1 for f in layout["figures"])
        assert any(t["scrolls"] for t in layout["tables"])


def test_tables_read_in_the_browser_equal_the_json(opened):
    want = expected_tables(opened.run)
    got = {(t["artifact"], t["table"]): [[tuple(cell) for cell in row] for row in t["rows"]] for t in opened.tables}
    assert set(got) == set(want), f"tables differ: {set(got) ^ set(want)}"
    for key, rows in want.items():
        assert_same_rows(key, table_rows(got[key]), rows)
        for row in got[key]:
            for _tag, text, value in row:  # the text a reader sees is the number, rounded
                if value is not None:
                    shown = float(text.replace("\u2212", "-").replace("+", ""))
                    assert math.isclose(shown, float(value), rel_tol=1e-3, abs_tol=1e-3), (key, text, value)


def test_full_page_screenshot(opened):
    assert opened.screenshot.is_file() and opened.screenshot.stat().st_size > 50_000
    with Image.open(opened.screenshot) as shot:
        pixels = np.asarray(shot.convert("L"), dtype=float)
    assert pixels.shape[1] == opened.width and pixels.shape[0] > 2000 and pixels.std() > 5
    if os.environ.get("NEUROSPEC_DOC_IMAGES") == "1":
        image = save_doc_image(opened.screenshot, opened.width)
        assert image.stat().st_size < DOC_IMAGE_LIMIT, f"{image}: {image.stat().st_size} bytes"
