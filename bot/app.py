"""The Byline Discord bot: a commands.Bot that answers from a Retriever loaded at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.batching import MAX_BATCH, AskBatcher
from bot.commands import NO_PINGS, AskCog, FeedbackButton, send_ephemeral
from bot.settings import BotConfigError, BotSettings
from retrieval.errors import BylineError
from retrieval.feedback import FeedbackStore, default_path
from retrieval.search import Answer, Retriever
from retrieval.store import ArticleInfo
from retrieval.timefilter import Filters
from retrieval.timeline import Timeline, timeline

log = logging.getLogger("byline.bot")
TIMELINE_STORIES = 15  # stories per /timeline (one embed)
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."


class BylineTree(app_commands.CommandTree):
    """Command tree whose errors become short ephemeral replies (and logged tracebacks)."""

    async def on_error(self, interaction: discord.Interaction,
                       error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CommandOnCooldown):
            text = f"Slow down a little: try again in {error.retry_after:.0f} s."
        else:
            command = interaction.command.name if interaction.command else "?"
            original = getattr(error, "original", error)
            if isinstance(original, BylineError):  # a damaged index, say: its one line
                log.error("/%s failed: %s", command, original)
            else:
                log.error("/%s failed", command, exc_info=error)
            text = APOLOGY
        await send_ephemeral(interaction, text)


class BylineBot(commands.Bot):
    """Holds the Retriever and the feedback store; the cog does the talking."""

    def __init__(self, settings: BotSettings, retriever: Retriever,
                 feedback: FeedbackStore | None = None, *, max_batch: int = MAX_BATCH,
                 **options: object) -> None:
        """`max_batch`: most questions answered in one retrieval call (1: no batching);
        `options` go to discord.py's Bot (e.g. guild_ready_timeout)."""
        super().__init__(command_prefix=commands.when_mentioned,
                         intents=discord.Intents(guilds=True),  # nothing privileged
                         allowed_mentions=NO_PINGS, tree_cls=BylineTree, help_command=None,
                         **options)
        self.settings = settings
        self.retriever = retriever
        self.feedback = feedback or FeedbackStore(
            settings.feedback_db or default_path(settings.index_dir))
        self.articles: list[ArticleInfo] = retriever.index.articles()
        self.outlets = sorted({a.outlet for a in self.articles if a.outlet}, key=str.casefold)
        # Concurrent asks share one retrieval call, one at a time: 2 cores, no thrashing.
        self.batcher = AskBatcher(retriever, max_batch)

    async def setup_hook(self) -> None:
        await self.add_cog(AskCog(self))
        self.add_dynamic_items(FeedbackButton)
        # Sync here, once per start, not in on_ready (which fires on every reconnect).
        if self.settings.guild_id:
            guild = discord.Object(id=self.settings.guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("synced %d commands%s", len(synced),
                 f" to guild {self.settings.guild_id}" if self.settings.guild_id else "")

    async def ask(self, question: str, k: int, filters: Filters | None = None) -> Answer:
        """Retrieval in a worker thread (the gateway must not wait), batched with the asks
        that arrive meanwhile; BadQuestion concerns this question (or its filters) only."""
        return await self.batcher.ask(question, k, filters)

    async def timeline(self, topic: str, filters: Filters | None = None) -> Timeline:
        """`retrieval.timeline` in a worker thread, between /ask batches."""
        return await self.batcher.exclusive(
            lambda: timeline(self.retriever, topic, TIMELINE_STORIES, filters))

    async def close(self) -> None:
        await super().close()
        self.feedback.close()


async def serve(settings: BotSettings, retriever: Retriever, **options: object) -> None:
    """Connect and serve until closed; the model and index are already loaded."""
    bot = BylineBot(settings, retriever, **options)
    log.info("loaded %d articles (%d passages); connecting to Discord", len(bot.articles),
             len(retriever.index))
    async with bot:
        try:
            await bot.start(settings.token)
        except discord.LoginFailure:
            raise BotConfigError("Discord rejected DISCORD_TOKEN; reset the token in the "
                                 "Developer Portal and update .env.") from None
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise BotConfigError(f"Cannot reach Discord ({type(exc).__name__}); check the "
                                 "network and try again.") from None


def run(settings: BotSettings, retriever: Retriever) -> None:
    """`serve` in a fresh event loop until Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, retriever))
