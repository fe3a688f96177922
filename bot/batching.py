"""Micro-batching of concurrent /ask: one worker-thread `Retriever.ask_many` call per batch."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, replace

from retrieval.search import Answer, Retriever, check_question

MAX_BATCH = 32  # questions per ask_many call (32 take ~0.3 s on the seed index, 2 cores)


@dataclass
class _Pending:
    question: str  # already checked (stripped, within limits)
    k: int
    future: asyncio.Future[Answer]


class AskBatcher:
    """Answers concurrent asks together: what arrives while a batch runs forms the next one.

    One batch at a time, in a worker thread (the event loop never waits on retrieval); the
    first ask of a quiet spell starts at once, without waiting for company."""

    def __init__(self, retriever: Retriever, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.retriever = retriever
        self.max_batch = max_batch
        self.batch_sizes: list[int] = []  # one entry per ask_many call, in order
        self._pending: deque[_Pending] = deque()
        self._worker: asyncio.Task[None] | None = None
        # Held while a batch runs: one at a time even if a cancelled batch's thread runs on.
        self._lock = threading.Lock()

    async def ask(self, question: str, k: int) -> Answer:
        """`Retriever.ask(question, k)`, batched; BadQuestion is raised here, for this ask only."""
        checked = check_question(question)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(checked, max(1, int(k)), future))
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
        k = max(p.k for p in batch)
        try:
            answers = await asyncio.to_thread(self._ask_many, [p.question for p in batch], k)
            # Hits are ranked: the first k of a larger ask are this ask's, ranks 1..k.
            results = [replace(a, hits=a.hits[:p.k])
                       for p, a in zip(batch, answers, strict=True)]
        except Exception as exc:  # every waiter of the batch gets it
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        for p, answer in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(answer)

    def _ask_many(self, questions: list[str], k: int) -> list[Answer]:
        with self._lock:
            return self.retriever.ask_many(questions, k)
