"""The FolderIndex: a generation's passages, vectors, postings and tables, opened for reading."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.corpus import Article, LoadReport, Passage, parser_fingerprint
from retrieval.errors import IndexCorrupt, IndexMismatch, StoreError, describe_os_error
from retrieval.model.probes import PROBES, probes_key
from retrieval.store.ann import EXACT_MAX, build_ann, flat, read_ivf
from retrieval.store.files import save_array
from retrieval.store.folder import generations
from retrieval.store.folder.parts import PendingTokens, Sentences, Tokens
from retrieval.store.folder.postings import Postings
from retrieval.store.folder.rows import MAP_MAX, RowFile, load_rows
from retrieval.store.manifest import FORMAT_VERSION, REBUILD, Manifest, read_manifest
from retrieval.store.tables import ArticleInfo, Copy, memory_db, open_db, write_db
from retrieval.text import analyze

if TYPE_CHECKING:
    import faiss

    from retrieval.model.embed import Embedder

# Up to this many passages, each passage's token vectors are kept (int8, about 390 bytes a
# token: about 25 kB for a news paragraph) and the Retriever uses them to pick the quote;
# above, they would add tens of GB, and the quote is picked without them (docs/quality.md).
TOKENS_MAX = 100_000
_READ_ERRORS = (RuntimeError, OSError, ValueError, KeyError, IndexError, sqlite3.DatabaseError)


def corpus_fingerprint(articles: list[Article]) -> str:
    h = hashlib.sha256()
    for a in sorted(articles, key=lambda a: a.id):
        h.update(f"{a.id}\0{a.sha256}\0{len(a.paragraphs)}\n".encode())
    return h.hexdigest()[:16]


class FolderIndex:
    """Passages with their vectors, searchable densely (FAISS) and lexically (BM25)."""

    def __init__(self, manifest: Manifest, vectors: faiss.Index, postings: Postings,
                 db: sqlite3.Connection, sentences: Sentences,
                 passage_vectors: np.ndarray | RowFile | None = None,
                 tokens: Tokens | PendingTokens | None = None) -> None:
        """`vectors` searches; `passage_vectors` (row -> float32 vector, read from disk by row
        when loaded) re-scores candidates exactly and lets a re-index reuse unchanged
        passages; `tokens` (None above TOKENS_MAX) help pick each passage's quote."""
        self.manifest = manifest
        self.vectors = vectors
        self.postings = postings
        self.sentences = sentences
        self.tokens = tokens if tokens is not None and len(tokens) else None
        self._db = db
        # Indexes assembled without near-duplicate groups have an empty `copies` table.
        # (An index saved before copy_lists existed lists no copies until it is re-indexed.)
        self.has_copies = (db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                      "AND name = 'copy_lists'").fetchone() is not None
                           and db.execute("SELECT 1 FROM copies LIMIT 1").fetchone() is not None)
        if passage_vectors is None:
            passage_vectors = vectors.reconstruct_n(0, vectors.ntotal)
        self.passage_vectors = passage_vectors

    def __len__(self) -> int:
        return self.manifest.passages

    probe_vectors: np.ndarray | None = None  # the background probes' question vectors
    reused = 0  # passages whose vectors a build took from the previous index
    report: LoadReport | None = None  # what `index_corpus` read of the folder
    root: Path | None = None  # the folder it was loaded from
    # Dense search runs on the asking thread. An IVF search handed to a second thread beside
    # BM25 saved 0.3 ms of a question's 10 at a million passages on an idle machine, and cost
    # 1.8 ms (p99: 26 ms) with one other busy process on the 2 cores.
    concurrent_reads = False

    @property
    def location(self) -> Path | None:
        return self.root


    @property
    def db(self) -> sqlite3.Connection:
        """The article and copy tables (SQLite)."""
        return self._db

    def damaged(self, part: str) -> IndexCorrupt:
        """The error for a file of this index found holding values that are not numbers."""
        where = f"at {self.root} " if self.root else ""
        return IndexCorrupt(f"The index {where}is damaged: {self.manifest.folder}/{part} "
                            f"holds values that are not numbers; {REBUILD}.")

    def with_background(self, background: dict[str, float],
                        probe_vectors: np.ndarray | None = None) -> FolderIndex:
        """This index with its manifest's background evidence set, and the probes' vectors
        it was measured with kept (so a re-index need not encode the probes again)."""
        if probe_vectors is None:
            probe_vectors = self.probe_vectors
        m = self.manifest
        probes = probes_key(m.model, m.encoder) if probe_vectors is not None else ""
        index = FolderIndex(replace(m, background=dict(background), probes=probes), self.vectors,
                      self.postings, self._db, self.sentences, self.passage_vectors,
                      self.tokens)
        index.probe_vectors = probe_vectors
        index.reused, index.report = self.reused, self.report
        return index

    @classmethod
    def from_vectors(cls, articles: list[Article], passages: list[Passage], vecs: np.ndarray,
                     sentences: Sentences, model: str, encoder: str, corpus: str = "",
                     exact_max: int = EXACT_MAX, tokens: Tokens | PendingTokens | None = None,
                     groups: np.ndarray | None = None, graph: str = "", kernel: str = ""
                     ) -> FolderIndex:
        """The index of already-embedded passages: their ANN and BM25 structures and tables.
        `groups[row]` is each passage's near-duplicate group (-1: none; see retrieval.build.dedup);
        `graph` and `kernel` say how and where the vectors were encoded (Embedder's)."""
        vecs = np.asarray(vecs, np.float32)
        if not np.isfinite(vecs).all():
            raise ValueError("passage vectors must be finite")
        vectors, ann, nprobe = build_ann(vecs, sentences, exact_max)
        manifest = Manifest(
            format=FORMAT_VERSION, model=model, encoder=encoder,
            dimension=int(vecs.shape[1]), passages=len(passages), articles=len(articles),
            fingerprint=corpus_fingerprint(articles), corpus=corpus,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            generation=secrets.token_hex(4), ann=ann, nprobe=nprobe, parser=parser_fingerprint(),
            graph=graph, kernel=kernel,
        )
        db = memory_db(articles, passages, groups)
        postings = Postings.build([analyze(p.text) for p in passages])
        return cls(manifest, vectors, postings, db, sentences, vecs, tokens)

    def made_by(self, embedder: Embedder) -> bool:
        """Whether `embedder` (model and encoder) made this index's vectors."""
        return self.manifest.made_by(embedder.name, embedder.encoder, embedder.dimension,
                                     embedder.graph)

    def reusable(self, embedder: Embedder) -> dict[str, int]:
        """content hash -> row of passages whose vectors `embedder` would reproduce."""
        if not self.made_by(embedder):
            return {}
        return {h: row for row, h in self._db.execute("SELECT row, hash FROM passages")}

    # -- persistence ----------------------------------------------------------------------

    def save(self, index_dir: str | Path) -> None:
        """Publish this index as the new generation in `index_dir` (see store.generations);
        the manifest it was published with, file checksums included, becomes its own."""
        self.manifest = generations.publish(Path(index_dir), self.manifest, self._write)
        if isinstance(self.tokens, PendingTokens):  # read back as saved, not packed in memory
            self.tokens = Tokens.load(Path(index_dir) / self.manifest.folder / "tokens",
                                      len(self), self.manifest.dimension)

    def _write(self, folder: Path) -> None:
        """Every file of this generation, into `folder`."""
        import faiss

        vectors = folder / "vectors"
        vectors.mkdir()
        save_array(vectors / "passages.npy", np.asarray(self.passage_vectors, np.float32))
        if self.manifest.ann != "flat":
            # Through Python's writes, so a full disk is an OSError (ENOSPC), not a
            # RuntimeError from inside FAISS.
            with (vectors / "ann.faiss").open("wb") as fh:
                faiss.write_index(self.vectors, faiss.PyCallbackIOWriter(fh.write))
        if self.manifest.probes:
            save_array(vectors / "probes.npy", self.probe_vectors)
        write_db(self._db, folder / "meta.sqlite")
        self.postings.save(folder / "bm25")
        self.sentences.save(folder / "sentences")
        (self.tokens or Tokens.empty(len(self), self.manifest.dimension)).save(
            folder / "tokens")

    @classmethod
    def load(cls, index_dir: str | Path, model: str | None = None,
             verify: bool | None = None) -> FolderIndex:
        """Open the index in `index_dir`; `model`, if given, must be the one it was built with.

        Files are checked against the manifest first: sizes always, content hashes when
        `verify` is True, or by default for indexes up to VERIFY_MAX bytes. A save that
        replaces the generation while this load reads it makes the load start again."""
        root = Path(index_dir)
        for attempt in range(3):
            manifest = read_manifest(root)
            if model is not None and manifest.model != model:
                raise IndexMismatch(
                    f"The index at {root} was built with model {manifest.model!r} but Byline "
                    f"is set to use {model!r}; {REBUILD} (or set BYLINE_MODEL={manifest.model})."
                )
            try:
                generations.verify(root, manifest, verify)
                return cls._open(root, manifest)
            except IndexCorrupt:
                if attempt == 2 or _generation(root) == manifest.generation:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _open(cls, root: Path, manifest: Manifest) -> FolderIndex:
        folder = root / manifest.folder
        n, dim = manifest.passages, manifest.dimension
        part = "manifest.json"
        try:
            part = "vectors/passages.npy"
            passage_vectors = load_rows(folder / part, MAP_MAX)
            if passage_vectors.shape != (n, dim):
                raise ValueError("wrong shape")
            if manifest.ann == "flat":
                vectors = flat(np.asarray(passage_vectors, np.float32))
            else:
                part = "vectors/ann.faiss"
                vectors = read_ivf(str(folder / part), manifest.nprobe)
                if vectors.ntotal != n or vectors.d != dim:
                    raise ValueError("wrong size")
            part = "bm25"
            postings = Postings.load(folder / part)
            if postings.passages != n:
                raise ValueError("postings of another number of passages")
            part = "meta.sqlite"
            db = open_db(folder / part)
            if db.execute("SELECT count(*) FROM passages").fetchone()[0] != n:
                raise ValueError("wrong number of passages")
            part = "sentences"
            sentences = Sentences.load(folder / part, n, dim)
            part = "tokens"
            tokens = Tokens.load(folder / part, n, dim)
            part = "vectors/probes.npy"
            probe_vectors = _load_probes(folder / part, manifest)
        except PermissionError:
            raise StoreError(f"Cannot read the index at {root}: {manifest.folder}/{part}: "
                             "permission denied.") from None
        except _READ_ERRORS as exc:
            reason = describe_os_error(exc) if isinstance(exc, OSError) else type(exc).__name__
            raise IndexCorrupt(f"The index at {root} is damaged: {manifest.folder}/{part} "
                               f"cannot be read ({reason}); {REBUILD}.") from None
        index = cls(manifest, vectors, postings, db, sentences, passage_vectors, tokens)
        index.probe_vectors = probe_vectors
        index.root = root
        return index

    # -- reading --------------------------------------------------------------------------

    def dense_search(self, qvec: np.ndarray, n: int,
                     allowed: np.ndarray | None = None) -> np.ndarray:
        """The (1, n) rows FAISS proposes for `qvec` among the `allowed` rows (-1 pads)."""
        from retrieval.store.subset import dense_candidates

        return dense_candidates(self, qvec, n, allowed)

    def read_ahead(self, rows: np.ndarray) -> None:
        """Nothing: a row is read from this machine's page cache when it is needed."""

    def passages(self, rows: list[int] | np.ndarray) -> list[Passage]:
        """The passages stored at these FAISS rows, in the same order."""
        rows = [int(r) for r in rows]
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = {r[0]: Passage(*r[1:]) for r in self._db.execute(
            f"SELECT p.row, p.id, p.article_id, a.title, a.source, p.paragraph, p.text, "
            f"a.outlet, a.date, a.url FROM passages p JOIN articles a ON a.id = p.article_id "
            f"WHERE p.row IN ({marks})", rows)}
        return [found[r] for r in rows]

    def row_context(self, rows: Sequence[int]) -> list[tuple[int, int, str]]:
        """(article code, paragraph number, headline) of each of `rows`; rows of one article
        are consecutive, so row - 1 is the previous paragraph when the number is above 1."""
        rows = [int(r) for r in rows]
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = {r: (code, n, title) for r, code, n, title in self._db.execute(
            f"SELECT p.row, a.rowid, p.paragraph, a.title FROM passages p "
            f"JOIN articles a ON a.id = p.article_id WHERE p.row IN ({marks})", rows)}
        return [found[r] for r in rows]

    def groups_of(self, rows: Sequence[int]) -> dict[int, int]:
        """row -> near-duplicate group, for those of `rows` that have copies elsewhere."""
        rows = [int(r) for r in rows]
        if not self.has_copies or not rows:
            return {}
        marks = ",".join("?" * len(rows))
        return dict(self._db.execute(f"SELECT row, grp FROM copies WHERE row IN ({marks})",
                                     rows))

    def copies(self, groups: list[int]) -> dict[int, list[Copy]]:
        """group -> the articles holding its passages, one entry per article, by date
        (undated last) then source: the first MAX_COPIES of them (tables.copy_lists)."""
        if not self.has_copies or not groups:
            return {}
        marks = ",".join("?" * len(groups))
        found: dict[int, list[Copy]] = {}
        for grp, *fields in self._db.execute(
                f"SELECT l.grp, a.id, a.source, a.title, a.outlet, a.date, a.url "
                f"FROM copy_lists l JOIN articles a ON a.id = l.article_id "
                f"WHERE l.grp IN ({marks}) ORDER BY l.grp, l.n", [int(g) for g in groups]):
            found.setdefault(grp, []).append(Copy(*fields))
        return found

    def row_articles(self) -> tuple[np.ndarray, list[tuple[str | None, str | None]]]:
        """Each row's article as a number (int32), and each article's (date, outlet) by
        number: what filtering by date and outlet needs, read in two queries."""
        articles: list[tuple[str | None, str | None]] = []
        number: dict[str, int] = {}
        for article_id, date, outlet in self._db.execute(
                "SELECT id, date, outlet FROM articles ORDER BY rowid"):
            number[article_id] = len(articles)
            articles.append((date, outlet))
        cursor = self._db.execute("SELECT article_id FROM passages ORDER BY row")
        rows = np.fromiter((number[a] for (a,) in cursor), np.int32, count=len(self))
        return rows, articles

    def parsed_articles(self) -> dict[str, list[Article]]:
        """source path -> the articles stored from that file, when the same parser cleaned
        them (for `load_corpus(known=...)`); empty when the reading or cleaning rules have
        changed since."""
        if self.manifest.parser != parser_fingerprint():
            return {}
        paragraphs: dict[str, list[str]] = {}
        for article_id, text in self._db.execute(
                "SELECT article_id, text FROM passages ORDER BY row"):
            paragraphs.setdefault(article_id, []).append(text)
        out: dict[str, list[Article]] = {}
        for r in self._db.execute("SELECT id, title, source, outlet, date, url, author, sha256 "
                                  "FROM articles ORDER BY rowid"):
            out.setdefault(r[2], []).append(
                Article(*r, paragraphs=tuple(paragraphs.get(r[0], ()))))
        return out

    def articles(self) -> list[ArticleInfo]:
        """Articles in the index with their passage counts, in id order."""
        return [ArticleInfo(*r) for r in self._db.execute(
            "SELECT a.id, a.title, a.source, a.outlet, a.date, a.url, count(p.row) "
            "FROM articles a LEFT JOIN passages p ON p.article_id = a.id "
            "GROUP BY a.id ORDER BY a.id")]



def _load_probes(path: Path, manifest: Manifest) -> np.ndarray | None:
    """The saved probe vectors, if they are today's probes' (else they are re-encoded)."""
    if not manifest.probes or manifest.probes != probes_key(manifest.model, manifest.encoder):
        return None
    vecs = np.load(path, allow_pickle=False)
    if vecs.shape != (len(PROBES), manifest.dimension) or not np.isfinite(vecs).all():
        raise ValueError("probe vectors of the wrong shape or not finite")
    return vecs


def _generation(root: Path) -> str:
    """The generation the manifest names now ("" if it cannot be read)."""
    try:
        return read_manifest(root).generation
    except Exception:
        return ""
