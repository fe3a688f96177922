"""Slash commands (/ask, /timeline, /sources, /help) and the buttons under their replies; each
answers from the coverage of the server it is used in (bot/coverage.py)."""

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
from retrieval.errors import BadQuestion
from retrieval.search.filters import Filters, complete_outlets
from retrieval.store import ArticleInfo

if TYPE_CHECKING:
    from bot.app import BylineBot

log = logging.getLogger("byline.bot")
NO_PINGS = discord.AllowedMentions.none()
RESTARTING = "Byline is restarting; please ask again in a minute."
RETRIEVING = ("ask", "timeline")  # the commands a shutdown waits for (and turns away)


class ShuttingDown(app_commands.CheckFailure):
    """A question that arrived after the bot began shutting down: it is told to come back."""


async def tell_restarting(interaction: discord.Interaction) -> None:
    """A cancelled answer's last word (RESTARTING, privately), within two seconds."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await send_ephemeral(interaction, RESTARTING)


async def send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Reply privately whether or not the interaction was already deferred in public."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True,
                                                    allowed_mentions=NO_PINGS)
            return
        # Remove the "thinking…" placeholder: a followup would otherwise replace it, in public.
        if interaction.response.type == discord.InteractionResponseType.deferred_channel_message:
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
    except discord.HTTPException:
        log.warning("could not tell the user about an error", exc_info=True)


class FeedbackButton(discord.ui.DynamicItem[discord.ui.Button],
                     template=r"byline:fb:(?P<verdict>up|down):(?P<key>[0-9a-f]{12})"):
    """👍 / 👎 under an answer. The answer's key lives in the custom_id, so clicks still
    count after a restart."""

    def __init__(self, verdict: str, key: str) -> None:
        super().__init__(discord.ui.Button(
            style=discord.ButtonStyle.secondary,
            emoji="👍" if verdict == "up" else "👎",
            label="Helpful" if verdict == "up" else "Not helpful",
            custom_id=f"byline:fb:{verdict}:{key}",
        ))
        self.verdict = verdict
        self.key = key

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item,
                             match: object, /) -> FeedbackButton:
        return cls(match["verdict"], match["key"])  # type: ignore[index]

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: BylineBot = interaction.client  # type: ignore[assignment]
        saved = await asyncio.to_thread(bot.feedback.record, self.key, self.verdict,
                                        interaction.user.id)
        if saved:
            bot.metrics.feedback.labels(self.verdict).inc()
        text = ("Thanks, noted." if saved else
                "Sorry, I no longer know that answer, so I can't record a rating for it.")
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


def feedback_view(key: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton("up", key))
    view.add_item(FeedbackButton("down", key))
    return view


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
