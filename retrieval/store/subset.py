"""Dense search within a subset of the passages (a date or outlet filter): k candidates
still come back when the filter keeps 1% of a million passages."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from retrieval.store.manifest import Manifest


# Up to this many allowed passages, an IVF index is bypassed: their exact vectors are read
# and scored directly (cheaper than scanning enough IVF lists to find them, and exact).
EXACT_SUBSET_MAX = 20_000


class Searchable(Protocol):
    """What the search reads of an index (a folder's, or a flat PostgreSQL generation's)."""

    vectors: Any  # a FAISS index over every row
    manifest: Manifest
    passage_vectors: Any  # row-indexable: passage_vectors[rows] -> (len(rows), dim) float32


def dense_candidates(index: Searchable, qvec: np.ndarray, n: int,
                     allowed: np.ndarray | None = None,
                     exact_max: int = EXACT_SUBSET_MAX) -> np.ndarray:
    """The (1, n) rows FAISS proposes for `qvec` (-1 pads a short list), only among the
    `allowed` rows (a boolean mask over rows; None: all).

    Flat index: FAISS's exact search with an ID selector (a bitmap of the allowed rows).
    IVF: up to `exact_max` allowed rows, exact scores of their vectors; above, the IVF
    search with the selector and nprobe raised by 1 / (allowed share), so about as many
    allowed passages are scanned as an unfiltered search scans passages."""
    if allowed is None:
        return search_one(index.vectors, qvec, n)[1]
    count = int(np.count_nonzero(allowed))
    ann = index.manifest.ann
    if ann != "flat" and count <= exact_max:
        rows = np.flatnonzero(allowed)
        sims = np.asarray(index.passage_vectors[rows], dtype=np.float32) @ qvec
        top = np.argpartition(-sims, n - 1)[:n] if n < len(rows) else np.arange(len(rows))
        return rows[top[np.argsort(-sims[top], kind="stable")]][None, :]
    import faiss

    selector = faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))
    if ann == "flat":
        params: Any = faiss.SearchParameters(sel=selector)
    else:
        ivf = faiss.extract_index_ivf(index.vectors)
        nprobe = min(ivf.nlist, math.ceil(index.manifest.nprobe * len(allowed) / count))
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
    return search_one(index.vectors, qvec, n, params)[1]


def search_one(vectors: Any, qvec: np.ndarray, n: int, params: Any = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """FAISS search for one question on the calling thread alone: one query is too little
    work to split, and on a busy 2-core machine OpenMP threads wait on each other
    (docs/performance.md). The thread count is the calling thread's own OpenMP setting,
    restored after."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        if params is None:
            return vectors.search(qvec[None, :], n)
        return vectors.search(qvec[None, :], n, params=params)
    finally:
        faiss.omp_set_num_threads(before)
