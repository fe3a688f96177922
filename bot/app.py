"""The Byline Discord bot: a commands.Bot that answers from a LiveRetriever loaded at start-up,
picks up new index generations while it runs, and shuts down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.batching import MAX_BATCH, AskBatcher
from bot.commands import (
    NO_PINGS,
    RESTARTING,
    AskCog,
    FeedbackButton,
    ShuttingDown,
    send_ephemeral,
)
from bot.lifecycle import Drain, on_signals
from bot.menu import AskByline
from bot.metrics import COMMANDS, Health, Metrics, MetricsServer
from bot.pages import SourcesPageButton
from bot.settings import BotConfigError, BotSettings
from retrieval.errors import BylineError
from retrieval.feedback import FeedbackStore, default_path
from retrieval.live import LiveRetriever, Reload
from retrieval.search import Answer, Retriever
from retrieval.store import ArticleInfo
from retrieval.timefilter import Filters
from retrieval.timeline import Timeline, timeline

log = logging.getLogger("byline.bot")
TIMELINE_STORIES = 15  # stories per /timeline (one embed)
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


@dataclass(frozen=True)
class Catalogue:
    """The articles and outlets of one index generation (for /sources, /help, autocomplete)."""

    articles: list[ArticleInfo]
    outlets: list[str]

    @classmethod
    def of(cls, retriever: Retriever) -> Catalogue:
        articles = retriever.index.articles()
        return cls(articles, sorted({a.outlet for a in articles if a.outlet}, key=str.casefold))


class BylineBot(commands.Bot):
    """Holds the LiveRetriever, the feedback store and the metrics; the cog does the talking."""

    def __init__(self, settings: BotSettings, retriever: Retriever | LiveRetriever,
                 feedback: FeedbackStore | None = None, *, max_batch: int = MAX_BATCH,
                 **options: object) -> None:
        """`retriever`: a LiveRetriever, or a Retriever (then its index folder is watched);
        `max_batch`: most questions answered in one retrieval call (1: no batching);
        `options` go to discord.py's Bot (e.g. guild_ready_timeout)."""
        super().__init__(command_prefix=commands.when_mentioned,
                         intents=discord.Intents(guilds=True),  # nothing privileged
                         allowed_mentions=NO_PINGS, tree_cls=BylineTree, help_command=None,
                         **options)
        self.settings = settings
        self.live = retriever if isinstance(retriever, LiveRetriever) else LiveRetriever(
            retriever)
        self.catalogue = Catalogue.of(self.live.current)
        self.feedback = feedback or FeedbackStore(
            settings.feedback_db or default_path(settings.index_dir))
        self.metrics = Metrics()
        self.metrics.index_in_use(self.live.current.index.manifest)
        self.metrics.watch(self.health)
        self.metrics_server: MetricsServer | None = None
        self.drain = Drain()
        # Concurrent asks share one retrieval call, one at a time: 2 cores, no thrashing.
        # Each batch takes the Retriever current when it starts (hot reload between batches).
        self.batcher = AskBatcher(lambda: self.live.current, max_batch,
                                  on_batch=self.metrics.batch_size.observe)
        self._reloading = asyncio.Lock()
        self._watch: tasks.Loop | None = None
        if settings.reload_seconds > 0 and self.live.index_dir is not None:
            self._watch = tasks.loop(seconds=settings.reload_seconds)(self.reload_index)
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def retriever(self) -> Retriever:
        """The Retriever answering now."""
        return self.live.current

    @property
    def articles(self) -> list[ArticleInfo]:
        return self.catalogue.articles

    @property
    def outlets(self) -> list[str]:
        return self.catalogue.outlets

    async def setup_hook(self) -> None:
        if self.settings.metrics_port is not None:
            self.metrics_server = MetricsServer(self.metrics, self.health,
                                                self.settings.metrics_host,
                                                self.settings.metrics_port)
            await self.metrics_server.start()
        await self.add_cog(AskCog(self))
        await self.add_cog(AskByline(self))  # the message context menu
        # Buttons known by their custom_id alone: they still work after a restart.
        self.add_dynamic_items(FeedbackButton, SourcesPageButton)
        await self._sync_commands()
        if self._watch is not None:
            self._watch.start()

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

    async def ask(self, question: str, k: int, filters: Filters | None = None) -> Answer:
        """Retrieval in a worker thread (the gateway must not wait), batched with the asks
        that arrive meanwhile; BadQuestion concerns this question (or its filters) only."""
        return await self.batcher.ask(question, k, filters)

    async def timeline(self, topic: str, filters: Filters | None = None) -> Timeline:
        """`retrieval.timeline` in a worker thread, between /ask batches."""
        return await self.batcher.exclusive(
            lambda: timeline(self.live.current, topic, TIMELINE_STORIES, filters))

    # -- hot reload -----------------------------------------------------------------------

    async def reload_index(self) -> bool:
        """Swap in the index folder's new generation, if one was published: loaded in a
        worker thread beside the current one, then made current between two batches.
        Whether it was swapped in; a generation that fails to load is logged once."""
        async with self._reloading:
            try:
                found = await asyncio.to_thread(self._load_generation)
            except Exception:  # never let the watch loop die
                log.exception("checking the index folder for a new generation failed")
                return False
            if found is None:
                return False
            reload, catalogue = found
            if catalogue is None:
                self.metrics.reloads.labels("failed").inc()
                return False
            self.live.swap(reload)  # both on the loop, no await between: one moment
            self.catalogue = catalogue
            manifest = self.live.current.index.manifest
            self.metrics.index_in_use(manifest)
            self.metrics.reloads.labels("ok").inc()
            log.info("now answering from index generation %s (%d articles, %d passages)",
                     manifest.generation, manifest.articles, manifest.passages)
            return True

    def _load_generation(self) -> tuple[Reload, Catalogue | None] | None:
        if not self.live.stale():
            return None
        reload = self.live.load()
        if reload is None:
            return None
        return reload, Catalogue.of(reload.retriever) if reload.retriever else None

    # -- health, shutdown -----------------------------------------------------------------

    def health(self) -> Health:
        ws = self.ws
        connected = (ws is not None and ws.socket is not None and ws.open
                     and self.is_ready() and not self.is_closed())
        manifest = self.live.current.index.manifest
        return Health(gateway_connected=connected, index_loaded=True,
                      generation=manifest.generation, passages=manifest.passages,
                      articles=manifest.articles, shutting_down=self.drain.closing,
                      answers_in_flight=self.drain.active, reload_error=self.live.last_error)

    async def shutdown(self, grace: float | None = None) -> None:
        """Take no new questions (they are told to come back in a minute), let those in
        flight finish for up to `grace` seconds (default: the settings'), then close."""
        grace = self.settings.shutdown_seconds if grace is None else grace
        self.drain.closing = True
        log.info("shutting down: taking no new questions, %d in flight", self.drain.active)
        if not await self.drain.wait(grace):
            log.warning("%d answer(s) still unfinished after %g s; closing anyway",
                        self.drain.active, grace)
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
        if self._watch is not None:
            self._watch.cancel()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await super().close()
        self.feedback.close()


async def serve(settings: BotSettings, retriever: Retriever | LiveRetriever, *,
                handle_signals: bool = False, **options: object) -> None:
    """Connect and serve until closed (with `handle_signals`: until SIGTERM or SIGINT, then
    gracefully); the model and index are already loaded."""
    bot = BylineBot(settings, retriever, **options)
    log.info("loaded %d articles (%d passages, index generation %s); connecting to Discord",
             len(bot.articles), len(bot.retriever.index), bot.live.generation)
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


def run(settings: BotSettings, retriever: Retriever | LiveRetriever) -> None:
    """`serve` in a fresh event loop until SIGTERM or SIGINT (graceful), or a fatal error."""
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the handlers are in place
        asyncio.run(serve(settings, retriever, handle_signals=True))
