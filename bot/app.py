"""The Byline Discord bot: a commands.Bot that answers from its coverages (bot/coverage.py: one
shared, or one per server), picks up new index generations while it runs, follows feeds,
and shuts down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Hashable

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.batching import MAX_BATCH
from bot.conversations import Conversations
from bot.coverage import TIMELINE_STORIES, Catalogue, Coverage, CoverageSet  # noqa: F401
from bot.feeds import FeedTasks
from bot.lifecycle import Drain, on_signals
from bot.metrics import COMMANDS, Health, Metrics, MetricsServer
from bot.pages import SourcesPageButton
from bot.replies import (
    NO_PINGS,
    NOT_ADMIN,
    RESTARTING,
    FeedbackButton,
    NotAdmin,
    ShuttingDown,
    send_ephemeral,
)
from bot.settings import BotConfigError, BotSettings
from bot.worker import Worker
from retrieval.errors import BylineError
from retrieval.model.embed import Embedder
from retrieval.search.feedback import FeedbackStore, default_path
from retrieval.search.filters import Filters
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Answer, Retriever
from retrieval.search.timeline import Timeline
from retrieval.store import ArticleInfo, backend

log = logging.getLogger("byline.bot")
# The cogs, loaded as extensions: /ask and friends, /coverage, the "Ask Byline" message menu.
COGS = ("bot.cogs.ask", "bot.cogs.admin", "bot.cogs.menu")
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
MISSING_ACCESS = 50001  # Discord's error code for 403 Missing Access


class BylineTree(app_commands.CommandTree):
    """Command tree whose errors become short ephemeral replies (and logged tracebacks)."""

    async def on_error(self, interaction: discord.Interaction,
                       error: app_commands.AppCommandError) -> None:
        metrics: Metrics | None = getattr(interaction.client, "metrics", None)
        command = interaction.command.name if interaction.command else "?"
        label = getattr(interaction.command, "extras", {}).get("metric", command)
        if isinstance(error, app_commands.CommandOnCooldown):
            text = f"Slow down a little: try again in {error.retry_after:.0f} s."
            reason = "cooldown"
        elif isinstance(error, ShuttingDown):
            text, reason = RESTARTING, "shutting_down"
        elif isinstance(error, NotAdmin):
            text, reason = NOT_ADMIN, None
        else:
            original = getattr(error, "original", error)
            if isinstance(original, BylineError):  # a damaged index, say: its one line
                log.error("/%s failed: %s", command, original)
            else:
                log.error("/%s failed", command, exc_info=error)
            text, reason = APOLOGY, None
            if metrics is not None and label in COMMANDS:
                metrics.command_errors.labels(label).inc()
        if metrics is not None and reason is not None:
            metrics.turned_away.labels(reason).inc()
        await send_ephemeral(interaction, text)


class BylineBot(commands.Bot):
    """Holds the coverages, the worker, the feedback store and the metrics; the cogs do the
    talking."""

    def __init__(self, settings: BotSettings, retriever: Retriever | LiveRetriever | None = None,
                 feedback: FeedbackStore | None = None, *, embedder: Embedder | None = None,
                 max_batch: int = MAX_BATCH, **options: object) -> None:
        """`retriever`: the shared coverage's index (BYLINE_COVERAGE=shared; a Retriever's
        index folder is watched), or None per server, where `embedder` is the model;
        `max_batch`: most questions answered in one retrieval call (1: no batching);
        `options` go to discord.py's Bot (e.g. guild_ready_timeout)."""
        super().__init__(command_prefix=commands.when_mentioned,
                         intents=discord.Intents(guilds=True),  # nothing privileged
                         allowed_mentions=NO_PINGS, tree_cls=BylineTree, help_command=None,
                         **options)
        self.settings = settings
        live = retriever if isinstance(retriever, LiveRetriever) or retriever is None \
            else LiveRetriever(retriever)
        if embedder is None:
            if live is None:
                raise ValueError("BylineBot needs a retriever or an embedder")
            embedder = live.current.embedder
        self.feedback = feedback or FeedbackStore(
            settings.feedback_db or default_path(settings.index_dir))
        self.metrics = Metrics()
        self.metrics.watch(self.health)
        self.metrics_server: MetricsServer | None = None
        self.drain = Drain()
        self.conversations = Conversations()
        self.worker = Worker(settings.worker, embedder)
        # Concurrent asks share one retrieval call per coverage, one call at a time across
        # coverages: 2 cores, no thrashing.
        self.coverages = CoverageSet(settings, self.worker, self.metrics,
                                     shared=live if settings.coverage == "shared" else None,
                                     max_batch=max_batch)
        self.feeds = FeedTasks(settings, self.coverages, self.metrics)
        self._watch: tasks.Loop | None = None
        if settings.reload_seconds > 0:
            self._watch = tasks.loop(seconds=settings.reload_seconds)(self.reload_index)
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def shared(self) -> Coverage:
        """The one coverage of shared mode (RuntimeError in per-server mode)."""
        if self.coverages.shared is None:
            raise RuntimeError("per-server coverage: use bot.coverages.use(guild_id)")
        return self.coverages.shared

    async def articles_in(self, guild_id: int | None) -> list[ArticleInfo]:
        """The articles of the coverage answering in this guild (loaded if need be);
        NoCoverage when it has none."""
        async with self.coverages.use(guild_id) as cov:
            return cov.articles

    async def setup_hook(self) -> None:
        if self.settings.metrics_port is not None:
            self.metrics_server = MetricsServer(self.metrics, self.health,
                                                self.settings.metrics_host,
                                                self.settings.metrics_port)
            await self.metrics_server.start()
        for cog in COGS:
            await self.load_extension(cog)
        # Buttons known by their custom_id alone: they still work after a restart.
        self.add_dynamic_items(FeedbackButton, SourcesPageButton)
        await self._sync_commands()
        if self._watch is not None:
            self._watch.start()
        self.feeds.start_all()

    async def _sync_commands(self) -> None:
        """Sync here, once per start, not in on_ready (which fires on every reconnect)."""
        guild_id = self.settings.guild_id
        try:
            if guild_id:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
            else:
                synced = await self.tree.sync()
        except discord.Forbidden as exc:
            if guild_id and exc.code == MISSING_ACCESS:
                raise BotConfigError(
                    f"Discord refused to register the commands in server {guild_id} (403 "
                    "Missing Access): the bot is not in that server; invite it there with "
                    "the bot and applications.commands scopes (README, Run the bot, step 2), "
                    "or fix DISCORD_GUILD_ID.") from None
            raise BotConfigError(f"Discord refused to register the commands ({exc.status} "
                                 f"{exc.text or 'Forbidden'}); check the application's "
                                 "settings in the Developer Portal.") from None
        log.info("synced %d commands%s", len(synced),
                 f" to guild {guild_id}" if guild_id else "")

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s, in %d servers", self.user, len(self.guilds))

    async def ask(self, question: str, k: int, filters: Filters | None = None, *,
                  guild_id: int | None = None, talk: Hashable | None = None) -> Answer:
        """Retrieval in a worker thread (the gateway must not wait), batched with the asks
        that arrive meanwhile, from the coverage answering in `guild_id`; BadQuestion
        concerns this question (or its filters) only; NoCoverage (a BadQuestion) when the
        guild has no coverage. With `talk` (who asks where: bot/conversations.py), the
        question may follow up on that conversation's last ones (and keeps their filters
        when `filters` is None)."""
        async with self.coverages.use(guild_id) as cov:
            if talk is None:
                return await cov.ask(question, k, filters)
            async with self.conversations.turn(talk) as conversation:
                asked = conversation.prepare(question, k, filters)
                if not asked.follow_up:
                    found = await cov.ask(asked.query, asked.depth, asked.filters)
                    return conversation.finish(cov.retriever, asked, found)

                def follow_up() -> Answer:
                    # searched and checked against one generation of the index (a reload
                    # between the two would give the check another index's rows)
                    retriever = cov.retriever
                    found = retriever.ask_many([asked.query], asked.depth, keep_refused=True,
                                               filters=asked.filters)[0]
                    return conversation.finish(retriever, asked, found)

                return await cov.batcher.exclusive(follow_up)  # between batches

    async def timeline(self, topic: str, filters: Filters | None = None, *,
                       guild_id: int | None = None) -> Timeline:
        """`retrieval.search.timeline` in a worker thread, between /ask batches."""
        async with self.coverages.use(guild_id) as cov:
            return await cov.timeline(topic, filters)

    # -- hot reload -----------------------------------------------------------------------

    async def reload_index(self) -> bool:
        """Swap in each loaded coverage's new generation, if one was published (loaded in a
        worker thread beside the current one, made current between two batches). Whether
        any was swapped in; a generation that fails to load is logged once."""
        return await self.coverages.reload_all()

    # -- health, shutdown -----------------------------------------------------------------

    def health(self) -> Health:
        """Shared: the index's generation and counts. Per server: no single generation
        (""), passages and articles summed over the loaded coverages."""
        ws = self.ws
        # Connected from READY (a session), as the bot answers from then on: is_ready()
        # waits out guild_ready_timeout after the last GUILD_CREATE as well.
        connected = (ws is not None and ws.socket is not None and ws.open
                     and ws.session_id is not None and not self.is_closed())
        loaded = [c.live for c in self.coverages.loaded() if c.live is not None]
        shared = self.coverages.shared
        errors = [live.last_error for live in loaded if live.last_error]
        return Health(gateway_connected=connected,
                      index_loaded=shared is None or shared.loaded,
                      generation=shared.live.generation if shared and shared.live else "",
                      passages=sum(live.current.index.manifest.passages for live in loaded),
                      articles=sum(live.current.index.manifest.articles for live in loaded),
                      shutting_down=self.drain.closing, answers_in_flight=self.drain.active,
                      reload_error=errors[0] if errors else None,
                      coverage=self.coverages.mode, coverages_loaded=len(loaded))

    async def shutdown(self, grace: float | None = None) -> None:
        """Take no new questions (they are told to come back in a minute), let those in
        flight finish for up to `grace` seconds (default: the settings'), then close."""
        grace = self.settings.shutdown_seconds if grace is None else grace
        self.drain.closing = True
        log.info("shutting down: taking no new questions, %d in flight", self.drain.active)
        if not await self.drain.wait(grace):
            log.warning("%d answer(s) still unfinished after %g s; closing anyway (their "
                        "askers are told to ask again)", self.drain.active, grace)
            self.drain.reported = True
        await self.close()

    def request_shutdown(self, reason: str = "shutdown") -> None:
        """The signal handler: a graceful shutdown the first time, an immediate close after."""
        if not self.drain.closing:
            log.info("%s received", reason)
            coro = self.shutdown()
        else:
            log.warning("%s received again: closing now", reason)
            coro = self.close()
        task = asyncio.create_task(coro, name="byline-shutdown")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        self.drain.closing = True
        active = self.drain.active
        if active and not self.drain.reported:
            log.warning("closing now with %d answer(s) in flight (their askers are told to "
                        "ask again)", active)
            self.drain.reported = True
        await self.drain.cancel()  # before the HTTP session closes: they can still reply
        if self._watch is not None:
            self._watch.cancel()
        self.feeds.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await super().close()
        self.worker.close()
        self.coverages.close()
        self.feedback.close()


async def serve(settings: BotSettings, retriever: Retriever | LiveRetriever | None = None, *,
                embedder: Embedder | None = None, handle_signals: bool = False,
                **options: object) -> None:
    """Connect and serve until closed (with `handle_signals`: until SIGTERM or SIGINT, then
    gracefully); the model (and in shared mode the index) are already loaded."""
    bot = BylineBot(settings, retriever, embedder=embedder, **options)
    shared = bot.coverages.shared
    if shared is not None:
        log.info("loaded %d articles (%d passages, index generation %s); connecting to "
                 "Discord", len(shared.articles), len(shared.retriever.index),
                 shared.retriever.index.manifest.generation)
    else:
        indexes = (f", indexes in the databases {backend(settings.store_url).describe()}"
                   if settings.store_url else "")
        log.info("coverage per server, in %s%s (up to %d loaded at once); connecting to "
                 "Discord", bot.coverages.guilds_dir, indexes, settings.max_loaded)
    signals = on_signals(bot.request_shutdown) if handle_signals else contextlib.nullcontext()
    async with bot:
        with signals:
            try:
                await bot.start(settings.token)
            except discord.LoginFailure:
                raise BotConfigError("Discord rejected DISCORD_TOKEN; reset the token in the "
                                     "Developer Portal and update .env.") from None
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                raise BotConfigError(f"Cannot reach Discord ({type(exc).__name__}); check "
                                     "the network and try again.") from None


def run(settings: BotSettings, retriever: Retriever | LiveRetriever | None = None, *,
        embedder: Embedder | None = None) -> None:
    """`serve` in a fresh event loop until SIGTERM or SIGINT (graceful), or a fatal error."""
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the handlers are in place
        asyncio.run(serve(settings, retriever, embedder=embedder, handle_signals=True))
