"""The real `byline-bot` as a subprocess (`python -m tests.support.bot_entry`), its stderr
lines collected as they come."""

from __future__ import annotations

import asyncio


class Process:
    """A subprocess whose stderr lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            async with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_line(self, text: str, timeout: float) -> None:
        def seen() -> bool:
            return any(text in line for line in self.lines) or self._reader.done()

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(seen)
        assert any(text in line for line in self.lines), "\n".join(self.lines[-20:])

    async def exit_status(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            status = await self.proc.wait()
            await self._reader
        return status
