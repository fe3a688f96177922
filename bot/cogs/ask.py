"""The /ask, /timeline, /sources and /help cog; each answers from the coverage of the server it
is used in (bot/coverage.py). Loaded as an extension by the bot's setup_hook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.coverage import Coverage, NoCoverage
from bot.pages import sources_page
from bot.render import (
    render_answer,
    render_help,
    render_not_covered,
    render_timeline,
)
from bot.replies import (
    NO_PINGS,
    RETRIEVING,
    ShuttingDown,
    feedback_view,
    send_ephemeral,
    tell_restarting,
)
from retrieval.errors import BadQuestion
from retrieval.search.filters import Filters, complete_outlets
from retrieval.store import ArticleInfo

if TYPE_CHECKING:
    from bot.app import BylineBot

log = logging.getLogger("byline.bot")


class AskCog(commands.Cog):
    """Byline's commands; every answer comes from the bot's Retriever."""

    def __init__(self, bot: BylineBot) -> None:
        self.bot = bot
        self._cooldowns: dict[int, app_commands.Cooldown] = {}  # user id -> bucket

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """No new questions once shutting down; per-user cooldown on /ask (its state
        belongs to this bot, not to the class)."""
        name = interaction.command.name if interaction.command else None
        if name in RETRIEVING and self.bot.drain.closing:
            raise ShuttingDown("Byline is shutting down")
        per = self.bot.settings.cooldown_seconds
        if per <= 0 or interaction.command is None or interaction.command.name != "ask":
            return True
        if len(self._cooldowns) > 10_000:  # forget users whose cooldown has long passed
            self._cooldowns = {u: b for u, b in self._cooldowns.items() if not b.get_tokens()}
        bucket = self._cooldowns.setdefault(interaction.user.id, app_commands.Cooldown(1, per))
        retry_after = bucket.update_rate_limit()
        if retry_after:
            raise app_commands.CommandOnCooldown(bucket, retry_after)
        return True

    @app_commands.command(name="ask")
    @app_commands.describe(question="What you want to know about the coverage",
                           results="How many passages to show (1-5, default 3)",
                           private="Only you see the answer",
                           since="Only coverage from this date on (2022-06-01, last week, …)",
                           until="Only coverage up to this date (2022-06-30, yesterday, …)",
                           outlet="Only this outlet's coverage",
                           as_of="Answer as of this date: later coverage is left out")
    async def ask(self, interaction: discord.Interaction,
                  question: app_commands.Range[str, 1, 1000],
                  results: app_commands.Range[int, 1, 5] = 3,
                  private: bool = False,
                  since: app_commands.Range[str, 1, 40] | None = None,
                  until: app_commands.Range[str, 1, 40] | None = None,
                  outlet: app_commands.Range[str, 1, 200] | None = None,
                  as_of: app_commands.Range[str, 1, 40] | None = None) -> None:
        """Ask the coverage a question; get the passages that answer it, cited."""
        async with self._answering("ask", interaction) as started:
            try:
                filters = Filters.parse(as_of=as_of, since=since, until=until, outlet=outlet)
            except BadQuestion as exc:
                await send_ephemeral(interaction, str(exc))
                return
            await interaction.response.defer(ephemeral=private, thinking=True)
            try:
                # a member's asks in one channel (or thread) are a conversation: this one
                # may follow up on their last ones, and keeps their filters unless it sets its own
                given = filters if any((as_of, since, until, outlet)) else None
                answer = await self.bot.ask(question, results, given,
                                            guild_id=interaction.guild_id,
                                            talk=(interaction.guild_id, interaction.channel_id,
                                                  interaction.user.id))
            except BadQuestion as exc:  # private, even when the "thinking…" was public
                # (NoCoverage too: this server has none yet, and how to add some)
                await send_ephemeral(interaction, str(exc))
                return
            if not answer.answered:
                self.bot.metrics.not_covered.labels("ask").inc()
                await interaction.followup.send(embed=render_not_covered(answer.question),
                                                ephemeral=private, allowed_mentions=NO_PINGS)
            else:
                key = await asyncio.to_thread(self.bot.feedback.remember, answer.question,
                                              [h.passage.id for h in answer.hits])
                await interaction.followup.send(embed=render_answer(answer),
                                                view=feedback_view(key), ephemeral=private,
                                                allowed_mentions=NO_PINGS)
            self._answered("ask", started)

    @app_commands.command(name="timeline")
    @app_commands.describe(topic="What the stories are about",
                           since="Only coverage from this date on (2022-06-01, last week, …)",
                           until="Only coverage up to this date (2022-06-30, yesterday, …)",
                           outlet="Only this outlet's coverage")
    async def timeline(self, interaction: discord.Interaction,
                       topic: app_commands.Range[str, 1, 300],
                       since: app_commands.Range[str, 1, 40] | None = None,
                       until: app_commands.Range[str, 1, 40] | None = None,
                       outlet: app_commands.Range[str, 1, 200] | None = None) -> None:
        """The coverage of a topic in date order, one line per story."""
        async with self._answering("timeline", interaction) as started:
            try:
                filters = Filters.parse(since=since, until=until, outlet=outlet)
            except BadQuestion as exc:
                await send_ephemeral(interaction, str(exc))
                return
            await interaction.response.defer(thinking=True)
            try:
                result = await self.bot.timeline(topic, filters, guild_id=interaction.guild_id)
            except BadQuestion as exc:
                await send_ephemeral(interaction, str(exc))
                return
            if not result.covered:
                self.bot.metrics.not_covered.labels("timeline").inc()
            await interaction.followup.send(embed=render_timeline(result),
                                            allowed_mentions=NO_PINGS)
            self._answered("timeline", started)

    @contextlib.asynccontextmanager
    async def _answering(self, command: str, interaction: discord.Interaction
                         ) -> AsyncIterator[float]:
        """Around a question, from its arrival to its reply: counted, and waited for by a
        shutdown; one that slipped in as the shutdown began is turned away, and one the
        shutdown cuts off (cancelled) tells its asker to come back."""
        with self.bot.drain.answering():
            if self.bot.drain.closing:
                raise ShuttingDown("Byline is shutting down")
            self.bot.metrics.questions.labels(command).inc()
            try:
                yield time.perf_counter()
            except asyncio.CancelledError:
                await tell_restarting(interaction)
                raise

    def _answered(self, command: str, started: float) -> None:
        self.bot.metrics.answer_seconds.labels(command).observe(time.perf_counter() - started)

    @ask.autocomplete("outlet")
    @timeline.autocomplete("outlet")
    async def outlet_choices(self, interaction: discord.Interaction, current: str
                             ) -> list[app_commands.Choice[str]]:
        """The coverage's outlets that match what has been typed (none for a coverage not
        loaded yet: autocomplete never waits for an index to load)."""
        try:
            outlets = self.bot.coverages.get(interaction.guild_id).outlets
        except NoCoverage:
            outlets = []
        return [app_commands.Choice(name=o[:100], value=o[:100])
                for o in complete_outlets(outlets, current)]

    @app_commands.command(name="sources")
    async def sources(self, interaction: discord.Interaction) -> None:
        """List the articles in the coverage."""
        articles = await self._articles(interaction)
        if articles is None:
            return
        embed, view = sources_page(articles, 0, interaction.user.id)
        if interaction.response.is_done():  # deferred while the coverage loaded
            await interaction.followup.send(embed=embed, view=view or discord.utils.MISSING,
                                            allowed_mentions=NO_PINGS)
            return
        await interaction.response.send_message(embed=embed, view=view or discord.utils.MISSING,
                                                allowed_mentions=NO_PINGS)

    @app_commands.command(name="help")
    async def help(self, interaction: discord.Interaction) -> None:
        """What Byline knows and how to ask it."""
        cov = self._coverage(interaction)
        if cov is not None and not cov.loaded:
            await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            embed = render_help(await self.bot.articles_in(interaction.guild_id))
        except NoCoverage as exc:
            embed = render_help([], no_coverage=str(exc))
        if interaction.response.is_done():
            await interaction.followup.send(embed=embed, ephemeral=True,
                                            allowed_mentions=NO_PINGS)
            return
        await interaction.response.send_message(embed=embed, ephemeral=True,
                                                allowed_mentions=NO_PINGS)

    def _coverage(self, interaction: discord.Interaction) -> Coverage | None:
        try:
            return self.bot.coverages.get(interaction.guild_id)
        except NoCoverage:
            return None

    async def _articles(self, interaction: discord.Interaction) -> list[ArticleInfo] | None:
        """The articles of this server's coverage, loading it if need be (the reply is then
        deferred first: loading may take seconds); None when it has none (and the user
        was told so, privately)."""
        cov = self._coverage(interaction)
        if cov is not None and not cov.loaded:
            await interaction.response.defer(thinking=True)
        try:
            return await self.bot.articles_in(interaction.guild_id)
        except NoCoverage as exc:
            await send_ephemeral(interaction, str(exc))
            return None


async def setup(bot: BylineBot) -> None:
    """discord.py's extension entry point (`load_extension("bot.cogs.ask")`)."""
    await bot.add_cog(AskCog(bot))
