"""Event-loop responsiveness: heartbeat round trips asked by the fake (server op 1), once or
in the background; a blocked bot loop shows up in them."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from .models import _on_fake_loop


class Probes:
    """Heartbeat probes over FakeDiscord's gateway."""

    @_on_fake_loop
    async def probe_heartbeat(self, timeout: float = 5.0) -> float:
        """Ask for an immediate heartbeat (server op 1) and return seconds until it arrives.

        The client answers from its event loop, so time that loop spends blocked shows up
        here. A routine heartbeat landing at the same moment would shorten one reading; with
        Discord's ~41 s interval that is rare."""
        if self._ws is None:
            raise ConnectionError("no client is connected to the fake gateway")
        async with self._probe_lock:
            self._probe_waiter = asyncio.get_running_loop().create_future()
            start = time.perf_counter()
            try:
                await self._send(self._ws, {"op": 1, "d": self._seq})
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that lands as the
                # ACK arrives, and stop_probing() would then wait on the prober for ever.
                async with asyncio.timeout(timeout):
                    acked = await self._probe_waiter
                return acked - start
            finally:
                self._probe_waiter = None

    def start_probing(self, every: float = 0.05) -> None:
        """Probe in the background, a probe every `every` seconds of the fake's clock,
        appending each round trip to heartbeat_rtts (inf when one goes unanswered 5 s)."""
        assert self._loop is not None, "the fake is not running"
        self._loop.call_soon_threadsafe(self._spawn_prober, every)

    def _spawn_prober(self, every: float) -> None:
        async def probe_forever() -> None:
            while self._ws is not None:
                try:
                    self.heartbeat_rtts.append(await self.probe_heartbeat())
                except TimeoutError:
                    self.heartbeat_rtts.append(math.inf)
                except ConnectionError:
                    return
                await asyncio.sleep(every)  # the probes' cadence, not a wait on some state

        if self._prober is None:
            self._prober = asyncio.create_task(probe_forever(), name="fake-discord-prober")

    @_on_fake_loop
    async def stop_probing(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None
