"""The fake's server: FakeDiscord (its state, lifecycle, and waiting on what the bot sent),
built from one mixin per part (REST, gateway, probes, interactions, payloads), and
`running`, which runs a bot against it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import discord
import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket
from discord.http import Route

from .gateway import Gateway
from .interactions import Interactions
from .models import Reply, Request, T, _InteractionState, _on_fake_loop
from .payloads import Payloads
from .probes import Probes
from .rest import Rest


class FakeDiscord(Rest, Gateway, Probes, Interactions, Payloads):
    """Serves Discord's REST API and gateway for one bot; records what the bot sends."""

    def __init__(
        self,
        *,
        heartbeat_interval_ms: int = 41_250,
        token: str | None = None,  # when set, any other token gets 401 / gateway close 4004
        app_id: int = 1_100_000_000_000_000_001,
        guild_id: int = 1_200_000_000_000_000_002,
        channel_id: int = 1_300_000_000_000_000_003,
        user_id: int = 1_400_000_000_000_000_004,  # who runs commands unless told otherwise
        bot_name: str = "Byline",
        extra_guilds: tuple[int, ...] = (),  # more guilds the bot is in, each with a channel
    ) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.token = token
        self.app_id = self.bot_user_id = app_id  # a bot's user id is its application id
        self.guild_id, self.channel_id, self.user_id = guild_id, channel_id, user_id
        self.guild_ids = [guild_id, *extra_guilds]
        self.channel_ids = {g: channel_id + i for i, g in enumerate(self.guild_ids)}
        self.bot_name = bot_name

        self.requests: list[Request] = []
        self.gateway_frames: list[dict[str, Any]] = []  # every frame the client sent
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # None: global commands
        self.messages: dict[int, dict[str, Any]] = {}  # messages created through the fake
        self.heartbeat_rtts: list[float] = []  # seconds (inf: no answer), background prober
        self.identify_count = self.resume_count = 0
        self.port = 0

        # Everything below belongs to the fake's loop and is used only from it.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._changed = asyncio.Condition()  # notified on every recorded request or frame
        self._interactions: dict[str, _InteractionState] = {}
        self._command_ids: dict[tuple[int | None, str], int] = {}  # stable across syncs
        self._queued: list[tuple[str, re.Pattern[str], Reply]] = []
        self._delays: dict[str, float] = {}  # route name -> seconds before it answers
        self._ws: web.WebSocketResponse | None = None
        self._send_lock = asyncio.Lock()  # seq numbers must go out in order
        self._session_id: str | None = None
        self._seq = 0
        self._probe_lock = asyncio.Lock()
        self._probe_waiter: asyncio.Future[float] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._patch: contextlib.ExitStack | None = None


    async def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="fake-discord", daemon=True)
        self._thread.start()
        await self._serve()

    def _run_loop(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            leftovers = asyncio.all_tasks(self._loop)
            for task in leftovers:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            self._loop.close()

    @_on_fake_loop
    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # a free port chosen by the OS, no race with other tests
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def close(self) -> None:
        if self._loop is None or self._thread is None:
            return
        await self._shutdown()
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 5.0)
        self._loop = self._thread = None

    @_on_fake_loop
    async def _shutdown(self) -> None:
        await self.stop_probing()
        if self._ws is not None:
            await self._ws.close(code=1001)  # going away
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        self._patch = contextlib.ExitStack()
        self._patch.enter_context(self.patched())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._patch is not None:
            self._patch.close()
        await self.close()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        """Point discord.py at the fake. A plain Client ignores /gateway/bot and connects to
        DiscordWebSocket.DEFAULT_GATEWAY; every REST URL is built from Route.BASE."""
        old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self.api_base, yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


    @_on_fake_loop
    async def wait_for(
        self, predicate: Callable[[Request], bool], timeout: float = 5.0, nth: int = 0
    ) -> Request:
        """The nth recorded request matching predicate, waiting up to timeout seconds."""
        try:
            return await self._wait_nth(self.requests, predicate, timeout, nth)
        except TimeoutError:
            seen = [f"{r.method} {r.path} -> {r.status}" for r in self.requests[-10:]]
            raise TimeoutError(f"no matching request in {timeout}s; last seen: {seen}") from None

    @_on_fake_loop
    async def wait_for_frame(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0, nth: int = 0
    ) -> dict[str, Any]:
        """The nth gateway frame from the client matching predicate (e.g. op 6, a RESUME)."""
        return await self._wait_nth(self.gateway_frames, predicate, timeout, nth)

    async def _wait_nth(
        self, log: list[T], predicate: Callable[[T], bool], timeout: float, nth: int
    ) -> T:
        def found() -> list[T]:
            matches = [item for item in log if predicate(item)]
            return matches[nth : nth + 1]

        async with asyncio.timeout(timeout), self._changed:
            return (await self._changed.wait_for(found))[0]

    async def wait_for_callback(self, token: str, timeout: float = 5.0) -> Request:
        return await self.wait_for(
            lambda r: r.route == "callback" and r.params["token"] == token, timeout
        )

    async def wait_for_followup(self, token: str, timeout: float = 5.0, nth: int = 0) -> Request:
        return await self.wait_for(
            lambda r: r.route == "followup" and r.params["token"] == token, timeout, nth
        )

    def queue_reply(self, method: str, path_regex: str, reply: Reply) -> None:
        """Answer the next request matching method and path (fullmatch) with reply instead."""
        self._queued.append((method, re.compile(path_regex), reply))

    def slow_down(self, route: str, seconds: float) -> None:
        """Answer requests of `route` (e.g. "followup") `seconds` late, as a slow Discord
        does: they are recorded on arrival, answered after (0: no delay)."""
        self._delays[route] = seconds


@contextlib.asynccontextmanager
async def running(bot: discord.Client, *, token: str = "fake-token",
                  timeout: float = 10.0) -> AsyncIterator[discord.Client]:
    """Run bot against the (patched) fake until on_ready; close it and its task on exit.

    Tip: pass guild_ready_timeout=0.05 to the bot, or discord.py waits 2 s after the last
    GUILD_CREATE before it calls on_ready."""
    async with bot:  # initialises the client's asyncio state, so wait_until_ready works
        task = asyncio.create_task(bot.start(token), name="bot-under-test")
        ready = asyncio.create_task(bot.wait_until_ready())
        try:
            await asyncio.wait({task, ready}, timeout=timeout, return_when="FIRST_COMPLETED")
            if task.done():
                task.result()  # raises what stopped the bot (e.g. LoginFailure)
                raise RuntimeError("the bot stopped before it became ready")
            if not ready.done():
                raise TimeoutError(f"the bot was not ready within {timeout}s")
            yield bot
        finally:
            ready.cancel()
            await bot.close()
            if not (await asyncio.wait({task}, timeout=timeout))[0]:
                task.cancel()
                raise TimeoutError(f"the bot did not stop within {timeout}s of close()")
        task.result()  # the test body passed: surface a crash of the bot's own task
