"""The PostgreSQL store's read side: one published generation, as the Retriever reads it.

Dense candidates come from the rows of a question's nearest IVF lists (lists.py), ranked by
pgvector's exact cosine in SQL, their whole rows joined in, or, for a generation small enough
to be published flat, from its vectors searched exactly in this process as a folder's are;
a question's terms' postings are read in one query, its other candidates' whole rows (exact
vector, sentences, context, group, citation) in one more (rows.py), the late interaction's
token vectors in a third; the ranking itself stays the Retriever's (Python, the same code as
for a folder). See docs/postgres.md.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from retrieval.corpus import Article, Passage, parser_fingerprint
from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing
from retrieval.store.ann import flat
from retrieval.store.manifest import FORMAT_VERSION, Manifest
from retrieval.store.postgres import lists, schema
from retrieval.store.postgres.connect import (
    failure,
    forget_pool,
    pool,
    read,
    redact,
    vector_text,
)
from retrieval.store.postgres.parts import PgPostings, PgSentences, PgTokens, PgVectors
from retrieval.store.postgres.rows import READ_AHEAD_MAX, PgRows
from retrieval.store.subset import EXACT_SUBSET_MAX, dense_candidates
from retrieval.store.tables import ArticleInfo, Copy

if TYPE_CHECKING:
    import faiss
    from psycopg_pool import ConnectionPool

    from retrieval.model.embed import Embedder

REPUBLISH = "publish it again (`byline migrate --from FOLDER --to URL`, or `byline index`)"


def open_postgres(url: str, model: str | None = None) -> PgIndex:
    """The generation the store at `url` serves now."""
    import psycopg

    where = redact(url)
    p = pool(url)

    def opened(conn: psycopg.Connection) -> tuple:
        if schema.version(conn) == 0:
            forget_pool(url)  # its connections predate the vector type: not for the next open
            raise IndexMissing(f"No index in the store at {where}; run `byline --store URL "
                               "index` or `byline migrate --from FOLDER --to URL`.")
        schema.check_version(conn, where)
        row = conn.execute("SELECT manifest, probe_vectors FROM byline_manifest").fetchone()
        if row is None:
            raise IndexMissing(f"No index in the store at {where} yet; run `byline --store URL "
                               "index` or `byline migrate --from FOLDER --to URL`.")
        manifest = _manifest(row[0], where)
        if model is not None and manifest.model != model:
            raise IndexMismatch(
                f"The index at {where} was built with model {manifest.model!r} but Byline "
                f"is set to use {model!r}; {REPUBLISH} (or set BYLINE_MODEL="
                f"{manifest.model}).")
        placed = conn.execute("SELECT layout, data, seq FROM byline_generations "
                              "WHERE generation = %s", (manifest.generation,)).fetchone()
        if placed is None or placed[0] != schema.LAYOUT or placed[1] is None:
            raise IndexMismatch(f"The index at {where} was published by an older Byline "
                                f"(layout {placed[0] if placed else '?'}, this Byline reads "
                                f"{schema.LAYOUT}); {REPUBLISH}.")
        s, seq = placed[1], int(placed[2])
        state = conn.execute(f"SELECT rows, lengths, df, groups FROM {s}.generations "
                             "WHERE seq = %s", (seq,)).fetchone()
        if state is None:
            raise IndexCorrupt(f"The store at {where} lacks generation {manifest.generation}'s "
                               f"state ({s}.generations); {REPUBLISH}.")
        lengths = np.frombuffer(state[1], "<i4").astype(np.int32)
        df = np.frombuffer(state[2], "<i4").astype(np.int64)
        groups = np.frombuffer(state[3], "<i4").astype(np.int32)
        if (len(lengths) != state[0] or len(groups) != state[0]
                or int(np.count_nonzero(lengths)) != manifest.passages):
            raise IndexCorrupt(f"The store at {where} holds {int(np.count_nonzero(lengths))} "
                               f"passages for generation {manifest.generation}, its manifest "
                               f"says {manifest.passages}; {REPUBLISH}.")
        vocab = {term: t for t, term in conn.execute(
            f"SELECT term_id, term FROM {s}.terms WHERE term_id < %s", (len(df),))}
        tokens = int(conn.execute(
            f"SELECT coalesce(sum(length(t.scales)) / 4, 0) FROM {s}.tokens t JOIN "
            f"{s}.passages p USING (rowno) JOIN {s}.articles a ON a.code = p.code "
            f"WHERE {schema.live('a', seq)}").fetchone()[0])
        ivf = None if manifest.ann == "flat" else lists.read(conn, s, manifest.dimension)
        if manifest.ann != "flat" and ivf is None:
            raise IndexCorrupt(f"The store at {where} lacks generation {manifest.generation}'s "
                               f"IVF lists ({s}.ivf); {REPUBLISH}.")
        return row, manifest, s, seq, vocab, df, lengths, groups, tokens, ivf

    try:
        row, manifest, s, seq, vocab, df, lengths, groups, tokens, ivf = read(p, opened)
    except psycopg.errors.UndefinedTable:
        raise IndexMissing(f"The generation the store at {where} served was dropped while it "
                           "was opened; open the store again.") from None
    except psycopg.Error as exc:
        raise failure(url, exc) from None
    index = PgIndex(url, p, manifest, s, seq, PgPostings(p, s, seq, vocab, df, lengths),
                    groups, tokens, None if ivf is None else ivf[0])
    if row[1] is not None and manifest.probes:
        index.probe_vectors = np.frombuffer(row[1], np.float32).reshape(-1, manifest.dimension)
    return index


def _manifest(data: object, where: str) -> Manifest:
    try:
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise TypeError
        if data.get("format") != FORMAT_VERSION:
            raise IndexMismatch(f"The index at {where} has format {data.get('format')!r}, this "
                                f"Byline reads format {FORMAT_VERSION}; {REPUBLISH}.")
        return Manifest(**data)
    except (TypeError, ValueError):
        raise IndexCorrupt(f"The manifest row of the store at {where} is damaged; "
                           f"{REPUBLISH}.") from None


class PgIndex:
    """One generation in PostgreSQL, read through the store interface (retrieval.store.base)."""

    probe_vectors: np.ndarray | None = None
    reused = 0
    report = None

    def __init__(self, url: str, pool: ConnectionPool, manifest: Manifest, data: str, seq: int,
                 postings: PgPostings, groups: np.ndarray, tokens: int,
                 centroids: np.ndarray | None = None) -> None:
        self.url, self._pool, self.manifest = url, pool, manifest
        self.location = url
        # The generation's rows are those of schema `data` that its generation `seq` holds;
        # row numbers run up to `size`, with gaps where rows were removed (`held` is False).
        self.schema, self.seq = data, seq
        self.held = postings.held
        self.size = len(self.held)
        self.live = schema.live("a", seq)
        self.groups = groups  # each row's near-duplicate group (-1: none)
        s, dim = self.schema, manifest.dimension
        self.postings = postings
        held_here = manifest.ann == "flat"  # its vectors read once, searched in this process
        self.rows = PgRows(self._query, dim, groups, self._gone, vectors=not held_here)
        self.passage_vectors = PgVectors(pool, s, self.size, dim, self.rows,
                                         self._flat_vectors if held_here else None)
        self.sentences = PgSentences(pool, s, dim, self.rows)
        self.tokens = PgTokens(pool, s, dim, tokens) if tokens else None
        self.has_copies = bool((groups >= 0).any())
        self.centroids = None if centroids is None else lists.quantizer(centroids)
        self.exact_subset_max = EXACT_SUBSET_MAX  # allowed rows up to this: an exact scan
        # a list, so that with_background's copies share what one of them read
        self._flat: list[tuple[faiss.Index, np.ndarray]] = []
        self._flat_lock = threading.Lock()

    @property
    def concurrent_reads(self) -> bool:
        """IVF searches in the server (a flat generation's vectors are searched here)."""
        return self.manifest.ann != "flat"

    def __len__(self) -> int:
        """The rows' numbers' range (the passages, and the gaps removed rows left)."""
        return self.size

    def _gone(self) -> Exception:
        """The error for rows found missing: this generation dropped, or damaged."""
        found = self._query("SELECT 1 FROM byline_generations WHERE generation = %s",
                            (self.manifest.generation,))
        if not found:
            return self._dropped()
        return IndexCorrupt(f"The index at {self.where} is damaged: rows of generation "
                            f"{self.manifest.generation} are missing; {REPUBLISH}.")

    def _dropped(self) -> IndexMissing:
        return IndexMissing(f"Generation {self.manifest.generation} of the store at "
                            f"{self.where} was dropped (two newer ones were published); "
                            "open the store again.")

    @property
    def where(self) -> str:
        return redact(self.url)

    def damaged(self, part: str) -> IndexCorrupt:
        return IndexCorrupt(f"The index at {self.where} is damaged: {self.schema}.{part} "
                            f"holds values that are not numbers; {REPUBLISH}.")

    def with_background(self, background: dict[str, float],
                        probe_vectors: np.ndarray | None = None) -> PgIndex:
        """This generation with its background set in memory (a store's published manifest
        already holds one: the indexer measures it before publishing)."""
        from retrieval.model.probes import probes_key

        if probe_vectors is None:
            probe_vectors = self.probe_vectors
        m = self.manifest
        probes = probes_key(m.model, m.encoder) if probe_vectors is not None else ""
        other = PgIndex.__new__(PgIndex)
        other.__dict__.update(self.__dict__)
        other.manifest = replace(m, background=dict(background), probes=probes)
        other.probe_vectors = probe_vectors
        return other

    def _query(self, sql: str, params: Sequence[object] = (), binary: bool = False
               ) -> list[tuple]:
        import psycopg

        try:
            return read(self._pool, lambda conn: conn.cursor(binary=binary).execute(
                sql.format(s=self.schema, seq=self.seq, live=self.live), params).fetchall())
        except psycopg.errors.UndefinedTable:
            raise self._dropped() from None
        except psycopg.Error as exc:
            raise failure(self.url, exc) from None

    # -- dense ----------------------------------------------------------------------------

    def dense_search(self, qvec: np.ndarray, n: int,
                     allowed: np.ndarray | None = None) -> np.ndarray:
        """The (1, n) rows nearest `qvec` by cosine (-1 pads). A flat generation (up to
        EXACT_MAX passages): FAISS in this process, as a folder (`vectors`); above, up to
        `exact_subset_max` allowed rows an exact scan in SQL, else the rows of its nearest IVF
        lists (filtered: more lists, and only the allowed rows, in SQL)."""
        if self.manifest.ann == "flat":
            if len(self) != self.manifest.passages:  # rows removed: never proposed
                allowed = self.held if allowed is None else allowed & self.held
            return dense_candidates(self, qvec, n, allowed)
        if allowed is not None:
            keep = np.flatnonzero(allowed & self.held)
            if len(keep) <= self.exact_subset_max:
                found = self._query(
                    "SELECT rowno FROM {s}.vectors WHERE rowno = ANY(%s) "
                    "ORDER BY embedding <#> %s::vector, rowno LIMIT %s",
                    (keep.tolist(), vector_text(qvec), n))
                return _padded([r for (r,) in found], n)
            return _padded(self._ivf(qvec, n, allowed & self.held), n)
        return _padded(self._ivf(qvec, n, whole=True), n)

    @property
    def vectors(self) -> faiss.Index:
        """A flat generation's vectors as an exact FAISS index in this process, read once
        (at most EXACT_MAX rows, as a folder keeps them): a question then costs no round trip
        and ranks exactly as the folder it was published from."""
        with self._flat_lock:
            if not self._flat:
                if self.manifest.ann != "flat":
                    raise AttributeError("an IVF generation is searched in the server")
                found = self._query("SELECT p.rowno, v.embedding FROM {s}.passages p JOIN "
                                    "{s}.vectors v ON v.rowno = p.rowno JOIN "
                                    "{s}.articles a ON a.code = p.code WHERE {live} "
                                    "ORDER BY p.rowno", binary=True)
                if len(found) != self.manifest.passages:
                    raise self._gone()
                # removed rows' gaps hold zeros (dense_search never proposes them)
                vecs = np.zeros((len(self), self.manifest.dimension), np.float32)
                if found:
                    vecs[[r for r, _ in found]] = np.stack([v for _, v in found])
                import faiss

                index = flat(vecs)
                # the index's own copy, viewed (not a second copy): `passage_vectors` reads it
                held = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d)
                held.flags.writeable = False  # the search's own vectors
                self._flat.append((index, held.reshape(index.ntotal, index.d)))
            return self._flat[0][0]

    def _flat_vectors(self) -> np.ndarray:
        """A flat generation's vectors by row (read with `vectors`, once): a read-only view
        of its FAISS index's memory, valid while `_flat` holds the index (callers get copies)."""
        self.vectors  # noqa: B018 - read on first use
        return self._flat[0][1]

    @property
    def _widen(self) -> float:
        """Rows removed stay in their lists until a full publish (and newer generations' rows
        are there too): searches ask for more by their share, and drop them."""
        return len(self) / max(self.manifest.passages, 1)

    def _ivf(self, qvec: np.ndarray, n: int, allowed: np.ndarray | None = None,
             whole: bool = False) -> list[int]:
        """The `n` held rows nearest `qvec` in its nearest IVF lists; with `allowed`, only
        those rows (a bitmap the server reads), in more lists (the allowed top 10 lie farther
        out); with `whole`, read whole (into `rows`, for the question's next reads) by the
        same statement."""
        import psycopg

        if self.centroids is None:
            raise IndexCorrupt(f"The index at {self.where} has no IVF lists; {REPUBLISH}.")
        held, size = self.held, self.size
        q = vector_text(qvec)
        share = 1.0 if allowed is None else np.count_nonzero(allowed) / max(size, 1)
        probed = lists.probed(self.centroids, qvec,
                              lists.widened(self.manifest.nprobe, share, self.centroids.ntotal))
        limit = math.ceil(n * self._widen)

        def nearest(conn: psycopg.Connection) -> list[int]:
            if allowed is not None:
                # get_bit numbers a byte's bits from its least significant; rows past this
                # generation's (a newer one's) are outside the bitmap, and not allowed.
                return [r for (r,) in conn.execute(
                    f"SELECT rowno FROM {self.schema}.vectors WHERE lst = ANY(%s) AND CASE "
                    "WHEN rowno < %s THEN get_bit(%s, rowno) = 1 ELSE false END "
                    "ORDER BY embedding <#> %s::vector, rowno LIMIT %s",
                    (probed, size, np.packbits(allowed, bitorder="little").tobytes(), q, n)
                ).fetchall()]
            if whole and limit <= READ_AHEAD_MAX:
                return self.rows.nearest(conn, self.schema, q, probed, limit,
                                         lambda r: r < size and bool(held[r]))
            return [r for (r,) in conn.execute(
                f"SELECT rowno FROM {self.schema}.vectors WHERE lst = ANY(%s) "
                "ORDER BY embedding <#> %s::vector, rowno LIMIT %s",
                (probed, q, limit)).fetchall()]

        try:
            found = read(self._pool, nearest)
        except psycopg.errors.UndefinedTable:
            raise self._dropped() from None
        except psycopg.Error as exc:
            raise failure(self.url, exc) from None
        return [r for r in found if r < size and held[r]][:n]

    # -- metadata -------------------------------------------------------------------------

    def read_ahead(self, rows: np.ndarray) -> None:
        """Read `rows` whole now (kept for the question's next reads), in one query."""
        self.rows.get([int(r) for r in rows])

    def passages(self, rows: list[int] | np.ndarray) -> list[Passage]:
        rows = [int(r) for r in rows]
        if not rows:
            return []
        ahead = self.rows.get(rows)
        if ahead is not None:
            return [ahead[r].passage for r in rows]
        found = {r[0]: Passage(*r[1:]) for r in self._query(
            "SELECT p.rowno, p.id, p.article_id, a.title, a.source, p.paragraph, p.text, "
            "a.outlet, a.date, a.url FROM {s}.passages p JOIN {s}.articles a "
            "ON a.code = p.code WHERE p.rowno = ANY(%s)", (rows,))}
        return [found[r] for r in rows]

    def row_context(self, rows: Sequence[int]) -> list[tuple[int, int, str]]:
        rows = [int(r) for r in rows]
        if not rows:
            return []
        ahead = self.rows.get(rows)
        if ahead is not None:
            return [ahead[r].context for r in rows]
        found = {r: (code, n, title) for r, code, n, title in self._query(
            "SELECT p.rowno, a.code, p.paragraph, a.title FROM {s}.passages p "
            "JOIN {s}.articles a ON a.code = p.code WHERE p.rowno = ANY(%s)", (rows,))}
        return [found[r] for r in rows]

    def groups_of(self, rows: Sequence[int]) -> dict[int, int]:
        rows = [int(r) for r in rows]
        if not self.has_copies or not rows:
            return {}
        ahead = self.rows.get(rows)
        if ahead is not None:
            return {r: row.group for r, row in ahead.items() if row.group is not None}
        return {r: int(self.groups[r]) for r in rows if self.groups[r] >= 0}

    def copies(self, groups: list[int]) -> dict[int, list[Copy]]:
        if not self.has_copies or not groups:
            return {}
        found: dict[int, list[Copy]] = {}
        # Each group's list was made once, in the folder's order, when published (a story
        # copied into thousands of pages costs one indexed lookup, as in a folder).
        for grp, *fields in self._query(
                "SELECT l.grp, a.id, a.source, a.title, a.outlet, a.date, a.url "
                "FROM {s}.copy_lists l JOIN {s}.articles a ON a.id = l.article_id "
                "AND {live} "
                "WHERE l.seq = {seq} AND l.grp = ANY(%s) ORDER BY l.grp, l.n",
                ([int(g) for g in groups],)):
            found.setdefault(grp, []).append(Copy(*fields))
        return found

    def row_articles(self) -> tuple[np.ndarray, list[tuple[str | None, str | None]]]:
        articles: list[tuple[str | None, str | None]] = []
        rows = np.zeros(len(self), np.int32)
        for date, outlet, held in self._query(  # one query: each article with its rows
                "SELECT a.date, a.outlet, array_remove(array_agg(p.rowno), NULL) "
                "FROM {s}.articles a LEFT JOIN {s}.passages p ON p.code = a.code "
                "WHERE {live} GROUP BY a.code ORDER BY a.code"):
            rows[np.asarray(held, np.int64)] = len(articles)
            articles.append((date, outlet))
        return rows, articles

    def articles(self) -> list[ArticleInfo]:
        return [ArticleInfo(*r) for r in self._query(
            "SELECT a.id, a.title, a.source, a.outlet, a.date, a.url, count(p.rowno)::int "
            "FROM {s}.articles a LEFT JOIN {s}.passages p ON p.code = a.code "
            "WHERE {live} "
            "GROUP BY a.id, a.title, a.source, a.outlet, a.date, a.url "
            "ORDER BY a.id COLLATE \"C\"")]

    def parsed_articles(self) -> dict[str, list[Article]]:
        if self.manifest.parser != parser_fingerprint():
            return {}
        paragraphs: dict[str, list[str]] = {}
        for article_id, text in self._query(
                "SELECT p.article_id, p.text FROM {s}.passages p JOIN {s}.articles a "
                "ON a.code = p.code WHERE {live} ORDER BY p.rowno"):
            paragraphs.setdefault(article_id, []).append(text)
        out: dict[str, list[Article]] = {}
        for r in self._query("SELECT id, title, source, outlet, date, url, author, sha256 "
                             "FROM {s}.articles a WHERE {live} "
                             "ORDER BY code"):
            out.setdefault(r[2], []).append(
                Article(*r, paragraphs=tuple(paragraphs.get(r[0], ()))))
        return out

    def made_by(self, embedder: Embedder) -> bool:
        return self.manifest.made_by(embedder.name, embedder.encoder, embedder.dimension,
                                     embedder.graph)

    def reusable(self, embedder: Embedder) -> dict[str, int]:
        if not self.made_by(embedder):
            return {}
        return {h: row for row, h in self._query(
            "SELECT p.rowno, p.hash FROM {s}.passages p JOIN {s}.articles a "
            "ON a.code = p.code WHERE {live}")}


def _padded(rows: list[int], n: int) -> np.ndarray:
    out = np.full((1, n), -1, np.int64)
    out[0, :len(rows)] = rows
    return out
