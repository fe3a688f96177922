"""What the bot answers from: coverages, one shared by every server or one per server.

A Coverage is a corpus folder, the location of its index (a folder, or a PostgreSQL
database: retrieval.store.base), the LiveRetriever over that index while it is loaded, the
batcher its questions go through, and (bot/feeds.py) the feed follower that writes into it.
BYLINE_COVERAGE=shared (the default) is one coverage: the index the bot was started with
(BYLINE_STORE or the index folder) and the default corpus folder. BYLINE_COVERAGE=per-server
gives each server (guild) its own, under BYLINE_DATA_DIR:

    <data_dir>/guilds/<guild id>/corpus/    articles (/coverage add, feeds.txt, dropped files)
    <data_dir>/guilds/<guild id>/index/     its index (generations, manifest.json, .lock)

or, with BYLINE_STORE=postgresql://host/byline_{guild}, its index in a database of its own
(the guild's id in place of {guild}), created on the coverage's first write.

A guild's coverage is loaded on its first question (indexed first if files were dropped
into its corpus folder but never indexed) and, beyond BYLINE_MAX_LOADED loaded coverages
(or BYLINE_MAX_LOADED_MB of index on disk), the least recently used one is unloaded; a
coverage with answers in flight is never unloaded. What one server adds lives in its own
folders and index: it never answers another server's questions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot import jobs
from bot.batching import MAX_BATCH, AskBatcher
from bot.metrics import Metrics
from bot.settings import PER_SERVER, SHARED, BotSettings
from bot.worker import Worker
from retrieval.cli.config import PACKAGED_SEEDS
from retrieval.corpus.folder import FEEDS_LIST
from retrieval.errors import BadQuestion, IndexMissing
from retrieval.search.filters import Filters
from retrieval.search.live import LiveRetriever, Reload
from retrieval.search.retriever import Answer, Retriever
from retrieval.search.timeline import Timeline, timeline
from retrieval.store import ArticleInfo, Manifest, backend, open_store

log = logging.getLogger("byline.bot")
GUILDS, CORPUS, INDEX = "guilds", "corpus", "index"
TIMELINE_STORIES = 15  # stories per /timeline (one embed)
OUTSIDE_A_SERVER = ("Each server has its own coverage here: ask in a server's channel, "
                    "not in a direct message.")


class NoCoverage(BadQuestion):
    """A question this coverage cannot take: the server has no coverage yet (or it came
    from outside a server). The message tells the user what to do."""


def no_coverage(guild_id: int | None) -> NoCoverage:
    where = f"`{GUILDS}/{guild_id}/{CORPUS}/`" if guild_id else "its corpus folder"
    return NoCoverage(
        "This server has no coverage yet. A member with Manage Server can add an article "
        "with `/coverage add url:` or follow a feed with `/coverage feed add url:` (or the "
        f"bot's operator can put article files in {where} in Byline's data folder).")


@dataclass(frozen=True)
class Catalogue:
    """The articles and outlets of one index generation (for /sources, /help, autocomplete)."""

    articles: list[ArticleInfo]
    outlets: list[str]

    @classmethod
    def of(cls, retriever: Retriever) -> Catalogue:
        articles = retriever.index.articles()
        return cls(articles, sorted({a.outlet for a in articles if a.outlet}, key=str.casefold))


def size_on_disk(manifest: Manifest) -> int:
    """Bytes of the generation's files, as its manifest lists them (0 in a database)."""
    return sum(int(size) for size, *_ in manifest.files.values())


class Coverage:
    """One coverage: corpus folder, index location, the LiveRetriever while loaded, a batcher."""

    def __init__(self, key: str, corpus_dir: Path, location: str | Path, *,
                 guild_id: int | None = None, lock: threading.Lock | None = None,
                 max_batch: int = MAX_BATCH, on_batch: Callable[[int], None] | None = None,
                 read_only: str | None = None) -> None:
        self.key = key  # "shared", or the guild id
        self.guild_id = guild_id
        self.corpus_dir = corpus_dir
        self.location = location  # its index: a folder, or a postgresql:// URL
        self.store = backend(location)
        self.read_only = read_only  # why articles cannot be added here (None: they can)
        self.live: LiveRetriever | None = None
        self.catalogue: Catalogue | None = None
        self.outlets: list[str] = []  # kept when unloaded: outlet autocomplete stays cheap
        self.loaded_bytes = 0  # the loaded generation's size on disk
        # Each batch takes the Retriever current when it starts (hot reload between batches).
        self.batcher = AskBatcher(lambda: self.retriever, max_batch, on_batch, lock)
        self.users = 0  # answers in flight (and admin commands reading it): never unloaded
        self.last_used = 0.0  # time.monotonic() of its last use
        self.loading = asyncio.Lock()  # one load or reload at a time
        self.writing = asyncio.Lock()  # one job writing its folders at a time

    def __repr__(self) -> str:
        return f"Coverage({self.key!r}, loaded={self.loaded}, users={self.users})"

    @property
    def loaded(self) -> bool:
        return self.live is not None

    @property
    def retriever(self) -> Retriever:
        """The Retriever answering now (NoCoverage when not loaded)."""
        if self.live is None:
            raise no_coverage(self.guild_id)
        return self.live.current

    @property
    def articles(self) -> list[ArticleInfo]:
        return self.catalogue.articles if self.catalogue is not None else []

    @property
    def feeds_path(self) -> Path:
        return self.corpus_dir / FEEDS_LIST

    @property
    def where(self) -> str:
        """Its index's location as it may be shown (never a password)."""
        return self.store.describe()

    def has_index(self) -> bool:
        """Whether an index is published at its location (blocking: a database query)."""
        return self.store.published() is not None

    def attach(self, live: LiveRetriever, catalogue: Catalogue) -> None:
        self.live, self.catalogue, self.outlets = live, catalogue, catalogue.outlets
        self.loaded_bytes = size_on_disk(live.current.index.manifest)

    def detach(self) -> None:
        """Unload: the Retriever goes (batches running keep theirs to the end)."""
        if self.live is not None:
            self.live.close()  # a database's listener
            if self.guild_id is not None:  # per server: its database's pool too
                self.store.release()
        self.live = self.catalogue = None
        self.loaded_bytes = 0

    async def ask(self, question: str, k: int, filters: Filters | None = None) -> Answer:
        """Retrieval in a worker thread, batched with the asks that arrive meanwhile."""
        return await self.batcher.ask(question, k, filters)

    async def timeline(self, topic: str, filters: Filters | None = None) -> Timeline:
        """`retrieval.search.timeline` in a worker thread, between /ask batches."""
        return await self.batcher.exclusive(
            lambda: timeline(self.retriever, topic, TIMELINE_STORIES, filters))


class CoverageSet:
    """Every coverage the bot knows, loaded on demand and unloaded least recently used."""

    def __init__(self, settings: BotSettings, worker: Worker, metrics: Metrics, *,
                 shared: LiveRetriever | None = None, max_batch: int = MAX_BATCH) -> None:
        """`shared`: the loaded index of shared mode (required there)."""
        settings.check_store()
        self.settings = settings
        self.mode = settings.coverage
        self.worker = worker
        self.embedder = worker.embedder
        self.metrics = metrics
        self.max_batch = max_batch
        self.lock = threading.Lock()  # one retrieval at a time across coverages: 2 cores
        self.evictions = 0
        self._coverages: dict[str, Coverage] = {}
        self.shared: Coverage | None = None
        if self.mode == SHARED:
            if shared is None:
                raise ValueError("shared coverage needs its loaded index")
            corpus = settings.core.default_corpus()
            read_only = None
            if corpus.resolve() == PACKAGED_SEEDS.resolve():
                read_only = ("The shared coverage is the seed articles shipped with Byline; "
                             "its operator must set BYLINE_CORPUS to a folder of its own "
                             "before articles can be added.")
            self.shared = self._new(SHARED, corpus, shared.location or settings.core.location,
                                    None, read_only)
            self.shared.attach(shared, Catalogue.of(shared.current))
            self._changed(shared.current.index.manifest)
        elif self.mode != PER_SERVER:
            raise ValueError(f"unknown coverage mode {self.mode!r}")

    @property
    def guilds_dir(self) -> Path:
        return self.settings.data_dir / GUILDS

    def _new(self, key: str, corpus: Path, index: str | Path, guild_id: int | None,
             read_only: str | None = None) -> Coverage:
        cov = Coverage(key, corpus, index, guild_id=guild_id, lock=self.lock,
                       max_batch=self.max_batch, on_batch=self.metrics.batch_size.observe,
                       read_only=read_only)
        self._coverages[key] = cov
        return cov

    def get(self, guild_id: int | None) -> Coverage:
        """The coverage that answers in this guild (nothing is created on disk)."""
        if self.shared is not None:
            return self.shared
        if guild_id is None:
            raise NoCoverage(OUTSIDE_A_SERVER)
        key = str(int(guild_id))
        cov = self._coverages.get(key)
        if cov is None:
            root = self.guilds_dir / key
            cov = self._new(key, root / CORPUS,
                            self.settings.guild_store(int(guild_id)) or root / INDEX,
                            int(guild_id))
        return cov

    def all(self) -> list[Coverage]:
        """The coverages on disk, and those met since the start."""
        if self.shared is not None:
            return [self.shared]
        try:
            for folder in self.guilds_dir.iterdir():
                if folder.name.isdigit() and folder.is_dir():
                    self.get(int(folder.name))
        except OSError:
            pass  # no guilds folder yet
        return list(self._coverages.values())

    def loaded(self) -> list[Coverage]:
        return [c for c in self._coverages.values() if c.loaded]

    # -- loading and unloading ----------------------------------------------------------

    @asynccontextmanager
    async def use(self, guild_id: int | None) -> AsyncIterator[Coverage]:
        """The guild's coverage, loaded, and kept loaded until the block ends; NoCoverage
        when it has none."""
        cov = self.get(guild_id)
        cov.users += 1
        try:
            await self.load(cov)
            cov.last_used = time.monotonic()
            yield cov
        finally:
            cov.users -= 1
            cov.last_used = time.monotonic()
            self.evict()

    async def load(self, cov: Coverage) -> None:
        """Load the coverage's index (in a worker thread), indexing its corpus folder first
        when files were put there but never indexed; NoCoverage when there is nothing."""
        async with cov.loading:
            if cov.loaded:
                return
            if not await asyncio.to_thread(cov.has_index):
                if not await asyncio.to_thread(jobs.has_files, cov.corpus_dir):
                    raise no_coverage(cov.guild_id)
                async with cov.writing:
                    if not await asyncio.to_thread(cov.has_index):
                        log.info("coverage %s: indexing its corpus folder (first question)",
                                 cov.key)
                        if (await self.worker.run(jobs.reindex, cov.corpus_dir,
                                                  cov.location)).generation is None:
                            raise no_coverage(cov.guild_id)
            try:
                retriever, catalogue = await asyncio.to_thread(self._open, cov.location)
            except IndexMissing:  # withdrawn meanwhile
                raise no_coverage(cov.guild_id) from None
            cov.attach(LiveRetriever(retriever), catalogue)
            cov.last_used = time.monotonic()
            manifest = retriever.index.manifest
            log.info("coverage %s loaded: index generation %s (%d articles, %d passages)",
                     cov.key, manifest.generation, manifest.articles, manifest.passages)
        self._changed(manifest)
        self.evict()

    def _open(self, location: str | Path) -> tuple[Retriever, Catalogue]:
        retriever = Retriever(open_store(location, model=self.embedder.name), self.embedder)
        retriever.rows_meta()  # what filters need, read now rather than by a question
        return retriever, Catalogue.of(retriever)

    def evict(self) -> None:
        """Unload the least recently used coverages not in use while more are loaded than
        BYLINE_MAX_LOADED allows (or, with several loaded, their indexes pass
        BYLINE_MAX_LOADED_MB on disk). Shared mode never unloads."""
        if self.shared is not None:
            return
        loaded = self.loaded()
        count = len(loaded)
        size = sum(c.loaded_bytes for c in loaded)
        cap = self.settings.max_loaded_mb * 1024 * 1024
        idle = sorted((c for c in loaded if c.users == 0 and not c.loading.locked()
                       and not c.writing.locked()),
                      key=lambda c: c.last_used)
        evicted = False
        for cov in idle:
            if count <= self.settings.max_loaded and not (cap and size > cap and count > 1):
                break
            count -= 1
            size -= cov.loaded_bytes
            cov.detach()
            self.evictions += 1
            self.metrics.evictions.inc()
            evicted = True
            log.info("coverage %s unloaded (least recently used; %d loaded)", cov.key, count)
        if evicted:
            self._changed()

    async def unload(self, cov: Coverage) -> None:
        """Drop a coverage whose index was withdrawn (its corpus has no article left): its
        questions are then told it has none, until an article is added."""
        async with cov.loading:
            if not cov.loaded:
                return
            cov.detach()
            log.info("coverage %s unloaded: its index was withdrawn (no article left)",
                     cov.key)
        self._changed()

    # -- hot reload -----------------------------------------------------------------------

    async def reload(self, cov: Coverage, now: bool = False) -> bool:
        """Swap in the coverage's new index generation if one was published: loaded in a
        worker thread beside the current one, then made current between two batches.
        Whether it was swapped in; one that fails to load is logged once. An unloaded
        coverage loads its newest generation when next used. `now`: after this process
        published, ask the store itself (a database's notification may be on its way)."""
        async with cov.loading:
            live = cov.live
            if live is None:
                return False
            try:
                found = await asyncio.to_thread(_load_generation, live, now)
            except Exception:  # never let the watch loop die
                log.exception("checking the index at %s for a new generation failed",
                              cov.where)
                return False
            if found is None or cov.live is not live:
                return False
            reload, catalogue = found
            if catalogue is None:
                self.metrics.reloads.labels("failed").inc()
                return False
            live.swap(reload)  # both on the loop, no await between: one moment
            cov.catalogue, cov.outlets = catalogue, catalogue.outlets
            cov.loaded_bytes = size_on_disk(live.current.index.manifest)
            self.metrics.reloads.labels("ok").inc()
            manifest = live.current.index.manifest
            log.info("%snow answering from index generation %s (%d articles, %d passages)",
                     f"coverage {cov.key}: " if cov is not self.shared else "",
                     manifest.generation, manifest.articles, manifest.passages)
        self._changed(manifest)
        return True

    def close(self) -> None:
        """On shutdown: stop listening to the databases of the loaded coverages."""
        for cov in self.loaded():
            if cov.live is not None:
                cov.live.close()

    async def reload_all(self) -> bool:
        """`reload` every loaded coverage; whether any new generation was swapped in."""
        swapped = False
        for cov in self.loaded():
            swapped = await self.reload(cov) or swapped
        return swapped

    def _changed(self, latest: Manifest | None = None) -> None:
        """The metrics of what is loaded now; `latest`: the generation just loaded."""
        self.metrics.coverages_loaded(
            [c.live.current.index.manifest for c in self.loaded() if c.live is not None],
            latest)


def _load_generation(live: LiveRetriever, now: bool = False
                     ) -> tuple[Reload, Catalogue | None] | None:
    if now:
        live.catch_up()
    if not live.stale():
        return None
    reload = live.load()
    if reload is None:
        return None
    return reload, Catalogue.of(reload.retriever) if reload.retriever else None


def current_manifest(cov: Coverage) -> tuple[Manifest, int] | None:
    """The manifest of the coverage's published index and its size in bytes (None when it
    has none; blocking)."""
    manifest = cov.store.published()
    return None if manifest is None else (manifest, cov.store.size(manifest))
