"""The report page in a real browser (Debian chromium driven by Playwright): no network, no errors,
every image loaded, every table equal to the JSON, and a full-page screenshot for people to look at.

Needs chromium on PATH (`bash tests/install_browser.sh`); NEUROSPEC_SKIP_BROWSER=1 skips the test where
chromium is missing instead of failing it. The run folder is the one test_report.py builds.
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

SCREENSHOT = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts" / "report_screenshot.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

READ_TABLES = """() => Array.from(document.querySelectorAll('table[data-table]')).map(t => ({
    artifact: t.dataset.artifact, table: t.dataset.table,
    rows: Array.from(t.rows).map(r => Array.from(r.cells).map(c => [c.tagName.toLowerCase(), c.textContent,
                                                                  c.hasAttribute('data-value') ? c.dataset.value : null]))
}))"""

READ_IMAGES = """() => Array.from(document.images).map(i => ({
    figure: i.closest('figure') ? i.closest('figure').dataset.figure : null,
    complete: i.complete, width: i.naturalWidth, height: i.naturalHeight, scheme: i.currentSrc.split(':')[0]
}))"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("NEUROSPEC_SKIP_BROWSER") == "1":
            pytest.skip("chromium is missing and NEUROSPEC_SKIP_BROWSER=1: browser test left out")
        pytest.fail("chromium is not installed: run `bash tests/install_browser.sh` (Debian's chromium), or set "
                    "NEUROSPEC_SKIP_BROWSER=1 to skip this test", pytrace=False)
    return path


def browse(html: Path, screenshot: Path) -> SimpleNamespace:
    """Open ``html`` from file:// with every request routed (only file: and data: let through); what was
    requested, refused, logged and raised, the images, figures and tables, and a full-page screenshot."""
    executable = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('playwright is not installed: pip install -e ".[test]"', pytrace=False)
    seen = SimpleNamespace(html=html, requests=[], refused=[], console=[], errors=[])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 900})

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
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return seen


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    """The shared run's report.html as the browser saw it."""
    chromium()
    run, html = shared_run(tmp_path_factory)
    seen = browse(html, SCREENSHOT)
    seen.run = run
    return seen


def test_no_request_leaves_the_machine_and_nothing_errs(opened):
    assert opened.refused == []
    assert [u for u in opened.requests if not u.startswith(("file:", "data:"))] == []
    assert opened.requests and opened.requests[0].startswith("file:")
    assert [text for kind, text in opened.console if kind == "error"] == []
    assert opened.errors == []


def test_every_image_is_loaded_and_every_figure_has_one(opened):
    expected = {slug for slugs in FIGURES.values() for slug in slugs}
    assert opened.images, "no image on the page"
    for image in opened.images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["scheme"] == "data", image
    assert {slug for slug, _ in opened.figures} == expected
    assert all(count == 1 for _, count in opened.figures), opened.figures
    assert {image["figure"] for image in opened.images} == expected


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
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 50_000
    pixels = np.asarray(Image.open(SCREENSHOT).convert("L"), dtype=float)
    assert pixels.shape[0] > 2000 and pixels.std() > 5
