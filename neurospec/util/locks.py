"""Exclusive locks on the folders and files neurospec writes, so that two processes never write one at once.

    with exclusive(run_dir, "neurospec run"):          # a second writer fails at once: "in use by pid N"
        ...
    with exclusive(cache_folder, "data fetch", wait=True):   # a second fetcher waits, then finds the files
        ...
    with exclusive_file("lape.json", "neurospec select lape"):   # an output file: the sibling lape.json.lock
        ...

The lock is ``fcntl.flock`` on ``FOLDER/.lock`` (the folder is created if needed), or on ``FILE.lock`` beside
an output file, released when the block ends or the process dies; the file keeps the holder's pid for the
error message. The lock file is removed when the block ends, and so are the folders the lock created that
are still empty, so a lock leaves nothing behind in the user's folders. (A taker checks, once it holds the
lock, that the file it locked is still the one at the path, and starts again otherwise: removing the file
on release is safe.) A file at the lock's path that is no neurospec lock (it holds something other than
``pid N``) is refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path
from typing import IO, Iterator

from neurospec.util.errors import NeurospecError

LOCK_NAME = ".lock"
LOCK_SUFFIX = ".lock"
_CONTENT = re.compile(r"(pid \d+)?")


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str, *, wait: bool = False) -> Iterator[None]:
    """Hold the lock of ``folder`` for the block; ``what`` names the work in the error a second writer gets."""
    folder = Path(folder)
    with _held(folder / LOCK_NAME, folder, "folder", what, wait):
        yield


@contextlib.contextmanager
def exclusive_file(path: str | os.PathLike, what: str, *, wait: bool = False) -> Iterator[None]:
    """Hold the lock of the output ``path`` (a file, or a folder that is replaced whole) for the block: the
    sibling file ``PATH.lock``, removed when the block ends."""
    path = Path(os.path.abspath(path)) if Path(path).name in ("", ".", "..") else Path(path)
    with _held(path.with_name(path.name + LOCK_SUFFIX), path, "output path", what, wait):
        yield


@contextlib.contextmanager
def _held(lock: Path, target: Path, noun: str, what: str, wait: bool) -> Iterator[None]:
    created = _missing_levels(lock.parent)
    try:
        handle = _acquire(lock, target, noun, what, wait)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(handle.fileno()), os.stat(lock)):
                    lock.unlink()  # still holding it: a process waiting on this file starts again on a new one
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
    finally:
        for level in created:  # deepest first; a folder someone else filled meanwhile stays
            try:
                level.rmdir()
            except OSError:
                break


def _missing_levels(folder: Path) -> list[Path]:
    """The folders from ``folder`` up that do not exist yet (deepest first)."""
    missing = []
    level = Path(os.path.abspath(folder))
    while not level.exists() and level != level.parent:
        missing.append(level)
        level = level.parent
    return missing


def _acquire(lock: Path, target: Path, noun: str, what: str, wait: bool) -> IO[str]:
    while True:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise NeurospecError(f"{target} is in use by {holder} ({what}); wait for it to end, or choose "
                                 f"another {noun}") from None
        try:
            current = os.path.samestat(os.fstat(handle.fileno()), os.stat(lock))
        except FileNotFoundError:
            current = False
        if not current:  # its holder removed it while we waited: take the file now at the path
            handle.close()
            continue
        handle.seek(0)
        if not _CONTENT.fullmatch(handle.read(200).strip()):
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            raise NeurospecError(f"{lock} is not a neurospec lock file, and neurospec locks {target} with it; "
                                 "move it away")
        return handle
