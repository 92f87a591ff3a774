"""The ``neurospec data`` verbs: the data sets neurospec reads, and fetching them.

    neurospec data list                                   # name, size, license, where each is present
    neurospec data fetch blend countryrc qnli mrpc        # into ~/.cache/neurospec/data, checksummed
    neurospec data fetch --for examples/gemma-study.yaml  # what a study reads
    neurospec data fetch all --base-url http://host/data  # from a mirror served over HTTP
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from neurospec.cli.base import VerbGroup, app, console, user_errors
from neurospec.util.errors import NeurospecError

data_app = typer.Typer(cls=VerbGroup, help="The data sets neurospec reads: list them, fetch them.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size else "-"


@data_app.command("list")
def list_command(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Each data set's source, terms and citation."),
) -> None:
    """Every registered data set: size, license, and where it is present (mirror, cache or nowhere)."""
    from neurospec.data.fetch import cache_root
    from neurospec.data.locate import mirror_root, where
    from neurospec.data.registry import DATASETS

    with user_errors():
        table = Table()
        for column in ("name", "files", "size", "license", "here"):
            table.add_column(column, justify="right" if column in ("files", "size") else "left")
        for entry in DATASETS.values():
            found = where(entry.name)
            license_text = entry.license + (" (non-commercial)" if entry.noncommercial else "")
            table.add_row(entry.name, str(len(entry.files)) if entry.files else entry.source, _size(entry.size),
                          escape(license_text), found[0] if found else "-")
            if verbose:
                details = [f"{entry.name}: {entry.title}", f"  license: {entry.terms or entry.license}",
                           f"  source: {entry.homepage}", f"  cite: {entry.citation}", f"  used by: {entry.used_by}",
                           f"  checked against: {entry.checked}"]
                console.print(escape("\n".join(details)), soft_wrap=True)
        if not verbose:
            console.print(table)
        console.print(escape(f"mirror (NEUROSPEC_DATA): {mirror_root() or 'not set'}; cache: {cache_root()}"),
                      soft_wrap=True)
        console.print("Fetch with `neurospec data fetch NAME...` (or `all`); the mirror is read first. "
                      "`neurospec data list -v` and docs/data.md give sources, terms and citations.", soft_wrap=True)


@data_app.command("fetch")
def fetch_command(
    names: list[str] = typer.Argument(None, help="Data sets to fetch (neurospec data list), or all."),
    study: Optional[Path] = typer.Option(None, "--for", help="Fetch the data sets this study config reads."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Download from this mirror (the cache's "
                                           "layout, over HTTP) instead of the public sources; also "
                                           "NEUROSPEC_DATA_URL."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Download data sets into the cache (~/.cache/neurospec/data), checking every file's sha256."""
    from neurospec.data.locate import where
    from neurospec.data.registry import DATASETS, dataset
    from neurospec.pipeline.config import datasets_in_config

    with user_errors():
        wanted = list(names or [])
        if study is not None:
            wanted += datasets_in_config(study)
        if not wanted:
            raise NeurospecError("name the data sets to fetch (neurospec data list shows them), all, or --for STUDY")
        if "all" in wanted:
            wanted = [name for name, entry in DATASETS.items() if entry.source == "github"]
        entries = list(dict.fromkeys(dataset(name) for name in wanted))
        for entry in entries:
            found = where(entry.name)
            if found is not None and found[0] == "mirror" and base_url is None:
                console.print(escape(f"{entry.name}: present in the mirror {found[1]}; nothing to fetch"),
                              soft_wrap=True)
                continue
            _fetch_one(entry, base_url, quiet)


def _fetch_one(entry, base_url: Optional[str], quiet: bool) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from neurospec.data.fetch import fetch

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet or not console.is_terminal, transient=True) as bar:
        task = bar.add_task(entry.name, total=entry.size or None)
        report = fetch(entry.name, base_url=base_url, progress=lambda n: bar.advance(task, n))
    note = f"{len(report.downloaded)} downloaded ({_size(report.bytes)}), {len(report.kept)} already there"
    if entry.source == "hub":
        note = f"{entry.repo} at {entry.revision}"
    console.print(escape(f"{entry.name}: {note}, all checked -> {report.folder}"), soft_wrap=True)
