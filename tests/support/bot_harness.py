"""The real Byline bot (discord.py) against the fake Discord, in the test's process: its
settings, a run of one scenario, the default ids, and reading what it sent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import discord

from bot.app import BylineBot
from bot.settings import BotSettings
from retrieval.cli.config import Settings
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Retriever

from .fake_discord import FakeDiscord, Request, running

TOKEN = "fake-token-never-logged"
FAKE = FakeDiscord()  # only for its default ids
APP_ID, GUILD_ID, USER_ID = FAKE.app_id, FAKE.guild_id, FAKE.user_id

Scenario = Callable[[FakeDiscord, BylineBot], Awaitable[None]]


def bot_settings(tmp_path: Path, **options: Any) -> BotSettings:
    """Settings for a bot under test: its feedback store in tmp_path, no cooldown."""
    defaults: dict[str, Any] = {"guild_id": GUILD_ID, "cooldown_seconds": 0.0,
                                "core": Settings(index_dir=tmp_path / "index"),
                                "feedback_db": tmp_path / "feedback.sqlite"}
    return BotSettings(token=TOKEN, **(defaults | options))


def run_bot(retriever: Retriever | LiveRetriever, tmp_path: Path, scenario: Scenario,
            **options: Any) -> None:
    """Start the fake and the real bot in one event loop, run `scenario`, shut both down;
    `options` are BotSettings fields (cooldown_seconds, guild_id, metrics_port, ...)."""
    settings = bot_settings(tmp_path, **options)

    async def main() -> None:
        async with FakeDiscord(token=TOKEN) as fake:
            bot = BylineBot(settings, retriever, guild_ready_timeout=0.05)
            async with running(bot, token=TOKEN):
                await scenario(fake, bot)

    asyncio.run(main())


def embed_of(r: Request) -> discord.Embed:
    """The first embed of a followup, or of a callback's message data."""
    body = r.json.get("data", r.json) if r.path.endswith("/callback") else r.json
    return discord.Embed.from_dict(body["embeds"][0])


def requests(fake: FakeDiscord, method: str, token: str | None = None) -> list[Request]:
    return [r for r in fake.requests if r.method == method and (token is None or token in r.path)]


def custom_ids(r: Request) -> list[str]:
    return [c["custom_id"] for row in r.json.get("components", []) for c in row["components"]]


async def get(bot: BylineBot, path: str) -> tuple[int, str]:
    """GET `path` from the bot's health and metrics server over 127.0.0.1."""
    server = bot.metrics_server
    assert server is not None and server.host == "127.0.0.1"
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.port}{path}") as response:
        return response.status, await response.text()
