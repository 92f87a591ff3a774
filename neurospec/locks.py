"""Exclusive locks on the folders neurospec writes, so that two processes never write one at once.

    with exclusive(run_dir, "neurospec run"):          # a second writer fails at once: "in use by pid N"
        ...
    with exclusive(cache_folder, "data fetch", wait=True):   # a second fetcher waits, then finds the files
        ...

The lock is ``fcntl.flock`` on ``FOLDER/.lock`` (the folder is created if needed), released when the
block ends or the process dies; the file keeps the holder's pid for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from neurospec.errors import NeurospecError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str, *, wait: bool = False) -> Iterator[None]:
    """Hold the lock of ``folder`` for the block; ``what`` names the work in the error a second writer gets."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise NeurospecError(f"{folder} is in use by {holder} ({what}); wait for it to end, or choose "
                                 f"another folder") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
