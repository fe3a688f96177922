"""Dense search structures: exact (FAISS flat) up to EXACT_MAX passages, a tuned IVF above."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss

    from retrieval.store.folder.parts import Sentences

# Up to this many passages, dense search is exact (FAISS flat); above, an IVF index with 8-bit
# codes proposes ANN_DEPTH candidates and the Retriever re-scores them with the exact vectors,
# so its top 10 is exact whenever the exact top 10 is among them: nprobe is tuned at build time
# for that to hold IVF_RECALL of the time (bench/scale.py measures it with real questions).
EXACT_MAX = 50_000
ANN_DEPTH = 50  # candidates the Retriever takes from the ANN index (SearchSettings.candidates)
IVF_RECALL = 0.999


def build_ann(vecs: np.ndarray, sentences: Sentences, exact_max: int
              ) -> tuple[faiss.Index, str, int]:
    """(index, manifest name, nprobe): exact search up to `exact_max` passages; above, IVF
    with nprobe tuned for recall."""
    import faiss

    n, dim = vecs.shape
    if n <= exact_max:
        return flat(vecs), "flat", 0
    nlist = nlist_for(n)
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


def nlist_for(n: int) -> int:
    """IVF lists for `n` passages: about 4 sqrt(n), a power of two, at least 39 rows a list."""
    return min(int(2 ** round(math.log2(4 * math.sqrt(max(n, 1))))), max(1, n // 39))


def flat(vecs: np.ndarray) -> faiss.Index:
    """Exact inner-product search over `vecs`."""
    import faiss

    index = faiss.IndexFlatIP(int(vecs.shape[1]))
    index.add(np.ascontiguousarray(vecs, dtype=np.float32))
    return index


def read_ivf(path: str, nprobe: int) -> faiss.Index:
    """The saved IVF index, mapped in place (zero copy, no load time). IO_FLAG_MMAP_IFC
    (FAISS 1.11+) keeps the inverted lists as plain arrays over the map; the older
    IO_FLAG_MMAP goes through a slower lists reader (12x slower searches at 100k passages)."""
    import faiss

    index = faiss.read_index(path, getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP))
    faiss.extract_index_ivf(index).nprobe = nprobe
    return index


def _tune_nprobe(ivf: faiss.IndexIVF, vecs: np.ndarray, sentences: Sentences,
                 rng: np.random.Generator, k: int = 10, depth: int = ANN_DEPTH) -> int:
    """Smallest nprobe whose top `depth` holds IVF_RECALL of the exact top 10, for
    question-like queries: random sentences of the corpus itself. Those sit closer to their
    passages than real questions do, hence the strict target: at a million passages it
    chose nprobe 128 of 4096 lists, where SQuAD questions measured 0.997 (bench/scale.py)."""
    queries = sentence_queries(sentences.vectors, 500, rng)
    exact = exact_top(queries, vecs, k)
    for nprobe in (4, 8, 16, 32, 64, 128, 256):
        ivf.nprobe = min(nprobe, ivf.nlist)
        _, found = ivf.search(queries, depth)
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, found, strict=True)])
        if recall >= IVF_RECALL or nprobe >= ivf.nlist:
            break
    return int(ivf.nprobe)


def sentence_queries(sentences: np.ndarray, count: int, rng: np.random.Generator
                     ) -> np.ndarray:
    """Question-like queries for tuning an ANN: `count` random sentence vectors of the corpus
    (in row order), unit length."""
    picks = rng.choice(len(sentences), size=min(count, len(sentences)), replace=False)
    queries = np.asarray(sentences[np.sort(picks)], dtype=np.float32)
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    return queries


def exact_top(queries: np.ndarray, vecs: np.ndarray, k: int, block: int = 1_000_000
              ) -> np.ndarray:
    """The rows of the `k` best inner products of each query over `vecs`, exactly, reading
    `vecs` a block at a time: a memory-mapped array of ten million vectors (15 GB) is never
    copied whole. FAISS's blocked search within a block: a (500, n) score matrix and its
    argsort would take gigabytes and minutes at a million passages."""
    import faiss

    best_d = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vecs), block):
        part = np.ascontiguousarray(vecs[start:start + block], dtype=np.float32)
        d, i = faiss.knn(queries, part, min(k, len(part)), metric=faiss.METRIC_INNER_PRODUCT)
        best_d = np.concatenate([best_d, d], axis=1)
        best_i = np.concatenate([best_i, i + start], axis=1)
        keep = np.argsort(-best_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(best_d, keep, axis=1)
        best_i = np.take_along_axis(best_i, keep, axis=1)
    return best_i
