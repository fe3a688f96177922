"""Health and metrics: /healthz (JSON) and /metrics (Prometheus text), served by aiohttp in
the bot's own event loop when BYLINE_METRICS_PORT is set."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from bot.settings import BotConfigError
from retrieval.store import Manifest

log = logging.getLogger("byline.bot")

COMMANDS = ("ask", "timeline", "ask_message")  # what retrieves (ask_message: Ask Byline)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Health:
    """What /healthz reports; healthy when connected, loaded and not shutting down."""

    gateway_connected: bool
    index_loaded: bool
    generation: str
    passages: int
    articles: int
    shutting_down: bool
    answers_in_flight: int
    reload_error: str | None = None  # the last new generation that failed to load, if any
    coverage: str = "shared"  # BYLINE_COVERAGE
    coverages_loaded: int = 1

    @property
    def ok(self) -> bool:
        return self.gateway_connected and self.index_loaded and not self.shutting_down


class Metrics:
    """The bot's counters, in a registry of its own (several bots may share a process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.questions = Counter("byline_questions", "Questions asked, by command",
                                 ["command"], registry=r)
        self.answer_seconds = Histogram(
            "byline_answer_seconds", "Seconds from a question's arrival to its reply",
            ["command"], buckets=LATENCY_BUCKETS, registry=r)
        self.not_covered = Counter("byline_not_covered",
                                   "Questions the coverage does not answer (refused)",
                                   ["command"], registry=r)
        self.turned_away = Counter("byline_turned_away",
                                   "Questions not taken: cooldown, or shutting down",
                                   ["reason"], registry=r)
        self.command_errors = Counter("byline_command_errors",
                                      "Commands that failed (the user got an apology)",
                                      ["command"], registry=r)
        self.feedback = Counter("byline_feedback", "Ratings of answers, by verdict",
                                ["verdict"], registry=r)
        self.batch_size = Histogram("byline_batch_size", "Questions per retrieval call",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.index = Info("byline_index", "The index generation answering questions",
                          registry=r)
        self.index_passages = Gauge("byline_index_passages", "Passages in the index",
                                    registry=r)
        self.index_articles = Gauge("byline_index_articles", "Articles in the index",
                                    registry=r)
        self.reloads = Counter("byline_index_reloads",
                               "New index generations seen while running, by result",
                               ["result"], registry=r)
        # For the feed follower (incremented by it; registered now so dashboards can exist).
        self.feed_polls = Counter("byline_feed_polls", "Feed polls by the feed follower",
                                  registry=r)
        self.feed_errors = Counter("byline_feed_errors", "Failed feed polls or fetches",
                                   registry=r)
        self.coverages = Gauge("byline_coverages_loaded",
                               "Coverages whose index is loaded (per-server: at most "
                               "BYLINE_MAX_LOADED)", registry=r)
        self.evictions = Counter("byline_coverage_evictions",
                                 "Coverages unloaded, least recently used first, to stay "
                                 "within BYLINE_MAX_LOADED / BYLINE_MAX_LOADED_MB", registry=r)
        self.gateway_connected = Gauge("byline_gateway_connected",
                                       "1 while the Discord gateway is connected", registry=r)
        self.in_flight = Gauge("byline_answers_in_flight", "Questions being answered now",
                               registry=r)
        for command in COMMANDS:  # every series exists from the start, at 0
            self.questions.labels(command)
            self.answer_seconds.labels(command)
            self.not_covered.labels(command)
            self.command_errors.labels(command)
        for label in ("cooldown", "shutting_down"):
            self.turned_away.labels(label)
        for label in ("up", "down"):
            self.feedback.labels(label)
        for label in ("ok", "failed"):
            self.reloads.labels(label)

    def watch(self, health: Callable[[], Health]) -> None:
        """Gauges read from `health()` at each scrape."""
        self.gateway_connected.set_function(lambda: float(health().gateway_connected))
        self.in_flight.set_function(lambda: float(health().answers_in_flight))

    def coverages_loaded(self, manifests: Sequence[Manifest],
                         latest: Manifest | None = None) -> None:
        """Passages and articles summed over the loaded coverages (shared mode: the one);
        `byline_index_info` names `latest`, the generation loaded last, when given."""
        if latest is not None:
            self.index.info({"generation": latest.generation, "model": latest.model,
                             "encoder": latest.encoder, "created": latest.created})
        self.index_passages.set(sum(m.passages for m in manifests))
        self.index_articles.set(sum(m.articles for m in manifests))
        self.coverages.set(len(manifests))

    def text(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """/healthz and /metrics over HTTP, on the bot's event loop (aiohttp's web server)."""

    def __init__(self, metrics: Metrics, health: Callable[[], Health], host: str,
                 port: int) -> None:
        self.metrics, self.health = metrics, health
        self.host, self.port = host, port  # port 0: the system picks one (see .port after)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise BotConfigError(
                f"Cannot serve health and metrics on {self.host}:{self.port} "
                f"({exc.strerror or exc}); set BYLINE_METRICS_PORT to a free port, or leave "
                "it empty to serve none.") from None
        self._runner = runner
        if runner.addresses:  # the port actually bound (when 0 asked the system for one)
            self.port = int(runner.addresses[0][1])
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host,
                 self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        health = self.health()
        body = {"status": "ok" if health.ok else "unavailable", **asdict(health)}
        return web.Response(status=200 if health.ok else 503, text=json.dumps(body),
                            content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.text(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
