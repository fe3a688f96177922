"""Dense search in PostgreSQL as an IVF over plain tables: every passage vector sits in the
list of its nearest centroid (`vectors.lst`); a question's vector picks its `nprobe` nearest
centroids in the reader's process, and one statement ranks those lists' rows by their exact
inner product (cosine: the vectors are unit length). A true neighbour is found exactly when
its list is probed, so recall is measured at publish time without asking the server
(`tune`), and it does not vary between publishes of the same corpus. (At a million passages
pgvector's HNSW reached 0.90 to 0.96 where these lists reach 0.98 in about the same time:
docs/postgres.md, "Approximate search".)

The centroids are the folder index's own IVF quantizer when it has one (its rows' lists are
read from it, nothing computed), else trained here as a folder trains them. Rows added by an
incremental publish go to their nearest centroid; the centroids stay those of the full
publish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import IndexCorrupt
from retrieval.store.ann import exact_top, nlist_for, sentence_queries
from retrieval.store.manifest import REBUILD

if TYPE_CHECKING:
    import faiss
    import psycopg

    from retrieval.store.folder.index import FolderIndex

# The share of the exact top 10 whose lists the tuned nprobe probes, for question-like queries
# (random sentences of the corpus). At a million passages 0.99 chose 36 of 4,096 lists, where
# real SQuAD questions' top 10 lie in them 0.983 of the time (sentences sit closer to their
# passages than questions do; their coverage climbs slowly near its ceiling, so a higher
# target costs many more lists: docs/postgres.md, "Approximate search"). The steps are fine
# because each list probed costs a search its rows' dot products.
COVERAGE = 0.99
NPROBES = (*range(4, 64, 4), 64, 80, 96, 128, 160, 192, 256, 384, 512)
TRAIN_PER_LIST = 64  # sample vectors per list when the centroids are trained here
BLOCK = 100_000  # vectors assigned at a time


@dataclass(frozen=True)
class Lists:
    """The IVF lists of an index's rows: the centroids, each row's list, and the nprobe."""

    centroids: np.ndarray  # (nlist, dim) float32
    of_rows: np.ndarray  # each index row's list
    nprobe: int


def lists_of(index: FolderIndex) -> Lists:
    """`index`'s lists (its folder's IVF, or trained here), with nprobe tuned."""
    import faiss

    try:
        ivf = faiss.extract_index_ivf(index.vectors)
    except (RuntimeError, TypeError):  # a flat index: no lists to take
        centroids = train(index.passage_vectors)
        of_rows = assign(centroids, index.passage_vectors)
    else:
        centroids = np.asarray(ivf.quantizer.reconstruct_n(0, ivf.nlist), np.float32)
        of_rows = _read_lists(ivf, len(index))
    return Lists(centroids, of_rows, tune(centroids, of_rows, index))


def _read_lists(ivf: faiss.IndexIVF, n: int) -> np.ndarray:
    """Each row's list, from the IVF's inverted lists."""
    import faiss

    of_rows = np.full(n, -1, np.int32)
    lists = ivf.invlists
    for lst in range(ivf.nlist):
        size = lists.list_size(lst)
        if size:
            ids = lists.get_ids(lst)
            of_rows[faiss.rev_swig_ptr(ids, size)] = lst
            lists.release_ids(lst, ids)
    if (of_rows < 0).any():
        raise IndexCorrupt(f"The index's IVF holds {int(np.count_nonzero(of_rows >= 0))} of its "
                           f"{n} passages; {REBUILD} before publishing it.")
    return of_rows


def train(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """k-means centroids (inner product) for `vectors`, on a sample of TRAIN_PER_LIST per
    list."""
    import faiss

    n, dim = vectors.shape
    nlist = nlist_for(n)
    rng = np.random.default_rng(seed)
    sample = np.ascontiguousarray(
        vectors[np.sort(rng.choice(n, size=min(n, nlist * TRAIN_PER_LIST), replace=False))],
        np.float32)
    quantizer = faiss.IndexFlatIP(dim)
    faiss.Clustering(dim, nlist).train(sample, quantizer)
    return np.asarray(quantizer.reconstruct_n(0, nlist), np.float32)


def quantizer(centroids: np.ndarray) -> faiss.Index:
    """The centroids searched by inner product, as a folder's IVF quantizer."""
    import faiss

    index = faiss.IndexFlatIP(int(centroids.shape[1]))
    index.add(np.ascontiguousarray(centroids, np.float32))
    return index


def assign(centroids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Each vector's list: its nearest centroid, a block at a time."""
    q = quantizer(centroids)
    out = np.empty(len(vectors), np.int32)
    for start in range(0, len(vectors), BLOCK):
        block = np.ascontiguousarray(vectors[start:start + BLOCK], np.float32)
        out[start:start + len(block)] = q.search(block, 1)[1][:, 0]
    return out


def tune(centroids: np.ndarray, of_rows: np.ndarray, index: FolderIndex, k: int = 10,
         queries: int = 500) -> int:
    """Smallest nprobe (of NPROBES, at most every list) whose lists hold COVERAGE of the exact
    top `k` of question-like queries: random sentences of the corpus, as a folder tunes its
    IVF (retrieval/store/ann.py)."""
    q = sentence_queries(index.sentences.vectors, queries, np.random.default_rng(0))
    exact = exact_top(q, index.passage_vectors, k)
    nlist = len(centroids)
    _, order = quantizer(centroids).search(q, min(nlist, NPROBES[-1]))
    for nprobe in NPROBES:
        if nprobe >= nlist:
            return nlist
        covered = np.mean([np.isin(of_rows[e], o[:nprobe]).mean()
                           for e, o in zip(exact, order, strict=True)])
        if covered >= COVERAGE:
            return nprobe
    return NPROBES[-1]


def write(conn: psycopg.Connection, s: str, lists: Lists) -> None:
    """Schema `s`'s centroids and nprobe."""
    conn.execute(f"INSERT INTO {s}.ivf (nprobe, centroids) VALUES (%s, %s)",
                 (lists.nprobe, np.ascontiguousarray(lists.centroids, "<f4").tobytes()))


def read(conn: psycopg.Connection, s: str, dim: int) -> tuple[np.ndarray, int] | None:
    """Schema `s`'s centroids and nprobe; None for a flat schema."""
    row = conn.execute(f"SELECT centroids, nprobe FROM {s}.ivf").fetchone()
    if row is None:
        return None
    return np.frombuffer(row[0], "<f4").reshape(-1, dim).astype(np.float32), int(row[1])


def probed(centroids: faiss.Index, qvec: np.ndarray, nprobe: int) -> list[int]:
    """The lists a question probes: its `nprobe` nearest centroids."""
    nprobe = min(nprobe, centroids.ntotal)
    return [int(x) for x in centroids.search(np.asarray(qvec, np.float32).reshape(1, -1),
                                             nprobe)[1][0]]


def widened(nprobe: int, share: float, nlist: int) -> int:
    """nprobe for a search kept to `share` of the rows: the allowed top 10 lie farther out, in
    more lists. Raised by the square root of 1/share (at one row in ten, 3x the lists took
    recall from 0.960 to 0.992 at a million passages), at most every list."""
    return min(nlist, math.ceil(nprobe / math.sqrt(max(share, 1e-9))))

