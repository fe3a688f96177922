"""The pipeline: read a folder, diff against the last index, embed what is new, save.

Data flows one way: the corpus readers give articles, the Embedder gives vectors, the store
assembles and publishes the generation. The background "not covered" needs is measured by
the search side, which the caller hands in (`calibrate`: search/calibrate.py's `calibrated`),
as the build sits below the search.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrieval.build.dedup import copy_groups
from retrieval.corpus import Article, LoadReport, Passage, checked, scan_corpus
from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing, ModelError
from retrieval.model.embed import Embedder
from retrieval.store import (
    SPLICE_MIN,
    TOKENS_MAX,
    FolderIndex,
    PendingTokens,
    Sentences,
    backend,
)
from retrieval.store.ann import EXACT_MAX
from retrieval.store.base import Backend, Store
from retrieval.store.quantise import quantise
from retrieval.text import sentence_spans

log = logging.getLogger("byline.index")
# The index with its background measured (search/calibrate.py's `calibrated`).
Calibrate = Callable[[FolderIndex, Embedder], FolderIndex]
REUSE_BATCH = 2_000  # passages whose vectors are read from the previous index at a time


def index_corpus(corpus_dir: str | Path, location: str | Path | Backend, embedder: Embedder,
                 progress: bool = True, incremental: bool = True, strict: bool = False,
                 on_report: Callable[[LoadReport], None] | None = None,
                 wait: bool = True, on_wait: Callable[[str], None] | None = None, *,
                 calibrate: Calibrate, splice_min: int = SPLICE_MIN) -> FolderIndex:
    """Load, clean, embed, calibrate (`calibrate`) and publish `corpus_dir` as the index at
    `location` (a folder or a postgresql:// URL).

    With `incremental`, the index already there (same model and encoder, every file
    matching its checksum) lends the vectors of every unchanged paragraph, so only new or
    edited ones are embedded; removed articles simply drop out. Everything is read and
    embedded before the first byte is written, so a bad corpus (or a crash) leaves any
    existing index as it was. The folder's writer lock is held throughout: a second writer
    waits (`on_wait` is told) or, without `wait`, fails with IndexBusy.

    A file that cannot be used is skipped and named in the LoadReport (handed to
    `on_report` as soon as the folder is read, and kept as the index's `report`); with
    `strict`, any skip is a CorpusError instead.
    """
    store = backend(location)
    with store.writer_lock(wait=wait, on_wait=on_wait):
        previous = _previous(store, embedder) if incremental else None
        # Unchanged files keep the articles the previous index parsed from them.
        report = scan_corpus(corpus_dir, known=previous.parsed_articles() if previous else None,
                             progress=progress)
        if on_report is not None and report.articles:  # else the error below says it all
            on_report(report)
        checked(report, corpus_dir, strict)
        index = calibrate(build_index(report.articles, embedder, str(corpus_dir), progress,
                                       previous, splice_min=splice_min), embedder)
        index.report = report
        store.publish(index, full=not incremental)
    return index


def _previous(store: Backend, embedder: Embedder) -> Store | None:
    """The index already at `store`, if one is there and every
    file of it checks out (a re-index never reuses vectors from a damaged file)."""
    try:
        return store.open(model=embedder.name, verify=True)
    except IndexMissing:
        return None
    except (IndexCorrupt, IndexMismatch) as exc:
        reason = str(exc).split("; run `byline index")[0]
        log.warning("%s; building it from scratch, reusing nothing.", reason)
        return None


def build_index(articles: list[Article], embedder: Embedder, corpus: str = "",
                progress: bool = True, previous: Store | None = None,
                exact_max: int = EXACT_MAX, tokens_max: int = TOKENS_MAX,
                splice_min: int = SPLICE_MIN) -> FolderIndex:
    """Embed every passage of `articles` and assemble the (unsaved, uncalibrated) index.

    With `previous` (an index built by the same model and encoder), passages whose text
    is unchanged reuse its vectors and only new or edited ones are embedded; the result
    equals a full build (each text's vectors depend on that text alone). Above
    `exact_max` passages, dense search goes through a tuned IVF index; up to
    `tokens_max`, token vectors are kept for picking quotes; a previous token file of
    `splice_min` bytes or more is hard-linked rather than copied where most of it is reused."""
    passages = [p for a in articles for p in a.passages()]
    keep_tokens = len(passages) <= tokens_max
    reuse = previous.reusable(embedder) if previous is not None else {}
    if keep_tokens and previous is not None and previous.tokens is None:
        reuse = {}  # its passages' tokens were not kept: embed them again
    before = [reuse.get(p.content_hash) for p in passages]  # row in `previous`, or None
    vecs, sentences, tokens = _embed(passages, before, embedder, previous, keep_tokens,
                                     progress, splice_min)
    groups = copy_groups([p.text for p in passages], [p.article_id for p in passages])
    index = FolderIndex.from_vectors(articles, passages, vecs, sentences, model=embedder.name,
                               encoder=embedder.encoder, corpus=corpus, exact_max=exact_max,
                               tokens=tokens, groups=groups, graph=embedder.graph,
                               kernel=embedder.kernel)
    index.reused = sum(row is not None for row in before)
    if previous is not None and previous.made_by(embedder):
        index.probe_vectors = previous.probe_vectors
    return index


def _embed(passages: list[Passage], before: list[int | None], embedder: Embedder,
           previous: Store | None, keep_tokens: bool, progress: bool, splice_min: int
           ) -> tuple[np.ndarray, Sentences, PendingTokens | None]:
    """Passage, sentence and token vectors: new for `before[i] is None`, else taken from
    row `before[i]` of `previous`."""
    fresh = [i for i, row in enumerate(before) if row is None]
    dim = embedder.dimension
    vecs = np.empty((len(passages), dim), dtype=np.float32)
    per_passage: list[np.ndarray] = [np.empty((0, dim), np.float32)] * len(passages)
    token_items: list[tuple[np.ndarray, ...] | int] = [0] * len(passages)
    spans: list[np.ndarray] = [np.empty((0, 2), np.int32)] * len(passages)
    new_spans = [sentence_spans(passages[i].text) for i in fresh]
    for i, sp in zip(fresh, new_spans, strict=True):
        spans[i] = np.array(sp, np.int32).reshape(-1, 2)
    if fresh:
        new_vecs, new_sents, new_tokens = embedder.encode_passages(
            [passages[i].text for i in fresh], new_spans,
            progress=progress, label=f"Embedding {len(fresh)} passages", tokens=keep_tokens)
        if not (np.isfinite(new_vecs).all() and np.isfinite(new_sents).all()):
            raise ModelError(f"The model {embedder.name!r} returned vectors that are not "
                             "numbers; nothing was saved.")
        vecs[fresh] = new_vecs
        counts = np.cumsum([0] + [len(spans[i]) for i in fresh])
        for j, i in enumerate(fresh):
            per_passage[i] = new_sents[counts[j]:counts[j + 1]]
            if new_tokens is not None:  # int8, with each token's characters, for quotes
                token_items[i] = (*quantise(new_tokens[j], dim),
                                  _token_chars(embedder, passages[i].text, len(new_tokens[j])))
    # The same text: the same vectors and sentences, read in batches (a database store
    # answers each batch in a few queries). A folder's token vectors are copied on save,
    # file to file; a database's are read here.
    by_row = previous is not None and previous.tokens is not None and previous.tokens.copied_on_save
    reused = [(i, row) for i, row in enumerate(before) if row is not None]
    for a in range(0, len(reused), REUSE_BATCH):
        chunk = reused[a:a + REUSE_BATCH]
        rows = np.array([row for _, row in chunk], np.int64)
        vecs[[i for i, _ in chunk]] = np.asarray(previous.passage_vectors[rows], np.float32)
        own = previous.sentences.passages(rows)
        toks = previous.tokens.raws(rows) if keep_tokens and not by_row else None
        for j, (i, row) in enumerate(chunk):
            per_passage[i] = np.asarray(own[j][0], dtype=np.float32)
            spans[i] = np.asarray(own[j][1])
            if keep_tokens:
                token_items[i] = int(row) if by_row else toks[j]
    sentence_vecs = (np.concatenate(per_passage) if passages
                     else np.empty((0, dim), np.float32))
    tokens = (PendingTokens(token_items, previous.tokens if by_row else None, dim, splice_min)
              if keep_tokens else None)
    return vecs, Sentences.pack(spans, sentence_vecs), tokens


def _token_chars(embedder: Embedder, text: str, n: int) -> np.ndarray:
    """(start, end) characters of `text`'s first `n` tokens ((0, 0) past the tokenizer's)."""
    chars = np.zeros((n, 2), np.int32)
    found = embedder.token_offsets(text)[:n]
    chars[:len(found)] = found
    return chars
