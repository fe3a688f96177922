"""A fake Discord for end-to-end tests: REST (/api/v10) and a gateway websocket on 127.0.0.1.

The real discord.py client logs in, connects, syncs application commands and answers
interactions against it. Payload shapes follow Discord's API documentation: gateway opcodes
HELLO / IDENTIFY / READY / GUILD_CREATE / HEARTBEAT(_ACK) / RESUME, interaction objects,
interaction callback responses, webhook (followup) messages and application commands.
Every REST request and gateway frame is recorded so tests can assert on what the bot sent.

The fake runs on its own thread and event loop, as the real Discord runs elsewhere: its
clock, its heartbeat probes and its answers do not stall when the bot blocks its own loop,
so a blocked bot loop shows up in heartbeat round trips. Its public async methods may be
awaited from the test's loop; its attributes may be read (not mutated) from there.

    async with FakeDiscord() as fake:              # serves, and points discord.py at it
        bot = MyBot(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        async with running(bot):                   # start; wait for on_ready; close on exit
            sent = await fake.send_command("ping", {"text": "hi"})
            assert (await sent.callback()).json["type"] == 5
            followup = await sent.followup()
            click = await fake.click("ping:again")
            said = await fake.post_message("a member's message")
            menu = await fake.send_message_command("Quote", said)  # right-click → Apps
            fake.start_probing(every=0.05)         # heartbeat round trips, in seconds
            ...
            assert max(fake.heartbeat_rtts) < 0.5

One fake serves one bot (one gateway session at a time), in one guild or several
(`extra_guilds`: each has its own text channel; `send_command(..., guild_id=)` picks one).
Members get the channel's ordinary permissions unless a command is sent with others
(`permissions=ADMIN_PERMISSIONS` adds Manage Server); "group sub" names a subcommand.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import itertools
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import discord
import yarl
from aiohttp import BodyPartReader, WSMsgType, web
from discord.gateway import DiscordWebSocket
from discord.http import Route

JSON = Any
P = ParamSpec("P")
T = TypeVar("T")
DISCORD_EPOCH_MS = 1_420_070_400_000
_increment = itertools.count()


def snowflake() -> int:
    """A fresh id shaped like Discord's: discord.py derives created_at (and expiry) from it."""
    millis = time.time_ns() // 1_000_000 - DISCORD_EPOCH_MS
    return (millis << 22) | (next(_increment) & 0xFFF)


def _now() -> str:
    return datetime.now(UTC).isoformat()


# Permission bits the bot and users get in the fake channel (what a normal server grants).
CHANNEL_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, attach_files=True,
    read_message_history=True, use_application_commands=True, add_reactions=True,
).value

# ... and a server admin's: the same, with Manage Server.
ADMIN_PERMISSIONS = CHANNEL_PERMISSIONS | discord.Permissions(manage_guild=True).value

# Application command option types (Discord's ApplicationCommandOptionType).
OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP = 1, 2
OPTION_STRING, OPTION_INTEGER, OPTION_BOOLEAN, OPTION_NUMBER = 3, 4, 5, 10
# Application command types: slash commands, and the user and message context menus.
COMMAND_CHAT_INPUT, COMMAND_USER, COMMAND_MESSAGE = 1, 2, 3
# Interaction types, and the callback types that create or touch a message.
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE = 2, 3, 4
AUTOCOMPLETE_RESULT = 8  # the callback type that answers an autocomplete with choices
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 4, 5, 6, 7
EPHEMERAL, LOADING = 1 << 6, 1 << 7  # message flags


@dataclass
class Request:
    """One REST request as the fake received it, and what it answered."""

    method: str
    path: str  # below /api/v10, e.g. "/webhooks/1/tok"
    query: dict[str, str]
    json: JSON  # JSON body, or a multipart body's payload_json; None when empty
    files: dict[str, bytes]  # multipart file parts by filename
    route: str  # name of the route that served it ("unknown" for a 404)
    params: dict[str, str]  # the route's path parameters (app_id, token, ...)
    received_at: float  # time.monotonic()
    status: int = 0
    response: JSON = None


@dataclass
class Reply:
    status: int
    body: JSON = None
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, message: str, code: int = 0) -> Reply:
    return Reply(status, {"message": message, "code": code})  # Discord's error shape


@dataclass
class SentInteraction:
    """An interaction the fake dispatched; await what the bot did with its token."""

    fake: FakeDiscord
    payload: dict[str, Any]  # the INTERACTION_CREATE data
    dispatched_at: float  # time.monotonic(), to compare with Request.received_at

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def token(self) -> str:
        return str(self.payload["token"])

    async def callback(self, timeout: float = 5.0) -> Request:
        return await self.fake.wait_for_callback(self.token, timeout)

    async def followup(self, timeout: float = 5.0, nth: int = 0) -> Request:
        return await self.fake.wait_for_followup(self.token, timeout, nth)

    async def original_edit(self, timeout: float = 5.0, nth: int = 0) -> Request:
        params = {"app_id": str(self.fake.app_id), "token": self.token, "message": "@original"}
        return await self.fake.wait_for(
            lambda r: r.route == "edit_message" and r.params == params, timeout, nth
        )


@dataclass
class _InteractionState:
    id: int
    type: int
    user_id: int  # who interacted
    message_id: int | None  # the message a component was clicked on
    guild_id: int = 0  # where
    channel_id: int = 0
    callback_type: int | None = None
    original_id: int | None = None  # the message "@original" refers to


# Routes: (method, path regex, handler name). Handlers are FakeDiscord._r_<name>(request).
# A new behaviour (a 429, a 5xx) is a new entry here or a queued reply (see queue_reply).
_SNOW = r"\d+"
_WEBHOOK = rf"/webhooks/(?P<app_id>{_SNOW})/(?P<token>[^/]+)"  # an interaction's webhook
_MESSAGE = _WEBHOOK + r"/messages/(?P<message>@original|\d+)"
ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"/users/@me", "me"),
    ("GET", r"/oauth2/applications/@me", "application"),
    ("GET", r"/gateway", "gateway"),
    ("GET", r"/gateway/bot", "gateway_bot"),
    ("PUT", rf"/applications/(?P<app_id>{_SNOW})/commands", "sync_commands"),
    ("GET", rf"/applications/(?P<app_id>{_SNOW})/commands", "get_commands"),
    ("PUT", rf"/applications/(?P<app_id>{_SNOW})/guilds/(?P<guild_id>{_SNOW})/commands",
     "sync_commands"),
    ("GET", rf"/applications/(?P<app_id>{_SNOW})/guilds/(?P<guild_id>{_SNOW})/commands",
     "get_commands"),
    ("POST", rf"/interactions/(?P<interaction_id>{_SNOW})/(?P<token>[^/]+)/callback", "callback"),
    ("POST", _WEBHOOK, "followup"),
    ("GET", _MESSAGE, "get_message"),
    ("PATCH", _MESSAGE, "edit_message"),
    ("DELETE", _MESSAGE, "delete_message"),
]
_COMPILED = [(method, re.compile(pattern), name) for method, pattern, name in ROUTES]
_TOKEN_IN_PATH = {"callback", "followup", "get_message", "edit_message", "delete_message"}


def _on_fake_loop(
    method: Callable[Concatenate[FakeDiscord, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[FakeDiscord, P], Coroutine[Any, Any, T]]:
    """Run an async method on the fake's own loop, whichever loop awaits it."""

    @functools.wraps(method)
    async def on_fake_loop(self: FakeDiscord, *args: P.args, **kwargs: P.kwargs) -> T:
        if self._loop is None:
            raise RuntimeError("the fake is not running: use `async with FakeDiscord()`")
        coro = method(self, *args, **kwargs)
        if asyncio.get_running_loop() is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    return on_fake_loop


class FakeDiscord:
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

    # --- lifecycle -------------------------------------------------------------------------

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

    # --- waiting on what the bot sent ------------------------------------------------------

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

    # --- REST ------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        received_at = time.monotonic()
        path = "/" + request.match_info["tail"]
        body, files = await _read_body(request)
        recorded = Request(request.method, path, dict(request.query), body, files,
                           "unknown", {}, received_at)
        reply = self._route(request, recorded)
        text = None if reply.body is None else json.dumps(reply.body)
        # A snapshot of what was sent: stored messages change with later edits.
        recorded.status, recorded.response = reply.status, text and json.loads(text)
        await self._record(self.requests, recorded)
        if delay := self._delays.get(recorded.route):
            await asyncio.sleep(delay)
        if text is None:
            return web.Response(status=reply.status, headers=reply.headers)
        # discord.py parses JSON only when Content-Type is exactly "application/json": aiohttp
        # appends "; charset=utf-8" to text= bodies, so send bytes with the header set by hand.
        return web.Response(status=reply.status, body=text.encode(),
                            headers={"Content-Type": "application/json", **reply.headers})

    def _route(self, request: web.Request, recorded: Request) -> Reply:
        handler: Callable[[Request], Reply] | None = None
        for method, pattern, name in _COMPILED:
            if method == recorded.method and (match := pattern.fullmatch(recorded.path)):
                recorded.route, recorded.params = name, match.groupdict()
                handler = getattr(self, f"_r_{name}")
                break
        for i, (method, pattern, reply) in enumerate(self._queued):  # injected answers first
            if method == recorded.method and pattern.fullmatch(recorded.path):
                del self._queued[i]
                return reply
        # Interaction callbacks and webhooks carry no Authorization: the token in the path is it.
        needs_auth = recorded.route not in _TOKEN_IN_PATH and self.token is not None
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return _error(401, "401: Unauthorized")
        return handler(recorded) if handler else _error(404, "404: Not Found")

    def _r_me(self, r: Request) -> Reply:
        return Reply(200, self.bot_user() | {"verified": True, "mfa_enabled": False, "flags": 0,
                                             "locale": "en-US", "email": None})

    def _r_application(self, r: Request) -> Reply:
        owner = _user(self.user_id, "owner")
        return Reply(200, {
            "id": str(self.app_id), "name": self.bot_name, "icon": None, "description": "",
            "bot_public": False, "bot_require_code_grant": False, "bot": self.bot_user(),
            "owner": owner, "team": None, "verify_key": "0" * 64, "flags": 0,
            "summary": "", "tags": [], "redirect_uris": [], "interactions_endpoint_url": None,
        })

    def _r_gateway(self, r: Request) -> Reply:
        return Reply(200, {"url": self.gateway_url})

    def _r_gateway_bot(self, r: Request) -> Reply:
        return Reply(200, {"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}})

    def _r_sync_commands(self, r: Request) -> Reply:
        guild_id = int(r.params["guild_id"]) if "guild_id" in r.params else None
        synced = []
        for command in r.json or []:
            key = (guild_id, command["name"])
            command_id = self._command_ids.setdefault(key, snowflake())
            synced.append({
                "type": 1, "description": "", "options": [], "default_member_permissions": None,
                "nsfw": False, "contexts": None, "integration_types": [0],
                **copy.deepcopy(command),
                "id": str(command_id), "application_id": r.params["app_id"],
                "version": str(snowflake()),
                **({"guild_id": str(guild_id)} if guild_id is not None else {}),
            })
        self.commands[guild_id] = synced  # a bulk overwrite replaces the whole set
        return Reply(200, synced)

    def _r_get_commands(self, r: Request) -> Reply:
        guild_id = int(r.params["guild_id"]) if "guild_id" in r.params else None
        return Reply(200, self.commands.get(guild_id, []))

    def _r_callback(self, r: Request) -> Reply:
        state = self._interactions.get(r.params["token"])
        if state is None or state.id != int(r.params["interaction_id"]):
            return _error(404, "Unknown interaction", 10062)
        if state.callback_type is not None:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        kind = int(r.json["type"])
        data = r.json.get("data") or {}
        state.callback_type = kind
        message: dict[str, Any] | None = None
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags", 0)) | (LOADING if kind == DEFERRED_CHANNEL_MESSAGE else 0)
            message = self._new_message(data, state, r.files, flags=flags)
            state.original_id = int(message["id"])
        elif kind in (DEFERRED_UPDATE, UPDATE_MESSAGE) and state.message_id in self.messages:
            message = self.messages[state.message_id]
            if kind == UPDATE_MESSAGE:
                _apply_edit(message, data, r.files)
            state.original_id = state.message_id
        callback: dict[str, Any] = {"id": str(state.id), "type": state.type}
        if message is not None:
            callback |= {
                "response_message_id": message["id"],
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(message["flags"] & EPHEMERAL),
            }
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            resource["message"] = message
        return Reply(200, {"interaction": callback, "resource": resource})

    def _r_followup(self, r: Request) -> Reply:
        state = self._webhook(r)
        if state is None:
            return _error(404, "Unknown Webhook", 10015)
        message = self._new_message(r.json or {}, state, r.files,
                                    flags=int((r.json or {}).get("flags", 0)))
        # wait=true asks for the created message; without it Discord answers 204.
        return Reply(200, message) if r.query.get("wait") in ("1", "true") else Reply(204)

    def _r_get_message(self, r: Request) -> Reply:
        message = self._webhook_message(r)
        return Reply(200, message) if message else _error(404, "Unknown Message", 10008)

    def _r_edit_message(self, r: Request) -> Reply:
        message = self._webhook_message(r)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        _apply_edit(message, r.json or {}, r.files)
        return Reply(200, message)

    def _r_delete_message(self, r: Request) -> Reply:
        message = self._webhook_message(r)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        del self.messages[int(message["id"])]
        return Reply(204)

    def _webhook(self, r: Request) -> _InteractionState | None:
        # An interaction's webhook is addressed by application id + interaction token.
        if int(r.params["app_id"]) != self.app_id:
            return None
        return self._interactions.get(r.params["token"])

    def _webhook_message(self, r: Request) -> dict[str, Any] | None:
        state = self._webhook(r)
        if state is None:
            return None
        ref = r.params["message"]
        message_id = state.original_id if ref == "@original" else int(ref)
        return self.messages.get(message_id) if message_id is not None else None

    def _new_message(
        self, data: Mapping[str, Any], state: _InteractionState, files: dict[str, bytes],
        *, flags: int,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": str(snowflake()), "channel_id": str(state.channel_id or self.channel_id),
            "guild_id": str(state.guild_id or self.guild_id), "author": self.bot_user(),
            # 20: CHAT_INPUT_COMMAND reply; 0: DEFAULT (component responses)
            "type": 20 if state.type == APPLICATION_COMMAND else 0,
            "content": "", "embeds": [], "components": [], "attachments": [],
            "mentions": [], "mention_roles": [], "mention_everyone": False, "pinned": False,
            "tts": False, "timestamp": _now(), "edited_timestamp": None, "flags": flags,
            "webhook_id": str(self.app_id), "application_id": str(self.app_id),
            "interaction_metadata": {"id": str(state.id), "type": state.type,
                                     "user": self.user_payload(state.user_id),
                                     "authorizing_integration_owners": {}},
        }
        _apply_edit(message, data, files)
        message["flags"], message["edited_timestamp"] = flags, None
        self.messages[int(message["id"])] = message
        return message

    # --- gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._ws = ws
        # discord.py asks for zlib-stream but only inflates binary frames: text frames are fine.
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    frame = json.loads(msg.data)
                    await self._record(self.gateway_frames, frame)
                    await self._on_frame(ws, frame)
        finally:
            if self._ws is ws:
                self._ws = None
        return ws

    async def _record(self, log: list[Any], item: object) -> None:
        async with self._changed:
            log.append(item)
            self._changed.notify_all()

    async def _on_frame(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:  # HEARTBEAT: Discord acknowledges each one
            if self._probe_waiter is not None and not self._probe_waiter.done():
                self._probe_waiter.set_result(time.perf_counter())
            await self._send(ws, {"op": 11})
        elif op == 2:  # IDENTIFY
            if self.token is not None and data.get("token") != self.token:
                await ws.close(code=4004, message=b"Authentication failed.")
                return
            self.identify_count += 1
            self._session_id, self._seq = uuid.uuid4().hex, 0
            await self._dispatch(ws, "READY", self._ready_payload())
            for guild_id in self.guild_ids:
                await self._dispatch(ws, "GUILD_CREATE", self.guild_payload(guild_id))
        elif op == 6:  # RESUME: we keep no backlog to replay, so just confirm
            if data.get("session_id") != self._session_id:
                await self._send(ws, {"op": 9, "d": False})  # invalid session, not resumable
                return
            self.resume_count += 1
            await self._dispatch(ws, "RESUMED", {})

    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        async with self._send_lock:
            frame = {"op": payload["op"], "d": payload.get("d"), "s": None, "t": None}
            if payload["op"] == 0:
                self._seq += 1
                frame |= {"s": self._seq, "t": payload["t"]}
            await ws.send_str(json.dumps(frame))

    async def _dispatch(self, ws: web.WebSocketResponse, event: str, data: JSON) -> None:
        await self._send(ws, {"op": 0, "t": event, "d": data})

    @_on_fake_loop
    async def dispatch(self, event: str, data: JSON) -> None:
        """Send a DISPATCH (op 0) event to the connected client."""
        if self._ws is None:
            raise ConnectionError("no client is connected to the fake gateway")
        await self._dispatch(self._ws, event, data)

    @_on_fake_loop
    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client drops the socket and comes back with a RESUME."""
        if self._ws is None:
            raise ConnectionError("no client is connected to the fake gateway")
        await self._send(self._ws, {"op": 7})

    # --- event-loop responsiveness ---------------------------------------------------------

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

    # --- driving interactions --------------------------------------------------------------

    @_on_fake_loop
    async def send_command(
        self,
        name: str,
        options: Mapping[str, str | int | float | bool] | None = None,
        *,
        user_id: int | None = None,
        locale: str = "en-US",
        guild_id: int | None = None,
        permissions: int | None = None,
        thread_id: int | None = None,
    ) -> SentInteraction:
        """Dispatch INTERACTION_CREATE for a slash command as a member of a fake guild (the
        first unless `guild_id`), with `permissions` (default: CHANNEL_PERMISSIONS); with
        `thread_id`, from a public thread of the guild's channel.

        Uses the id of the synced command (a guild command wins over a global one, as in
        Discord); option types follow the Python type of each value. `name` may name a
        subcommand: "coverage add", "coverage feed list"; the options are then its own."""
        data = self._command_data(name, options, guild_id)
        return await self._interact(APPLICATION_COMMAND, data, None, user_id, locale,
                                    guild_id, permissions, thread_id)

    @_on_fake_loop
    async def send_autocomplete(
        self,
        name: str,
        options: Mapping[str, str | int | float | bool],
        focused: str,
        *,
        user_id: int | None = None,
        locale: str = "en-US",
        guild_id: int | None = None,
        permissions: int | None = None,
    ) -> SentInteraction:
        """Dispatch APPLICATION_COMMAND_AUTOCOMPLETE (type 4) while the user types option
        `focused` of command `name` (its partial value in `options`); the bot answers with
        callback type 8 and `data.choices`."""
        data = self._command_data(name, options, guild_id)
        leaf = data
        while leaf.get("options") and leaf["options"][0]["type"] in (
                OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP):
            leaf = leaf["options"][0]
        for option in leaf.get("options", []):
            if option["name"] == focused:
                option["focused"] = True
        return await self._interact(AUTOCOMPLETE, data, None, user_id, locale, guild_id,
                                    permissions)

    @_on_fake_loop
    async def send_message_command(
        self, name: str, message_id: int, *, user_id: int | None = None, locale: str = "en-US",
    ) -> SentInteraction:
        """Dispatch INTERACTION_CREATE for a message context-menu command (right-click a
        message → Apps → `name`) on message `message_id`, which the fake knows (see
        post_message): type 2 with data.type 3, target_id and the message in resolved.messages,
        as Discord sends it (with its content, even to a bot without the Message Content
        intent)."""
        data = self._command_data(name, None, kind=COMMAND_MESSAGE)
        message = copy.deepcopy(self.messages[message_id])
        data |= {"target_id": str(message_id),
                 "resolved": {"messages": {str(message_id): message}}}
        return await self._interact(APPLICATION_COMMAND, data, None, user_id, locale)

    @_on_fake_loop
    async def post_message(self, content: str, *, author_id: int | None = None,
                           embeds: list[dict[str, Any]] | None = None,
                           attachments: list[dict[str, Any]] | None = None) -> int:
        """A member's message in the fake channel (as if typed in the client); its id. The bot
        is not told (it asks for no message events): a context-menu command can target it."""
        author_id = author_id or self.user_id
        message: dict[str, Any] = {
            "id": str(snowflake()), "channel_id": str(self.channel_id),
            "guild_id": str(self.guild_id), "author": self.user_payload(author_id),
            "member": {k: v for k, v in self.member_payload(author_id).items() if k != "user"},
            "type": 0, "content": content, "embeds": copy.deepcopy(embeds or []),
            "components": [], "attachments": copy.deepcopy(attachments or []),
            "mentions": [], "mention_roles": [], "mention_everyone": False, "pinned": False,
            "tts": False, "timestamp": _now(), "edited_timestamp": None, "flags": 0,
        }
        self.messages[int(message["id"])] = message
        return int(message["id"])

    def _command_data(self, name: str, options: Mapping[str, Any] | None,
                      guild_id: int | None = None, kind: int = COMMAND_CHAT_INPUT
                      ) -> dict[str, Any]:
        """`name` is a command, or (slash commands) a command then its subcommand group and
        subcommand, space-separated: their options nest as Discord nests them. A context
        menu's name is taken whole ("Ask Byline")."""
        command, *path = name.split() if kind == COMMAND_CHAT_INPUT else (name,)
        data: dict[str, Any] = {"id": str(snowflake()), "name": command, "type": kind}
        for where in (guild_id or self.guild_id, None):
            synced = [c for c in self.commands.get(where, [])
                      if c["name"] == command and c.get("type", COMMAND_CHAT_INPUT) == kind]
            if synced:
                data["id"] = synced[0]["id"]
                if where is not None:
                    data["guild_id"] = str(where)  # tells discord.py to look in guild commands
                break
        leaf = data
        for depth, part in enumerate(path):
            kind = OPTION_SUB_COMMAND if depth == len(path) - 1 else OPTION_SUB_COMMAND_GROUP
            leaf["options"] = [{"name": part, "type": kind}]
            leaf = leaf["options"][0]
        if options:
            leaf["options"] = [{"name": k, "type": _option_type(v), "value": v}
                               for k, v in options.items()]
        elif path:
            leaf["options"] = []
        return data

    @_on_fake_loop
    async def click(
        self,
        custom_id: str,
        *,
        message_id: int | None = None,
        user_id: int | None = None,
        component_type: int = 2,  # 2 button; 3 string select (pass values)
        values: list[str] | None = None,
        locale: str = "en-US",
    ) -> SentInteraction:
        """Dispatch INTERACTION_CREATE for a component on a message the fake created (by
        default the newest one carrying custom_id)."""
        if message_id is None:
            carrying = [m for m in self.messages.values() if custom_id in _custom_ids(m)]
            if not carrying:
                raise LookupError(f"no message the fake knows has a component {custom_id!r}")
            message_id = int(carrying[-1]["id"])
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        guild_id = int(self.messages[message_id]["guild_id"])
        return await self._interact(MESSAGE_COMPONENT, data, message_id, user_id, locale,
                                    guild_id)

    async def _interact(
        self, kind: int, data: dict[str, Any], message_id: int | None, user_id: int | None,
        locale: str, guild_id: int | None = None, permissions: int | None = None,
        thread_id: int | None = None,
    ) -> SentInteraction:
        interaction_id, token = snowflake(), f"fake-token-{uuid.uuid4().hex}"
        user_id = user_id or self.user_id
        guild_id = guild_id or self.guild_id
        if guild_id not in self.channel_ids:
            raise LookupError(f"the bot is in no fake guild {guild_id}")
        channel = self.channel_payload(guild_id)
        if thread_id is not None:  # a public thread (type 11) under the guild's channel
            channel |= {"id": str(thread_id), "type": 11, "parent_id": channel["id"],
                        "name": "thread", "owner_id": str(self.bot_user_id),
                        "message_count": 0, "member_count": 1,
                        "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                            "archive_timestamp": "2026-01-01T00:00:00+00:00",
                                            "locked": False}}
        channel_id = int(channel["id"])
        member = self.member_payload(user_id)
        # Discord sends the member's and the app's resolved permissions as strings of bits.
        allowed = CHANNEL_PERMISSIONS if permissions is None else permissions
        payload: dict[str, Any] = {
            "id": str(interaction_id), "application_id": str(self.app_id), "type": kind,
            "data": data, "token": token, "version": 1,
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel_id), "channel": channel,
            "member": member | {"permissions": str(allowed)},
            "app_permissions": str(CHANNEL_PERMISSIONS),
            "locale": locale, "guild_locale": "en-US", "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,  # GUILD
            "attachment_size_limit": 10 * 1024 * 1024,  # discord.py requires this key
        }
        if message_id is not None:
            payload["message"] = copy.deepcopy(self.messages[message_id])
        self._interactions[token] = _InteractionState(interaction_id, kind, user_id, message_id,
                                                      guild_id=guild_id, channel_id=channel_id)
        dispatched_at = time.monotonic()
        await self.dispatch("INTERACTION_CREATE", payload)
        return SentInteraction(self, payload, dispatched_at)

    # --- payloads --------------------------------------------------------------------------

    def bot_user(self) -> dict[str, Any]:
        return _user(self.bot_user_id, self.bot_name, bot=True)

    def user_payload(self, user_id: int) -> dict[str, Any]:
        if user_id == self.bot_user_id:
            return self.bot_user()
        return _user(user_id, f"user{user_id % 10_000}")

    def member_payload(self, user_id: int) -> dict[str, Any]:
        return {
            "user": self.user_payload(user_id), "nick": None,
            "avatar": None, "roles": [], "joined_at": _now(), "premium_since": None,
            "deaf": False, "mute": False, "flags": 0, "pending": False,
            "communication_disabled_until": None,
        }

    def channel_payload(self, guild_id: int | None = None) -> dict[str, Any]:
        guild_id = guild_id or self.guild_id
        return {
            "id": str(self.channel_ids[guild_id]), "type": 0, "guild_id": str(guild_id),
            "name": "general", "position": 0, "permission_overwrites": [], "nsfw": False,
            "topic": None, "last_message_id": None, "rate_limit_per_user": 0, "parent_id": None,
        }

    def guild_payload(self, guild_id: int | None = None) -> dict[str, Any]:
        """GUILD_CREATE: a guild object plus the gateway-only fields, for one text channel."""
        guild_id = guild_id or self.guild_id
        everyone = {
            "id": str(guild_id), "name": "@everyone", "color": 0, "hoist": False,
            "icon": None, "unicode_emoji": None, "position": 0,
            "permissions": str(CHANNEL_PERMISSIONS), "managed": False, "mentionable": False,
            "flags": 0,
        }
        return {
            "id": str(guild_id), "name": "Fake Newsroom", "icon": None, "splash": None,
            "discovery_splash": None, "owner_id": str(self.user_id), "afk_channel_id": None,
            "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 1,
            "explicit_content_filter": 0, "roles": [everyone], "emojis": [], "stickers": [],
            "features": [], "mfa_level": 0, "application_id": None,
            "system_channel_id": str(self.channel_ids[guild_id]), "system_channel_flags": 0,
            "rules_channel_id": None, "vanity_url_code": None, "description": None,
            "banner": None, "premium_tier": 0, "premium_subscription_count": 0,
            "preferred_locale": "en-US", "public_updates_channel_id": None, "nsfw_level": 0,
            "premium_progress_bar_enabled": False, "max_members": 500_000,
            # gateway-only GUILD_CREATE fields
            "joined_at": _now(), "large": False, "unavailable": False, "member_count": 2,
            "members": [self.member_payload(self.bot_user_id)],
            "channels": [self.channel_payload(guild_id)], "threads": [], "voice_states": [],
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _ready_payload(self) -> dict[str, Any]:
        return {
            "v": 10, "user": self.bot_user(), "private_channels": [], "relationships": [],
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guild_ids],
            "session_id": self._session_id, "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
        }


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


def _user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": None,
            "avatar": None, "bot": bot, "public_flags": 0}


def _option_type(value: object) -> int:
    if isinstance(value, bool):  # before int: bool is an int in Python
        return OPTION_BOOLEAN
    if isinstance(value, int):
        return OPTION_INTEGER
    if isinstance(value, float):
        return OPTION_NUMBER
    return OPTION_STRING


def _custom_ids(node: JSON) -> set[str]:
    """Every custom_id in a message's (possibly nested) components."""
    if isinstance(node, dict):
        found = {node["custom_id"]} if "custom_id" in node else set()
        return found.union(*(_custom_ids(v) for k, v in node.items() if k == "components"))
    if isinstance(node, list):
        return set().union(*(_custom_ids(v) for v in node))
    return set()


def _apply_edit(
    message: dict[str, Any], data: Mapping[str, Any], files: dict[str, bytes] | None = None
) -> None:
    """Apply the message fields a create/edit body carries, as Discord does (others stay)."""
    for key, empty in (("content", ""), ("embeds", []), ("components", []), ("flags", 0)):
        if key in data:
            message[key] = copy.deepcopy(data[key]) if data[key] is not None else empty
    if files or any(key in data for key in ("content", "embeds", "components")):
        message["flags"] = int(message["flags"]) & ~LOADING  # a deferred reply stops "thinking"
    if files:
        message["attachments"] = [
            {"id": str(snowflake()), "filename": name, "size": len(blob),
             "url": f"https://cdn.invalid/{name}", "proxy_url": f"https://cdn.invalid/{name}"}
            for name, blob in files.items()
        ]
    elif "attachments" in data:  # keeps the listed existing attachments, drops the rest
        kept = {str(a.get("id")) for a in data["attachments"] or []}
        message["attachments"] = [a for a in message["attachments"] if a["id"] in kept]
    message["edited_timestamp"] = _now()


async def _read_body(request: web.Request) -> tuple[JSON, dict[str, bytes]]:
    """A JSON body, or a multipart one (payload_json + files[n]) when files are attached."""
    if not request.content_type.startswith("multipart/"):
        raw = await request.read()
        return (json.loads(raw) if raw else None), {}
    body: JSON = None
    files: dict[str, bytes] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue  # a nested multipart: discord.py never sends one
        if part.name == "payload_json":
            body = json.loads(await part.text())
        else:
            files[part.filename or part.name or "file"] = await part.read()
    return body, files
