"""Progress on stderr for long work (stdout stays clean for --json): a bar with its ETA on a
terminal; elsewhere (a log, a pipe, `make eval > out`) a line at each tenth of the way, with
the rate and the time left, so an hour of indexing is never silent."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

STEPS = 10  # plain lines: one per tenth


@contextmanager
def progress_bar(label: str, total: int, show: bool) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`: n more of `total` done."""
    if not show or os.environ.get("CI") == "true":
        yield lambda n: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        with plain_progress(label, total, sys.stderr) as advance:
            yield advance
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("[progress.description]{task.description}", BarColumn(),
               MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def plain_progress(label: str, total: int, out: TextIO,
                   clock: Callable[[], float] = time.monotonic
                   ) -> Iterator[Callable[[int], None]]:
    """One line per tenth of `total`: "Embedding 112,000 passages: 30% (33,600) in 6m 50s,
    82/s, about 16m left"."""
    start, done, shown = clock(), 0, 0

    def advance(n: int) -> None:
        nonlocal done, shown
        done += n
        step = min(STEPS, done * STEPS // max(total, 1))
        if step <= shown:
            return
        shown = step
        elapsed = max(clock() - start, 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if rate else 0.0
        out.write(f"{label}: {step * 100 // STEPS}% ({done:,}) in {_duration(elapsed)}, "
                  f"{rate:,.0f}/s" + (f", about {_duration(left)} left" if done < total else "")
                  + "\n")
        out.flush()

    yield advance


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
