"""Hot reload: the Retriever over an index folder, replaced when a new generation is published.

A save (`byline index`, a feed follower) publishes a generation atomically and points
manifest.json at it (see retrieval.store.generations). A long-running process keeps a
LiveRetriever: `stale()` is one stat of manifest.json; `load()` (blocking, for a worker
thread) opens the new generation beside the current one; `swap()` makes it current. Whoever
took `current` before the swap keeps a working Retriever: the generation it reads stays on
disk until the next save, and its open files stay readable after that. A generation that
cannot be loaded (damaged, another model) is logged once and the current one keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.errors import BylineError, describe_os_error
from retrieval.search import Retriever
from retrieval.store import MANIFEST, Index, read_manifest

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
    stamp: Stamp | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.retriever is not None


class LiveRetriever:
    """Owns the current Retriever over `index_dir` and swaps in its newer generations.

    Thread-safe: `current` is one reference, read by whoever asks; `load()` runs in one
    thread at a time; `swap()` is one assignment."""

    def __init__(self, retriever: Retriever, index_dir: str | Path | None = None) -> None:
        """`index_dir`: the folder to watch (default: the one `retriever`'s index was loaded
        from; an index that was never saved has none, and then nothing is watched)."""
        self._current = retriever
        root = index_dir if index_dir is not None else retriever.index.root
        self.index_dir: Path | None = Path(root) if root is not None else None
        self._stamp = self._stat()  # the manifest as it stood for the current generation
        if self._stamp is not None and self._named() != self.generation:
            self._stamp = None  # saved again since `retriever` was loaded: load that one
        self._failed: Stamp | None = None  # a manifest whose generation failed to load
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
                generation = read_manifest(self.index_dir).generation  # type: ignore[arg-type]
                if generation == self.generation:
                    self._stamp = stamp  # rewritten, same generation: nothing to load
                    return None
                index = Index.load(self.index_dir, model=current.embedder.name)  # type: ignore[arg-type]
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

    def _failure(self, stamp: Stamp, generation: str, reason: str) -> Reload:
        self._failed = stamp
        self.failures += 1
        self.last_error = reason
        log.error("the index at %s changed but its new generation %scannot be loaded; still "
                  "answering from generation %s: %s", self.index_dir,
                  f"{generation} " if generation else "", self.generation, reason)
        return Reload(generation, error=reason, stamp=stamp)

    def _named(self) -> str:
        """The generation manifest.json names ("" when it cannot be read)."""
        try:
            return read_manifest(self.index_dir).generation  # type: ignore[arg-type]
        except BylineError:
            return ""

    def _stat(self) -> Stamp | None:
        if self.index_dir is None:
            return None
        try:
            st = os.stat(self.index_dir / MANIFEST)
        except OSError:  # no manifest (yet, or any more): keep serving what is loaded
            return None
        return Stamp(st.st_ino, st.st_size, st.st_mtime_ns)
