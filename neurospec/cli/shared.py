"""Options and helpers the model-loading verbs share (cli_evaluate.py, cli_culture.py).

    from neurospec.cli.shared import _MODEL, _BATCH, _model, _progress, _done
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from neurospec.cli.main import console

_MODEL = typer.Option(..., "--model", help="Hub id or local folder of the model.")
_BATCH = typer.Option(8, "--batch-size", min=1, help="Sequences per forward call.")
_DTYPE = typer.Option("auto", "--dtype", help="auto (fp32 on CPU, the checkpoint's elsewhere), float32, bfloat16...")
_DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if available).")
_DEVICE_MAP = typer.Option(None, "--device-map", help="auto: spread a large model over all GPUs.")
_TRUST = typer.Option(False, "--trust-remote-code", help="Run code from the model's repository.")
_QUIET = typer.Option(False, "--quiet", help="No progress lines.")


def _model(model: str, dtype: str, device: Optional[str], device_map: Optional[str], trust_remote_code: bool):
    from neurospec.core.models import load_model

    return load_model(model, dtype=dtype, device=device, device_map=device_map, trust_remote_code=trust_remote_code)


def _progress(quiet: bool):
    def line(*parts: Any) -> None:
        if not quiet:
            console.print(escape(" ".join(str(p) for p in parts)), soft_wrap=True)
    return line


def _done(path: Path) -> None:
    console.print(escape(f"wrote {path}"), soft_wrap=True)
