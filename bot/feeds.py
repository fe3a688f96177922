"""The bot's feed task: per coverage, a background loop that follows its corpus folder's
feeds.txt, as `byline follow` does, and hot-reloads the coverage when new articles arrive.

Each loop wakes every BotSettings.follow_check_seconds (60 s) and asks the Follower (in a
worker thread, a quick SQLite read) whether a feed is due; the Follower keeps the schedule
(BYLINE_FOLLOW_MINUTES, default 15, ±10%; failing feeds back off). A due round runs
`Follower.poll_due` in the worker (bot/worker.py), holding the coverage's writer turn, so a
/coverage add meanwhile waits for it rather than failing. BYLINE_FOLLOW=0 turns it off.
"""

from __future__ import annotations

import asyncio
import logging
import time

from discord.ext import tasks

from bot import jobs
from bot.coverage import Coverage, CoverageSet
from bot.metrics import Metrics
from bot.settings import BotSettings
from retrieval.errors import BylineError
from retrieval.feeds.follow import Follower, PollReport, stamp

log = logging.getLogger("byline.bot")


class FeedTasks:
    """One `tasks.Loop` per coverage that lists feeds."""

    def __init__(self, settings: BotSettings, coverages: CoverageSet, metrics: Metrics) -> None:
        self.settings = settings
        self.coverages = coverages
        self.metrics = metrics
        self.loops: dict[str, tasks.Loop] = {}
        self._soon: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.settings.follow

    def interval(self) -> float:
        return self.settings.follow_minutes * 60.0

    def follower(self, cov: Coverage) -> Follower:
        """The coverage's Follower, for its feed list and state (creates the corpus folder)."""
        cov.corpus_dir.mkdir(parents=True, exist_ok=True)
        return Follower(cov.corpus_dir, cov.location, self.coverages.embedder,
                        interval=self.interval(), settings=self.settings.fetch)

    def start_all(self) -> None:
        """A loop for every coverage on disk that lists feeds."""
        for cov in self.coverages.all():
            if cov.read_only is None and cov.feeds_path.is_file():
                self.start(cov)

    def start(self, cov: Coverage) -> None:
        """Follow this coverage's feeds (a no-op when following is off or it runs already)."""
        if not self.enabled or cov.key in self.loops:
            return

        async def tick() -> None:
            await self.tick(cov)

        loop = tasks.loop(seconds=self.settings.follow_check_seconds)(tick)
        self.loops[cov.key] = loop
        loop.start()

    def poll_soon(self, cov: Coverage) -> None:
        """Poll what is due now, without waiting for the loop's next tick (after a feed is
        added, say)."""
        if not self.enabled:
            return
        self.start(cov)
        task = asyncio.create_task(self.tick(cov), name=f"byline-feeds-{cov.key}")
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    def stop(self) -> None:
        for loop in self.loops.values():
            loop.cancel()
        self.loops.clear()
        for task in self._soon:
            task.cancel()

    async def tick(self, cov: Coverage) -> PollReport | None:
        """Poll the coverage's due feeds, if any; never raises (the loop must go on)."""
        try:
            due = await asyncio.to_thread(self._next_due, cov)
            if due is None or due > time.time():
                return None
            return await self.poll(cov)
        except BylineError as exc:
            log.error("coverage %s: following its feeds failed: %s", cov.key, exc)
        except Exception:
            log.exception("coverage %s: following its feeds failed", cov.key)
        return None

    def _next_due(self, cov: Coverage) -> float | None:
        if not cov.feeds_path.is_file():
            return None
        return self.follower(cov).next_due()

    async def poll(self, cov: Coverage) -> PollReport:
        """One poll round in the worker, holding the coverage's writer turn; a new
        generation is swapped in at once (when the coverage is loaded)."""
        async with cov.writing:
            report = await self.coverages.worker.run(
                jobs.poll_feeds, cov.corpus_dir, cov.location, self.interval(),
                self.settings.fetch, self.coverages.worker.stop_event)
        polled = len(report.polled) + len(report.failures)
        self.metrics.feed_polls.inc(polled)
        self.metrics.feed_errors.inc(len(report.failures) + len(report.entry_failures))
        for f in report.failures:
            log.warning("coverage %s: feed %s failed: %s (failures in a row: %d; next try "
                        "%s)", cov.key, f.url, f.error, f.failures, stamp(f.next_poll))
        for e in report.entry_failures:
            log.warning("coverage %s: article %s failed: %s%s", cov.key, e.url, e.error,
                        " (given up)" if e.gave_up else "")
        if report.index_error:
            log.warning("coverage %s: new articles not indexed yet: %s", cov.key,
                        report.index_error)
        if report.eventful:
            log.info("coverage %s: %s", cov.key, report.line())
        if report.published:
            await self.coverages.reload(cov, now=True)
        return report
