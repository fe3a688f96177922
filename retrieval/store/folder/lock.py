"""One writer at a time per index folder: an advisory fcntl lock on `<index>/.lock`."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path

from retrieval.errors import IndexBusy, StoreError, describe_os_error

LOCK = ".lock"

_held: dict[str, tuple[threading.RLock, list[int]]] = {}  # folder -> (thread lock, [depth])
_guard = threading.Lock()


class WriterLock:
    """Held while a process writes an index folder (`with WriterLock(root): ...`).

    Re-entrant within a thread (the indexer holds it around a whole run and the save takes
    it again); other threads of the process wait on a thread lock, other processes on the
    file lock. The holder's pid is written in the lock file for the waiting message. The
    kernel drops the lock when the holder dies, `kill -9` included."""

    def __init__(self, root: str | Path, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.wait = wait
        self.on_wait = on_wait
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise StoreError(f"{self.root} is a file, not an index folder; point --index-dir "
                             "(or BYLINE_INDEX_DIR) at a folder.") from None
        except OSError as exc:
            raise StoreError(f"Cannot create the index folder: {describe_os_error(exc)}.") \
                from None
        key = str(self.root.resolve())
        with _guard:
            thread_lock, depth = _held.setdefault(key, (threading.RLock(), [0]))
        if not thread_lock.acquire(blocking=self.wait):
            raise IndexBusy(self._busy("another thread of this process"))
        try:
            if depth[0] == 0:
                self._fd = self._lock_file()
            depth[0] += 1
        except BaseException:
            thread_lock.release()
            raise
        self._key = key
        return self

    def __exit__(self, *exc: object) -> None:
        thread_lock, depth = _held[self._key]
        depth[0] -= 1
        if depth[0] == 0 and self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
        thread_lock.release()

    def _lock_file(self) -> int:
        path = self.root / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"Cannot lock the index at {self.root}: "
                             f"{describe_os_error(exc)}.") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                if not self.wait:
                    raise IndexBusy(self._busy(holder)) from None
                if self.on_wait is not None:
                    self.on_wait(f"Waiting for {holder} to finish writing the index at "
                                 f"{self.root}…")
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _busy(self, holder: str) -> str:
        return (f"The index at {self.root} is being written by {holder}; try again when it "
                "has finished (or leave out --no-wait to wait for it).")


def _holder(fd: int) -> str:
    """'process <pid>' of the lock's holder, as it wrote it, or 'another process'."""
    try:
        pid = int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return "another process"
    return f"process {pid}"
