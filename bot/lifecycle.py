"""Graceful shutdown: count the answers in flight, stop taking new ones, wait for the rest."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    """The answers in flight, and whether the bot has stopped taking new questions."""

    def __init__(self) -> None:
        self.closing = False
        self.reported = False  # whether the answers cut off were logged (one line)
        self._active = 0
        self._tasks: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def active(self) -> int:
        return self._active

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around a question from its arrival to its reply."""
        self._active += 1
        self._idle.clear()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def cancel(self, timeout: float = 5.0) -> int:
        """Cancel the answers still in flight (each tells its asker to come back) and wait
        up to `timeout` seconds for them to end; how many there were."""
        tasks = [t for t in self._tasks if not t.done() and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return len(tasks)

    async def wait(self, timeout: float) -> bool:
        """Whether every answer in flight finished within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


@contextlib.contextmanager
def on_signals(handler: Callable[[str], None]) -> Iterator[None]:
    """`handler(signal name)` on SIGTERM and SIGINT while inside, on the running loop."""
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, handler, sig.name)
    try:
        yield
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
