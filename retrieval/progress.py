"""Progress bars on stderr for long work (stdout stays clean for --json)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(label: str, total: int, show: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (stdout stays clean for --json), or nothing."""
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("[progress.description]{task.description}", BarColumn(),
               MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  disable=os.environ.get("CI") == "true") as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
