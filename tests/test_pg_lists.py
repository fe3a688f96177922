"""Dense search in PostgreSQL by IVF lists (retrieval/store/postgres/lists.py), on 4,000
clustered passages split into about a hundred lists: the store ranks exactly the rows of the
lists a question probes, its recall is the tuned coverage, filters keep to their rows."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.model.embed import Embedder
from retrieval.store import FolderIndex, backend, open_store
from retrieval.store.ann import exact_top, nlist_for
from retrieval.store.postgres import lists

from .support.synthetic import zipf_corpus


@pytest.fixture(scope="module")
def corpus(embedder: Embedder) -> tuple[FolderIndex, np.ndarray, np.ndarray]:
    """An index searched by a folder's IVF (4,000 passages), its vectors, and queries."""
    articles, vecs, sentences = zipf_corpus(4000, embedder.dimension, seed=5)
    passages = [p for a in articles for p in a.passages()]
    index = FolderIndex.from_vectors(articles, passages, vecs, sentences, model=embedder.name,
                                     encoder=embedder.encoder, exact_max=1000)
    index = index.with_background({"dense": 0.0, "lexical": 0.0})
    rng = np.random.default_rng(3)
    queries = vecs[rng.choice(len(vecs), 40, replace=False)] + 0.3 * rng.standard_normal(
        (40, vecs.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return index, vecs, queries


def test_the_folders_lists_are_taken_as_they_are(corpus):
    index, vecs, _ = corpus
    found = lists.lists_of(index)
    assert len(found.centroids) == nlist_for(len(vecs)) > 50
    assert found.of_rows.min() >= 0 and found.of_rows.max() < len(found.centroids)
    # The folder's IVF put each row in its nearest centroid's list, as `assign` does.
    assert np.mean(found.of_rows == lists.assign(found.centroids, vecs)) > 0.999
    assert 1 <= found.nprobe < len(found.centroids)


def test_lists_trained_for_a_flat_index_cover_what_the_tuning_promises(corpus, embedder):
    index, vecs, _ = corpus
    articles, _, sentences = zipf_corpus(4000, embedder.dimension, seed=5)
    passages = [p for a in articles for p in a.passages()]
    flat = FolderIndex.from_vectors(articles, passages, vecs, sentences,
                                    model=embedder.name, encoder=embedder.encoder)
    assert flat.manifest.ann == "flat"
    found = lists.lists_of(flat)
    assert len(found.centroids) == nlist_for(len(vecs))
    assert np.array_equal(found.of_rows, lists.assign(found.centroids, vecs))
    # The tuned nprobe's lists hold the promised share of sentence queries' exact top 10,
    # and one step fewer lists would not.
    q = np.asarray(index.sentences.vectors[::8], np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = exact_top(q, vecs, 10)
    order = lists.quantizer(found.centroids).search(q, len(found.centroids))[1]

    def covered(nprobe: int) -> float:
        return float(np.mean([np.isin(found.of_rows[e], o[:nprobe]).mean()
                              for e, o in zip(exact, order, strict=True)]))

    assert covered(found.nprobe) >= lists.COVERAGE - 0.01
    smaller = [n for n in lists.NPROBES if n < found.nprobe]
    if smaller:
        assert covered(smaller[-1]) < covered(found.nprobe)


def test_the_store_ranks_exactly_the_probed_lists_rows(corpus, pg_url, embedder):
    index, vecs, queries = corpus
    m = backend(pg_url).publish(index)
    assert m.ann == index.manifest.ann and m.ann.startswith("ivf")
    pg = open_store(pg_url, model=embedder.name)
    found = lists.lists_of(index)
    exact = exact_top(queries, vecs, 10)
    recall = []
    for q, best in zip(queries, exact, strict=True):
        got = pg.dense_search(q, 10)[0]
        probed = lists.probed(lists.quantizer(found.centroids), q, m.nprobe)
        rows = np.flatnonzero(np.isin(found.of_rows, probed))
        expected = rows[np.argsort(-(vecs[rows] @ q), kind="stable")[:10]]
        assert list(got) == list(expected)
        recall.append(len(set(got) & set(best)) / 10)
    assert np.mean(recall) >= 0.9


def test_a_filtered_search_keeps_to_its_rows_and_probes_more_lists(corpus, pg_url, embedder):
    """One article in five allowed (800 rows, made too many for the exact scan): the answer is
    the allowed rows of more lists than unfiltered, ranked exactly, so the allowed top 10 (which
    lie farther out) are found at least as often as the unfiltered nprobe's lists hold them."""
    index, vecs, queries = corpus
    m = backend(pg_url).publish(index)
    pg = open_store(pg_url, model=embedder.name)
    pg.exact_subset_max = 100
    allowed = (np.arange(len(vecs)) // 10) % 5 == 0
    kept = np.flatnonzero(allowed)
    found = lists.lists_of(index)
    centroids = lists.quantizer(found.centroids)
    recall, unwidened = [], []
    for q in queries:
        got = pg.dense_search(q, 10, allowed)[0]
        wide = lists.probed(centroids, q, lists.widened(m.nprobe, 0.2, len(found.centroids)))
        rows = np.flatnonzero(np.isin(found.of_rows, wide) & allowed)
        assert list(got) == list(rows[np.argsort(-(vecs[rows] @ q), kind="stable")[:10]])
        best = set(kept[np.argsort(-(vecs[kept] @ q), kind="stable")[:10]])
        recall.append(len(set(got) & best) / 10)
        probed = lists.probed(centroids, q, m.nprobe)
        unwidened.append(np.isin(found.of_rows[list(best)], probed).mean())
    assert np.mean(recall) >= np.mean(unwidened) and np.mean(recall) >= 0.8
    assert lists.widened(8, 0.2, 100) > 8 and lists.widened(8, 1.0, 100) == 8
    assert lists.widened(90, 0.01, 100) == 100
