"""The background "not covered" compares a question with, measured over each new index by
asking it generic, unrelated questions (model/probes.py) and stored in its manifest."""

from __future__ import annotations

from retrieval.model.embed import Embedder
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex


def calibrated(index: FolderIndex, embedder: Embedder) -> FolderIndex:
    """`index` with its background measured: the evidence generic unrelated questions (the
    probes, encoded unless the previous index lent their vectors) find in it. The build is
    handed this function, as it sits below the search."""
    measured = Retriever(index.with_background({}, None), embedder,
                         probe_vectors=index.probe_vectors).index
    assert isinstance(measured, FolderIndex)
    return measured
