"""Following feeds: poll a corpus folder's feeds on a schedule, fetch new articles, re-index.

The feed list is `<corpus>/feeds.txt`. Poll state lives beside the fetched files, in
`<corpus>/.byline-follow.sqlite`: each feed's schedule and last outcome, each article link
seen in a feed, and whether the index still has to be rebuilt. A feed's ETag and
Last-Modified stay where `byline fetch` keeps them (`.byline-sources.json`, with the stored
copy a 304 is answered from), so both commands share one conditional state.
"""

from __future__ import annotations

import fcntl
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrieval.corpus.folder import FEEDS_LIST, read_article
from retrieval.errors import BylineError, CorpusError, IndexBusy
from retrieval.feeds.fetch import Fetcher, FetchResult, FetchSettings, recorded_feeds
from retrieval.feeds.lists import FeedList, add_feed, read_feeds, remove_feed
from retrieval.model.embed import Embedder
from retrieval.store import backend

STATE_FILE = ".byline-follow.sqlite"
LOCK_FILE = ".byline-follow.lock"
INTERVAL = 15 * 60.0  # seconds between two polls of a feed
JITTER = 0.1  # each delay is moved by up to ±10%, so feeds (and followers) drift apart
MAX_BACKOFF = 24 * 3600.0  # a failing feed is still tried once a day
ENTRY_ATTEMPTS = 3  # an article link that fails this many polls in a row is given up
INDEX_RETRY = 60.0  # seconds before indexing again when another writer held the index
PAGES_PER_POLL = 50  # a feed's new links fetched in one poll; the rest wait for the next

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (url TEXT PRIMARY KEY, last_polled REAL, next_poll REAL,
    failures INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_status TEXT,
    last_new_count INTEGER);
CREATE TABLE IF NOT EXISTS entries (url TEXT PRIMARY KEY, feed TEXT NOT NULL,
    first_seen REAL NOT NULL, status TEXT NOT NULL CHECK (status IN
    ('stored', 'failed', 'gave_up')), attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    path TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""


class FollowError(BylineError):
    """The follow state cannot be read or written, or a setting is out of range."""


@dataclass(frozen=True)
class FeedState:
    """One listed feed and how its polls have gone (times in seconds since the epoch)."""

    url: str
    last_polled: float | None = None
    next_poll: float | None = None  # None: due now (never polled)
    failures: int = 0  # in a row
    last_error: str | None = None
    last_status: str | None = None  # fetched, not_modified or failed
    last_new_count: int | None = None
    etag: str | None = None  # as the fetch record holds them
    last_modified: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FeedFailure:
    """A feed that could not be polled this round, and when it is tried again."""

    url: str
    error: str
    failures: int
    next_poll: float


@dataclass(frozen=True)
class EntryFailure:
    """An article link that could not be fetched this round."""

    url: str
    error: str
    attempts: int
    gave_up: bool


@dataclass
class PollReport:
    """What one `poll_due` round did."""

    now: float
    polled: list[str] = field(default_factory=list)
    new_articles: int = 0
    failures: list[FeedFailure] = field(default_factory=list)
    entry_failures: list[EntryFailure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # feeds.txt lines left out
    published: bool = False
    generation: str | None = None
    reused: int | None = None  # passages whose vectors the new generation reused
    index_error: str | None = None
    next_due: float | None = None
    busy: bool = False  # another follower was polling this folder: nothing was done
    stopped: bool = False  # asked to stop: the rest waits for the next round

    @property
    def eventful(self) -> bool:
        """Whether the round did or hit anything worth a line."""
        return bool(self.polled or self.failures or self.published or self.index_error
                    or self.busy)

    def line(self) -> str:
        """`polled 2 feeds: 3 new articles, 1 failed; published generation 1a2b3c4d; next …`."""
        if self.busy:
            return f"{stamp(self.now)}: another follower is polling this folder; skipped"
        n = len(self.polled) + len(self.failures)
        new = self.new_articles
        parts = [f"{stamp(self.now)}: polled {n} feed{'s' * (n != 1)}: {new} new "
                 f"article{'s' * (new != 1)}"]
        if self.failures:
            parts[0] += f", {len(self.failures)} failed"
        if self.published:
            parts.append(f"published generation {self.generation}")
        elif self.index_error:
            parts.append("not indexed yet")
        if self.stopped:
            parts.append("stopped")
        if self.next_due is not None:
            parts.append(f"next poll {stamp(self.next_due)}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stamp(ts: float) -> str:
    """`2024-05-01 10:15:03Z` for a time in seconds since the epoch."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


class Follower:
    """Polls the feeds of one corpus folder into it and re-indexes `location` when new
    articles arrive; thread-safe (each call opens its own database connection)."""

    def __init__(self, corpus_dir: str | Path, location: str | Path, embedder: Embedder, *,
                 interval: float = INTERVAL, jitter: float = JITTER,
                 settings: FetchSettings | None = None,
                 clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.corpus_dir = Path(corpus_dir)
        if not self.corpus_dir.is_dir():
            raise CorpusError(f"Corpus folder {self.corpus_dir} does not exist.")
        if not interval > 0:
            raise FollowError("The poll interval must be a positive number of minutes.")
        # a folder, or a store URL, where each new generation goes
        self.location: str | Path = backend(location).location
        self.embedder = embedder
        self.interval = interval
        self.jitter = jitter
        self.settings = settings or FetchSettings()
        self.clock = clock
        self.rng = rng or random.Random()
        self.feeds_path = self.corpus_dir / FEEDS_LIST
        self.state_path = self.corpus_dir / STATE_FILE
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    # -- the feed list -----------------------------------------------------------------------

    def feeds(self) -> FeedList:
        """The feeds listed in feeds.txt now."""
        return read_feeds(self.feeds_path)

    def add_feed(self, url: str) -> bool:
        """List a feed in feeds.txt (FetchError if not an http(s) URL); False if listed."""
        return add_feed(self.feeds_path, url) is not None

    def remove_feed(self, url: str) -> bool:
        """Take a feed out of feeds.txt and forget its schedule; False if it was not listed.
        The articles it brought stay, and are not fetched again if it is added back."""
        removed = remove_feed(self.feeds_path, url)
        if removed is not None:
            with self._db() as db:
                db.execute("DELETE FROM feeds WHERE url = ?", (removed,))
        return removed is not None

    def states(self) -> list[FeedState]:
        """Each listed feed with its poll state (and the validators the fetch record holds)."""
        rows = self._rows()
        validators = recorded_feeds(self.corpus_dir)
        out = []
        for url in self.feeds().urls:
            row = rows.get(url, {})
            record = validators.get(url, {})
            out.append(FeedState(url, **row, etag=record.get("etag"),
                                 last_modified=record.get("last_modified")))
        return out

    def next_due(self) -> float | None:
        """When the next poll (or index retry) is due; None when nothing is listed."""
        rows = self._rows()
        times = [rows.get(u, {}).get("next_poll") or 0.0 for u in self.feeds().urls]
        with self._db() as db:
            retry = db.execute("SELECT value FROM meta WHERE key = 'index_due'").fetchone()
        if retry:
            times.append(retry[0])
        return min(times) if times else None

    # -- polling -----------------------------------------------------------------------------

    def poll_due(self, now: float | None = None,
                 stop: Callable[[], bool] = lambda: False) -> PollReport:
        """Poll each feed that is due, fetch its new articles, and index them if any arrived.

        Feeds are asked with their ETag/Last-Modified; an article link is fetched once,
        however long the feed keeps listing it. The index is written without waiting: when
        another writer holds it, indexing is retried a minute later (the articles are saved
        and the retry is remembered across restarts). `stop` is checked between requests;
        when it says stop, the round ends there and indexing waits for the next one."""
        now = self.clock() if now is None else now
        feeds = self.feeds()
        report = PollReport(now, problems=feeds.problems)
        with _poll_lock(self.corpus_dir / LOCK_FILE) as held:
            if not held:
                report.busy = True
                report.next_due = now + INDEX_RETRY
                return report
            rows = self._rows()
            due = [u for u in feeds.urls if (rows.get(u, {}).get("next_poll") or 0) <= now]
            if due:
                with Fetcher(self.corpus_dir, self.settings) as fetcher:
                    for url in due:
                        if stop():
                            report.stopped = True
                            break
                        failures = rows.get(url, {}).get("failures", 0)
                        try:
                            self._poll_feed(fetcher, url, failures, now, report, stop)
                        except (OSError, ValueError, LookupError, sqlite3.Error) as exc:
                            # one feed's surprise costs its own poll, never the schedule
                            self._feed_failed(url, failures, now, report,
                                              f"failed ({type(exc).__name__})")
            if not report.stopped:
                self._index_if_due(now, report)
        report.next_due = self.next_due()
        return report

    def _poll_feed(self, fetcher: Fetcher, url: str, failures: int, now: float,
                   report: PollReport, stop: Callable[[], bool]) -> None:
        """One feed: the feed itself, then each of its links never seen stored or given up."""
        result, links = fetcher.feed(url)
        if not result.ok:
            self._feed_failed(url, failures, now, report, result.reason or "failed")
            return
        new = asked = 0
        with self._db() as db:
            done = {link for link in links if db.execute(
                "SELECT 1 FROM entries WHERE url = ? AND status != 'failed'", (link,)).fetchone()}
        for link in links:
            if link in done:
                continue
            if stop():
                report.stopped = True
                break
            if asked == PAGES_PER_POLL:  # a feed of a thousand links is read in rounds
                break
            asked += 1
            # (one stored earlier is skipped without a request; a feed's link is checked
            # against the address policy even where the feed itself was named by the user)
            page = self._readable(fetcher.fetch_page(link, given=False))
            new += page.status == "fetched"
            self._save_entry(url, link, page, now, report)
        report.new_articles += new
        report.polled.append(url)
        next_poll = now + self._jittered(self.interval)
        self._save_feed(url, now, next_poll, 0, None, result.status, new)

    def _feed_failed(self, url: str, failures: int, now: float, report: PollReport,
                     error: str) -> None:
        """A feed that could not be polled is tried again later, later each time in a row."""
        failures += 1
        backoff = min(self.interval * 2 ** min(failures, 32), MAX_BACKOFF)
        next_poll = now + self._jittered(backoff)
        self._save_feed(url, now, next_poll, failures, error, "failed", None)
        report.failures.append(FeedFailure(url, error, failures, next_poll))

    def _readable(self, page: FetchResult) -> FetchResult:
        """A page just fetched that gives no article is removed at once, and fails: left in
        the folder it would be skipped by every index, with its reason, for ever."""
        if page.status != "fetched" or page.path is None:
            return page
        path = self.corpus_dir / page.path
        try:
            read_article(path, self.corpus_dir)
        except CorpusError as exc:
            path.unlink(missing_ok=True)
            reason = str(exc).split(": ", 1)[-1].rstrip(".")
            return replace(page, status="failed", path=None,
                           reason=f"nothing to index on that page ({reason})")
        return page

    def _save_entry(self, feed: str, link: str, page: FetchResult, now: float,
                    report: PollReport) -> None:
        """Record one link's outcome; an article saved now makes the index due."""
        error = None if page.ok else page.reason or "failed"
        with self._db() as db:
            row = db.execute("SELECT attempts FROM entries WHERE url = ?", (link,)).fetchone()
            attempts = (row[0] if row else 0) + (error is not None)
            status = "stored" if error is None else (
                "gave_up" if attempts >= ENTRY_ATTEMPTS else "failed")
            db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (url) DO "
                       "UPDATE SET status = excluded.status, attempts = excluded.attempts, "
                       "last_error = excluded.last_error, path = excluded.path",
                       (link, feed, now, status, attempts, error, page.path))
            if page.status == "fetched":
                db.execute("INSERT INTO meta VALUES ('index_due', ?) ON CONFLICT (key) DO "
                           "UPDATE SET value = min(value, excluded.value)", (now,))
        if error is not None:
            report.entry_failures.append(EntryFailure(link, error, attempts,
                                                      status == "gave_up"))

    def _index_if_due(self, now: float, report: PollReport) -> None:
        """Index the corpus when articles arrived (now or in a round that could not index)."""
        from retrieval.build.pipeline import index_corpus
        from retrieval.search.calibrate import calibrated

        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'index_due'").fetchone()
        if row is None or row[0] > now:
            return
        retry = now + INDEX_RETRY
        try:
            index = index_corpus(self.corpus_dir, self.location, self.embedder,
                                 progress=False, wait=False, calibrate=calibrated)
        except IndexBusy as exc:
            report.index_error = str(exc)
        except BylineError as exc:  # a damaged corpus or model: not again before a poll
            report.index_error = str(exc)
            retry = now + self._jittered(self.interval)
        else:
            report.published = True
            report.generation = index.manifest.generation
            report.reused = index.reused
            with self._db() as db:
                db.execute("DELETE FROM meta WHERE key = 'index_due'")
            return
        with self._db() as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'index_due'", (retry,))

    # -- state -------------------------------------------------------------------------------

    def _jittered(self, delay: float) -> float:
        return delay * (1 + self.rng.uniform(-self.jitter, self.jitter))

    def _save_feed(self, url: str, now: float, next_poll: float, failures: int,
                   error: str | None, status: str, new: int | None) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO feeds VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (url, now, next_poll, failures, error, status, new))

    def _rows(self) -> dict[str, dict[str, Any]]:
        """Each polled feed's row, by URL, without the URL."""
        with self._db() as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM feeds")]
        return {r.pop("url"): r for r in rows}

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection to the state file, committed on success; FollowError when damaged."""
        try:
            with closing(sqlite3.connect(self.state_path, timeout=30)) as db, db:
                yield db
        except sqlite3.DatabaseError as exc:
            raise FollowError(
                f"The follow state {self.state_path} cannot be used ({exc}); remove it to "
                "start over (articles already stored are not fetched again).") from None


@contextmanager
def _poll_lock(path: Path) -> Iterator[bool]:
    """Whether this follower may poll the folder now: one poller at a time (flock)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
