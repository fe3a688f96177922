"""Parse pages in worker processes while the walk goes on, results in the walk's order.

Extracting a page's text (trafilatura, lxml) is CPU work that holds the GIL, a large share
of indexing a folder of pages on one core (docs/extraction.md). With enough
pages to repay starting them, the slow kinds are parsed in up to WORKERS spawned processes
(spawn, not fork: the caller may have threads, ONNX Runtime's or the bot's); everything else,
and every file when the folder is small, is parsed here. What a page gives does not depend
on where it was parsed, and results come back in the order the files were walked, so the
index is the same either way.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Generic, TypeVar

Job = TypeVar("Job")
Item = TypeVar("Item")
Note = TypeVar("Note")

WORKERS = 4  # processes at most; the cores are the other bound
POOL_MIN = 64  # files in the walk; fewer are all parsed here (a start costs about a second)
AHEAD = 4  # jobs in flight per worker: bounds the pages held in memory at once


class Parsers(Generic[Job, Item, Note]):
    """`in_order` runs `parse` on each job, in worker processes where `offload(job)` says so
    and the walk is long enough, and yields the results in the order given."""

    def __init__(self, files: int, parse: Callable[[Job], tuple[list[Item], list[Note]]],
                 offload: Callable[[Job], bool], workers: int | None = None) -> None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        # One core gains nothing from a second process, only the cost of sending pages to it.
        self.workers = (min(WORKERS, cores) if cores > 1 else 0) if workers is None else workers
        if files < POOL_MIN:
            self.workers = 0
        self.parse = parse
        self.offload = offload
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Parsers[Job, Item, Note]:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def in_order(self, walk: Iterable[tuple[str, list[Item] | Job, list[Note]]]
                 ) -> Iterator[tuple[str, list[Item], list[Note]]]:
        """For each (name, articles or job, notes so far) of the walk: (name, articles,
        every note), the job's parsed where it was handed out."""
        pending: deque[tuple[str, list[Item] | Job, Future | None, list[Note]]] = deque()
        for name, got, notes in walk:
            future = None
            if not isinstance(got, list) and self.workers > 0 and self.offload(got):
                future = self._submit(got)
            pending.append((name, got, future, notes))
            while pending and (len(pending) > AHEAD * max(self.workers, 1)
                               or pending[0][2] is None or pending[0][2].done()):
                yield self._finish(*pending.popleft())
        while pending:
            yield self._finish(*pending.popleft())

    def _submit(self, job: Job) -> Future | None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            return self._pool.submit(self.parse, job)
        except BrokenProcessPool:
            self.workers = 0
            return None  # parsed here instead

    def _finish(self, name: str, got: list[Item] | Job, future: Future | None,
                notes: list[Note]) -> tuple[str, list[Item], list[Note]]:
        if isinstance(got, list):
            return name, got, notes
        if future is not None:
            try:
                items, more = future.result()
                return name, items, notes + more
            except BrokenProcessPool:
                # A worker died (killed, out of memory): its jobs and every later one are
                # parsed here, so the walk still reads every file.
                self.workers = 0
        items, more = self.parse(got)
        return name, items, notes + more
