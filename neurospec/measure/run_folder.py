"""What neurospec may replace or delete, and the lock every command takes on what it writes.

    from neurospec.measure.run_folder import check_replaceable, clear_folder, writing
    check_replaceable(out, marker="stats.json", tag="neurospec.measure.stats", inputs=[corpus_file, model_dir],
                      writer="neurospec collect")       # raises NeurospecError naming the path and the reason
    clear_folder(out)                                    # its entries, all but the lock file
    with writing(out, "neurospec ppl"):                  # OUT/.lock; a second writer: "... in use by pid N (...)"
        ...
    with writing(out_file, "neurospec select lape", file=True):   # OUT_FILE.lock beside it, removed after
        ...

The rule: neurospec deletes or replaces a folder only when it wrote it itself (the folder holds the
marker file of the command that writes it, with that command's format tag), and never the current
folder, a folder above it, an input of the command, or a folder holding an input.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator

from neurospec.util.errors import NeurospecError
from neurospec.util.locks import LOCK_NAME, exclusive, exclusive_file

PathLike = str | os.PathLike


def _resolved(path: PathLike) -> Path:
    return Path(os.path.realpath(path))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def has_marker(folder: PathLike, marker: str, tag: str | Callable[[dict], bool] | None = None) -> bool:
    """Whether ``folder/marker`` is a JSON object of neurospec's: its ``format`` is ``tag`` (or ``tag(doc)``
    holds; any object when ``tag`` is None)."""
    try:
        document = json.loads((Path(folder) / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(document, dict):
        return False
    if tag is None:
        return True
    return tag(document) if callable(tag) else document.get("format") == tag


def check_replaceable(path: PathLike, *, marker: str, tag: str | Callable[[dict], bool] | None = None,
                      inputs: Iterable[PathLike | None] = (), writer: str = "neurospec",
                      fix: str = "choose a new or empty folder") -> None:
    """Raise :class:`NeurospecError` unless neurospec may delete the folder ``path`` and write it anew.

    Refused: the current folder or one above it, an input (or a folder holding one), a file, and a
    non-empty folder without ``marker`` (see :func:`has_marker`). An absent or empty folder passes."""
    target = _resolved(path)
    if _within(Path.cwd().resolve(), target):
        where = "the current folder" if target == Path.cwd().resolve() else "a folder above the current folder"
        raise NeurospecError(f"{path} is {where}; neurospec never deletes it: {fix}")
    for item in inputs:
        if item is None:
            continue
        source = _resolved(item)
        if _within(source, target):
            what = "is" if source == target else f"holds {item}, which is"
            raise NeurospecError(f"{path} {what} an input of this command; neurospec never deletes its inputs: {fix}")
    if not target.exists():
        return
    if not target.is_dir():
        raise NeurospecError(f"{path} is a file, not a folder: {fix}")
    if not any(entry.name != LOCK_NAME for entry in target.iterdir()):
        return
    if not has_marker(target, marker, tag):
        raise NeurospecError(f"{path} was not written by {writer} (it holds no {marker} of {writer}'s); neurospec "
                             f"replaces only folders it wrote: {fix}")


def clear_folder(folder: PathLike) -> None:
    """Delete every entry of ``folder`` but its lock file (call :func:`check_replaceable` first)."""
    for entry in Path(folder).iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextlib.contextmanager
def writing(paths: PathLike | Iterable[PathLike | None] | None, what: str, *, file: bool = False) -> Iterator[None]:
    """Lock a command's outputs for its run: ``FOLDER/.lock`` of an output folder, ``FILE.lock`` beside an output
    file (``file=True``; also for a folder that is replaced whole). None entries are skipped.

    Under torchrun only rank 0 locks (the ranks of one collection write one folder together)."""
    if paths is None or isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    chosen = list(dict.fromkeys(Path(p) for p in paths if p is not None))
    if os.environ.get("RANK", "0") != "0":
        chosen = []
    with contextlib.ExitStack() as stack:
        for path in chosen:
            stack.enter_context(exclusive_file(path, what) if file else exclusive(path, what))
        yield
