"""Array-shaped views of one generation's rows, read from PostgreSQL as a question needs them:
BM25 postings by term, passage vectors, sentence and token vectors by passage row. A
question's terms' postings are read in one query (`terms`) and kept in a cache; vectors and
sentences come from the whole rows read ahead for a question's candidates (rows.py); token
vectors are read in one query per call and kept (quotes reuse the late interaction's).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.errors import IndexCorrupt
from retrieval.store.bm25 import Scoring
from retrieval.store.postgres.connect import failure, read, redact
from retrieval.store.postgres.rows import Lru

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from retrieval.store.postgres.rows import PgRows

POSTINGS_CACHE = 4_000_000  # postings entries (rows) kept in memory, per store
TOKEN_CACHE = 512  # passages whose token vectors are kept, per store (about 25 kB each)


def _rows(key: Any, size: int) -> tuple[list[int], bool]:
    """The rows an array index asks for, and whether it was a single row."""
    if isinstance(key, (int, np.integer)):
        return [int(key)], True
    if isinstance(key, slice):
        return list(range(*key.indices(size))), False
    return [int(r) for r in np.asarray(key).reshape(-1)], False


class _Rows:
    """Shared by the parts: a pool and the generation's schema."""

    def __init__(self, pool: ConnectionPool, schema: str) -> None:
        self._pool, self._schema = pool, schema

    def _fetch(self, sql: str, rows: list[int], binary: bool = False) -> dict[int, tuple]:
        """row -> the other columns, for the distinct `rows` asked."""
        if not rows:
            return {}
        import psycopg

        try:
            found = read(self._pool, lambda conn: conn.cursor(binary=binary).execute(
                sql.format(s=self._schema), (sorted(set(rows)),)).fetchall())
        except psycopg.Error as exc:
            raise failure(self._pool.conninfo, exc) from None
        return {int(r[0]): tuple(r[1:]) for r in found}


class PgVectors(_Rows):
    """passage_vectors[rows]: exact float32 vectors from the pgvector column."""

    def __init__(self, pool: ConnectionPool, schema: str, n: int, dim: int,
                 rows: PgRows | None = None,
                 local: Callable[[], np.ndarray] | None = None) -> None:
        """`local`: a flat generation's vectors, held by the reading process (read on
        first use), in which case no query reads them."""
        super().__init__(pool, schema)
        self.shape, self._rows, self._local = (n, dim), rows, local

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if self._local is not None:  # a copy: no view of the search's memory escapes
            return np.array(self._local()[key], np.float32)
        rows, single = _rows(key, self.shape[0])
        ahead = self._rows.get(rows) if self._rows is not None else None
        found = ({r: (row.vector,) for r, row in ahead.items()} if ahead is not None else
                 self._fetch("SELECT rowno, embedding FROM {s}.vectors WHERE rowno = ANY(%s)",
                             rows, binary=True))
        out = (np.stack([found[r][0] for r in rows]) if rows
               else np.empty((0, self.shape[1]), np.float32))
        return out[0] if single else out


class PgSentences(_Rows):
    """Each passage's sentence vectors (float16) and spans, one row per passage."""

    def __init__(self, pool: ConnectionPool, schema: str, dim: int,
                 rows: PgRows | None = None) -> None:
        super().__init__(pool, schema)
        self.dim, self._rows = dim, rows

    def _read(self, rows: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        ahead = self._rows.get(rows) if self._rows is not None else None
        if ahead is not None:
            return {r: row.sentences for r, row in ahead.items() if row.sentences is not None}
        found = self._fetch("SELECT rowno, vectors, spans FROM {s}.sentences "
                            "WHERE rowno = ANY(%s)", rows, binary=True)
        return {r: (np.frombuffer(v, "<f2").reshape(-1, self.dim),
                    np.frombuffer(sp, "<i4").reshape(-1, 2)) for r, (v, sp) in found.items()}

    def passage(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        return self._read([int(row)])[int(row)]

    def passages(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        asked = [int(r) for r in rows]
        found = self._read(asked)
        return [found[r] for r in asked]

    def many(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked = [int(r) for r in rows]
        found = self._read(asked)
        parts = [found[r][0] for r in asked]
        vecs = np.concatenate(parts) if parts else np.empty((0, self.dim), np.float16)
        return vecs, np.array([len(p) for p in parts], np.int64)


class PgTokens(_Rows):
    """Each passage's int8 token vectors, scales and spans, one row per passage."""

    copied_on_save = False  # a new generation reads them back and writes them again

    def __init__(self, pool: ConnectionPool, schema: str, dim: int, total: int) -> None:
        super().__init__(pool, schema)
        self.dim, self._total = dim, total
        self._kept: Lru[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = Lru(TOKEN_CACHE)

    def __len__(self) -> int:
        return self._total

    def _read(self, rows: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return self._kept.get(list(dict.fromkeys(rows)), self._fetch_tokens)

    def _fetch_tokens(self, rows: list[int]
                      ) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        found = self._fetch("SELECT rowno, codes, scales, spans FROM {s}.tokens "
                            "WHERE rowno = ANY(%s)", rows, binary=True)
        empty = (np.empty((0, self.dim), np.int8), np.empty(0, np.float32),
                 np.empty((0, 2), np.int32))
        read = {r: (np.frombuffer(c, np.int8).reshape(-1, self.dim),
                    np.frombuffer(sc, "<f4"), np.frombuffer(sp, "<i4").reshape(-1, 2))
                for r, (c, sc, sp) in found.items()}
        return {r: read.get(r, empty) for r in rows}

    def raw(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes, scales, spans = self._read([int(row)])[int(row)]
        return codes, scales.astype(np.float32), spans

    def raws(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        asked = [int(r) for r in rows]
        found = self._read(asked)
        return [(c, s.astype(np.float32), sp) for c, s, sp in (found[r] for r in asked)]

    def of(self, row: int) -> np.ndarray:
        codes, scales, _ = self.raw(row)
        return codes.astype(np.float32) * scales[:, None]

    def many(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked = [int(r) for r in rows]
        found = self._read(asked)
        parts = [found[r][0].astype(np.float32) * found[r][1][:, None] for r in asked]
        vecs = np.concatenate(parts) if parts else np.empty((0, self.dim), np.float32)
        return vecs, np.array([len(p) for p in parts], np.int64)

    def codes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The int8 codes and scales of all `rows`' tokens, one after another, and how many
        each row has."""
        found = self._read([int(r) for r in rows])
        parts = [found[int(r)] for r in rows]
        if not parts:
            return np.empty((0, self.dim), np.int8), np.empty(0, np.float32), np.zeros(0, np.int64)
        return (np.concatenate([c for c, _, _ in parts]),
                np.concatenate([s for _, s, _ in parts]).astype(np.float32),
                np.array([len(c) for c, _, _ in parts], np.int64))


class PgPostings(_Rows):
    """BM25's postings: the vocabulary, document frequencies and passage lengths read at
    open; each term's rows and counts read when a question holds it, scored for this
    generation (`Scoring`, as a folder's build scores them) and cached."""

    def __init__(self, pool: ConnectionPool, schema: str, seq: int, vocab: dict[str, int],
                 df: np.ndarray, lengths: np.ndarray) -> None:
        super().__init__(pool, schema)
        self.seq, self.vocab, self._df = seq, vocab, df
        self.held = lengths > 0  # the rows this generation holds
        self._all_held = bool(self.held.all())  # none removed since the last full publish
        self._scoring = Scoring(df, lengths)
        self.passages = self._scoring.passages
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()

    @property
    def df(self) -> np.ndarray:
        return self._df

    def term(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        return self.terms([term])[0]

    def terms(self, terms: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """`term` of each of `terms`: those not cached read in one query, then cached."""
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        with self._lock:
            for t in dict.fromkeys(terms):
                hit = self._cache.get(t)
                if hit is not None:
                    self._cache.move_to_end(t)
                    found[t] = hit
        missing = [t for t in dict.fromkeys(terms) if t not in found]
        if not missing:
            return [found[t] for t in terms]
        parts: dict[int, list[tuple[bytes, bytes]]] = {}
        for t, docs, counts in self._read_postings(missing):
            parts.setdefault(t, []).append((docs, counts))
        read = {t: self._scored(t, parts.get(t, [])) for t in missing}
        with self._lock:
            for t, got in read.items():
                before = self._cache.pop(t, None)  # read by another thread meanwhile
                self._cached -= len(before[0]) if before is not None else 0
                self._cache[t] = got
                self._cached += len(got[0])
            while self._cached > POSTINGS_CACHE and len(self._cache) > 1:
                _, (docs, _) = self._cache.popitem(last=False)
                self._cached -= len(docs)
        found.update(read)
        return [found[t] for t in terms]

    def _read_postings(self, terms: list[int]) -> list[tuple]:
        import psycopg

        sql = (f"SELECT term_id, docs, counts FROM {self._schema}.postings "
               "WHERE term_id = ANY(%s) AND seq <= %s ORDER BY term_id, seq")
        try:
            return read(self._pool, lambda conn: conn.cursor(binary=True).execute(
                sql, (sorted(terms), self.seq)).fetchall())
        except psycopg.Error as exc:
            raise failure(self._pool.conninfo, exc) from None

    def _scored(self, term: int, parts: list[tuple[bytes, bytes]]
                ) -> tuple[np.ndarray, np.ndarray]:
        """(sorted rows this generation holds the term in, its BM25 weight in each): each
        generation's rows come after the ones before it, so the parts stay in order."""
        if not parts:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        chunks = [np.frombuffer(d, "<i4") for d, _ in parts]
        # Each part's ends checked (its rows are sorted, as a folder's postings, whose ends
        # are checked the same way), and each part after the one before: no pass over them.
        ends = [(int(c[0]), int(c[-1])) for c in chunks if len(c)]
        if term >= len(self._df) or any(
                a < 0 or a > b or b >= len(self.held) or (i and a <= ends[i - 1][1])
                for i, (a, b) in enumerate(ends)):
            raise IndexCorrupt(f"The index at {redact(self._pool.conninfo)} is damaged: "
                               f"{self._schema}.postings holds rows out of range; publish it "
                               "again (`byline index --full`).")
        docs = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        counts = np.concatenate([np.frombuffer(c, "<u2") for _, c in parts])
        if not self._all_held:
            keep = self.held[docs]
            docs, counts = docs[keep], counts[keep]
        return docs, self._scoring.weights(term, docs, counts)
