"""The background "not covered" compares a question with, measured over each new index by
asking it generic, unrelated questions (model/probes.py) and stored in its manifest."""

from __future__ import annotations

import numpy as np

from retrieval.model.embed import Embedder
from retrieval.model.probes import PROBES
from retrieval.search.answer import check_question
from retrieval.search.retriever import Retriever, SearchSettings
from retrieval.store import Index
from retrieval.store.base import Store


def calibrated(index: Index, embedder: Embedder) -> Index:
    """`index` with its background measured: the evidence generic unrelated questions (the
    PROBES, encoded here unless the previous index lent their vectors) find in it. The
    build is handed this function (it sits below the search)."""
    probe_vectors = index.probe_vectors
    if probe_vectors is None:
        probe_vectors = embedder.encode([check_question(q) for q in PROBES])
    return index.with_background(measure_background(index, probe_vectors), probe_vectors)


def measure_background(index: Store, probe_vectors: np.ndarray,
                       settings: SearchSettings | None = None) -> dict[str, float]:
    """Mean evidence of generic, unrelated questions (the PROBES, already encoded as
    `probe_vectors`) against `index`: what "not covered" compares a question with. A plain
    function of the index and vectors: the indexer calls it without a question encoder."""
    scorer = Retriever.__new__(Retriever)
    scorer._setup(index, settings)
    return scorer._background_of(probe_vectors)
