"""The folder backend: an index kept as generations in a directory on this machine."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.errors import BylineError, IndexMissing
from retrieval.store.base import Backend, Store
from retrieval.store.manifest import MANIFEST, read_manifest

if TYPE_CHECKING:
    from retrieval.store.manifest import Manifest


@dataclass(frozen=True)
class Stamp:
    """What one stat of manifest.json says; a publish replaces the file, so it changes."""

    inode: int
    size: int
    mtime_ns: int


class FolderWatch:
    """A folder's generations, watched by a stat of manifest.json (no thread)."""

    mode = "stat"

    def __init__(self, root: Path) -> None:
        self.root = root

    def stamp(self) -> Hashable | None:
        try:
            st = os.stat(self.root / MANIFEST)
        except OSError:  # no manifest (yet, or any more): keep serving what is loaded
            return None
        return Stamp(st.st_ino, st.st_size, st.st_mtime_ns)

    def named(self) -> str:
        return read_manifest(self.root).generation

    def catch_up(self) -> None:
        """A stat is always current: nothing to do."""

    def close(self) -> None:
        """Nothing is held open."""


class FolderBackend(Backend):
    """An index in the folder `location`."""

    shared = False
    place = "on disk"

    def __init__(self, location: Path) -> None:
        self.location: Path = location

    def open(self, model: str | None = None, verify: bool | None = None) -> Store:
        from retrieval.store.folder.index import FolderIndex

        return FolderIndex.load(self.location, model=model, verify=verify)

    def publish(self, index: Any, full: bool = False) -> Manifest:
        index.save(self.location)  # a folder generation is always written whole
        return index.manifest

    def writer_lock(self, wait: bool = True, on_wait: Callable[[str], None] | None = None
                    ) -> AbstractContextManager[Any]:
        from retrieval.store.folder.lock import WriterLock

        return WriterLock(self.location, wait=wait, on_wait=on_wait)

    def describe(self) -> str:
        return str(self.location)

    def published(self) -> Manifest | None:
        try:
            return read_manifest(self.location)
        except IndexMissing:
            return None

    def sources(self) -> set[str]:
        from retrieval.store.tables import sources_in

        try:
            manifest = self.published()
        except BylineError:
            return set()
        return sources_in(self.location / manifest.folder) if manifest is not None else set()

    def size(self, manifest: Manifest) -> int:
        return sum(int(n) for n, *_ in manifest.files.values())

    def withdraw(self) -> bool:
        from retrieval.store.folder.generations import withdraw

        return withdraw(self.location)

    def prepare(self) -> None:
        """Nothing: the first publish creates the folder."""

    def release(self) -> None:
        """Nothing: a folder holds no connection open."""

    def check(self, as_json: bool = False) -> int:
        from retrieval.store.folder.health import report

        return report(self.location, as_json)

    def watch(self, poll_seconds: float | None = None, **options: Any) -> FolderWatch:
        return FolderWatch(self.location)
