"""Turn a folder of articles into a saved, calibrated index."""

from __future__ import annotations

from pathlib import Path

from retrieval.corpus import load_corpus
from retrieval.embed import Embedder
from retrieval.search import Retriever
from retrieval.store import Index


def index_corpus(corpus_dir: str | Path, index_dir: str | Path, embedder: Embedder,
                 progress: bool = True) -> Index:
    """Load, clean, embed, calibrate and save `corpus_dir` as the index in `index_dir`.

    Everything is read and embedded before the first byte is written, so a bad corpus
    (or a crash) leaves any existing index as it was.
    """
    articles = load_corpus(corpus_dir)
    index = Index.build(articles, embedder, corpus=str(corpus_dir), progress=progress)
    index = index.with_background(Retriever(index, embedder).measure_background())
    index.save(index_dir)
    return index
