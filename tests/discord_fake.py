"""A small fake Discord on 127.0.0.1: REST under /api/v10 and a gateway websocket.

It speaks just enough of Discord's documented protocol for the real discord.py client to log
in, connect, sync application commands and receive interactions, and it records every request
so tests can assert on what the bot sent. Payload shapes follow Discord's API documentation
(Gateway: HELLO / IDENTIFY / READY / GUILD_CREATE / INTERACTION_CREATE / HEARTBEAT(_ACK);
REST: users, applications, application commands, interaction callbacks, webhooks).

    async with FakeDiscord() as fake, fake.patched():
        bot = MyBot(...)
        task = asyncio.create_task(bot.start("any-token"))
        await fake.ready.wait()
        handle = await fake.run_command("ask", {"question": "why?"})
        followup = await fake.wait_for_request(handle.followup)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import discord
from aiohttp import WSMsgType, web
from discord.gateway import DiscordWebSocket
from discord.http import Route

APP_ID = 1100000000000000001
BOT_ID = APP_ID
GUILD_ID = 1200000000000000002
CHANNEL_ID = 1300000000000000003
OWNER_ID = 1400000000000000004
USER_ID = 1500000000000000005

_ids = itertools.count(1600000000000000000)


def snowflake() -> str:
    return str(next(_ids))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())


def user_payload(user_id: int, name: str, bot: bool = False) -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": name,
            "avatar": None, "bot": bot, "system": False, "public_flags": 0, "flags": 0}


@dataclass
class Recorded:
    """One REST request the bot made."""

    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any  # parsed JSON (or the multipart payload_json), None if empty
    at: float = field(default_factory=time.monotonic)


@dataclass
class InteractionHandle:
    """An interaction the fake dispatched, and predicates for what the bot answers to it."""

    id: str
    token: str
    sent_at: float

    def callback(self, r: Recorded) -> bool:
        return r.method == "POST" and r.path == f"/interactions/{self.id}/{self.token}/callback"

    def followup(self, r: Recorded) -> bool:
        return r.method == "POST" and r.path == f"/webhooks/{APP_ID}/{self.token}"

    def any_reply(self, r: Recorded) -> bool:
        return self.token in r.path


Handler = Callable[["FakeDiscord", web.Request, re.Match[str], Any], Awaitable[web.Response]]


class FakeDiscord:
    """REST + gateway on a free local port; records requests, dispatches interactions."""

    def __init__(self, heartbeat_interval_ms: int = 41_250, valid_token: str | None = None
                 ) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.valid_token = valid_token  # when set, any other token gets 401 Unauthorized
        self.requests: list[Recorded] = []
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.heartbeat_rtts: list[float] = []
        self.ready = asyncio.Event()
        self.identify: dict[str, Any] | None = None
        self.messages: dict[str, dict[str, Any]] = {}  # id -> message the bot sent
        self._changed = asyncio.Condition()
        self._ws: web.WebSocketResponse | None = None
        self._seq = 0
        self._probe: asyncio.Future[float] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway at this fake."""
        import yarl

        old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE = self.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway

    # -- waiting on what the bot did -------------------------------------------------------

    async def wait_for_request(self, predicate: Callable[[Recorded], bool],
                               timeout: float = 10.0, after: int = 0) -> Recorded:
        """The first recorded request (from index `after`) matching `predicate`."""
        async def find() -> Recorded:
            async with self._changed:
                while True:
                    for r in self.requests[after:]:
                        if predicate(r):
                            return r
                    await self._changed.wait()
        return await asyncio.wait_for(find(), timeout)

    def matching(self, predicate: Callable[[Recorded], bool]) -> list[Recorded]:
        return [r for r in self.requests if predicate(r)]

    async def probe_heartbeat(self, timeout: float = 5.0) -> float:
        """Ask the client for an immediate heartbeat (op 1); seconds until it arrives.

        The client answers from its event loop, so this measures how responsive it is."""
        if self._ws is None:
            raise RuntimeError("no gateway connection")
        self._probe = asyncio.get_running_loop().create_future()
        start = time.monotonic()
        await self._ws.send_str(json.dumps({"op": 1, "d": None}))
        await asyncio.wait_for(self._probe, timeout)
        rtt = time.monotonic() - start
        self.heartbeat_rtts.append(rtt)
        return rtt

    @contextlib.asynccontextmanager
    async def probing(self, every: float = 0.1) -> AsyncIterator[list[float]]:
        """Probe the heartbeat in the background; yields the list the round trips go to."""
        rtts: list[float] = []

        async def loop() -> None:
            while True:
                rtts.append(await self.probe_heartbeat())
                await asyncio.sleep(every)

        task = asyncio.create_task(loop())
        try:
            yield rtts
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- dispatching interactions ----------------------------------------------------------

    async def run_command(self, name: str, options: dict[str, Any] | None = None,
                          user_id: int = USER_ID) -> InteractionHandle:
        """Dispatch INTERACTION_CREATE for a chat-input command, as a guild member."""
        guild_cmds = {c["name"]: c for c in self.commands.get(GUILD_ID, [])}
        global_cmds = {c["name"]: c for c in self.commands.get(None, [])}
        command = guild_cmds.get(name) or global_cmds.get(name)
        if command is None:
            raise KeyError(f"/{name} was never synced")
        types = {o["name"]: o["type"] for o in command.get("options", [])}
        data: dict[str, Any] = {
            "id": command["id"], "name": name, "type": 1,
            "options": [{"name": k, "type": types[k], "value": v}
                        for k, v in (options or {}).items()],
        }
        if name in guild_cmds:
            data["guild_id"] = str(GUILD_ID)
        return await self._interaction(2, data, user_id)

    async def click(self, message_id: str, custom_id: str,
                    user_id: int = USER_ID) -> InteractionHandle:
        """Dispatch INTERACTION_CREATE for a button click on a message the bot sent."""
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interaction(3, data, user_id, message=self.messages[message_id])

    async def _interaction(self, kind: int, data: dict[str, Any], user_id: int,
                           message: dict[str, Any] | None = None) -> InteractionHandle:
        handle = InteractionHandle(id=snowflake(), token=f"tok-{snowflake()}",
                                   sent_at=time.monotonic())
        payload: dict[str, Any] = {
            "id": handle.id, "application_id": str(APP_ID), "type": kind, "data": data,
            "guild_id": str(GUILD_ID), "channel_id": str(CHANNEL_ID),
            "channel": self._channel(), "token": handle.token, "version": 1,
            "member": {"user": user_payload(user_id, f"user{user_id % 1000}"), "roles": [],
                       "permissions": "2248473465835073", "joined_at": _now(), "deaf": False,
                       "mute": False, "flags": 0, "nick": None, "avatar": None},
            "app_permissions": "2248473465835073", "locale": "en-US", "guild_locale": "en-US",
            "entitlements": [], "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0, "attachment_size_limit": 10_485_760,
        }
        if message is not None:
            payload["message"] = message
        await self.dispatch("INTERACTION_CREATE", payload)
        return handle

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        if self._ws is None:
            raise RuntimeError("no gateway connection")
        self._seq += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    # -- gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_str(json.dumps({"op": 10, "d": {
            "heartbeat_interval": self.heartbeat_interval_ms}}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            packet = json.loads(msg.data)
            op = packet.get("op")
            if op == 1:  # heartbeat
                if self._probe is not None and not self._probe.done():
                    self._probe.set_result(time.monotonic())
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:  # identify
                self.identify = packet["d"]
                await self._ready()
            elif op == 6:  # resume
                await self.dispatch("RESUMED", {})
        return ws

    async def _ready(self) -> None:
        await self.dispatch("READY", {
            "v": 10, "user": user_payload(BOT_ID, "Byline", bot=True), "private_channels": [],
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": "fake-session", "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APP_ID), "flags": 0}, "shard": [0, 1],
        })
        await self.dispatch("GUILD_CREATE", {
            "id": str(GUILD_ID), "name": "Newsroom", "icon": None, "owner_id": str(OWNER_ID),
            "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "features": [], "mfa_level": 0, "nsfw_level": 0,
            "premium_tier": 0, "preferred_locale": "en-US", "system_channel_flags": 0,
            "roles": [{"id": str(GUILD_ID), "name": "@everyone", "color": 0, "hoist": False,
                       "position": 0, "permissions": "1071698660929", "managed": False,
                       "mentionable": False, "flags": 0}],
            "emojis": [], "stickers": [], "member_count": 2, "large": False,
            "members": [], "channels": [self._channel()], "threads": [], "voice_states": [],
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "joined_at": _now(), "unavailable": False,
        })
        self.ready.set()

    @staticmethod
    def _channel() -> dict[str, Any]:
        return {"id": str(CHANNEL_ID), "type": 0, "guild_id": str(GUILD_ID), "name": "news",
                "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None,
                "topic": None, "rate_limit_per_user": 0, "last_message_id": None, "flags": 0}

    # -- REST ------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await _read_body(request)
        async with self._changed:
            self.requests.append(Recorded(request.method, path, dict(request.query), body))
            self._changed.notify_all()
        for method, pattern, handler in ROUTES:
            m = pattern.fullmatch(path)
            if m and method == request.method:
                return await handler(self, request, m, body)
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _message(self, body: dict[str, Any], flags: int = 0) -> dict[str, Any]:
        """A message object as Discord returns it for something the bot sent."""
        msg = {
            "id": snowflake(), "channel_id": str(CHANNEL_ID), "type": 0,
            "author": user_payload(BOT_ID, "Byline", bot=True),
            "content": body.get("content") or "", "timestamp": _now(),
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
            "mention_roles": [], "attachments": [], "embeds": body.get("embeds") or [],
            "components": body.get("components") or [], "pinned": False,
            "flags": (body.get("flags") or 0) | flags, "webhook_id": str(APP_ID),
            "application_id": str(APP_ID),
        }
        self.messages[msg["id"]] = msg
        return msg


async def _read_body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        raw = form.get("payload_json")
        return json.loads(raw) if isinstance(raw, str) else None
    text = await request.text()
    return json.loads(text) if text else None


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py parses JSON only when Content-Type is exactly "application/json".
    # aiohttp appends "; charset=utf-8" when given text=, so send bytes.
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


async def _me(fake: FakeDiscord, request: web.Request, m: re.Match[str], body: Any
              ) -> web.Response:
    if fake.valid_token and request.headers.get("Authorization") != f"Bot {fake.valid_token}":
        return _json({"message": "401: Unauthorized", "code": 0}, status=401)
    return _json(user_payload(BOT_ID, "Byline", bot=True))


async def _app_info(fake: FakeDiscord, request: web.Request, m: re.Match[str], body: Any
                    ) -> web.Response:
    return _json({"id": str(APP_ID), "name": "Byline", "description": "", "icon": None,
                  "bot_public": False, "bot_require_code_grant": False,
                  "owner": user_payload(OWNER_ID, "owner"), "verify_key": "0" * 64,
                  "team": None, "flags": 0, "summary": ""})


async def _gateway_bot(fake: FakeDiscord, request: web.Request, m: re.Match[str], body: Any
                       ) -> web.Response:
    return _json({"url": fake.gateway_url, "shards": 1, "session_start_limit": {
        "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}})


async def _put_commands(fake: FakeDiscord, request: web.Request, m: re.Match[str], body: Any
                        ) -> web.Response:
    guild = int(m["guild"]) if m["guild"] else None
    stored = []
    for cmd in body:
        out = {"id": snowflake(), "application_id": str(APP_ID), "version": snowflake(),
               "type": 1, "default_member_permissions": None, "nsfw": False, **cmd}
        if guild:
            out["guild_id"] = str(guild)
        stored.append(out)
    fake.commands[guild] = stored
    return _json(stored)


async def _get_commands(fake: FakeDiscord, request: web.Request, m: re.Match[str], body: Any
                        ) -> web.Response:
    return _json(fake.commands.get(int(m["guild"]) if m["guild"] else None, []))


async def _callback(fake: FakeDiscord, request: web.Request, m: re.Match[str], body: Any
                    ) -> web.Response:
    kind = body["type"]
    data = body.get("data") or {}
    ephemeral = bool((data.get("flags") or 0) & 64)
    resource: dict[str, Any] = {"type": kind}
    if kind in (4, 5, 7):  # a message is created (4, 5) or updated (7)
        resource["message"] = fake._message(data, flags=128 if kind == 5 else 0)
    return _json({"interaction": {
        "id": m["id"], "type": 2, "response_message_id": resource.get("message", {}).get("id"),
        "response_message_loading": kind == 5, "response_message_ephemeral": ephemeral,
    }, "resource": resource})


async def _followup(fake: FakeDiscord, request: web.Request, m: re.Match[str], body: Any
                    ) -> web.Response:
    return _json(fake._message(body or {}))


async def _edit_message(fake: FakeDiscord, request: web.Request, m: re.Match[str], body: Any
                        ) -> web.Response:
    return _json(fake._message(body or {}))


async def _no_content(fake: FakeDiscord, request: web.Request, m: re.Match[str], body: Any
                      ) -> web.Response:
    return web.Response(status=204)


_APP = rf"/applications/{APP_ID}"
_HOOK = rf"/webhooks/{APP_ID}/(?P<token>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"/users/@me"), _me),
    ("GET", re.compile(r"/oauth2/applications/@me"), _app_info),
    ("GET", re.compile(r"/gateway(/bot)?"), _gateway_bot),
    ("PUT", re.compile(rf"{_APP}(/guilds/(?P<guild>\d+))?/commands"), _put_commands),
    ("GET", re.compile(rf"{_APP}(/guilds/(?P<guild>\d+))?/commands"), _get_commands),
    ("POST", re.compile(r"/interactions/(?P<id>\d+)/(?P<token>[^/]+)/callback"), _callback),
    ("POST", re.compile(_HOOK), _followup),
    ("PATCH", re.compile(rf"{_HOOK}/messages/(@original|\d+)"), _edit_message),
    ("GET", re.compile(rf"{_HOOK}/messages/(@original|\d+)"), _edit_message),
    ("DELETE", re.compile(rf"{_HOOK}/messages/(@original|\d+)"), _no_content),
]


def embed_of(r: Recorded) -> discord.Embed:
    """The first embed of a recorded message payload, as discord.py would build it."""
    body = r.body.get("data", r.body) if r.path.endswith("/callback") else r.body
    return discord.Embed.from_dict(body["embeds"][0])
