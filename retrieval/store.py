"""The on-disk index: FAISS vectors + SQLite passage metadata + BM25 + a manifest.

Every save writes a new generation of files beside the old ones and then atomically
replaces `manifest.json`, which names the generation in use. A crash at any point leaves
either the old index or the new one, never a mix; stale generations are removed after.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
import sqlite3
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.background import PROBES
from retrieval.corpus import Article, LoadReport, Passage, parser_fingerprint
from retrieval.dedup import copy_groups
from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing
from retrieval.postings import Postings
from retrieval.text import analyze, split_sentences

if TYPE_CHECKING:
    import faiss

    from retrieval.embed import Embedder

FORMAT_VERSION = 3  # 2: sentence vectors for quotes; 3: memory-mapped folders, IVF, encoder
MANIFEST = "manifest.json"
# The files of one generation: <kind>-<generation><suffix> ("" is a folder).
_FILE_KINDS = {"vectors": "", "meta": ".sqlite", "bm25": "", "sentences": "", "tokens": ""}
# Up to this many passages, dense search is exact (FAISS flat); above, an IVF index with 8-bit
# codes proposes ANN_DEPTH candidates and the Retriever re-scores them with the exact vectors,
# so its top 10 is exact whenever the exact top 10 is among them: nprobe is tuned at build time
# for that to hold IVF_RECALL of the time (bench/scale.py measures it with real questions).
EXACT_MAX = 50_000
ANN_DEPTH = 50  # candidates the Retriever takes from the ANN index (SearchSettings.candidates)
IVF_RECALL = 0.999
# Up to this many passages, each passage's token vectors are kept (int8, about 390 bytes a
# token: about 25 kB for a news paragraph) and the Retriever uses them to pick the quote;
# above, they would add tens of GB, and the quote is picked without them (docs/quality.md).
TOKENS_MAX = 100_000
_REBUILD = "run `byline index` to rebuild it"


@dataclass(frozen=True)
class Manifest:
    """What an index holds and how it was built."""

    format: int
    model: str
    dimension: int
    passages: int
    articles: int
    fingerprint: str
    corpus: str
    created: str
    generation: str
    encoder: str = "torch"  # how the model was run (see retrieval.embed.ENCODERS)
    ann: str = "flat"  # "flat" (exact) or "ivf<nlist>"
    nprobe: int = 0  # IVF lists searched per query (tuned at build time)
    # Mean evidence of generic off-topic probes against this corpus (see retrieval.background).
    background: dict[str, float] = field(default_factory=dict)
    probes: str = ""  # probes_key() of the probe vectors saved with the index ("" if none)
    parser: str = ""  # parser_fingerprint() of the code that cleaned the articles

    def files(self) -> dict[str, str]:
        g = self.generation
        return {kind: f"{kind}-{g}{suffix}" for kind, suffix in _FILE_KINDS.items()}


class RowFile:
    """A 2-D array in a .npy file, read row by row with positional reads.

    For the passage and sentence vectors (3.8 GB at a million passages): a query reads only
    its candidates' rows, and nothing stays mapped, so the process's memory does not grow with
    the rows queries have touched. (With a memory map the kernel also maps the cached pages
    around each touched row, and after a few hundred queries most of the file counts as the
    process's resident memory, madvise(MADV_RANDOM) or not.) Indexing returns ndarrays: by
    row, slice or array of rows (runs of consecutive rows are one read)."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version not in _NPY_HEADERS:
                raise ValueError(f"{path.name}: unsupported .npy version {version}")
            shape, fortran, dtype = _NPY_HEADERS[version](fh)
            self._start = fh.tell()
        if fortran or len(shape) != 2 or dtype.hasobject:
            raise ValueError(f"{path.name} is not a 2-D C-order array")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self._row = self.shape[1] * self.dtype.itemsize
        if path.stat().st_size != self._start + self.shape[0] * self._row:
            raise ValueError(f"{path.name} is truncated")
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        out = self[0:len(self)]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key: int | slice | np.ndarray | list[int]) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            row = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= row < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} rows")
            return self._read(row, 1)[0]
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(len(self))
            return self._read(start, max(stop - start, 0))
        rows = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key, np.int64)
        rows = np.where(rows < 0, rows + len(self), rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row out of range for {len(self)} rows")
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        if not len(rows):
            return out
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            out[a:b] = self._read(int(rows[a]), int(b - a))
        return out

    def _read(self, row: int, count: int) -> np.ndarray:
        out = np.empty((count, self.shape[1]), self.dtype)
        if count:
            got = os.preadv(self._fd, [memoryview(out).cast("B")], self._start + row * self._row)
            if got != out.nbytes:
                raise OSError(f"short read: {got} of {out.nbytes} bytes")
        return out


_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}


def _load_rows(path: Path) -> RowFile | np.ndarray:
    """Vectors read by row where the platform has positional reads, else memory-mapped."""
    if hasattr(os, "preadv"):
        return RowFile(path)
    return np.load(path, mmap_mode="r", allow_pickle=False)  # pragma: no cover - Windows


@dataclass(frozen=True)
class Sentences:
    """Every passage's sentences: their vectors and character spans, grouped by passage row.

    Passage `r` owns sentences `offsets[r]:offsets[r + 1]`; `spans[i]` is (start, end) of
    sentence i in its passage's text. Stored so quotes cost a dot product, not an encode."""

    vectors: np.ndarray | RowFile  # (n_sentences, dim) float16
    spans: np.ndarray  # (n_sentences, 2) int32
    offsets: np.ndarray  # (n_passages + 1,) int64

    def of(self, row: int) -> slice:
        return slice(int(self.offsets[row]), int(self.offsets[row + 1]))

    def save(self, folder: Path) -> None:
        folder.mkdir()
        for name in ("vectors", "spans", "offsets"):
            np.save(folder / f"{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> Sentences:
        """Vectors read by row, spans and offsets memory-mapped: a query reads only its
        candidates' sentences."""
        return cls(_load_rows(folder / "vectors.npy"),
                   *(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                     for name in ("spans", "offsets")))


@dataclass(frozen=True)
class Tokens:
    """Every passage's token vectors in context, int8 with a scale per token, grouped by
    passage row (rows `offsets[r]:offsets[r + 1]`); empty when the index is too large."""

    vectors: np.ndarray | RowFile  # (n_tokens, dim) int8
    scales: np.ndarray  # (n_tokens,) float32: vector = int8 row * scale
    offsets: np.ndarray  # (n_passages + 1,) int64

    def __len__(self) -> int:
        return int(self.offsets[-1]) if len(self.offsets) else 0

    def of(self, row: int) -> np.ndarray:
        """Passage `row`'s token vectors as float32 (unit length, to int8 precision)."""
        codes, scales = self.raw(row)
        return codes.astype(np.float32) * scales[:, None]

    def raw(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Passage `row`'s int8 token codes and their scales, as stored."""
        a, b = int(self.offsets[row]), int(self.offsets[row + 1])
        return np.asarray(self.vectors[a:b]), np.asarray(self.scales[a:b], np.float32)

    @classmethod
    def pack(cls, per_passage: list[np.ndarray | tuple[np.ndarray, np.ndarray]],
             dim: int) -> Tokens:
        """Pack each passage's float token vectors (quantised here) or (codes, scales) pair
        (taken as they are, so a re-index keeps unchanged passages' bytes)."""
        parts = [t if isinstance(t, tuple) else _quantise(t, dim) for t in per_passage]
        counts = np.array([len(s) for _, s in parts], dtype=np.int64)
        return cls(vectors=(np.concatenate([c for c, _ in parts]) if parts
                            else np.empty((0, dim), np.int8)).reshape(-1, dim),
                   scales=(np.concatenate([s for _, s in parts]) if parts
                           else np.empty(0, np.float32)).astype(np.float32),
                   offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    @classmethod
    def empty(cls, passages: int, dim: int) -> Tokens:
        return cls(np.empty((0, dim), np.int8), np.empty(0, np.float32),
                   np.zeros(passages + 1, np.int64))

    def save(self, folder: Path) -> None:
        folder.mkdir()
        for name in ("vectors", "scales", "offsets"):
            np.save(folder / f"{name}.npy", np.asarray(getattr(self, name)), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> Tokens:
        """Vectors read by row; scales and offsets memory-mapped."""
        return cls(_load_rows(folder / "vectors.npy"),
                   *(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                     for name in ("scales", "offsets")))


def _quantise(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes of the rows of `x` and one float32 scale per row (row = codes × scale)."""
    x = np.asarray(x, np.float32).reshape(-1, dim)
    scales = (np.maximum(np.abs(x).max(axis=1), 1e-12) / 127 if len(x)
              else np.empty(0, np.float32)).astype(np.float32)
    return np.rint(x / scales[:, None]).astype(np.int8), scales


@dataclass(frozen=True)
class ArticleInfo:
    """An article as listed by `byline sources`."""

    id: str
    title: str
    source: str
    outlet: str | None
    date: str | None
    url: str | None
    passages: int


@dataclass(frozen=True)
class Copy:
    """Another article holding a near-duplicate of a passage (a wire copy, an update)."""

    article_id: str
    source: str
    title: str
    outlet: str | None
    date: str | None
    url: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"source": self.source, "title": self.title, "outlet": self.outlet,
                "date": self.date, "url": self.url}


def corpus_fingerprint(articles: list[Article]) -> str:
    h = hashlib.sha256()
    for a in sorted(articles, key=lambda a: a.id):
        h.update(f"{a.id}\0{a.sha256}\0{len(a.paragraphs)}\n".encode())
    return h.hexdigest()[:16]


class Index:
    """Passages with their vectors, searchable densely (FAISS) and lexically (BM25)."""

    def __init__(self, manifest: Manifest, vectors: faiss.Index, postings: Postings,
                 db: sqlite3.Connection, sentences: Sentences,
                 passage_vectors: np.ndarray | RowFile | None = None,
                 tokens: Tokens | None = None) -> None:
        """`vectors` searches; `passage_vectors` (row -> float32 vector, read from disk by row
        when loaded) re-scores candidates exactly and lets a re-index reuse unchanged
        passages; `tokens` (None above TOKENS_MAX) help pick each passage's quote."""
        self.manifest = manifest
        self.vectors = vectors
        self.postings = postings
        self.sentences = sentences
        self.tokens = tokens if tokens is not None and len(tokens) else None
        self._db = db
        # Indexes saved before near-duplicates were detected have no `copies` table.
        self.has_copies = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                     "AND name = 'copies'").fetchone() is not None
        if passage_vectors is None:
            passage_vectors = vectors.reconstruct_n(0, vectors.ntotal)
        self.passage_vectors = passage_vectors

    def __len__(self) -> int:
        return self.manifest.passages

    probe_vectors: np.ndarray | None = None  # the background probes' question vectors

    def with_background(self, background: dict[str, float]) -> Index:
        """This index with its manifest's background evidence set (and its probe vectors
        kept, so a re-index need not encode the probes again)."""
        m = self.manifest
        probes = probes_key(m.model, m.encoder) if self.probe_vectors is not None else ""
        index = Index(replace(m, background=dict(background), probes=probes), self.vectors,
                      self.postings, self._db, self.sentences, self.passage_vectors,
                      self.tokens)
        index.probe_vectors = self.probe_vectors
        return index

    # -- building -------------------------------------------------------------------------

    @classmethod
    def build(cls, articles: list[Article], embedder: Embedder, corpus: str = "",
              progress: bool = True, previous: Index | None = None,
              exact_max: int = EXACT_MAX, tokens_max: int = TOKENS_MAX) -> Index:
        """Embed every passage of `articles` and build the in-memory index.

        With `previous` (an index built by the same model and encoder), passages whose text
        is unchanged reuse its vectors and only new or edited ones are embedded; the result
        equals a full build (each text's vectors depend on that text alone). Above
        `exact_max` passages, dense search goes through a tuned IVF index; up to
        `tokens_max`, token vectors are kept for picking quotes."""
        passages = [p for a in articles for p in a.passages()]
        keep_tokens = len(passages) <= tokens_max
        reuse = previous.reusable(embedder) if previous is not None else {}
        if keep_tokens and previous is not None and previous.tokens is None:
            reuse = {}  # its passages' tokens were not kept: embed them again
        before = [reuse.get(p.content_hash) for p in passages]  # row in `previous`, or None
        fresh = [i for i, row in enumerate(before) if row is None]
        dim = embedder.dimension
        vecs = np.empty((len(passages), dim), dtype=np.float32)
        per_passage: list[np.ndarray] = [np.empty((0, dim), np.float32)] * len(passages)
        token_vecs: list[np.ndarray | tuple[np.ndarray, np.ndarray]] = (
            [np.empty((0, dim), np.float32)] * len(passages))
        spans: list[np.ndarray] = [np.empty((0, 2), np.int32)] * len(passages)
        new_spans = [sentence_spans(passages[i].text) for i in fresh]
        for i, sp in zip(fresh, new_spans, strict=True):
            spans[i] = np.array(sp, np.int32).reshape(-1, 2)
        if fresh:
            new_vecs, new_sents, new_tokens = embedder.encode_passages(
                [_embed_text(passages[i]) for i in fresh], new_spans,
                progress=progress, label=f"Embedding {len(fresh)} passages",
                tokens=keep_tokens)
            vecs[fresh] = new_vecs
            counts = np.cumsum([0] + [len(spans[i]) for i in fresh])
            for j, i in enumerate(fresh):
                per_passage[i] = new_sents[counts[j]:counts[j + 1]]
                if new_tokens is not None:
                    token_vecs[i] = new_tokens[j]
        for i, row in enumerate(before):  # the same text: the same vectors and sentences
            if row is not None:
                own = previous.sentences.of(row)
                vecs[i] = previous.passage_vectors[row]
                per_passage[i] = np.asarray(previous.sentences.vectors[own], dtype=np.float32)
                spans[i] = np.asarray(previous.sentences.spans[own])
                if keep_tokens:
                    token_vecs[i] = previous.tokens.raw(row)
        sentence_vecs = (np.concatenate(per_passage) if passages
                         else np.empty((0, dim), np.float32))
        tokens = Tokens.pack(token_vecs, dim) if keep_tokens else None
        index = cls.from_vectors(articles, passages, vecs, _sentences(spans, sentence_vecs),
                                 model=embedder.name, encoder=embedder.encoder, corpus=corpus,
                                 exact_max=exact_max, tokens=tokens)
        index.reused = len(passages) - len(fresh)
        if previous is not None and previous.made_by(embedder):
            index.probe_vectors = previous.probe_vectors
        return index

    @classmethod
    def from_vectors(cls, articles: list[Article], passages: list[Passage], vecs: np.ndarray,
                     sentences: Sentences, model: str, encoder: str, corpus: str = "",
                     exact_max: int = EXACT_MAX, tokens: Tokens | None = None) -> Index:
        """The index of already-embedded passages (`build` embeds, then calls this)."""
        vectors, ann, nprobe = _build_ann(vecs, sentences, exact_max)
        manifest = Manifest(
            format=FORMAT_VERSION, model=model, encoder=encoder,
            dimension=int(vecs.shape[1]), passages=len(passages), articles=len(articles),
            fingerprint=corpus_fingerprint(articles), corpus=corpus,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            generation=secrets.token_hex(4), ann=ann, nprobe=nprobe, parser=parser_fingerprint(),
        )
        db = _memory_db(articles, passages,
                        copy_groups([p.text for p in passages], [p.article_id for p in passages]))
        return cls(manifest, vectors, _build_postings(passages), db, sentences, vecs, tokens)

    reused = 0  # passages whose vectors a build took from `previous`
    report: LoadReport | None = None  # what `index_corpus` read of the folder

    def made_by(self, embedder: Embedder) -> bool:
        """Whether `embedder` (model and encoder) made this index's vectors."""
        m = self.manifest
        return (m.model, m.encoder, m.dimension) == (embedder.name, embedder.encoder,
                                                     embedder.dimension)

    def reusable(self, embedder: Embedder) -> dict[str, int]:
        """content hash -> row of passages whose vectors `embedder` would reproduce."""
        if not self.made_by(embedder):
            return {}
        return {h: row for row, h in self._db.execute("SELECT row, hash FROM passages")}

    # -- persistence ----------------------------------------------------------------------

    def save(self, index_dir: str | Path) -> None:
        """Write this index into `index_dir` atomically (new generation, then manifest)."""
        import faiss

        root = Path(index_dir)
        root.mkdir(parents=True, exist_ok=True)
        files = self.manifest.files()
        tmp = root / f".tmp-{self.manifest.generation}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            folder = tmp / files["vectors"]
            folder.mkdir()
            np.save(folder / "passages.npy", np.asarray(self.passage_vectors, np.float32),
                    allow_pickle=False)
            if self.manifest.ann != "flat":
                faiss.write_index(self.vectors, str(folder / "ann.faiss"))
            if self.manifest.probes:
                np.save(folder / "probes.npy", self.probe_vectors, allow_pickle=False)
            disk = sqlite3.connect(tmp / files["meta"])
            with disk:
                self._db.backup(disk)
            disk.close()
            self.postings.save(tmp / files["bm25"])
            self.sentences.save(tmp / files["sentences"])
            (self.tokens or Tokens.empty(len(self), self.manifest.dimension)).save(
                tmp / files["tokens"])
            for name in files.values():
                _fsync_tree(tmp / name)
                os.replace(tmp / name, root / name)
            _write_atomic(root / MANIFEST, json.dumps(asdict(self.manifest), indent=2) + "\n")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_stale(root, keep=set(files.values()) | {MANIFEST})

    @classmethod
    def load(cls, index_dir: str | Path, model: str | None = None) -> Index:
        """Open the index in `index_dir`; `model`, if given, must be the one it was built with."""
        import faiss

        root = Path(index_dir)
        manifest = read_manifest(root)
        if model is not None and manifest.model != model:
            raise IndexMismatch(
                f"The index at {root} was built with model {manifest.model!r} but Byline is set "
                f"to use {model!r}; {_REBUILD} (or set BYLINE_MODEL={manifest.model})."
            )
        files = manifest.files()
        try:
            folder = root / files["vectors"]
            passage_vectors = _load_rows(folder / "passages.npy")
            if manifest.ann == "flat":
                vectors = faiss.IndexFlatIP(manifest.dimension)
                vectors.add(np.ascontiguousarray(passage_vectors, dtype=np.float32))
            else:
                vectors = faiss.read_index(str(folder / "ann.faiss"), _mmap_flag(faiss))
                faiss.extract_index_ivf(vectors).nprobe = manifest.nprobe
            postings = Postings.load(root / files["bm25"])
            db = _open_db(root / files["meta"])
            rows = db.execute("SELECT count(*) FROM passages").fetchone()[0]
            sentences = Sentences.load(root / files["sentences"])
            # An index saved before token vectors were kept has none: no re-ranking.
            tokens = (Tokens.load(root / files["tokens"])
                      if (root / files["tokens"]).is_dir() else None)
        except (RuntimeError, OSError, ValueError, KeyError, sqlite3.DatabaseError) as exc:
            raise IndexCorrupt(
                f"The index at {root} is damaged ({type(exc).__name__}); {_REBUILD}."
            ) from None
        if vectors.ntotal != manifest.passages or rows != manifest.passages:
            raise IndexCorrupt(
                f"The index at {root} is inconsistent ({vectors.ntotal} vectors, {rows} "
                f"passages, manifest says {manifest.passages}); {_REBUILD}."
            )
        if (vectors.d != manifest.dimension or len(sentences.offsets) != rows + 1
                or passage_vectors.shape != (rows, manifest.dimension)
                or sentences.vectors.shape[1:] != (manifest.dimension,)
                or (tokens is not None
                    and (len(tokens.offsets) != rows + 1
                         or tokens.vectors.shape != (len(tokens.scales), manifest.dimension)
                         or len(tokens.scales) != len(tokens)))):
            raise IndexCorrupt(f"The index at {root} has vectors of the wrong size; {_REBUILD}.")
        index = cls(manifest, vectors, postings, db, sentences, passage_vectors, tokens)
        index.probe_vectors = _load_probes(folder / "probes.npy", manifest)
        return index

    # -- reading --------------------------------------------------------------------------

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
        (undated last) then source."""
        if not self.has_copies or not groups:
            return {}
        marks = ",".join("?" * len(groups))
        found: dict[int, list[Copy]] = {}
        for grp, *fields in self._db.execute(
                f"SELECT DISTINCT c.grp, a.id, a.source, a.title, a.outlet, a.date, a.url "
                f"FROM copies c JOIN passages p ON p.row = c.row "
                f"JOIN articles a ON a.id = p.article_id WHERE c.grp IN ({marks}) "
                f"ORDER BY c.grp, a.date IS NULL, a.date, a.source", [int(g) for g in groups]):
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

    def all_passages(self) -> list[Passage]:
        return self.passages(range(len(self)))

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


def probes_key(model: str, encoder: str) -> str:
    """Identifies the probe vectors a model and encoder make of today's PROBES."""
    text = "\n".join([model, encoder, *PROBES])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _load_probes(path: Path, manifest: Manifest) -> np.ndarray | None:
    """The saved probe vectors, if they are today's probes' (else they are re-encoded)."""
    if not manifest.probes or manifest.probes != probes_key(manifest.model, manifest.encoder):
        return None
    try:
        vecs = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return vecs if vecs.shape == (len(PROBES), manifest.dimension) else None


def _mmap_flag(faiss: object) -> int:
    """Map the ANN index's file in place (zero copy, no load time). IO_FLAG_MMAP_IFC (FAISS
    1.11+) keeps the inverted lists as plain arrays over the map; the older IO_FLAG_MMAP goes
    through a slower lists reader (12x slower searches measured at 100k passages)."""
    return getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)


def read_manifest(root: Path) -> Manifest:
    """Read and validate `manifest.json`; one clear error for every way it can be wrong."""
    path = root / MANIFEST
    if not path.exists():
        kinds = tuple(f"{kind}-" for kind in _FILE_KINDS)
        if root.is_dir() and any(p.name.startswith(kinds) for p in root.iterdir()):
            # Not "missing": an index is there without its manifest. Nothing may build over
            # it unasked (`ask` builds a missing index from the default folder).
            raise IndexCorrupt(f"The index at {root} has lost its {MANIFEST}; {_REBUILD}.")
        raise IndexMissing(f"No index at {root}; run `byline index` to build one.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("manifest is not an object")
        fmt = data.get("format")
        if fmt != FORMAT_VERSION:
            raise IndexMismatch(
                f"The index at {root} has format {fmt!r}, this Byline reads format "
                f"{FORMAT_VERSION}; {_REBUILD}."
            )
        return Manifest(**data)
    except (ValueError, TypeError, UnicodeDecodeError, OSError):
        raise IndexCorrupt(f"The index manifest {path} is unreadable; {_REBUILD}.") from None


def _embed_text(p: Passage) -> str:
    return p.text


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, in order."""
    spans, pos = [], 0
    for sentence in split_sentences(text) or [text]:
        start = text.find(sentence, pos)
        if start < 0:  # cannot happen for split_sentences' output; be safe anyway
            return [(0, len(text))]
        spans.append((start, start + len(sentence)))
        pos = start + len(sentence)
    return spans


def _sentences(spans: list[np.ndarray], sentence_vecs: np.ndarray) -> Sentences:
    """Pack every passage's sentence vectors and (n, 2) spans, grouped by passage row."""
    counts = np.array([len(sp) for sp in spans], dtype=np.int64)
    return Sentences(
        vectors=np.asarray(sentence_vecs, dtype=np.float16).reshape(-1, sentence_vecs.shape[1]),
        spans=(np.concatenate(spans).astype(np.int32) if spans
               else np.empty((0, 2), np.int32)),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )


def _build_ann(vecs: np.ndarray, sentences: Sentences, exact_max: int
               ) -> tuple[faiss.Index, str, int]:
    """Exact search up to `exact_max` passages; above, IVF with nprobe tuned for recall."""
    import faiss

    n, dim = vecs.shape
    if n <= exact_max:
        flat = faiss.IndexFlatIP(dim)
        flat.add(vecs)
        return flat, "flat", 0
    nlist = min(int(2 ** round(math.log2(4 * math.sqrt(n)))), max(1, n // 39))
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                        faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = vecs[np.sort(rng.choice(n, size=min(n, nlist * 64), replace=False))]
    ivf.train(sample)
    for start in range(0, n, 100_000):
        ivf.add(vecs[start:start + 100_000])
    ivf.nprobe = _tune_nprobe(ivf, vecs, sentences, rng)
    return ivf, f"ivf{nlist}", int(ivf.nprobe)


def _tune_nprobe(ivf: faiss.IndexIVF, vecs: np.ndarray, sentences: Sentences,
                 rng: np.random.Generator, k: int = 10, depth: int = ANN_DEPTH) -> int:
    """Smallest nprobe whose top `depth` holds IVF_RECALL of the exact top 10, for
    question-like queries: random sentences of the corpus itself. Those sit closer to their
    passages than real questions do, hence the strict target: at a million passages it
    chose nprobe 128 of 4096 lists, where SQuAD questions measured 0.997 (bench/scale.py)."""
    import faiss

    picks = rng.choice(len(sentences.vectors), size=min(500, len(sentences.vectors)),
                       replace=False)
    queries = np.asarray(sentences.vectors[np.sort(picks)], dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    # FAISS's blocked exact search: a (500, n) score matrix and its argsort would take
    # gigabytes and minutes at a million passages.
    _, exact = faiss.knn(queries, np.ascontiguousarray(vecs, dtype=np.float32), k,
                         metric=faiss.METRIC_INNER_PRODUCT)
    for nprobe in (4, 8, 16, 32, 64, 128, 256):
        ivf.nprobe = min(nprobe, ivf.nlist)
        _, found = ivf.search(queries, depth)
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, found, strict=True)])
        if recall >= IVF_RECALL or nprobe >= ivf.nlist:
            break
    return int(ivf.nprobe)


def _build_postings(passages: list[Passage]) -> Postings:
    return Postings.build([analyze(p.text) for p in passages])


_SCHEMA = """
CREATE TABLE articles (id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL,
    outlet TEXT, date TEXT, url TEXT, author TEXT, sha256 TEXT NOT NULL);
CREATE TABLE passages (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
    article_id TEXT NOT NULL REFERENCES articles(id), paragraph INTEGER NOT NULL,
    text TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX passages_article ON passages(article_id);
CREATE TABLE copies (row INTEGER PRIMARY KEY REFERENCES passages(row), grp INTEGER NOT NULL);
CREATE INDEX copies_grp ON copies(grp);
"""


def _memory_db(articles: list[Article], passages: list[Passage],
               groups: np.ndarray | None = None) -> sqlite3.Connection:
    """The metadata tables; `copies` holds the rows that have near-duplicates in other
    articles, with their group (an index saved before it existed has no such table)."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(_SCHEMA)
    with db:
        db.executemany("INSERT INTO articles VALUES (?,?,?,?,?,?,?,?)", [
            (a.id, a.title, a.source, a.outlet, a.date, a.url, a.author, a.sha256)
            for a in articles])
        db.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?)", [
            (row, p.id, p.article_id, p.paragraph, p.text, p.content_hash)
            for row, p in enumerate(passages)])
        if groups is not None:
            grouped = np.flatnonzero(groups >= 0)
            db.executemany("INSERT INTO copies VALUES (?,?)",
                           zip(grouped.tolist(), groups[grouped].tolist(), strict=True))
    return db


def _open_db(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise OSError(f"{path.name} missing")
    # Read-only, shared across threads: the bot searches from worker threads.
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    db.execute("SELECT 1 FROM articles LIMIT 1")
    return db


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_tree(path: Path) -> None:
    for f in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        with f.open("rb") as fh:
            os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale(root: Path, keep: set[str]) -> None:
    """Delete files of older generations (only ours: the prefixes Manifest.files uses)."""
    prefixes = tuple(f"{kind}-" for kind in _FILE_KINDS)
    for entry in root.iterdir():
        if entry.name in keep or not entry.name.startswith(prefixes):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)

