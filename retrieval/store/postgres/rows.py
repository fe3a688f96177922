"""Whole passage rows, read ahead: what a question reads of a candidate (its exact vector,
sentences, context, wire-copy group and citation) in one query for all its candidates, kept
in a bounded cache, so the Retriever's later reads of the same rows cost no round trip.

A generation never changes once published, so a row read once stays right for the life of
the store object. Reads of many rows (a whole-index scan) bypass this and read only the
column asked for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from retrieval.corpus import Passage

if TYPE_CHECKING:
    import psycopg

READ_AHEAD_MAX = 2_000  # rows: above this a read is a scan, not a question's candidates
ROW_CACHE = 4_096  # rows kept per store (about 5 kB each at 384 dimensions: 20 MB)
Query = Callable[[str, Sequence[object], bool], list[tuple]]  # (sql, params, binary)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_COLUMNS = ("p.rowno, v.embedding, s.vectors, s.spans, a.code, p.id, p.article_id, a.title, "
            "a.source, p.paragraph, p.text, a.outlet, a.date, a.url")  # Row, by `_row`
_JOINS = "JOIN {s}.articles a ON a.code = p.code LEFT JOIN {s}.sentences s ON s.rowno = p.rowno"
ROWS_SQL = (f"SELECT {_COLUMNS} FROM {{s}}.passages p JOIN {{s}}.vectors v ON v.rowno = p.rowno "
            f"{_JOINS} WHERE p.rowno = ANY(%s)")
# A flat generation's vectors are held by the reading process (PgIndex.vectors): its rows
# are read without them (a third of the rows' server time at 100 rows a question).
ROWS_SQL_NO_VECTOR = (f"SELECT {_COLUMNS.replace('v.embedding', 'NULL::vector')} FROM "
                      f"{{s}}.passages p {_JOINS} WHERE p.rowno = ANY(%s)")
# The rows of the probed IVF lists nearest a question, nearest first, whole: its dense
# candidates come back from its dense search, which runs beside its BM25 reads. Ties in order
# of row. The vectors are unit length: pgvector's negative inner product `<#>` orders them as
# cosine would, as a folder's FAISS does, at one dot product a row where cosine takes three
# (at a million passages, 1.5 ms of a 9.5 ms search).
NEAREST_SQL = (
    f"SELECT {_COLUMNS} FROM (SELECT rowno, embedding, embedding <#> %(q)s::vector AS d "
    "FROM {s}.vectors WHERE lst = ANY(%(l)s) ORDER BY d, rowno LIMIT %(k)s) v "
    f"JOIN {{s}}.passages p ON p.rowno = v.rowno {_JOINS} ORDER BY v.d, v.rowno")


class Lru(Generic[K, V]):
    """A thread-safe least-recently-used map of at most `size` entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._reading: dict[K, Future[dict[K, V]]] = {}  # keys a thread is reading now

    def get(self, keys: Sequence[K], read: Callable[[list[K]], dict[K, V]]) -> dict[K, V]:
        """The entries of `keys`: those held, those another thread is reading now (waited
        for: questions asked together about one story share their reads), and the rest read
        here by `read` (kept when they fit). `read`'s error is raised to every waiter."""
        out: dict[K, V] = {}
        mine: list[K] = []
        theirs: dict[K, Future[dict[K, V]]] = {}
        with self._lock:
            for key in keys:
                value = self._items.get(key)
                if value is not None:
                    self._items.move_to_end(key)
                    out[key] = value
                elif key in self._reading:
                    theirs[key] = self._reading[key]
                else:
                    mine.append(key)
            pending: Future[dict[K, V]] = Future()
            for key in mine:
                self._reading[key] = pending
        if mine:
            try:
                got = read(mine)
                with self._lock:  # kept and released at once: no one reads them again
                    if len(got) <= self.size:
                        self._keep(got)
                    self._release(mine)
            except BaseException as exc:
                with self._lock:  # released first: a later question reads them afresh
                    self._release(mine)
                pending.set_exception(exc)
                raise
            pending.set_result(got)
            out.update(got)
        for key, future in theirs.items():
            got = future.result()
            out[key] = got[key] if key in got else read([key])[key]
        return out

    def keep(self, items: dict[K, V]) -> None:
        with self._lock:
            self._keep(items)

    def _keep(self, items: dict[K, V]) -> None:
        """`keep`, the lock held."""
        self._items.update(items)
        for key in items:
            self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def _release(self, keys: list[K]) -> None:
        """No longer being read (the lock held)."""
        for key in keys:
            self._reading.pop(key, None)


@dataclass(frozen=True)
class Row:
    """What a question reads of one passage row."""

    vector: np.ndarray | None  # float32, exact (None: a flat generation's, held locally)
    sentences: tuple[np.ndarray, np.ndarray] | None  # float16 vectors, int32 spans
    context: tuple[int, int, str]  # article code, paragraph, headline (row_context)
    group: int | None  # wire-copy group
    passage: Passage


class PgRows:
    """Rows of one generation by number: those not kept read in one query, then kept."""

    def __init__(self, query: Query, dim: int, groups: np.ndarray,
                 gone: Callable[[], Exception], size: int = ROW_CACHE,
                 vectors: bool = True) -> None:
        """`vectors`: whether rows bring their vector (a flat generation's are held locally)."""
        self._query, self.dim, self._groups, self._gone = query, dim, groups, gone
        self._kept: Lru[int, Row] = Lru(size)
        self._sql = ROWS_SQL if vectors else ROWS_SQL_NO_VECTOR

    def get(self, rows: Sequence[int]) -> dict[int, Row] | None:
        """Each of `rows`; None when they are too many to read ahead (the caller reads the
        one column it needs). Rows missing mean the generation was dropped (`gone`'s error)."""
        asked = sorted({int(r) for r in rows})
        if len(asked) > READ_AHEAD_MAX:
            return None
        return self._kept.get(asked, self._read)

    def _read(self, rows: list[int]) -> dict[int, Row]:
        read = {int(r[0]): self._row(r) for r in self._query(self._sql, (rows,), True)}
        if len(read) != len(rows):
            raise self._gone()
        return read

    def nearest(self, conn: psycopg.Connection, schema: str, q: str, probed: list[int], k: int,
                held: Callable[[int], bool]) -> list[int]:
        """The `k` rows of `schema`'s `probed` IVF lists nearest `q` (a vector's text),
        nearest first, read whole in the same statement: those `held` accepts are kept."""
        found = conn.cursor(binary=True).execute(NEAREST_SQL.format(s=schema),
                                                 {"q": q, "l": probed, "k": k}).fetchall()
        self._kept.keep({int(r[0]): self._row(r) for r in found if held(int(r[0]))})
        return [int(r[0]) for r in found]

    def _row(self, r: tuple) -> Row:
        rowno, vec, svecs, spans, code, *cite = r
        grp = int(self._groups[rowno]) if rowno < len(self._groups) else -1
        sentences = (None if svecs is None else
                     (np.frombuffer(svecs, "<f2").reshape(-1, self.dim),
                      np.frombuffer(spans, "<i4").reshape(-1, 2)))
        return Row(None if vec is None else np.asarray(vec, np.float32), sentences,
                   (code, cite[4], cite[2]),
                   grp if grp >= 0 else None, Passage(*cite))
