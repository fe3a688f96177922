"""Turn a folder of articles into a saved, calibrated index (incrementally when one exists)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from retrieval.corpus import Article, LoadReport, checked, scan_corpus
from retrieval.embed import Embedder
from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing
from retrieval.search import Retriever
from retrieval.store import Index

log = logging.getLogger("byline.index")


def index_corpus(corpus_dir: str | Path, index_dir: str | Path, embedder: Embedder,
                 progress: bool = True, incremental: bool = True, strict: bool = False,
                 on_report: Callable[[LoadReport], None] | None = None) -> Index:
    """Load, clean, embed, calibrate and save `corpus_dir` as the index in `index_dir`.

    With `incremental`, the index already in `index_dir` (same model and encoder) lends the
    vectors of every unchanged paragraph, so only new or edited ones are embedded; removed
    articles simply drop out. Everything is read and embedded before the first byte is
    written, so a bad corpus (or a crash) leaves any existing index as it was.

    A file that cannot be used is skipped and named in the LoadReport (handed to
    `on_report` as soon as the folder is read, and kept as the index's `report`); with
    `strict`, any skip is a CorpusError instead.
    """
    previous = _previous(index_dir, embedder) if incremental else None
    # Unchanged files keep the articles the previous index parsed from them.
    report = scan_corpus(corpus_dir, known=previous.parsed_articles() if previous else None,
                         progress=progress)
    if on_report is not None and report.articles:  # else the error below says it all
        on_report(report)
    checked(report, corpus_dir, strict)
    index = _index(report.articles, index_dir, embedder, str(corpus_dir), progress, previous)
    index.report = report
    return index


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
