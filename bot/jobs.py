"""The work that must not run on the bot's event loop: fetching pages, polling feeds, indexing.

Each job is a plain function of an Embedder, a corpus folder and an index location (a
folder, or a postgresql:// URL: retrieval.store.base), so it runs the same in a thread of
the bot's process or in a worker process (bot/worker.py); what it returns is picklable.
Jobs write a coverage's corpus folder and publish into its index; the bot runs one job per
coverage at a time, and the index's writer lock keeps out any other process (a `byline
index`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from retrieval import index_corpus
from retrieval.corpus import read_article
from retrieval.errors import CorpusError, FetchError
from retrieval.feeds.fetch import Fetcher, FetchSettings, check_url
from retrieval.feeds.follow import Follower, PollReport
from retrieval.model.embed import Embedder
from retrieval.store import backend

# In a worker process: set when the bot shuts down (bot/worker.py hands it over).
STOPPING: Any = None


@dataclass(frozen=True)
class Added:
    """What `/coverage add` did with one URL."""

    status: Literal["added", "already", "failed"]
    url: str
    title: str = ""
    source: str = ""  # the file, relative to the corpus folder
    generation: str = ""  # the index generation that holds it
    reason: str = ""  # why it failed, in one line, as a server admin is told
    detail: str = ""  # why the fetch failed, for the operator's log only


@dataclass(frozen=True)
class Indexed:
    """The index after a job: its new generation, or none left (the corpus is empty)."""

    generation: str | None
    articles: int = 0


def add_page(embedder: Embedder, corpus: Path, location: str | Path, url: str,
             settings: FetchSettings) -> Added:
    """Fetch one page into the corpus folder and index the folder into `location`
    (incrementally); the page must give an article. A page stored before is not fetched
    again."""
    try:
        url = check_url(url)
    except FetchError as exc:
        return Added("failed", url, reason=str(exc))
    corpus.mkdir(parents=True, exist_ok=True)
    with Fetcher(corpus, settings) as fetcher:
        result = fetcher.fetch_page(url)
    if not result.ok or result.path is None:
        # An admin learns no more than this: "refused" against "404" would map the network
        # behind an allowed host, port by port.
        told = "that address is not allowed" if result.blocked else "could not fetch it"
        return Added("failed", url, reason=told, detail=result.reason or "failed")
    path = corpus / result.path
    try:
        article = read_article(path, corpus)[0]
    except CorpusError as exc:
        if result.status == "fetched":  # nothing to keep: leave no file that gives nothing
            path.unlink(missing_ok=True)
        reason = str(exc).split(": ", 1)[-1].rstrip(".")
        return Added("failed", url, reason=f"nothing to index on that page ({reason})")
    store = backend(location)
    if result.status == "skipped" and result.path in store.sources():
        manifest = store.published()
        return Added("already", url, article.title, result.path,
                     manifest.generation if manifest is not None else "")
    try:
        store.prepare()
        index = index_corpus(corpus, store, embedder, progress=False, wait=True)
    except BaseException:
        if result.status == "fetched":  # not indexed: the next add fetches it afresh
            path.unlink(missing_ok=True)
        raise
    return Added("added", url, article.title, result.path, index.manifest.generation)


def reindex(embedder: Embedder, corpus: Path, location: str | Path) -> Indexed:
    """Index the corpus folder into `location` (incrementally, waiting for any other
    writer); when it holds no article any more, the index is withdrawn (Indexed(None))."""
    store = backend(location)
    if not has_files(corpus):
        store.withdraw()
        return Indexed(None)
    store.prepare()
    try:
        index = index_corpus(corpus, store, embedder, progress=False, wait=True)
    except CorpusError:
        if scan_is_empty(corpus):
            store.withdraw()
            return Indexed(None)
        raise
    return Indexed(index.manifest.generation, index.manifest.articles)


def remove_source(embedder: Embedder, corpus: Path, location: str | Path,
                  source: str) -> Indexed:
    """Delete one file of the corpus folder and index the folder again."""
    path = (corpus / source).resolve()
    if not path.is_relative_to(corpus.resolve()) or not path.is_file():
        raise CorpusError(f"{source} is not a file of this coverage any more.")
    path.unlink()
    return reindex(embedder, corpus, location)


def poll_feeds(embedder: Embedder, corpus: Path, location: str | Path, interval: float,
               settings: FetchSettings, stop: threading.Event | None = None
               ) -> PollReport:
    """One `Follower.poll_due` round over the corpus folder's feeds.txt, new articles
    indexed into `location`; once `stop` is set, the round ends between two requests."""
    stop = stop if stop is not None else STOPPING
    backend(location).prepare()
    follower = Follower(corpus, location, embedder, interval=interval, settings=settings)
    return follower.poll_due(stop=stop.is_set if stop is not None else lambda: False)


def scan_is_empty(corpus: Path) -> bool:
    """Whether the corpus folder gives no article at all."""
    from retrieval.corpus import scan_corpus

    try:
        return not scan_corpus(corpus).articles
    except CorpusError:
        return True


def has_files(corpus: Path) -> bool:
    """Whether the folder holds any file an index could read (dot-files aside)."""
    if not corpus.is_dir():
        return False
    return any(p.is_file() and not any(part.startswith(".") for part in
                                       p.relative_to(corpus).parts)
               and p.relative_to(corpus).as_posix() != "feeds.txt"
               for p in corpus.rglob("*"))
