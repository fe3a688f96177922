"""/coverage: what members with Manage Server use to change what Byline answers from.

    /coverage add url:          fetch one article into the coverage and index it
    /coverage remove article:   remove an article's file and index again
    /coverage status            articles, newest date, last update, index size and store, feeds
    /coverage feed add url:     follow a feed (feeds.txt); /coverage feed remove url:
    /coverage feed list         each feed's last poll, failures, last error, next poll

Discord shows the group only to members with Manage Server (default_member_permissions);
each command checks again when run (a server can override who sees a command), and
refuses others privately. Every reply is private. Fetching and indexing run in the worker
(bot/worker.py), one job per coverage at a time (a feed poll running first is waited
for); a reply that says an article was added comes once its new index generation answers.
Every action is logged at INFO with who did it, where, and on what.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import jobs
from bot.coverage import Coverage, NoCoverage, current_manifest
from bot.render import ANSWER_COLOUR, fit, safe
from bot.replies import NO_PINGS, NOT_ADMIN, NotAdmin, ShuttingDown
from retrieval.corpus.meta import date_key
from retrieval.errors import FetchError
from retrieval.feeds.follow import FeedState, stamp
from retrieval.search.citations import day
from retrieval.store import ArticleInfo
from retrieval.text import truncate

if TYPE_CHECKING:
    from bot.app import BylineBot

log = logging.getLogger("byline.bot")
MANAGE_SERVER = discord.Permissions(manage_guild=True)
MESSAGE_MAX = 2000  # characters in a Discord message
CHOICES_MAX = 25  # autocomplete choices Discord shows
CHOICE_MAX = 100  # characters in a choice's name and value



def is_admin(interaction: discord.Interaction) -> bool:
    """Whether the member may manage the server (Discord's resolved permissions)."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


def show_url(url: str, limit: int = 300) -> str:
    """A URL as a link Discord does not preview, cut to a sane length."""
    url = truncate(url.strip(), limit)
    return f"<{url.replace('>', '%3E').replace(' ', '%20')}>"


def show_title(title: str) -> str:
    return f"“{truncate(safe(title), 200)}”"


def audit(interaction: discord.Interaction, action: str, target: str, outcome: str) -> None:
    """One INFO line per admin action: who, where, what, on what, and how it ended."""
    user = interaction.user
    log.info("coverage admin: %s (%d) in guild %s: %s %r: %s", user.name, user.id,
             interaction.guild_id, action, target[:300], outcome)


def _target(interaction: discord.Interaction) -> str:
    """What a command was given (its options' values, a subcommand's included), for the log:
    a refused action names its target as an allowed one does."""
    values: list[str] = []
    stack = list((interaction.data or {}).get("options", []))  # type: ignore[union-attr]
    while stack:
        option = stack.pop(0)
        if isinstance(option, dict):
            if "value" in option:
                values.append(str(option["value"]))
            stack.extend(option.get("options", []) or [])
    return " ".join(values)


def article_value(a: ArticleInfo) -> str:
    """What an autocomplete choice sends back for an article: its id, or a hash of a long
    one (a choice's value is at most 100 characters)."""
    if len(a.id) <= CHOICE_MAX:
        return a.id
    return "sha1:" + hashlib.sha1(a.id.encode("utf-8")).hexdigest()


def find_article(articles: list[ArticleInfo], typed: str) -> ArticleInfo | None:
    """The article an option names: a choice's value, or a title typed in full (when one
    article alone has it)."""
    for a in articles:
        if typed in (a.id, article_value(a)):
            return a
    titled = [a for a in articles if a.title.casefold() == typed.strip().casefold()]
    return titled[0] if len(titled) == 1 else None


def feed_line(state: FeedState) -> str:
    """`<url>` and its state on the next line, as `byline follow --list` shows it."""
    if state.last_polled is None or state.next_poll is None:
        return f"{show_url(state.url)}\n  never polled; due now"
    if state.failures:
        outcome = (f"failed {state.failures} time{'s' * (state.failures != 1)} in a row: "
                   f"{truncate(safe(state.last_error or 'failed'), 200)}")
    else:
        outcome = (f"{(state.last_status or 'ok').replace('_', ' ')}, "
                   f"{state.last_new_count or 0} new")
    return (f"{show_url(state.url)}\n  last poll {stamp(state.last_polled)} ({outcome}); "
            f"next {stamp(state.next_poll)}")


class AdminCog(commands.Cog):
    """/coverage and its subcommands, for members with Manage Server."""

    coverage = app_commands.Group(
        name="coverage", description="Manage the articles and feeds Byline answers from here",
        default_permissions=MANAGE_SERVER, guild_only=True)
    feed = app_commands.Group(name="feed", description="The feeds this coverage follows",
                              parent=coverage)

    def __init__(self, bot: BylineBot) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if not is_admin(interaction):
            command = interaction.command.qualified_name if interaction.command else "?"
            audit(interaction, command, _target(interaction), "refused (no Manage Server)")
            raise NotAdmin(NOT_ADMIN)
        if self.bot.drain.closing:
            raise ShuttingDown("Byline is shutting down")
        return True

    # -- articles -------------------------------------------------------------------------

    @coverage.command(name="add")
    @app_commands.describe(url="The article's address (http or https)")
    async def add(self, interaction: discord.Interaction,
                  url: app_commands.Range[str, 1, 2048]) -> None:
        """Add one article from the web to this server's coverage."""
        cov = await self._writable(interaction, "add", url)
        if cov is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with cov.writing, self._audited(interaction, "add", url):
            # after a feed poll or another admin's change, not during
            added = await self.bot.worker.run(jobs.add_page, cov.corpus_dir, cov.location,
                                              url, self.bot.settings.fetch)
        if added.status == "failed":
            text = f"Could not add {show_url(url)}: {added.reason.rstrip('.')}."
        else:
            count = await self._searchable(cov, interaction.guild_id)
            title = show_title(added.title)
            text = (f"{title} is already in the coverage." if added.status == "already" else
                    f"Added {title}: it answers questions now ({count}).")
        audit(interaction, "add", url, added.status if added.status != "failed"
              else f"failed: {added.reason}" + (f" ({added.detail})" if added.detail else ""))
        await self._reply(interaction, text)

    @coverage.command(name="remove")
    @app_commands.describe(article="The article to remove (start typing its title)")
    async def remove(self, interaction: discord.Interaction,
                     article: app_commands.Range[str, 1, 200]) -> None:
        """Remove an article from this server's coverage."""
        cov = await self._writable(interaction, "remove", article)
        if cov is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            async with self.bot.coverages.use(interaction.guild_id) as cov:
                articles = cov.articles
        except NoCoverage as exc:
            await self._reply(interaction, str(exc))
            return
        found = find_article(articles, article)
        if found is None:
            audit(interaction, "remove", article, "no such article")
            await self._reply(interaction, f"No article of this coverage is {show_title(article)}"
                              "; pick one from the list that appears as you type.")
            return
        others = sum(a.source == found.source for a in articles) - 1
        if others:
            audit(interaction, "remove", found.id, "refused (a file of several articles)")
            await self._reply(interaction, (
                f"{show_title(found.title)} comes from `{safe(found.source)[:200]}`, a file "
                f"that holds {others} other article{'s' * (others != 1)} (a feed or an "
                "export); `/coverage remove` removes whole files only. The bot's operator "
                "can edit that file in the coverage's folder."))
            return
        async with cov.writing, self._audited(interaction, "remove", found.id):
            indexed = await self.bot.worker.run(jobs.remove_source, cov.corpus_dir,
                                                cov.location, found.source)
        if indexed.generation is None:
            await self.bot.coverages.unload(cov)
            text = f"Removed {show_title(found.title)}. The coverage has no article left."
        else:
            count = await self._searchable(cov, interaction.guild_id)
            text = (f"Removed {show_title(found.title)}: it no longer answers questions "
                    f"({count}).")
        audit(interaction, "remove", found.id, "removed")
        await self._reply(interaction, text)

    @remove.autocomplete("article")
    async def article_choices(self, interaction: discord.Interaction, current: str
                              ) -> list[app_commands.Choice[str]]:
        """The coverage's articles whose title (or file) holds what has been typed."""
        if not is_admin(interaction):
            return []
        try:
            async with self.bot.coverages.use(interaction.guild_id) as cov:
                articles = cov.articles
        except NoCoverage:
            return []
        typed = current.strip().casefold()
        found = [a for a in articles
                 if typed in a.title.casefold() or typed in a.source.casefold()]
        found.sort(key=lambda a: date_key(a.date), reverse=True)  # newest first
        return [app_commands.Choice(name=truncate(self._label(a), CHOICE_MAX),
                                    value=article_value(a)) for a in found[:CHOICES_MAX]]

    @staticmethod
    def _label(a: ArticleInfo) -> str:
        extra = " · ".join(x for x in (a.outlet, day(a.date) if a.date else None) if x)
        return f"{a.title} ({extra})" if extra else a.title

    # -- status ---------------------------------------------------------------------------

    @coverage.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """What this server's coverage holds, when it last changed, and its feeds."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        cov = self.bot.coverages.get(interaction.guild_id)
        articles: list[ArticleInfo] = []
        try:
            async with self.bot.coverages.use(interaction.guild_id) as cov:
                articles = cov.articles
        except NoCoverage:
            pass
        current = await asyncio.to_thread(current_manifest, cov)
        states, problems = [], []
        if cov.feeds_path.is_file():
            follower = await asyncio.to_thread(self.bot.feeds.follower, cov)
            states = await asyncio.to_thread(follower.states)
            problems = (await asyncio.to_thread(follower.feeds)).problems
        embed = discord.Embed(colour=ANSWER_COLOUR, title=(
            "Shared coverage" if cov is self.bot.coverages.shared else
            "This server's coverage"))
        if current is None:
            embed.description = "No articles yet: add one with `/coverage add url:`."
        else:
            manifest, size = current
            newest = max((a.date for a in articles if a.date), key=date_key, default=None)
            embed.description = "\n".join([
                f"**Articles** {manifest.articles:,} ({manifest.passages:,} passages)"
                + (f", the newest dated {day(newest)}" if newest else ""),
                f"**Last update** {manifest.created.replace('T', ' ')} (index generation "
                f"{manifest.generation})",
                f"**Index size** {size / 1024 / 1024:.1f} MB "
                + cov.store.place])
        if cov.store.shared:
            embed.add_field(name="Store", value=f"`{cov.where.replace('`', '')}`",
                            inline=False)
        failing = [s for s in states if s.failures]
        if not self.bot.feeds.enabled:
            following = "not followed by this bot (BYLINE_FOLLOW=0)"
        else:
            following = f"polled every {self.bot.settings.follow_minutes:g} minutes"
        feeds = (f"{len(states)} listed, {len(failing)} failing; {following}" if states
                 else "none; follow one with `/coverage feed add url:`")
        embed.add_field(name="Feeds", value=feeds, inline=False)
        for s in failing[:5]:
            embed.add_field(name=truncate(s.url, 250), inline=False, value=truncate(
                f"failed {s.failures} time(s) in a row: {safe(s.last_error or 'failed')}; "
                f"next try {stamp(s.next_poll or 0)}", 1000))
        if problems:
            embed.add_field(name="feeds.txt", value=truncate("\n".join(
                safe(p) for p in problems), 1000), inline=False)
        if cov.read_only:
            embed.set_footer(text=cov.read_only)
        audit(interaction, "status", "", "shown")
        await interaction.followup.send(embed=fit(embed), ephemeral=True,
                                        allowed_mentions=NO_PINGS)

    # -- feeds ----------------------------------------------------------------------------

    @feed.command(name="add")
    @app_commands.describe(url="The feed's address (RSS or Atom, http or https)")
    async def feed_add(self, interaction: discord.Interaction,
                       url: app_commands.Range[str, 1, 2048]) -> None:
        """Follow a feed: its new articles join this server's coverage."""
        cov = await self._writable(interaction, "feed add", url)
        if cov is None:
            return
        follower = await asyncio.to_thread(self.bot.feeds.follower, cov)
        try:
            added = await asyncio.to_thread(follower.add_feed, url)
        except FetchError as exc:
            audit(interaction, "feed add", url, "not a URL")
            await self._reply(interaction, str(exc))
            return
        if not added:
            text = f"Already following {show_url(url)}."
        elif self.bot.feeds.enabled:
            self.bot.feeds.poll_soon(cov)
            text = (f"Following {show_url(url)}: its articles are fetched now, then every "
                    f"{self.bot.settings.follow_minutes:g} minutes; see `/coverage feed list`.")
        else:
            text = (f"Listed {show_url(url)} in the coverage's feeds.txt; this bot does not "
                    "follow feeds (BYLINE_FOLLOW=0), so its operator polls them with "
                    "`byline follow`.")
        audit(interaction, "feed add", url, "added" if added else "already listed")
        await self._reply(interaction, text)

    @feed.command(name="remove")
    @app_commands.describe(url="The feed to stop following")
    async def feed_remove(self, interaction: discord.Interaction,
                          url: app_commands.Range[str, 1, 2048]) -> None:
        """Stop following a feed (the articles it brought stay)."""
        cov = await self._writable(interaction, "feed remove", url)
        if cov is None:
            return
        follower = await asyncio.to_thread(self.bot.feeds.follower, cov)
        removed = await asyncio.to_thread(follower.remove_feed, url)
        text = (f"Stopped following {show_url(url)}; the articles it brought stay (remove "
                "them with `/coverage remove`)." if removed else
                f"{show_url(url)} is not followed here; see `/coverage feed list`.")
        audit(interaction, "feed remove", url, "removed" if removed else "not listed")
        await self._reply(interaction, text)

    @feed_remove.autocomplete("url")
    async def feed_choices(self, interaction: discord.Interaction, current: str
                           ) -> list[app_commands.Choice[str]]:
        """The listed feeds that hold what has been typed."""
        if not is_admin(interaction):
            return []
        try:
            cov = self.bot.coverages.get(interaction.guild_id)
        except NoCoverage:
            return []
        if not cov.feeds_path.is_file():
            return []
        follower = await asyncio.to_thread(self.bot.feeds.follower, cov)
        urls = (await asyncio.to_thread(follower.feeds)).urls
        typed = current.strip().casefold()
        return [app_commands.Choice(name=truncate(u, CHOICE_MAX), value=u)
                for u in urls if typed in u.casefold() and len(u) <= CHOICE_MAX
                ][:CHOICES_MAX]

    @feed.command(name="list")
    async def feed_list(self, interaction: discord.Interaction) -> None:
        """The feeds this coverage follows: last poll, failures, last error, next poll."""
        cov = self.bot.coverages.get(interaction.guild_id)
        states: list[FeedState] = []
        problems: list[str] = []
        if cov.feeds_path.is_file():
            follower = await asyncio.to_thread(self.bot.feeds.follower, cov)
            states = await asyncio.to_thread(follower.states)
            problems = (await asyncio.to_thread(follower.feeds)).problems
        lines = [feed_line(s) for s in states] or [
            "No feeds followed here; follow one with `/coverage feed add url:`."]
        lines += [f"feeds.txt: {safe(p)}" for p in problems]
        audit(interaction, "feed list", "", f"{len(states)} feeds")
        await self._reply(interaction, "\n".join(lines))

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    @contextlib.asynccontextmanager
    async def _audited(interaction: discord.Interaction, action: str, target: str
                       ) -> AsyncIterator[None]:
        """An action that fails with an error (the admin gets the apology) is logged too."""
        try:
            yield
        except Exception as exc:
            audit(interaction, action, target, f"error: {type(exc).__name__}: {exc}")
            raise

    async def _writable(self, interaction: discord.Interaction, action: str,
                        target: str) -> Coverage | None:
        """The coverage to change, or None when it cannot be (the admin was told why)."""
        cov = self.bot.coverages.get(interaction.guild_id)
        if cov.read_only is not None:
            audit(interaction, action, target, "refused (read-only coverage)")
            await self._reply(interaction, cov.read_only)
            return None
        return cov

    async def _searchable(self, cov: Coverage, guild_id: int | None) -> str:
        """Once this returns, questions are answered from the coverage's newest index;
        `12 articles in the coverage`."""
        async with self.bot.coverages.use(guild_id) as cov:  # loads it if it was not
            await self.bot.coverages.reload(cov, now=True)
            n = len(cov.articles)
        return f"{n:,} article{'s' * (n != 1)} in the coverage"

    @staticmethod
    async def _reply(interaction: discord.Interaction, text: str) -> None:
        """A private reply, as the first response or after "thinking…"."""
        text = truncate(text, MESSAGE_MAX)
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(text, ephemeral=True,
                                                    allowed_mentions=NO_PINGS)


async def setup(bot: BylineBot) -> None:
    """discord.py's extension entry point (`load_extension("bot.cogs.admin")`)."""
    await bot.add_cog(AdminCog(bot))
