"""bench/scale.py's index when it is too large to hold in memory (ten million passages):
the same recombined corpus, written to disk a chunk at a time in the folder store's layout,
then published as one generation.

What differs from `scale.build`: passages and sentence vectors go straight into
memory-mapped files; BM25 is counted a chunk at a time (`PostingsWriter`, bit for bit what
`Postings.build` makes) from each real sentence's analysed terms, analysed once (a passage's
terms are its sentences' terms one after another, checked on a sample); SQLite is filled
in place; near-duplicate groups are not computed (the `copies` table stays empty, as in an
index assembled without them). The IVF index, its nprobe tuning, the background evidence
and the publish are the product's own (`build_ann`, `calibrated`, `generations.publish`).
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.scale import (
    PER_ARTICLE,
    Pool,
    Real,
    _offsets,
    _pool,
    _say,
    _synthetic_spans,
    calibrate,
    synthetic_texts,
    synthetic_vectors,
)
from retrieval.corpus import parser_fingerprint
from retrieval.model.embed import Embedder
from retrieval.store.ann import EXACT_MAX, build_ann
from retrieval.store.files import save_array
from retrieval.store.folder import generations
from retrieval.store.folder.index import FolderIndex
from retrieval.store.folder.parts import Sentences, Tokens
from retrieval.store.folder.postings import Postings, PostingsWriter
from retrieval.store.folder.rows import load_rows
from retrieval.store.manifest import FORMAT_VERSION, Manifest
from retrieval.store.tables import empty_db, open_db
from retrieval.text import analyze

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

CHUNK = 250_000  # passages generated and written at a time (a multiple of PER_ARTICLE)


class _Terms:
    """Each pool sentence's BM25 term ids (analysed once), as one flat array with offsets."""

    def __init__(self, pool: Pool, writer: PostingsWriter) -> None:
        per = [writer.ids(analyze(t)) for t in pool.texts]
        self.empty = int(writer.ids(["\0"])[0])  # as Postings.build: a passage with no terms
        self.counts = np.array([len(p) for p in per], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.ids = np.concatenate(per) if per else np.zeros(0, np.int64)

    def of(self, picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(term ids of each passage, its sentences' one after another; terms per passage)."""
        rows = picks[picks >= 0]  # row-major: each passage's sentences in order
        counts = self.counts[rows]
        at = np.repeat(self.starts[rows] - np.cumsum(counts) + counts, counts) + np.arange(
            int(counts.sum()))
        lengths = np.add.reduceat(counts, np.cumsum((picks >= 0).sum(1)) - (picks >= 0).sum(1))
        ids = self.ids[at]
        none = np.flatnonzero(lengths == 0)  # only stopwords in all its sentences
        if len(none):
            ids = np.insert(ids, (np.cumsum(lengths) - lengths)[none], self.empty)
            lengths[none] = 1
        return ids, lengths


def _check_terms(terms: _Terms, writer: PostingsWriter, texts: list[str], picks: np.ndarray,
                 sample: int = 2000) -> None:
    """A passage's terms from its sentences must be those of analysing its text."""
    ids, lengths = terms.of(picks[:sample])
    got = np.split(ids, np.cumsum(lengths)[:-1])
    for text, have in zip(texts[:sample], got, strict=True):
        if not np.array_equal(writer.ids(analyze(text)), have):
            raise AssertionError(f"terms of a joined passage differ: {text[:80]!r}")


def _articles(db: sqlite3.Connection, fingerprint: Hash, first_row: int, texts: list[str],
              titles: list[str]) -> int:
    """Insert the articles (PER_ARTICLE passages each) and passages of one chunk, and add
    them to the corpus fingerprint (`corpus_fingerprint`'s, whose id order is this order)."""
    articles, passages = [], []
    for i in range(0, len(texts), PER_ARTICLE):
        group = (first_row + i) // PER_ARTICLE
        aid, title = f"bench-{group:07d}", titles[i]
        paragraphs = texts[i:i + PER_ARTICLE]
        articles.append((aid, title, f"squad:{title}", None, None, None, None, ""))
        fingerprint.update(f"{aid}\0\0{len(paragraphs)}\n".encode())
        passages += [(first_row + i + j, f"{aid}#{j + 1}", aid, j + 1, text,
                      hashlib.sha256(text.encode("utf-8")).hexdigest()[:16])
                     for j, text in enumerate(paragraphs)]
    with db:
        db.executemany("INSERT INTO articles VALUES (?,?,?,?,?,?,?,?)", articles)
        db.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?)", passages)
    return len(articles)


def build(n: int, embedder: Embedder, real: Real, folder: Path, corpus: str,
          log: bool = True) -> tuple[FolderIndex, dict[str, float], dict[str, float]]:
    """Write the index of `n` passages to `folder / "index"`: (the index as published,
    seconds per step, the noise calibration)."""
    from retrieval.search.calibrate import calibrated

    steps: dict[str, float] = {}
    started = time.perf_counter()
    pool = _pool(real, real.paragraphs)
    noise = calibrate(real, real.paragraphs)
    stage = folder / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    for part in ("vectors", "sentences"):
        (stage / part).mkdir(parents=True)
    writer = PostingsWriter()
    terms = _Terms(pool, writer)
    db = empty_db(stage / "meta.sqlite")
    db.execute("PRAGMA journal_mode = OFF")  # a new file, published only once complete
    db.execute("PRAGMA synchronous = OFF")
    fingerprint = hashlib.sha256()
    rng = np.random.default_rng(1)
    real_rows = min(n, len(real.texts))
    articles = _articles(db, fingerprint, 0, real.texts[:real_rows], real.titles[:real_rows])
    writer.add_tokens([analyze(t) for t in real.texts[:real_rows]])
    chunks: list[tuple[np.ndarray, np.ndarray]] = []
    at = real_rows
    _say(log, f"recombining {n - real_rows:,} passages from {len(pool.texts):,} real sentences")
    while at < n:
        count = min(CHUNK, n - at)
        texts, picks, k, article = synthetic_texts(pool, count, rng)
        if not chunks:
            _check_terms(terms, writer, texts, picks)
        articles += _articles(db, fingerprint, at, texts, [pool.titles[a] for a in article])
        writer.add(*terms.of(picks))
        chunks.append((picks.astype(np.int32), k.astype(np.int8)))
        at += count
        _say(log, f"  texts, BM25 terms and SQLite rows: {at:,} of {n:,}")
    db.close()
    steps["texts_sqlite"] = time.perf_counter() - started

    started = time.perf_counter()
    dim = real.vectors.shape[1]
    real_sents = int(_offsets(real.spans[:real_rows])[-1])
    total = real_sents + sum(int(k.sum(dtype=np.int64)) for _, k in chunks)
    mm = np.lib.format.open_memmap
    vecs = mm(stage / "vectors" / "passages.npy", "w+", np.float32, (n, dim))
    svecs = mm(stage / "sentences" / "vectors.npy", "w+", np.float16, (total, dim))
    spans = mm(stage / "sentences" / "spans.npy", "w+", np.int32, (total, 2))
    offsets = mm(stage / "sentences" / "offsets.npy", "w+", np.int64, (n + 1,))
    vecs[:real_rows] = real.vectors[:real_rows]
    svecs[:real_sents] = real.sentence_vectors[:real_sents]
    spans[:real_sents] = np.array([s for sp in real.spans[:real_rows] for s in sp],
                                  np.int32).reshape(-1, 2)
    offsets[:real_rows + 1] = _offsets(real.spans[:real_rows])
    row, sent = real_rows, real_sents
    while chunks:
        picks, k = chunks.pop(0)
        p, s = synthetic_vectors(pool, picks.astype(np.int64), k.astype(np.int64), noise, rng)
        vecs[row:row + len(p)] = p
        svecs[sent:sent + len(s)] = s
        spans[sent:sent + len(s)] = _synthetic_spans(pool, picks.astype(np.int64))
        offsets[row + 1:row + len(p) + 1] = sent + np.cumsum(k, dtype=np.int64)
        row, sent = row + len(p), sent + len(s)
        _say(log, f"  passage and sentence vectors: {row:,} of {n:,}")
    for array in (vecs, svecs, spans, offsets):
        array.flush()
    del vecs, svecs, spans, offsets
    steps["vectors"] = time.perf_counter() - started

    started = time.perf_counter()
    _say(log, "writing BM25's postings")
    writer.finish(stage / "bm25", folder / "scratch")
    shutil.rmtree(folder / "scratch", ignore_errors=True)
    del writer
    steps["bm25"] = time.perf_counter() - started

    started = time.perf_counter()
    _say(log, "training and filling the IVF index, tuning nprobe")
    passage_vectors = np.load(stage / "vectors" / "passages.npy", mmap_mode="r")
    sentences = Sentences.load(stage / "sentences", n, dim)
    tuning = Sentences(np.load(stage / "sentences" / "vectors.npy", mmap_mode="r"),
                       sentences.spans, sentences.offsets)
    ann, name, nprobe = build_ann(passage_vectors, tuning, EXACT_MAX)
    del passage_vectors, tuning
    import faiss

    with (stage / "vectors" / "ann.faiss").open("wb") as fh:
        faiss.write_index(ann, faiss.PyCallbackIOWriter(fh.write))
    Tokens.empty(n, dim).save(stage / "tokens")
    steps["ann"] = time.perf_counter() - started

    started = time.perf_counter()
    _say(log, "measuring the background evidence")
    manifest = Manifest(
        format=FORMAT_VERSION, model=embedder.name, encoder=embedder.encoder, dimension=dim,
        passages=n, articles=articles, fingerprint=fingerprint.hexdigest()[:16], corpus=corpus,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        generation=secrets.token_hex(4), ann=name, nprobe=nprobe, parser=parser_fingerprint())
    staged = FolderIndex(manifest, ann, Postings.load(stage / "bm25"),
                         open_db(stage / "meta.sqlite"), sentences,
                         load_rows(stage / "vectors" / "passages.npy"),
                         Tokens.empty(n, dim))
    measured = calibrated(staged, embedder)
    staged.db.close()
    if measured.manifest.probes:
        save_array(stage / "vectors" / "probes.npy", measured.probe_vectors)
    steps["background"] = time.perf_counter() - started

    started = time.perf_counter()
    _say(log, "publishing (checksums of every file)")
    root = folder / "index"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)

    def move(tmp: Path) -> None:
        for part in sorted(stage.iterdir()):
            part.rename(tmp / part.name)

    generations.publish(root, measured.manifest, move)
    shutil.rmtree(stage, ignore_errors=True)
    steps["save"] = time.perf_counter() - started
    return FolderIndex.load(root), steps, noise
