"""The ``neurospec run`` and ``neurospec report`` verbs: a whole study from one config, and its HTML page.

    neurospec run examples/toy-study.yaml                  # -> runs/toy-study; skips steps already done
    neurospec run study.yaml --run-dir runs/s1 --force ppl  # run ppl, and the steps reading it, again
    neurospec run study.yaml --dry-run                      # check the config and print the plan
    neurospec report runs/toy-study                         # -> runs/toy-study/report/report.html + PNGs
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from neurospec.cli.base import app, console, user_errors
from neurospec.measure.run_folder import writing


@app.command("run")
def run_command(
    config: Path = typer.Argument(..., help="Study config (YAML): model, defaults and steps; see examples/."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder (default: runs/<config name>)."),
    force: list[str] = typer.Option([], "--force", help="Run this step again, and the steps reading it (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the config and print what would run; run nothing."),
) -> None:
    """Run a whole study: each step a verb, skipped when its inputs did not change, resumed after a crash."""
    from neurospec.pipeline import run_study

    def echo(line: str) -> None:
        console.print(escape(line), soft_wrap=True)

    with user_errors():
        run_study(config, run_dir, force=force, dry_run=dry_run, echo=echo)


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="Run folder of `neurospec run`, or any folder of neurospec artifacts."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for report.html and the PNGs (default: "
                                       "RUN_DIR/report)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> None:
    """One self-contained HTML page (figures, confidence intervals, the numbers) and a PNG per figure."""
    from neurospec.report import write_report
    from neurospec.report.writer import report_folder

    with user_errors(), writing(report_folder(run_dir, out), "neurospec report"):
        page = write_report(run_dir, out, quiet=quiet)
        console.print(escape(f"wrote {page}"), soft_wrap=True)
