"""Publishing a generation into PostgreSQL: everything in one transaction.

The new generation's schema is created and filled, its indexes built, the manifest row
pointed at it and `NOTIFY byline_generation` sent, then the transaction commits: readers
see the old generation or the new one, never part of one, and listeners hear of it only
once it is there. Afterwards, generations older than the previous one are dropped (the
previous one stays for readers still answering from it, as in a folder).
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.errors import IndexBusy, StoreError
from retrieval.progress import progress_bar
from retrieval.store.ann import ANN_DEPTH
from retrieval.store.postgres import schema
from retrieval.store.postgres.connect import connect, failure, redact, vector_text
from retrieval.store.tables import COPY_LISTS_SELECT, MAX_COPIES

if TYPE_CHECKING:
    import psycopg

    from retrieval.store.folder.index import FolderIndex
    from retrieval.store.manifest import Manifest

log = logging.getLogger("byline.store")
# HNSW's recall target when tuning ef_search, on corpus sentences (question-like queries that
# are known at publish time). Real questions sit farther from the passages and fare worse at
# every ef_search, and the sentences' recall climbs slowly near its ceiling, where one graph
# crosses a lower target at half the ef_search of another built from the same rows. So the
# target is close to that ceiling (docs/postgres.md, "Approximate search").
HNSW_RECALL = 0.985
KEEP = 2  # generations kept: the current one and the one before it
CHUNK = 2_000  # passages per progress step


def publish_postgres(index: FolderIndex, url: str, progress: bool = False) -> Manifest:
    """Publish `index` (assembled or loaded from a folder) as the current generation at
    `url`; nothing to do when that generation is already current (so a copy is idempotent).
    Vectors are copied as they are: nothing is embedded again."""
    import psycopg

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
            kept = conn.execute("SELECT layout, passages FROM byline_generations "
                                "WHERE generation = %s", (m.generation,)).fetchone()
            if kept == (schema.LAYOUT, m.passages):
                # Still kept for its readers: served again as it is, never rewritten under them.
                m = _tuned(conn, schema.schema_of(m.generation), index, m)
                conn.execute("UPDATE byline_generations SET published = now() "
                             "WHERE generation = %s", (m.generation,))
            else:
                if kept is not None:  # an older layout: replaced whole
                    conn.execute("DELETE FROM byline_generations WHERE generation = %s",
                                  (m.generation,))
                m = _write_generation(conn, index, m, progress)
                conn.execute("INSERT INTO byline_generations (generation, layout, passages) "
                             "VALUES (%s, %s, %s)", (m.generation, schema.LAYOUT, m.passages))
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


def retire(conn: psycopg.Connection, keep: int = KEEP) -> list[str]:
    """Drop the generations older than the `keep` newest; the ones dropped."""
    old = [g for (g,) in conn.execute(
        "SELECT generation FROM byline_generations WHERE generation <> "
        "(SELECT generation FROM byline_manifest) ORDER BY published DESC OFFSET %s",
        (keep - 1,))]
    for generation in old:
        with conn.transaction():
            # a reader's long transaction on it makes this wait at most so long
            conn.execute("SET LOCAL lock_timeout = '5s'")
            conn.execute(f"DROP SCHEMA IF EXISTS {schema.schema_of(generation)} CASCADE")
            conn.execute("DELETE FROM byline_generations WHERE generation = %s", (generation,))
    return old


def _write_generation(conn: psycopg.Connection, index: FolderIndex, m: Manifest,
                      progress: bool) -> Manifest:
    """Create and fill the generation's schema; its manifest (with the HNSW's tuned
    ef_search where dense search is approximate)."""
    s = schema.schema_of(m.generation)
    conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
    conn.execute(schema.GENERATION_DDL.format(s=s, dim=m.dimension))
    db = index._db
    with conn.cursor() as cur, cur.copy(
            f"COPY {s}.articles (code, id, title, source, outlet, date, url, author, sha256) "
            "FROM STDIN") as cp:
        for r in db.execute("SELECT rowid, id, title, source, outlet, date, url, author, "
                            "sha256 FROM articles ORDER BY rowid"):
            cp.write_row(r)
    groups = dict(db.execute("SELECT row, grp FROM copies"))
    with progress_bar(f"Copying {m.passages:,} passages", m.passages, progress) as step:
        for a, b in _chunks(m.passages):
            _write_passages(conn, s, index, db, groups, a, b)
            step(b - a)
    _write_postings(conn, s, index)
    with conn.cursor() as cur, cur.copy(
            f"COPY {s}.copy_lists (grp, n, article_id) FROM STDIN") as cp:
        for r in db.execute(COPY_LISTS_SELECT, (MAX_COPIES,)):
            cp.write_row(r)
    conn.execute(schema.GENERATION_INDEXES.format(
        s=s, m=schema.HNSW_M, ef=schema.HNSW_EF_CONSTRUCTION))
    return _tuned(conn, s, index, m)


def _tuned(conn: psycopg.Connection, s: str, index: FolderIndex, m: Manifest) -> Manifest:
    """`m` as the store serves it: flat stays exact scans (as the folder's flat index);
    otherwise HNSW, with the ef_search its recall target needs."""
    if m.ann == "flat":
        return m
    return replace(m, ann="hnsw", nprobe=tune_ef_search(conn, s, index))


def tune_ef_search(conn: psycopg.Connection, s: str, index: FolderIndex, k: int = 10,
                   depth: int = ANN_DEPTH, queries: int = 200) -> int:
    """Smallest HNSW ef_search (doubling from `depth`) whose top `depth` holds HNSW_RECALL of
    the exact top `k`, for question-like queries (random sentences of the corpus), as a
    folder tunes IVF's nprobe (retrieval/store/ann.py); at most EF_SEARCH_MAX."""
    import faiss

    from retrieval.store.postgres.reader import EF_SEARCH_MAX

    sentences = index.sentences.vectors
    rng = np.random.default_rng(0)
    picks = np.sort(rng.choice(len(sentences), size=min(queries, len(sentences)),
                               replace=False))
    q = np.asarray(sentences[picks], dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    _, exact = faiss.knn(q, np.ascontiguousarray(index.passage_vectors, dtype=np.float32), k,
                         metric=faiss.METRIC_INNER_PRODUCT)
    vectors = [vector_text(v) for v in q]
    ef = depth
    while True:
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
        found = []
        with conn.cursor() as cur:
            for v in vectors:
                cur.execute(f"SELECT rowno FROM {s}.passages ORDER BY embedding <=> "
                            "%s::vector LIMIT %s", (v, depth))
                found.append({r for (r,) in cur.fetchall()})
        recall = np.mean([len(set(a) & f) / k for a, f in zip(exact, found, strict=True)])
        if recall >= HNSW_RECALL or ef >= EF_SEARCH_MAX:
            return ef
        ef = min(EF_SEARCH_MAX, ef * 2)


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for a in range(0, n, CHUNK):
        yield a, min(n, a + CHUNK)


def _write_passages(conn: psycopg.Connection, s: str, index: FolderIndex, db: Any,
                    groups: dict[int, int], a: int, b: int) -> None:
    vecs = np.asarray(index.passage_vectors[a:b], np.float32)
    rows = db.execute("SELECT row, id, article_id, paragraph, text, hash FROM passages "
                      "WHERE row >= ? AND row < ? ORDER BY row", (a, b)).fetchall()
    sent, tokens = index.sentences, index.tokens
    with conn.cursor() as cur:
        # Binary COPY: the vectors go as pgvector's binary format, exact and without
        # formatting 384 floats as text per row (that was 90% of the copy's time).
        with cur.copy(f"COPY {s}.passages (rowno, id, article_id, paragraph, text, hash, grp, "
                      "embedding) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "text", "text", "int4", "text", "text", "int4", "bytea"])
            for (row, *fields), vec in zip(rows, vecs, strict=True):
                cp.write_row((row, *fields, groups.get(row), _vector_binary(vec)))
        with cur.copy(f"COPY {s}.sentences (rowno, vectors, spans) FROM STDIN "
                      "(FORMAT BINARY)") as cp:
            cp.set_types(["int4", "bytea", "bytea"])
            for row in range(a, b):
                v, sp = sent.passage(row)
                cp.write_row((row, _bytes(v, np.float16), _bytes(sp, np.int32)))
        if tokens is not None:
            with cur.copy(f"COPY {s}.tokens (rowno, codes, scales, spans) FROM STDIN "
                          "(FORMAT BINARY)") as cp:
                cp.set_types(["int4", "bytea", "bytea", "bytea"])
                for row in range(a, b):
                    codes, scales, spans = tokens.raw(row)
                    cp.write_row((row, _bytes(codes, np.int8), _bytes(scales, np.float32),
                                  _bytes(spans, np.int32)))


def _write_postings(conn: psycopg.Connection, s: str, index: FolderIndex) -> None:
    p = index.postings
    terms = {t: term for term, t in p.vocab.items()}
    with conn.cursor() as cur, cur.copy(
            f"COPY {s}.postings (term_id, term, df, docs, weights) FROM STDIN "
            "(FORMAT BINARY)") as cp:
        cp.set_types(["int4", "text", "int4", "bytea", "bytea"])
        for t in range(len(p.indptr) - 1):
            # PostgreSQL's text holds no NUL; bm25s keeps a "\x00" entry for passages with
            # no terms, which no question's terms can ever match
            if t not in terms or "\x00" in terms[t]:
                continue
            docs, weights = p.term(t)
            cp.write_row((t, terms[t], len(docs), _bytes(docs, np.int32),
                          _bytes(weights, np.float32)))


def _vector_binary(vec: np.ndarray) -> bytes:
    """pgvector's binary `vector`: int16 dimension, int16 unused, big-endian float4s (sent
    as the column's raw bytes: binary COPY does not check the type a field was made as)."""
    v = np.asarray(vec, ">f4")
    return struct.pack(">HH", len(v), 0) + v.tobytes()


def _bytes(a: Any, dtype: Any) -> bytes:
    """An array's bytes, little-endian, as the reader reads them back."""
    return np.ascontiguousarray(np.asarray(a), dtype=np.dtype(dtype).newbyteorder("<")
                                ).tobytes()


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
