"""What a writer (the bot's /coverage jobs) needs of a store besides publishing: the manifest
it serves, without opening it; the files its articles came from; its size; withdrawing it
when its corpus holds no article any more; and creating its database on first use."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from retrieval.errors import StoreError
from retrieval.store.postgres import schema
from retrieval.store.postgres.connect import _kwargs, failure, redact

if TYPE_CHECKING:
    import psycopg

    from retrieval.store.manifest import Manifest

log = logging.getLogger("byline.store")
MAINTENANCE_DB = "postgres"  # where CREATE DATABASE is sent from


def _no_database(exc: BaseException) -> bool:
    """Whether a failure to connect says the database does not exist."""
    text = str(exc)
    return getattr(exc, "sqlstate", None) == "3D000" or (
        "database" in text and "does not exist" in text)


def _connect(url: str) -> psycopg.Connection | None:
    """An autocommit connection to `url`, or None when its database does not exist."""
    import psycopg

    try:
        return psycopg.connect(url, **_kwargs(url))
    except psycopg.Error as exc:
        if _no_database(exc):
            return None
        raise failure(url, exc) from None


def published(url: str) -> Manifest | None:
    """The manifest of the generation the store serves now (None: no database, no tables
    or nothing published yet)."""
    import psycopg

    from retrieval.store.postgres.reader import _manifest

    conn = _connect(url)
    if conn is None:
        return None
    try:
        with conn:
            if schema.version(conn) == 0:
                return None
            row = conn.execute("SELECT manifest FROM byline_manifest").fetchone()
    except psycopg.Error as exc:
        raise failure(url, exc) from None
    return _manifest(row[0], redact(url)) if row else None


def sources(url: str) -> set[str]:
    """The corpus files the store's current generation holds articles from."""
    return {r[0] for r in _in_current(url, "SELECT DISTINCT source FROM {s}.articles a "
                                      "WHERE a.born <= {seq} AND a.died > {seq}")}


def size(url: str) -> int:
    """Bytes the current generation's tables take in the database (indexes included; with
    the rows of the generations that share them)."""
    rows = _in_current(url, "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint "
                       "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = %(schema)s AND c.relkind = 'r'")
    return int(rows[0][0]) if rows else 0


def _in_current(url: str, sql: str) -> list[tuple]:
    """`sql` ({s}: the current generation's schema, {seq} its number there) on the store;
    [] when it has none."""
    import psycopg

    manifest = published(url)
    if manifest is None:
        return []
    conn = _connect(url)
    if conn is None:
        return []
    try:
        with conn:
            placed = conn.execute("SELECT data, seq FROM byline_generations WHERE generation = "
                                  "%s AND layout = %s", (manifest.generation, schema.LAYOUT)
                                  ).fetchone()
            if placed is None or placed[0] is None:
                return []
            s, seq = placed[0], int(placed[1])
            return conn.execute(sql.format(s=s, seq=seq), {"schema": s}).fetchall()
    except psycopg.errors.UndefinedTable:
        return []  # replaced and dropped meanwhile
    except psycopg.Error as exc:
        raise failure(url, exc) from None


def withdraw(url: str) -> bool:
    """Take the store's index out of use (its manifest row first: readers then find none,
    never half of one), then drop its generations. Whether there was one."""
    import psycopg

    from retrieval.store.postgres.writer import PostgresWriterLock

    if published(url) is None:
        return False
    with PostgresWriterLock(url):
        conn = _connect(url)
        if conn is None:
            return False
        try:
            with conn:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema.PUBLISH_LOCK,))
                    had = conn.execute("DELETE FROM byline_manifest RETURNING generation"
                                       ).fetchone()
                _drop_generations(conn)
        except psycopg.Error as exc:
            raise failure(url, exc) from None
    return had is not None


def _drop_generations(conn: psycopg.Connection) -> None:
    """Drop every generation left (one a reader holds locked is left to the next publish)."""
    import psycopg

    from retrieval.store.postgres.writer import drop

    for generation, data, seq in conn.execute(
            "SELECT generation, data, seq FROM byline_generations ORDER BY seq DESC NULLS LAST"
            ).fetchall():
        try:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '5s'")
                conn.execute("DELETE FROM byline_generations WHERE generation = %s",
                             (generation,))
                drop(conn, data or schema.schema_of(generation), seq)
        except psycopg.errors.LockNotAvailable:
            log.warning("generation %s is still in use; the next publish drops it", generation)


def create_database(url: str) -> bool:
    """Create the database `url` names if it does not exist (from the server's `postgres`
    database; the tables come with the first publish). Whether it was created."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    conn = _connect(url)
    if conn is not None:
        conn.close()
        return False
    name = str(conninfo_to_dict(url).get("dbname") or "")
    admin = make_conninfo(url, dbname=MAINTENANCE_DB)
    try:
        with psycopg.connect(admin, **_kwargs(url)) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.DuplicateDatabase:
        return False  # another process created it meanwhile
    except psycopg.errors.InsufficientPrivilege:
        raise StoreError(f"Cannot create the database {name!r} at {redact(url)}: permission "
                         f"denied; create it (CREATE DATABASE \"{name}\") or grant Byline's "
                         "role CREATEDB.") from None
    except psycopg.Error as exc:
        raise failure(url, exc) from None
    log.info("created the database %s", redact(url))
    return True
