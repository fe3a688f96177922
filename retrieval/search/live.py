"""Hot reload: the Retriever over an index, replaced when a new generation is published.

A save (`byline index`, a feed follower) publishes a generation atomically. A long-running
process keeps a LiveRetriever over the store's Watch: `stale()` asks it whether the stamp
changed (in a folder, one stat of manifest.json); `load()` (blocking, for a worker
thread) opens the new generation beside the current one; `swap()` makes it current. Whoever
took `current` before the swap keeps a working Retriever: the generation it reads stays on
disk until the next save, and its open files stay readable after that. A generation that
cannot be loaded (damaged, another model) is logged once and the current one keeps serving.

Over a PostgreSQL store the stamp is the generation last heard by a listener thread (a
publish sends a notification; a hot standby is polled every `poll_seconds`, default
BYLINE_RELOAD_SECONDS), so a check costs no query.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval.errors import BylineError, describe_os_error
from retrieval.search.retriever import Retriever
from retrieval.store import backend
from retrieval.store.base import Backend, Store, Watch

log = logging.getLogger("byline.live")


@dataclass(frozen=True)
class Reload:
    """A change of manifest.json, loaded (`retriever`) or not (`error`, already logged)."""

    generation: str  # the generation the manifest names ("" when it cannot be read)
    retriever: Retriever | None = None
    error: str | None = None
    stamp: Hashable | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.retriever is not None


class LiveRetriever:
    """Owns the current Retriever over `location` and swaps in its newer generations.

    Thread-safe: `current` is one reference, read by whoever asks; `load()` runs in one
    thread at a time; `swap()` is one assignment."""

    def __init__(self, retriever: Retriever, location: str | Path | None = None,
                 poll_seconds: float | None = None, watch: Watch | None = None) -> None:
        """`location`: the folder or store to watch (default: where `retriever`'s index was
        read from; an index that was never saved has none, and then nothing is watched).
        `poll_seconds`: how often a store that refuses LISTEN (a hot standby) is polled
        (default: BYLINE_RELOAD_SECONDS, else 10). `watch`: how to notice a new generation
        (default: the store's own Watch)."""
        self._current = retriever
        where = location if location is not None else retriever.index.location
        self.store: Backend | None = backend(where) if where is not None else None
        # how a new generation is noticed (None: never saved, nothing to watch)
        if watch is None and self.store is not None:
            watch = self.store.watch(poll_seconds)
        self.watch = watch
        self._stamp: Hashable | None = self._stat()  # as it stood for the current generation
        if self._stamp is not None and self._named() != self.generation:
            self._stamp = None  # saved again since `retriever` was loaded: load that one
        self._failed: Hashable | None = None  # a manifest whose generation failed to load
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
        return self.store.location if self.store is not None else None

    def catch_up(self) -> None:
        """Ask a database which generation it serves now, rather than wait for the
        notification (after this process published, say); a folder needs nothing."""
        if self.watch is not None:
            self.watch.catch_up()

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
                if index.probe_vectors is not None and len(index.probe_vectors):
                    # The dense index's first search reads what every later one needs (a
                    # flat PostgreSQL generation's vectors): here, not in a member's question.
                    index.dense_search(np.asarray(index.probe_vectors[0], np.float32), 1)
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

    def _failure(self, stamp: Hashable, generation: str, reason: str) -> Reload:
        self._failed = stamp
        self.failures += 1
        self.last_error = reason
        log.error("the index at %s changed but its new generation %scannot be loaded; still "
                  "answering from generation %s: %s", self._where(),
                  f"{generation} " if generation else "", self.generation, reason)
        return Reload(generation, error=reason, stamp=stamp)

    def close(self) -> None:
        """Stop listening (a PostgreSQL store); a folder needs nothing."""
        if self.watch is not None:
            self.watch.close()

    def _where(self) -> str:
        return self.store.describe() if self.store is not None else "(nowhere)"

    def _named_or_fail(self) -> str:
        """The generation the store names now (BylineError when it cannot be read)."""
        if self.watch is None:
            raise BylineError("this index was never saved: there is nothing to reload")
        return self.watch.named()

    def _open(self, model: str) -> Store:
        assert self.store is not None  # a stamp was seen, so there is a store
        return self.store.open(model=model)

    def _named(self) -> str:
        """The generation the store names now ("" when it cannot be read)."""
        try:
            return self._named_or_fail()
        except BylineError:
            return ""

    def _stat(self) -> Hashable | None:
        """What changes when a generation is published (the store's Watch says)."""
        return self.watch.stamp() if self.watch is not None else None
