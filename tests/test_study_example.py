"""The offline example study, as the README's quick start runs it: `neurospec run examples/toy-study.yaml`
then `neurospec report`, on the small toy model; the page checked in a real browser.

Slow: the toy model is trained on first use (about 6 minutes, cached in ~/.cache/neurospec/toy, shared
with test_findings.py); the study itself takes a few minutes on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report import png_is_drawn
from test_report_browser import browse
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.report import write_report

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "toy-study.yaml"
SCREENSHOT = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts" / "toy_study_screenshot.png"


@pytest.fixture(scope="module")
def study_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("example") / "toy-study"
    result = CliRunner().invoke(app, ["run", str(EXAMPLE), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


def test_every_step_completes_and_a_second_run_does_nothing(study_run):
    record = json.loads((study_run / "study.json").read_text())
    assert {s["status"] for s in record["steps"]} == {"complete"}
    result = CliRunner().invoke(app, ["run", str(EXAMPLE), "--run-dir", str(study_run)])
    assert result.exit_code == 0, result.output
    assert result.output.count("up to date, skipped") == len(record["steps"])


def test_the_report_shows_every_kind_of_figure_and_loads_cleanly_in_a_browser(study_run):
    html = write_report(study_run)
    figures = sorted((study_run / "report" / "figures").glob("*.png"))
    for png in figures:
        png_is_drawn(png)
    names = " ".join(p.stem for p in figures)
    for kind in ("lape-per-layer", "lape-overlap", "ppl-change", "lss-lss", "sweep-curve", "steer-share",
                 "culture-per-layer", "mask-eval-change", "mask-eval-related"):
        assert kind in names, f"no {kind} figure among {names}"
    seen = browse(html, SCREENSHOT)
    assert seen.refused == [] and seen.errors == []
    assert [text for kind, text in seen.console if kind == "error"] == []
    assert len(seen.images) == len(figures)
    assert all(image["complete"] and image["width"] > 0 for image in seen.images)
    # The perplexity table the browser shows equals the ppl.json cells.
    cells = json.loads((study_run / "ppl" / "ppl.json").read_text())["cells"]
    tables = [t for t in seen.tables if t["artifact"] == "ppl/ppl.json"]
    shown = {row[0][1]: [float(value) for _, _, value in row[1:] if value is not None]
             for t in tables if t["table"] == "ppl" for row in t["rows"][1:]}
    assert shown, [t["table"] for t in tables]
    languages = json.loads((study_run / "ppl" / "ppl.json").read_text())["languages"]
    assert shown == {row: [cells[row][lang]["ppl"] for lang in languages] for row in cells}
