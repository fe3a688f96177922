"""Hot reload: the Retriever over an index, replaced when a new generation is published.

A save (`byline index`, a feed follower) publishes a generation atomically and points
manifest.json at it (see retrieval.store.folder.generations). A long-running process keeps a
LiveRetriever: `stale()` is one stat of manifest.json; `load()` (blocking, for a worker
thread) opens the new generation beside the current one; `swap()` makes it current. Whoever
took `current` before the swap keeps a working Retriever: the generation it reads stays on
disk until the next save, and its open files stay readable after that. A generation that
cannot be loaded (damaged, another model) is logged once and the current one keeps serving.

Over a PostgreSQL store the same holds, with a notification for the stat: a publish sends
NOTIFY byline_generation, a listener thread hears it (retrieval.store.postgres.listen), and
`stale()` compares the generation last heard with the current one (no query per check). On
a hot standby (a read replica: LISTEN refused, NOTIFY not replicated) the listener polls the
manifest row's generation every `poll_seconds` instead (default BYLINE_RELOAD_SECONDS).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.errors import BylineError, describe_os_error
from retrieval.search.retriever import Retriever
from retrieval.store import MANIFEST, Index, read_manifest
from retrieval.store.base import Store

log = logging.getLogger("byline.live")


@dataclass(frozen=True)
class Stamp:
    """What one stat of manifest.json says; a save replaces the file, so it changes."""

    inode: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Reload:
    """A change of manifest.json, loaded (`retriever`) or not (`error`, already logged)."""

    generation: str  # the generation the manifest names ("" when it cannot be read)
    retriever: Retriever | None = None
    error: str | None = None
    stamp: Stamp | str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.retriever is not None


class LiveRetriever:
    """Owns the current Retriever over `index_dir` and swaps in its newer generations.

    Thread-safe: `current` is one reference, read by whoever asks; `load()` runs in one
    thread at a time; `swap()` is one assignment."""

    def __init__(self, retriever: Retriever, index_dir: str | Path | None = None,
                 poll_seconds: float | None = None) -> None:
        """`index_dir`: the folder to watch (default: the one `retriever`'s index was loaded
        from, or the PostgreSQL store it was read from; an index that was never saved has
        none, and then nothing is watched). `poll_seconds`: how often a store that refuses
        LISTEN (a hot standby) is polled (default: BYLINE_RELOAD_SECONDS, else 10)."""
        self._current = retriever
        root = index_dir if index_dir is not None else retriever.index.root
        self.index_dir: Path | None = Path(root) if root is not None else None
        self.store_url: str | None = None
        self._listener = None
        if self.index_dir is None and getattr(retriever.index, "url", None):
            from retrieval.store.postgres.listen import GenerationListener

            self.store_url = retriever.index.url  # type: ignore[attr-defined]
            self._listener = GenerationListener(self.store_url, poll_seconds)
        self._stamp: Stamp | str | None = self._stat()  # as it stood for the current generation
        if self._stamp is not None and self._named() != self.generation:
            self._stamp = None  # saved again since `retriever` was loaded: load that one
        self._failed: Stamp | str | None = None  # a manifest whose generation failed to load
        self._loading = threading.Lock()
        self.reloads = 0  # generations swapped in
        self.failures = 0  # generations that could not be loaded
        self.last_error: str | None = None

    @property
    def current(self) -> Retriever:
        """The Retriever to use now; take it once per question (or batch) and keep it."""
        return self._current

    @property
    def generation(self) -> str:
        return self._current.index.manifest.generation

    @property
    def location(self) -> str | Path | None:
        """Where the index is watched: the store's URL, or the folder (None: nowhere)."""
        return self.store_url or self.index_dir

    def catch_up(self) -> None:
        """Ask a database which generation it serves now, rather than wait for the
        notification (after this process published, say); a folder needs nothing."""
        if self._listener is not None:
            self._listener.check()

    def stale(self) -> bool:
        """Whether manifest.json changed since the current generation was loaded (one stat;
        a manifest whose generation already failed to load does not count again)."""
        stamp = self._stat()
        return stamp is not None and stamp not in (self._stamp, self._failed)

    def load(self) -> Reload | None:
        """The generation manifest.json names now, opened beside the current one (blocking:
        call it from a worker thread); None when it is the current one. A failure is
        logged in one line and returned (`error`); it is not tried again until the manifest
        changes again."""
        with self._loading:
            stamp = self._stat()
            if stamp is None or stamp in (self._stamp, self._failed):
                return None
            current = self._current
            generation = ""
            try:
                generation = self._named_or_fail()
                if generation == self.generation:
                    self._stamp = stamp  # rewritten, same generation: nothing to load
                    return None
                index = self._open(current.embedder.name)
                fresh = Retriever(index, current.embedder, current.settings)
                fresh.rows_meta()  # what filters need, read now rather than by a question
            except (BylineError, OSError) as exc:
                reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
                return self._failure(stamp, generation, reason)
            except Exception as exc:  # a bug, not the index: keep serving, keep the traceback
                log.exception("loading the new index generation failed")
                return self._failure(stamp, generation, f"{type(exc).__name__}: {exc}")
            return Reload(index.manifest.generation, fresh, stamp=stamp)

    def swap(self, reload: Reload) -> Retriever:
        """Make `reload`'s Retriever current (asks already running keep theirs); returns
        the one it replaces."""
        if reload.retriever is None:
            raise ValueError("a failed reload cannot be swapped in")
        old, self._current = self._current, reload.retriever
        self._stamp, self._failed = reload.stamp, None
        self.reloads += 1
        self.last_error = None
        return old

    def refresh(self) -> bool:
        """`load()` then `swap()`: whether a new generation is now current (blocking)."""
        reload = self.load()
        if reload is None or not reload.ok:
            return False
        self.swap(reload)
        log.info("now answering from index generation %s (%d passages)", self.generation,
                 len(self._current.index))
        return True

    def _failure(self, stamp: Stamp | str, generation: str, reason: str) -> Reload:
        self._failed = stamp
        self.failures += 1
        self.last_error = reason
        log.error("the index at %s changed but its new generation %scannot be loaded; still "
                  "answering from generation %s: %s", self._where(),
                  f"{generation} " if generation else "", self.generation, reason)
        return Reload(generation, error=reason, stamp=stamp)

    def close(self) -> None:
        """Stop listening (a PostgreSQL store); a folder needs nothing."""
        if self._listener is not None:
            self._listener.close()

    def _where(self) -> str:
        from retrieval.store.base import describe_location

        return describe_location(self.store_url or str(self.index_dir))

    def _named_or_fail(self) -> str:
        """The generation the store names now (BylineError when it cannot be read)."""
        if self._listener is not None:
            return self._listener.latest
        return read_manifest(self.index_dir).generation  # type: ignore[arg-type]

    def _open(self, model: str) -> Store:
        if self.store_url is not None:
            from retrieval.store.base import open_store

            return open_store(self.store_url, model=model)
        return Index.load(self.index_dir, model=model)  # type: ignore[arg-type]

    def _named(self) -> str:
        """The generation the store names now ("" when it cannot be read)."""
        try:
            return self._named_or_fail()
        except BylineError:
            return ""

    def _stat(self) -> Stamp | str | None:
        """What changes when a generation is published: manifest.json's stat, or the
        generation last heard from the database."""
        if self._listener is not None:
            return self._listener.latest or None
        if self.index_dir is None:
            return None
        try:
            st = os.stat(self.index_dir / MANIFEST)
        except OSError:  # no manifest (yet, or any more): keep serving what is loaded
            return None
        return Stamp(st.st_ino, st.st_size, st.st_mtime_ns)
