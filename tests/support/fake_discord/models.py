"""What the fake's parts share: Discord's ids (snowflakes), the permission bits, command,
interaction and callback types and message flags, the records of what the bot sent
(Request, Reply, SentInteraction), and the decorator that runs a method on the fake's loop."""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import discord

if TYPE_CHECKING:
    from .server import FakeDiscord


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
