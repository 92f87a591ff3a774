"""The harness of the bad-input suites (tests/test_bad_input_*.py): run a command line as a user would and
check what a user must get back.

    from bad_input_common import refuses, tree_state
    refuses(["collect", "--model", model, "--out", "."], cwd=tmp_path, match="not a statistics folder",
            watch=tmp_path)

``refuses`` runs ``python -m neurospec.cli.main ARGS`` in a subprocess (a real process: exit code, signals and
stderr as a shell sees them) and asserts: exit code 2 (or ``code``), exactly one non-empty line on
stderr starting with ``error:``, no traceback, the message matching ``match`` (a regex, case-insensitive)
and every file under ``watch`` (a folder, or several) byte-identical before and after.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]


def tree_state(folders: Iterable[Path]) -> dict[str, str]:
    """Relative path -> sha256 of every file below each folder (``<dir>`` for folders, so removals show)."""
    state: dict[str, str] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            state[str(folder)] = "<absent>"
            continue
        for path in sorted(folder.rglob("*")):
            if path.name == ".lock":   # a lock file records who held it; it is not content
                continue
            key = str(path)
            state[key] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def run_cli(args: Sequence[object], *, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m neurospec.cli.main ARGS`` in a subprocess, offline, with the test environment."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200",
                "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "neurospec.cli.main", *[str(a) for a in args]], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def refuses(args: Sequence[object], *, match: str, watch: Path | Iterable[Path] = (), cwd: Path | None = None,
            env: dict | None = None, code: int = 2) -> str:
    """Run ``args`` and assert a clean refusal (see the module docstring); returns the error line."""
    folders = [watch] if isinstance(watch, (str, Path)) else list(watch)
    before = tree_state(folders)
    done = run_cli(args, cwd=cwd, env=env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    shown = f"exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-4000:]}"
    assert done.returncode == code, shown
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, shown
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, shown
    assert re.search(match, errors[0], re.IGNORECASE), f"{match!r} not in {errors[0]!r}"
    after = tree_state(folders)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"files changed: {changed[:10]}"
    return errors[0]
