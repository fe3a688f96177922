"""Publishing a generation into PostgreSQL: everything in one transaction.

A full publish creates a schema and fills it with every row, then builds its indexes; an
incremental one (delta.py) writes the next generation of the served schema as what changed.
Either way the manifest row is pointed at the new generation and `NOTIFY byline_generation`
sent before the transaction commits: readers see the old generation or the new one, never
part of one, and listeners hear of it only once it is there. Afterwards, generations older
than the previous one are dropped (the previous one stays for readers still answering from
it, as in a folder): a schema no kept generation uses goes whole, otherwise the rows only
dropped generations could see.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import IndexBusy, StoreError
from retrieval.store.postgres import schema
from retrieval.store.postgres.connect import connect, failure, redact
from retrieval.store.postgres.delta import Delta, NotIncremental, write_delta
from retrieval.store.postgres.fill import write_full

if TYPE_CHECKING:
    import psycopg

    from retrieval.store.folder.index import FolderIndex
    from retrieval.store.manifest import Manifest

log = logging.getLogger("byline.store")
KEEP = 2  # generations kept: the current one and the one before it
# Manifest fields that must match the served generation's for an incremental publish (the
# rows kept were made the same way).
SAME = ("format", "model", "encoder", "dimension", "parser", "graph", "kernel")


@dataclass(frozen=True)
class Served:
    """Where the served generation's rows are: its schema and its number there."""

    data: str
    seq: int
    manifest: dict


def publish_postgres(index: FolderIndex, url: str, progress: bool = False,
                     full: bool = False) -> Manifest:
    """Publish `index` (assembled or loaded from a folder) as the current generation at
    `url`; nothing to do when that generation is already current (so a copy is idempotent).
    Vectors are copied as they are: nothing is embedded again. Unless `full`, a generation
    made the same way as the served one is written as what changed (`last_delta` says
    what)."""
    import psycopg

    global last_delta
    last_delta = None
    conn = connect(url)
    try:
        schema.migrate(conn)
        m = replace(index.manifest, files={})
        with conn.transaction():
            got = conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                               (schema.PUBLISH_LOCK,)).fetchone()
            if not (got and got[0]):
                log.warning("another process is publishing to the store at %s; waiting for it "
                            "to finish", redact(url))
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema.PUBLISH_LOCK,))
            row = conn.execute("SELECT generation FROM byline_manifest").fetchone()
            if row and row[0] == m.generation:
                return m
            kept = conn.execute("SELECT layout, passages, data, seq FROM byline_generations "
                                "WHERE generation = %s", (m.generation,)).fetchone()
            if kept is not None and kept[:2] == (schema.LAYOUT, m.passages):
                # Still kept for its readers: served again as it is, never rewritten under them.
                m = _served_as(conn, kept[2], m)
                conn.execute("UPDATE byline_generations SET published = now() "
                             "WHERE generation = %s", (m.generation,))
            else:
                if kept is not None:  # an older layout: replaced whole
                    conn.execute("DELETE FROM byline_generations WHERE generation = %s",
                                  (m.generation,))
                m, data, seq = _write(conn, index, m, None if full else _served(conn, m),
                                      progress)
                conn.execute("INSERT INTO byline_generations (generation, layout, passages, "
                             "data, seq) VALUES (%s, %s, %s, %s, %s)",
                             (m.generation, schema.LAYOUT, m.passages, data, seq))
            probes = (None if index.probe_vectors is None
                      else np.asarray(index.probe_vectors, np.float32).tobytes())
            conn.execute(
                "INSERT INTO byline_manifest (one, generation, manifest, probe_vectors) "
                "VALUES (true, %s, %s, %s) ON CONFLICT (one) DO UPDATE SET "
                "generation = excluded.generation, manifest = excluded.manifest, "
                "probe_vectors = excluded.probe_vectors, published = now()",
                (m.generation, json.dumps(asdict(m)), probes))
            conn.execute("SELECT pg_notify(%s, %s)", (schema.CHANNEL, m.generation))
        try:
            retire(conn)
        except psycopg.Error as exc:  # published all the same; the next publish tries again
            log.warning("could not drop old generations at %s yet: %s", redact(url),
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return m
    except psycopg.Error as exc:
        raise failure(url, exc) from None
    finally:
        conn.close()


last_delta: Delta | None = None  # what the last incremental publish in this process changed


def _served(conn: psycopg.Connection, m: Manifest) -> Served | None:
    """The served generation, if `m` may be published as a change to it."""
    row = conn.execute("SELECT g.data, g.seq, g.layout, b.manifest FROM byline_manifest b "
                       "JOIN byline_generations g USING (generation)").fetchone()
    if row is None or row[2] != schema.LAYOUT or row[0] is None:
        return None
    data, seq, _, served = row
    if any(served.get(f) != getattr(m, f) for f in SAME):
        return None
    if (served.get("ann") == "flat") != (m.ann == "flat"):  # searched another way
        return None
    return Served(data, int(seq), served)


def _write(conn: psycopg.Connection, index: FolderIndex, m: Manifest, served: Served | None,
           progress: bool) -> tuple[Manifest, str, int]:
    """Write `m`'s rows, as a change to `served` where that is worth it, else in full; the
    manifest as served, its schema and its number there."""
    global last_delta
    if served is not None:
        try:
            with conn.transaction():  # a savepoint: a change found too large is undone
                last_delta = write_delta(conn, served.data, served.seq, index, m.generation)
        except NotIncremental as exc:
            log.info("publishing in full: %s", exc)
        else:
            return _served_as(conn, served.data, m), served.data, served.seq + 1
    s = schema.schema_of(m.generation)
    if conn.execute("SELECT 1 FROM byline_generations WHERE data = %s", (s,)).fetchone():
        # published whole before, and changed since: its schema holds kept generations' rows
        s = schema.schema_of(f"{m.generation}{secrets.token_hex(4)}")
    write_full(conn, s, index, m, progress)
    return _served_as(conn, s, m), s, 0


def retire(conn: psycopg.Connection, keep: int = KEEP) -> list[str]:
    """Drop the generations older than the `keep` newest; the ones dropped."""
    old = conn.execute(
        "SELECT generation, data, seq FROM byline_generations WHERE generation <> "
        "(SELECT generation FROM byline_manifest) ORDER BY published DESC OFFSET %s",
        (keep - 1,)).fetchall()
    for generation, data, seq in old:
        with conn.transaction():
            # a reader's long transaction on it makes this wait at most so long
            conn.execute("SET LOCAL lock_timeout = '5s'")
            conn.execute("DELETE FROM byline_generations WHERE generation = %s", (generation,))
            drop(conn, data or schema.schema_of(generation), seq)
    return [g for g, _, _ in old]


def drop(conn: psycopg.Connection, s: str, seq: int | None) -> None:
    """Generation `seq` of schema `s` (already out of byline_generations) dropped: the
    whole schema when no generation left uses it, else what only dropped ones could see."""
    row = conn.execute("SELECT count(*), min(seq) FROM byline_generations WHERE data = %s",
                       (s,)).fetchone()
    if not row[0] or seq is None:
        conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
        return
    oldest = int(row[1])
    for table in ("generations", "copy_lists"):
        conn.execute(f"DELETE FROM {s}.{table} WHERE seq = %s", (seq,))
    gone = [r for (r,) in conn.execute(
        f"DELETE FROM {s}.passages p USING {s}.articles a WHERE a.code = p.code "
        "AND a.died <= %s RETURNING p.rowno", (oldest,))]
    if gone:
        for table in ("vectors", "sentences", "tokens"):
            conn.execute(f"DELETE FROM {s}.{table} WHERE rowno = ANY(%s)", (gone,))
    conn.execute(f"DELETE FROM {s}.articles WHERE died <= %s", (oldest,))


def _served_as(conn: psycopg.Connection, s: str, m: Manifest) -> Manifest:
    """`m` as the store serves it from schema `s`: flat stays exact scans (as the folder's
    flat index); otherwise the schema's IVF lists, with the nprobe tuned when they were made."""
    if m.ann == "flat":
        return m
    row = conn.execute(f"SELECT nprobe, length(centroids) FROM {s}.ivf").fetchone()
    if row is None:
        raise StoreError(f"schema {s} has no IVF lists")
    return replace(m, ann=f"ivf{row[1] // (4 * m.dimension)}", nprobe=int(row[0]))


class PostgresWriterLock:
    """One `byline index` (or migrate) at a time per database: a session advisory lock held
    on a connection of its own for the whole run (released if the process dies)."""

    def __init__(self, url: str, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.url, self.wait, self.on_wait = url, wait, on_wait
        self._conn: psycopg.Connection | None = None

    def __enter__(self) -> PostgresWriterLock:
        conn = connect(self.url)
        if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # before any work
            conn.close()
            raise StoreError(schema.read_only(f"{redact(self.url)} is in recovery"))
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (schema.WRITER_LOCK,)).fetchone()
        if not (got and got[0]):
            if not self.wait:
                conn.close()
                raise IndexBusy(f"Another process is writing the store at {redact(self.url)}; "
                                "try again when it is done.")
            if self.on_wait is not None:
                self.on_wait(f"Another process is writing the store at {redact(self.url)}; "
                             "waiting for it to finish.")
            conn.execute("SELECT pg_advisory_lock(%s)", (schema.WRITER_LOCK,))
        self._conn = conn
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()  # ends the session: the lock goes with it
            self._conn = None
