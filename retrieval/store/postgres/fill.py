"""Filling a generation's tables from an index: every row (a full publish, `write_full`) or
the rows of some articles (an incremental one, delta.py), in binary COPY.

BM25 goes in as each term's rows and term counts, recovered from the index's weights
(`Scoring.counts`, checked bit for bit), so that a later generation sharing these rows can
score them again for its own passage count, lengths and document frequencies.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.errors import IndexCorrupt
from retrieval.progress import progress_bar
from retrieval.store.bm25 import Scoring
from retrieval.store.manifest import REBUILD
from retrieval.store.postgres import lists, schema
from retrieval.store.tables import COPY_LISTS_SELECT, MAX_COPIES
from retrieval.text import analyze

if TYPE_CHECKING:
    import psycopg

    from retrieval.store.folder.index import FolderIndex
    from retrieval.store.manifest import Manifest

CHUNK = 2_000  # passages per COPY (and progress step)
ARTICLE_FIELDS = "id, title, source, outlet, date, url, author, sha256"
# Each article's passages (in order) as one string, the part of its digest a re-parse or an
# edit changes.
DIGEST_SELECT = ("SELECT article_id, group_concat(paragraph || ':' || hash, ',') FROM "
                 "(SELECT article_id, paragraph, hash FROM passages ORDER BY row) "
                 "GROUP BY article_id")


def digests(index: FolderIndex) -> dict[str, str]:
    """article id -> a digest of everything the store keeps of it (its fields, its
    passages' paragraph numbers and text hashes): equal digests, equal rows."""
    db = index.db
    held = dict(db.execute(DIGEST_SELECT))
    out = {}
    for row in db.execute(f"SELECT {ARTICLE_FIELDS} FROM articles"):
        text = "\x1f".join("" if v is None else str(v) for v in row)
        out[row[0]] = hashlib.sha256(f"{text}\x1e{held.get(row[0], '')}".encode()
                                     ).hexdigest()[:32]
    return out


def lengths_of(index: FolderIndex) -> np.ndarray:
    """Each passage's BM25 length (its analysed tokens; an empty passage counts one, as
    bm25s's placeholder): kept by the index, or (an index saved before they were kept)
    analysed again."""
    known = index.postings.lengths
    if known is not None:
        return np.asarray(known, np.int32)
    return np.array([length(analyze(t)) for (t,) in
                     index.db.execute("SELECT text FROM passages ORDER BY row")], np.int32)


def length(tokens: list[str]) -> int:
    """A passage's BM25 length: its analysed tokens, an empty passage holding one (bm25s's
    placeholder)."""
    return max(1, len(tokens))


def write_full(conn: psycopg.Connection, s: str, index: FolderIndex, m: Manifest,
               progress: bool) -> None:
    """Create schema `s` holding every row of `index` as its generation 0 (`m`), with its
    IVF lists (none for a flat generation, searched exactly) and its indexes built."""
    conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
    conn.execute(schema.GENERATION_DDL.format(s=s, dim=m.dimension, never=schema.NEVER))
    db = index.db
    found = digests(index)
    first = first_rows(index)
    codes: dict[str, int] = {}
    with conn.cursor() as cur, cur.copy(
            f"COPY {s}.articles (code, {ARTICLE_FIELDS}, digest, first_row, born) "
            "FROM STDIN") as cp:
        for r in db.execute(f"SELECT rowid, {ARTICLE_FIELDS} FROM articles ORDER BY rowid"):
            codes[r[1]] = r[0]
            cp.write_row((*r, found[r[1]], first[r[1]][0], 0))
    with progress_bar(f"Copying {m.passages:,} passages", m.passages, progress) as step:
        for a, b in chunks(m.passages):
            write_passages(conn, s, index, range(a, b), range(a, b), codes)
            step(b - a)
    ivf = None if m.ann == "flat" else lists.lists_of(index)
    of_rows = np.zeros(len(index), np.int32) if ivf is None else ivf.of_rows
    if ivf is not None:
        lists.write(conn, s, ivf)
    # In list order: a dense search reads a few lists, each then a run of pages.
    order = np.argsort(of_rows, kind="stable")
    with progress_bar(f"Copying {m.passages:,} vectors", m.passages, progress) as step:
        for a, b in chunks(m.passages):
            write_vectors(conn, s, index, order[a:b], order[a:b], of_rows[order[a:b]])
            step(b - a)
    lengths = lengths_of(index)
    df = write_postings(conn, s, index, lengths)
    write_state(conn, s, 0, m.generation, lengths, df, groups_of(index, np.arange(len(index))))
    write_copy_lists(conn, s, index, 0)
    conn.execute(schema.GENERATION_INDEXES.format(s=s))


def first_rows(index: FolderIndex) -> dict[str, tuple[int, int]]:
    """article id -> (its first passage's row, its passage count) in the index (an article
    without passages: the row after the last, 0)."""
    held = {aid: (int(first), int(n)) for aid, first, n in index.db.execute(
        "SELECT article_id, min(row), count(*) FROM passages GROUP BY article_id")}
    return {aid: held.get(aid, (len(index), 0))
            for (aid,) in index.db.execute("SELECT id FROM articles")}


def groups_of(index: FolderIndex, rownos: np.ndarray) -> np.ndarray:
    """Each store row's near-duplicate group (-1: none), `rownos[r]` being the store row of
    the index's row r, over the store's rows up to the last of `rownos`."""
    out = np.full(int(rownos.max()) + 1 if len(rownos) else 0, -1, np.int32)
    found = np.array(index.db.execute("SELECT row, grp FROM copies").fetchall(),
                     np.int64).reshape(-1, 2)
    out[rownos[found[:, 0]]] = found[:, 1]
    return out


def chunks(n: int, size: int = CHUNK) -> Iterator[tuple[int, int]]:
    for a in range(0, n, size):
        yield a, min(n, a + size)


def write_passages(conn: psycopg.Connection, s: str, index: FolderIndex, rows: Sequence[int],
                   rownos: Sequence[int], codes: dict[str, int],
                   of_lists: np.ndarray | None = None) -> list[str]:
    """The index's `rows` as the store's `rownos` (same order); `codes`: article id -> its
    code in the store; with `of_lists`, their vectors too, in those IVF lists. Their texts."""
    db = index.db
    rows = [int(r) for r in rows]
    if not rows:
        return []
    if len(rows) > 1 and rows == list(range(rows[0], rows[-1] + 1)):
        meta = db.execute("SELECT id, article_id, paragraph, text, hash FROM passages "
                          "WHERE row >= ? AND row <= ? ORDER BY row", (rows[0], rows[-1])
                          ).fetchall()
    else:
        meta = [db.execute("SELECT id, article_id, paragraph, text, hash FROM passages "
                           "WHERE row = ?", (r,)).fetchone() for r in rows]
    sent, tokens = index.sentences, index.tokens
    if of_lists is not None:
        write_vectors(conn, s, index, rows, rownos, of_lists)
    with conn.cursor() as cur:
        with cur.copy(f"COPY {s}.passages (rowno, id, code, article_id, paragraph, text, hash) "
                      "FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "text", "int4", "text", "int4", "text", "text"])
            for rowno, (pid, article, *fields) in zip(rownos, meta, strict=True):
                cp.write_row((rowno, pid, codes[article], article, *fields))
        with cur.copy(f"COPY {s}.sentences (rowno, vectors, spans) FROM STDIN "
                      "(FORMAT BINARY)") as cp:
            cp.set_types(["int4", "bytea", "bytea"])
            for rowno, row in zip(rownos, rows, strict=True):
                v, sp = sent.passage(row)
                cp.write_row((rowno, as_bytes(v, np.float16), as_bytes(sp, np.int32)))
        if tokens is not None:
            with cur.copy(f"COPY {s}.tokens (rowno, codes, scales, spans) FROM STDIN "
                          "(FORMAT BINARY)") as cp:
                cp.set_types(["int4", "bytea", "bytea", "bytea"])
                for rowno, row in zip(rownos, rows, strict=True):
                    codes_, scales, spans = tokens.raw(row)
                    cp.write_row((rowno, as_bytes(codes_, np.int8),
                                  as_bytes(scales, np.float32), as_bytes(spans, np.int32)))
    return [text for _, _, _, text, _ in meta]


def write_vectors(conn: psycopg.Connection, s: str, index: FolderIndex, rows: Sequence[int],
                  rownos: Sequence[int], of_lists: np.ndarray) -> None:
    """The index's `rows` vectors as the store's `rownos`, in IVF lists `of_lists`. Binary
    COPY: pgvector's binary format, exact and without formatting 384 floats as text per row
    (that was 90% of the copy's time)."""
    vecs = np.asarray(index.passage_vectors[np.asarray(rows, np.int64)], np.float32)
    with conn.cursor() as cur, cur.copy(f"COPY {s}.vectors (rowno, lst, embedding) FROM STDIN "
                                        "(FORMAT BINARY)") as cp:
        cp.set_types(["int4", "int4", "bytea"])
        for rowno, lst, vec in zip(rownos, of_lists, vecs, strict=True):
            cp.write_row((int(rowno), int(lst), vector_binary(vec)))


def write_postings(conn: psycopg.Connection, s: str, index: FolderIndex,
                   lengths: np.ndarray) -> np.ndarray:
    """Every term of the index and its postings (rows, term counts) as generation 0's; the
    document frequencies by term id."""
    p = index.postings
    df = np.diff(np.asarray(p.indptr)).astype(np.int64)
    scoring = Scoring(df, lengths)
    terms = {t: term for term, t in p.vocab.items()}
    with conn.cursor() as cur:
        with cur.copy(f"COPY {s}.terms (term_id, term) FROM STDIN") as cp:
            for t, term in sorted(terms.items()):
                if storable(term):
                    cp.write_row((t, term))
        with cur.copy(f"COPY {s}.postings (term_id, seq, docs, counts) FROM STDIN "
                      "(FORMAT BINARY)") as cp:
            cp.set_types(["int4", "int4", "bytea", "bytea"])
            for t in range(len(df)):
                if t not in terms or not storable(terms[t]) or not df[t]:
                    continue
                docs, weights = p.term(t)
                try:
                    tf = scoring.counts(t, np.asarray(docs), np.asarray(weights))
                except ValueError:
                    raise IndexCorrupt(
                        f"The index's BM25 weights for {terms[t]!r} are not the ones its "
                        f"passages give; {REBUILD} before publishing it.") from None
                cp.write_row((t, 0, as_bytes(docs, np.int32), as_bytes(tf, np.uint16)))
    return df


def storable(term: str) -> bool:
    """PostgreSQL's text holds no NUL; bm25s keeps a "\\x00" entry for passages with no terms
    (and "" past the last list), which no question's terms can ever match."""
    return bool(term) and "\x00" not in term


def write_state(conn: psycopg.Connection, s: str, seq: int, generation: str,
                lengths: np.ndarray, df: np.ndarray, groups: np.ndarray) -> None:
    """Generation `seq`'s row: its passages' lengths by row (0: not in it), BM25's document
    frequencies by term id and its rows' near-duplicate groups (-1: none)."""
    groups = np.concatenate([groups, np.full(max(len(lengths) - len(groups), 0), -1)])
    conn.execute(f"INSERT INTO {s}.generations (seq, generation, rows, lengths, df, groups) "
                 "VALUES (%s, %s, %s, %s, %s, %s)",
                 (seq, generation, len(lengths), as_bytes(lengths, np.int32),
                  as_bytes(df, np.int32), as_bytes(groups[:len(lengths)], np.int32)))


def write_copy_lists(conn: psycopg.Connection, s: str, index: FolderIndex, seq: int) -> None:
    """Generation `seq`'s copy lists (each near-duplicate group's first articles), as the
    index keeps them (worked out again, seconds at a million passages, only for an index
    saved before it kept them)."""
    db = index.db
    kept = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                      "AND name = 'copy_lists'").fetchone() is not None
    with conn.cursor() as cur, cur.copy(
            f"COPY {s}.copy_lists (seq, grp, n, article_id) FROM STDIN") as cp:
        for r in (db.execute("SELECT grp, n, article_id FROM copy_lists") if kept
                  else db.execute(COPY_LISTS_SELECT, (MAX_COPIES,))):
            cp.write_row((seq, *r))


def vector_binary(vec: np.ndarray) -> bytes:
    """pgvector's binary `vector`: int16 dimension, int16 unused, big-endian float4s (sent
    as the column's raw bytes: binary COPY does not check the type a field was made as)."""
    v = np.asarray(vec, ">f4")
    return struct.pack(">HH", len(v), 0) + v.tobytes()


def as_bytes(a: Any, dtype: Any) -> bytes:
    """An array's bytes, little-endian, as the reader reads them back."""
    return np.ascontiguousarray(np.asarray(a), dtype=np.dtype(dtype).newbyteorder("<")
                                ).tobytes()
