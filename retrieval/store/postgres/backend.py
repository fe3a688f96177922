"""The PostgreSQL backend: an index kept in a database (pgvector), shared by every reader."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from retrieval.store.base import Backend, Store

if TYPE_CHECKING:
    from retrieval.store.manifest import Manifest
    from retrieval.store.postgres.listen import GenerationListener


class PostgresBackend(Backend):
    """An index in the database the connection string `location` names."""

    shared = True
    place = "in the database"

    def __init__(self, location: str) -> None:
        self.location: str = location

    def open(self, model: str | None = None, verify: bool | None = None) -> Store:
        from retrieval.store.postgres.reader import open_postgres

        return open_postgres(self.location, model=model)

    def publish(self, index: Any, full: bool = False) -> Manifest:
        from retrieval.store.postgres.writer import publish_postgres

        return publish_postgres(index, self.location, full=full)

    def writer_lock(self, wait: bool = True, on_wait: Callable[[str], None] | None = None
                    ) -> AbstractContextManager[Any]:
        from retrieval.store.postgres.writer import PostgresWriterLock

        return PostgresWriterLock(self.location, wait=wait, on_wait=on_wait)

    def describe(self) -> str:
        from retrieval.store.postgres.connect import redact

        return redact(self.location)

    def published(self) -> Manifest | None:
        from retrieval.store.postgres.manage import published

        return published(self.location)

    def sources(self) -> set[str]:
        from retrieval.store.postgres.manage import sources

        return sources(self.location)

    def size(self, manifest: Manifest) -> int:
        from retrieval.store.postgres.manage import size

        return size(self.location)

    def withdraw(self) -> bool:
        from retrieval.store.postgres.manage import withdraw

        return withdraw(self.location)

    def prepare(self) -> None:
        """The database is created if it does not exist."""
        from retrieval.store.postgres.manage import create_database

        create_database(self.location)

    def release(self) -> None:
        """The connection pool is closed (not the connections in use)."""
        from retrieval.store.postgres.connect import forget_pool

        forget_pool(self.location)

    def check(self, as_json: bool = False) -> int:
        from retrieval.store.postgres.health import check_postgres

        return check_postgres(self.location, as_json)

    def watch(self, poll_seconds: float | None = None, **listener: Any) -> PostgresWatch:
        """`listener`: GenerationListener's `safety_seconds` and `channel`."""
        return PostgresWatch(self.location, poll_seconds, **listener)

    def migrate_from(self, index: Store | None, source: str = "", progress: bool = False,
                     on_wait: Callable[[str], None] | None = None) -> dict[str, Any]:
        from retrieval.store.postgres.migrate import migrate_store

        return migrate_store(self.location, index, source, progress=progress, on_wait=on_wait)


class PostgresWatch:
    """A database's generations, heard by LISTEN (or polled on a hot standby)."""

    def __init__(self, url: str, poll_seconds: float | None, **listener: Any) -> None:
        from retrieval.store.postgres.listen import GenerationListener

        self.listener: GenerationListener = GenerationListener(url, poll_seconds, **listener)

    @property
    def mode(self) -> str:
        """"listen" (notifications heard) or "poll" (a hot standby refuses LISTEN)."""
        return self.listener.mode

    def stamp(self) -> str | None:
        return self.listener.latest or None

    def named(self) -> str:
        return self.listener.latest

    def catch_up(self) -> None:
        self.listener.check()

    def close(self) -> None:
        self.listener.close()
