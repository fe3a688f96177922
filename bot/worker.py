"""Where indexing and fetching run: never on the event loop that answers Discord's gateway.

`BYLINE_WORKER=thread` (the default) runs each job (bot/jobs.py) in a thread of the bot's
process, with the bot's own Embedder: a pool of JOB_THREADS of its own, never the event
loop's default executor, which answers /ask (six slow fetches from six servers once held
every default thread, and /help waited). `process` runs them in up to two worker processes
(spawned, each loading the model once, on its first job): their CPU work cannot hold the
bot's GIL, at the price of a second copy of the model in memory. bench/heartbeat.py
measures both (docs/operations.md, "Running it for months").
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot.settings import PROCESS, THREAD
from retrieval.model.embed import Embedder

P = ParamSpec("P")
T = TypeVar("T")
PROCESSES = 2  # so a long feed poll in one coverage does not hold up /coverage add in another
JOB_THREADS = 8  # jobs at once in thread mode (a server runs one at a time); more wait

Job = Callable[Concatenate[Embedder, P], T]


class Worker:
    """Runs jobs away from the event loop: `await worker.run(job, *args)` is
    `job(embedder, *args)` in a worker thread or a worker process."""

    def __init__(self, kind: str, embedder: Embedder, processes: int = PROCESSES) -> None:
        if kind not in (THREAD, PROCESS):
            raise ValueError(f"unknown worker kind {kind!r}")
        self.kind = kind
        self.embedder = embedder
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._stopping = threading.Event()  # a thread's jobs see this one
        self._context = multiprocessing.get_context("spawn")
        self._child_stopping: Any = None  # and a worker process's, this one

    @property
    def stop_event(self) -> threading.Event | None:
        """For a job that can stop early (a feed poll): set when the bot shuts down. None
        in worker processes, whose jobs see the event they were started with."""
        return self._stopping if self.kind == THREAD else None

    async def run(self, job: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        if self.kind == THREAD:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(JOB_THREADS, thread_name_prefix="byline-job")
            return await loop.run_in_executor(
                self._threads, partial(job, self.embedder, *args, **kwargs))
        if self._pool is None:
            # spawn, not fork: the bot's process has threads (ONNX Runtime's, discord.py's)
            self._child_stopping = self._context.Event()
            self._pool = ProcessPoolExecutor(self.processes, mp_context=self._context,
                                             initializer=_start_child,
                                             initargs=(self._child_stopping,))
        return await loop.run_in_executor(self._pool, _in_child, job, self.embedder.name,
                                          self.embedder.encoder, args, kwargs)

    def close(self) -> None:
        """On shutdown: jobs not started are dropped, a feed poll ends between two requests,
        an index run finishes (its save is atomic); worker processes exit after their job."""
        self._stopping.set()
        if self._child_stopping is not None:
            self._child_stopping.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None


_embedders: dict[tuple[str, str], Embedder] = {}  # in a worker process: loaded once


def _start_child(stopping: Any) -> None:
    """A worker process's start: its jobs stop early when the bot shuts down."""
    from bot import jobs

    jobs.STOPPING = stopping


def _in_child(job: Callable[..., T], model: str, encoder: str, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> T:
    embedder = _embedders.get((model, encoder))
    if embedder is None:
        embedder = _embedders[(model, encoder)] = Embedder(model, encoder=encoder)
    return job(embedder, *args, **kwargs)
