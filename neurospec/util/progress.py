"""Progress for long loops: a live bar in a terminal, a line every ``every`` seconds in logs, nothing when quiet.

    from neurospec.util.progress import progress
    with progress("training main", total=1300, unit="steps", quiet=False) as bar:
        for step in range(1300):
            ...
            bar.advance(1, tokens=4096, loss=f"{loss:.3f}")      # or items=32: items per second

The rate shown is tokens per second where tokens are counted, else items per second where items are (texts,
questions, prompts), else steps per second; the ETA is from the steps done so far.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator


class _Progress:
    def __init__(self, description: str, total: int | None, unit: str, every: float, live) -> None:
        self.description, self.total, self.unit, self.every = description, total, unit, every
        self.done, self.tokens, self.items, self.fields = 0, 0, 0, {}
        self.started = self.last_line = time.time()
        self._live = live
        self._task = live.add_task(description, total=total, rate="", extra="") if live else None

    def rate(self) -> float:
        """Tokens per second, else items per second, else steps per second."""
        counted = self.tokens or self.items or self.done
        return counted / max(time.time() - self.started, 1e-9)

    def rate_unit(self) -> str:
        return "tokens" if self.tokens else "items" if self.items else self.unit

    def rate_text(self) -> str:
        """``"1,234 tokens/s, "`` (or items/s, or steps/s)."""
        rate = self.rate()
        return f"{rate:,.0f} {self.rate_unit()}/s, " if rate >= 10 else f"{rate:,.2f} {self.rate_unit()}/s, "

    def eta(self) -> str:
        if not self.total or not self.done:
            return "?"
        seconds = (time.time() - self.started) / self.done * (self.total - self.done)
        return time.strftime("%H:%M:%S", time.gmtime(seconds))

    def advance(self, n: int = 1, *, tokens: int = 0, items: int = 0, **fields) -> None:
        self.done += n
        self.tokens += tokens
        self.items += items
        self.fields.update(fields)
        extra = " ".join(f"{k} {v}" for k, v in self.fields.items())
        if self._live is not None:
            self._live.update(self._task, advance=n, rate=self.rate_text().rstrip(", "), extra=extra)
        elif self.every and time.time() - self.last_line >= self.every:
            self.last_line = time.time()
            of = f"/{self.total}" if self.total else ""
            print(f"{self.description}: {self.done}{of} {self.unit}, {self.rate_text()}ETA {self.eta()} {extra}",
                  file=sys.stderr, flush=True)


@contextmanager
def progress(description: str, total: int | None = None, *, unit: str = "steps", quiet: bool = False,
             every: float = 60.0) -> Iterator[_Progress]:
    """A progress reporter: ``advance(n, tokens=..., **fields)``; the ETA is shown, and tokens/s where tokens are
    counted."""
    if quiet or not sys.stderr.isatty():
        tracker = _Progress(description, total, unit, 0.0 if quiet else every, None)
        yield tracker
        if not quiet:
            print(f"{description}: done, {tracker.done} {unit}, {tracker.rate_text()}"
                  f"{time.time() - tracker.started:.0f} s", file=sys.stderr, flush=True)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[extra]}"))
    with Progress(*columns, transient=False) as live:
        yield _Progress(description, total, unit, every, live)
