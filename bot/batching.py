"""Micro-batching of concurrent /ask: one worker-thread `Retriever.ask_many` call per batch."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from retrieval.search.filters import Filters
from retrieval.search.retriever import Answer, Retriever, check_question

T = TypeVar("T")

MAX_BATCH = 32  # questions per ask_many call (32 take ~0.3 s on the seed index, 2 cores)
RECENT_BATCHES = 1000  # batch sizes kept for inspection (metrics count them all)


@dataclass
class _Pending:
    question: str  # already checked (stripped, within limits)
    k: int
    future: asyncio.Future[Answer]
    filters: Filters | None = None


class AskBatcher:
    """Answers concurrent asks together: what arrives while a batch runs forms the next one.

    One batch at a time, in a worker thread (the event loop never waits on retrieval); the
    first ask of a quiet spell starts at once, without waiting for company. Each batch takes
    the Retriever from `source` when it starts and keeps it to the end: a swap (hot reload)
    takes effect at the next batch."""

    def __init__(self, source: Retriever | Callable[[], Retriever], max_batch: int = MAX_BATCH,
                 on_batch: Callable[[int], None] | None = None,
                 lock: threading.Lock | None = None) -> None:
        """`source`: the Retriever, or a function giving the current one; `on_batch` is told
        each batch's size (on the event loop); `lock`, held while a batch runs, may be
        shared with other batchers (one retrieval at a time across coverages)."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._source = source if callable(source) else (lambda: source)
        self.max_batch = max_batch
        self.on_batch = on_batch
        # The sizes of the latest ask_many calls, in order (bounded: the bot runs for months).
        self.batch_sizes: deque[int] = deque(maxlen=RECENT_BATCHES)
        self._pending: deque[_Pending] = deque()
        self._worker: asyncio.Task[None] | None = None
        # Held while a batch runs: one at a time even if a cancelled batch's thread runs on.
        self._lock = lock if lock is not None else threading.Lock()

    async def ask(self, question: str, k: int, filters: Filters | None = None) -> Answer:
        """`Retriever.ask(question, k, filters)`, batched; BadQuestion is raised here, for this
        ask only (and for the asks under the same filters, when it is the filters')."""
        checked = check_question(question)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(checked, max(1, int(k)), future, filters))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="byline-ask-batches")
        return await future

    async def _drain(self) -> None:
        batch: list[_Pending] = []
        try:
            while self._pending:
                batch = self._next_batch()
                if batch:
                    await self._run(batch)
                batch = []
        finally:  # only when cancelled (shutdown): leave no waiter hanging
            for p in [*batch, *self._pending]:
                p.future.cancel()
            self._pending.clear()

    def _next_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while self._pending and len(batch) < self.max_batch:
            p = self._pending.popleft()
            if not p.future.done():  # its asker gave up (cancelled)
                batch.append(p)
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        self.batch_sizes.append(len(batch))
        if self.on_batch is not None:
            self.on_batch(len(batch))
        groups: dict[Filters | None, list[_Pending]] = {}
        for p in batch:  # one ask_many per set of filters, all in one worker-thread call
            groups.setdefault(p.filters, []).append(p)
        try:
            outcomes = await asyncio.to_thread(self._ask_groups, list(groups.items()))
        except Exception as exc:  # every waiter of the batch gets it
            outcomes = [exc] * len(groups)
        for group, outcome in zip(groups.values(), outcomes, strict=True):
            for n, p in enumerate(group):
                if p.future.done():
                    continue
                if isinstance(outcome, Exception):
                    p.future.set_exception(outcome)
                else:  # hits are ranked: the first k of a larger ask are this ask's, 1..k
                    p.future.set_result(replace(outcome[n], hits=outcome[n].hits[:p.k]))

    def _ask_groups(self, groups: list[tuple[Filters | None, list[_Pending]]]
                    ) -> list[list[Answer] | Exception]:
        """Each group's answers, or the error that concerns that group alone."""
        out: list[list[Answer] | Exception] = []
        with self._lock:
            retriever = self._source()  # one Retriever for the whole batch
            for filters, group in groups:
                try:
                    out.append(retriever.ask_many([p.question for p in group],
                                                  max(p.k for p in group), filters=filters))
                except Exception as exc:  # handed to this group's waiters alone
                    out.append(exc)
        return out

    async def exclusive(self, fn: Callable[[], T]) -> T:
        """`fn()` in a worker thread, between batches (one retrieval at a time)."""
        def locked() -> T:
            with self._lock:
                return fn()
        return await asyncio.to_thread(locked)
