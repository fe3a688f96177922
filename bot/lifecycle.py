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
        self._active = 0
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
        try:
            yield
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

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
