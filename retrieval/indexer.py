"""Turn a folder of articles into a saved, calibrated index (incrementally when one exists)."""

from __future__ import annotations

import logging
from pathlib import Path

from retrieval.corpus import Article, load_corpus
from retrieval.embed import Embedder
from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing
from retrieval.search import Retriever
from retrieval.store import Index

log = logging.getLogger("byline.index")


def index_corpus(corpus_dir: str | Path, index_dir: str | Path, embedder: Embedder,
                 progress: bool = True, incremental: bool = True) -> Index:
    """Load, clean, embed, calibrate and save `corpus_dir` as the index in `index_dir`.

    With `incremental`, the index already in `index_dir` (same model and encoder) lends the
    vectors of every unchanged paragraph, so only new or edited ones are embedded; removed
    articles simply drop out. Everything is read and embedded before the first byte is
    written, so a bad corpus (or a crash) leaves any existing index as it was.
    """
    previous = _previous(index_dir, embedder) if incremental else None
    # Unchanged files keep the articles the previous index parsed from them.
    articles = load_corpus(corpus_dir, known=previous.parsed_articles() if previous else None)
    return _index(articles, index_dir, embedder, str(corpus_dir), progress, previous)


def index_articles(articles: list[Article], index_dir: str | Path, embedder: Embedder,
                   corpus: str = "", progress: bool = True, incremental: bool = True) -> Index:
    """`index_corpus` for articles already loaded (the evaluation and benchmarks use it)."""
    previous = _previous(index_dir, embedder) if incremental else None
    return _index(articles, index_dir, embedder, corpus, progress, previous)


def _previous(index_dir: str | Path, embedder: Embedder) -> Index | None:
    """The index already in `index_dir`, if one is there and usable."""
    try:
        return Index.load(index_dir, model=embedder.name)
    except (IndexMissing, IndexCorrupt, IndexMismatch) as exc:
        if not isinstance(exc, IndexMissing):
            log.info("full rebuild: %s", exc)
        return None


def _index(articles: list[Article], index_dir: str | Path, embedder: Embedder, corpus: str,
           progress: bool, previous: Index | None) -> Index:
    built = Index.build(articles, embedder, corpus=corpus, progress=progress,
                        previous=previous)
    index = Retriever(built, embedder).index  # with the background it measured
    index.reused = built.reused
    index.save(index_dir)
    return index
