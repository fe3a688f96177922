"""Byline's retrieval core: corpus -> passages -> embeddings -> index -> cited answers.

The public face, loaded lazily (importing `retrieval` loads no model and no FAISS):
`Retriever` (ask questions), `Embedder` (the model), `index_corpus` (build an index from an
article folder), `open_store` / `backend` (where an index lives), and the errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrieval.errors import (
    BadQuestion,
    BylineError,
    CorpusError,
    IndexCorrupt,
    IndexMismatch,
    IndexMissing,
    ModelError,
)
from retrieval.version import __version__

if TYPE_CHECKING:
    from retrieval.model.embed import Embedder
    from retrieval.search.retriever import Retriever
    from retrieval.store import FolderIndex, backend, open_store

__all__ = [
    "BadQuestion",
    "BylineError",
    "CorpusError",
    "Embedder",
    "IndexCorrupt",
    "IndexMismatch",
    "IndexMissing",
    "ModelError",
    "Retriever",
    "__version__",
    "backend",
    "index_corpus",
    "open_store",
]
_LAZY = {"Retriever": "retrieval.search.retriever", "Embedder": "retrieval.model.embed",
         "open_store": "retrieval.store", "backend": "retrieval.store"}


def index_corpus(corpus_dir: Any, location: Any, embedder: Embedder, *args: Any,
                 **kwargs: Any) -> FolderIndex:
    """Read, embed, calibrate and publish the article folder `corpus_dir` as the index at
    `location` (a folder or a postgresql:// URL): build/pipeline.py's `index_corpus` with
    the background measured by the search side (search/refusal.py)."""
    from retrieval.build import pipeline
    from retrieval.search.calibrate import calibrated

    return pipeline.index_corpus(corpus_dir, location, embedder, *args,
                                 calibrate=calibrated, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
