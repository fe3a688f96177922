"""`byline migrate`: a store's tables brought up to date, and an index folder's current
generation copied into the store without embedding anything again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from retrieval.store.postgres import schema
from retrieval.store.postgres.connect import connect, failure, redact

if TYPE_CHECKING:
    from retrieval.store.base import Store


def migrate_store(url: str, index: Store | None = None, source: str = "",
                  progress: bool = False, on_wait: Callable[[str], None] | None = None
                  ) -> dict[str, Any]:
    """Apply pending schema migrations at `url`, then publish `index` (read, every file
    checked, from the folder `source`), if given, as the store's generation; what was done,
    with a one-line `message`."""
    from retrieval.store.postgres.writer import PostgresWriterLock, publish_postgres

    start = time.perf_counter()
    where = redact(url)
    import psycopg

    try:
        with connect(url) as conn:
            applied = schema.migrate(conn)
            before = conn.execute("SELECT generation FROM byline_manifest").fetchone()
    except psycopg.Error as exc:
        raise failure(url, exc) from None
    result: dict[str, Any] = {"store": where, "schema": schema.LATEST, "applied": applied}
    tables = (f"applied migration{'s' * (len(applied) > 1)} "
              f"{', '.join(map(str, applied))}" if applied else "tables up to date")
    if index is None:
        result["message"] = f"Store {where}: {tables} (schema version {schema.LATEST})."
        return result
    m = index.manifest
    with PostgresWriterLock(url, on_wait=on_wait):
        publish_postgres(index, url, progress=progress)
    copied = not (before and before[0] == m.generation)
    seconds = time.perf_counter() - start
    result.update(source=source, generation=m.generation, passages=m.passages,
                  articles=m.articles, copied=copied, seconds=round(seconds, 3))
    result["message"] = (
        f"Copied generation {m.generation} ({m.articles:,} articles, {m.passages:,} passages) "
        f"from {source} to {where} in {seconds:.1f} s; {tables}." if copied else
        f"Store {where} already serves generation {m.generation} of {source}; nothing to copy.")
    return result
