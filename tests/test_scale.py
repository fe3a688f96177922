"""The code paths that only large indexes take, exercised at small scale: BM25 from the
postings (and its MaxScore pruning), vectors read from disk by row, the tuned IVF index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import IndexCorrupt
from retrieval.model.embed import Embedder
from retrieval.search.lexical import Lexical
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex, RowFile
from retrieval.store.ann import exact_top
from retrieval.store.folder.postings import Postings, PostingsWriter
from retrieval.store.subset import search_one
from retrieval.text import analyze

from .support.synthetic import WORDS, zipf_corpus


@pytest.fixture(scope="module")
def lexical(embedder: Embedder) -> Retriever:
    articles, vecs, sentences = zipf_corpus(3000, embedder.dimension)
    passages = [p for a in articles for p in a.passages()]
    index = FolderIndex.from_vectors(articles, passages, vecs, sentences, model=embedder.name,
                               encoder=embedder.encoder)
    return Retriever(index, embedder)


def _queries(seed: int = 1, count: int = 60) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[*analyze(" ".join(rng.choice(WORDS, size=rng.integers(1, 7)))), "unseenword"]
            for _ in range(count)]


def _every_posting(r: Retriever, ids: list[int], n: int) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """The straightforward way: every posting of the question's terms summed per passage
    (np.unique + bincount), then a partition: (passages, float32 scores, top n)."""
    post = r.index.postings
    spans = [(post.indptr[i], post.indptr[i + 1]) for i in ids]
    docs = np.concatenate([post.docs[a:b] for a, b in spans] or [np.zeros(0, int)])
    vals = np.concatenate([post.weights[a:b] for a, b in spans] or [np.zeros(0)])
    unique, inverse = np.unique(docs, return_inverse=True)
    scores = np.bincount(inverse, weights=vals).astype(np.float32)
    top = np.argpartition(-scores, n - 1)[:n] if len(scores) > n else slice(None)
    return unique, scores, unique[top]


def test_bm25_scores_equal_summing_every_posting_and_bm25s(lexical: Retriever):
    import bm25s

    reference = bm25s.BM25()  # bm25s itself, scoring the same analysed passages
    every = lexical.index.passages(list(range(len(lexical.index))))
    reference.index([analyze(p.text) for p in every], show_progress=False)
    for terms in _queries():
        ids = lexical.lexical.term_ids(terms)
        scores = lexical.lexical.scores(ids)
        docs, expected, _ = _every_posting(lexical, ids, 50)
        assert np.array_equal(np.flatnonzero(scores), docs)
        assert np.array_equal(scores[docs].astype(np.float32), expected)  # bit for bit
        own = reference.get_scores(terms[:-1])  # float32 sums
        np.testing.assert_allclose(scores, own, rtol=1e-5)


@pytest.mark.parametrize("case", ["zipf", "edges"])
def test_postings_are_bm25s_postings_bit_for_bit(lexical: Retriever, case: str):
    import bm25s

    every = lexical.index.passages(list(range(len(lexical.index))))
    corpus = ([analyze(p.text) for p in every] if case == "zipf"
              else [[], ["a", "a", "b"], ["b"], [], ["c", "a", "a", "a"]])
    ours = Postings.build(corpus)
    theirs = bm25s.BM25()
    theirs.index([toks or ["\0"] for toks in corpus], show_progress=False)
    s = theirs.scores
    assert ours.vocab.keys() == theirs.vocab_dict.keys()
    assert (ours.indptr.dtype, ours.docs.dtype, ours.weights.dtype) == (
        s["indptr"].dtype, s["indices"].dtype, s["data"].dtype)
    for term, t in theirs.vocab_dict.items():
        if term:
            a, b, u = s["indptr"][t], s["indptr"][t + 1], ours.vocab[term]
            docs, weights = ours.term(u)
            assert np.array_equal(docs, s["indices"][a:b])
            assert weights.tobytes() == s["data"][a:b].tobytes()  # bit for bit
    assert ours.vocab[""] == len(ours.vocab) - 1 == len(ours.indptr) - 1


@pytest.mark.parametrize("chunk", [1, 7, 1000, 5000])
def test_postings_written_a_chunk_at_a_time_are_built_postings_bit_for_bit(
        lexical: Retriever, tmp_path: Path, chunk: int):
    every = lexical.index.passages(list(range(len(lexical.index))))
    corpus = [*[analyze(p.text) for p in every][:2000], [], ["a", "a", "b"], [], ["b"]]
    built = Postings.build(corpus)
    writer = PostingsWriter()
    for start in range(0, len(corpus), chunk):
        writer.add_tokens(corpus[start:start + chunk])
    written = writer.finish(tmp_path / "bm25", tmp_path / "scratch")
    assert written.vocab == built.vocab and written.passages == built.passages
    for name in ("indptr", "docs", "weights"):
        ours, theirs = getattr(written, name), getattr(built, name)
        assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes(), name
    assert Postings.load(tmp_path / "bm25").vocab == built.vocab
    with pytest.raises(ValueError, match="lengths"):
        PostingsWriter().add(np.array([0, 1]), np.array([2, 0]))


def test_postings_rows_out_of_range_are_found_when_their_term_is_read(
        lexical: Retriever, tmp_path: Path):
    corpus = [["a", "b"], ["b"], ["c", "b"]]
    Postings.build(corpus).save(tmp_path / "bm25")
    docs = np.load(tmp_path / "bm25" / "indices.csc.index.npy", mmap_mode="r+")
    post = Postings.load(tmp_path / "bm25")
    b = post.vocab["b"]
    docs[post.indptr[b + 1] - 1] = 3  # past the last passage: found on reading "b" only
    docs.flush()
    post = Postings.load(tmp_path / "bm25")
    assert post.term(post.vocab["a"])[0].tolist() == [0]
    with pytest.raises(IndexCorrupt, match="out of range"):
        post.term(b)
    docs[post.indptr[b]] = -1
    docs.flush()
    with pytest.raises(IndexCorrupt, match="out of range"):
        Postings.load(tmp_path / "bm25").terms([post.vocab["c"], b])


def test_exact_top_in_blocks_is_one_exact_search():
    import faiss

    rng = np.random.default_rng(4)
    vecs = rng.standard_normal((5000, 16)).astype(np.float32)
    queries = rng.standard_normal((30, 16)).astype(np.float32)
    scores, expected = faiss.knn(queries, vecs, 10, metric=faiss.METRIC_INNER_PRODUCT)
    assert (np.diff(scores, axis=1) < 0).all()  # no ties: one right answer
    for block in (3, 999, 1000, 10_000):
        assert np.array_equal(exact_top(queries, vecs, 10, block), expected), block


def test_bm25_top_is_exactly_the_partition_of_every_posting(lexical: Retriever):
    ties = bounded = 0
    for terms in _queries(seed=2, count=150):
        ids = lexical.lexical.term_ids(terms)
        scores = lexical.lexical.scores(ids)
        for n in (1, 10, 50):
            docs, all_scores, expected = _every_posting(lexical, ids, n)
            assert set(lexical.lexical.top(scores, ids, n)) == set(expected)
            if len(docs) > n:
                cut = np.sort(all_scores)[-n]
                ties += np.count_nonzero(all_scores >= cut) > n
                bounded += lexical.lexical.nth_score_bound(scores, ids, n) > 0
    assert ties > 10 and bounded > 100  # both ways through were taken, many times


def test_coverage_of_rows_matches_membership(lexical: Retriever):
    post = lexical.index.postings
    for terms in _queries(seed=3, count=20):
        rows = np.sort(np.random.default_rng(0).choice(3000, 100, replace=False))
        unique = set(terms)
        total = sum(lexical.lexical.idf(t) for t in unique)
        expected = np.zeros(len(rows), np.float32)
        for t in unique:
            if t in lexical.lexical.vocab:
                i = lexical.lexical.vocab[t]
                holding = post.docs[post.indptr[i]:post.indptr[i + 1]]
                expected += np.isin(rows, holding) * lexical.lexical.idf(t)
        assert np.array_equal(lexical.lexical.coverage_of_rows(terms, rows), expected / total)


def test_row_file_reads_rows_like_an_array(tmp_path: Path):
    data = np.arange(60, dtype=np.float32).reshape(20, 3)
    np.save(tmp_path / "v.npy", data)
    rows = RowFile(tmp_path / "v.npy")
    assert rows.shape == (20, 3) and len(rows) == 20 and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[4], data[4])
    np.testing.assert_array_equal(rows[-1], data[-1])
    np.testing.assert_array_equal(rows[3:9], data[3:9])
    np.testing.assert_array_equal(rows[::4], data[::4])
    picks = np.array([5, 6, 7, 2, 19, 0, 1, 1])
    np.testing.assert_array_equal(rows[picks], data[picks])
    np.testing.assert_array_equal(rows[[]], data[[]])
    np.testing.assert_array_equal(np.asarray(rows), data)
    np.testing.assert_array_equal(np.asarray(rows, dtype=np.float64), data)
    with pytest.raises(IndexError):
        rows[20]
    with pytest.raises(IndexError):
        rows[np.array([3, 20])]
    (tmp_path / "cut.npy").write_bytes((tmp_path / "v.npy").read_bytes()[:-4])
    with pytest.raises(ValueError, match="truncated"):
        RowFile(tmp_path / "cut.npy")


def test_ivf_index_finds_what_exact_search_finds(tmp_path: Path, embedder: Embedder):
    articles, vecs, sentences = zipf_corpus(4000, embedder.dimension, seed=5)
    passages = [p for a in articles for p in a.passages()]
    built = FolderIndex.from_vectors(articles, passages, vecs, sentences, model=embedder.name,
                               encoder=embedder.encoder, exact_max=1000)
    assert built.manifest.ann.startswith("ivf") and built.manifest.nprobe >= 1
    built.with_background({"dense": 0.0, "lexical": 0.0}).save(tmp_path / "idx")
    index = FolderIndex.load(tmp_path / "idx")
    queries = np.asarray(sentences.vectors[::40], np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    found = [index.vectors.search(q[None, :], 50)[1][0] for q in queries]
    rescored = [f[np.argsort(-(vecs[f] @ q))[:10]] for f, q in zip(found, queries, strict=True)]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, rescored, strict=True)])
    assert recall >= 0.95


def test_bm25_top_breaks_ties_among_few_passages_for_long_postings(lexical: Retriever):
    bm25 = Lexical(lexical.index.postings, len(lexical.index), ties_max=0)  # as at a million
    for terms in _queries(seed=2, count=150):
        ids = bm25.term_ids(terms)
        scores = bm25.scores(ids)
        for n in (1, 10, 50):
            _, _, expected = _every_posting(lexical, ids, n)
            got = bm25.top(scores, ids, n)
            # The same n best scores; a tie at the cut may be broken by another passage.
            assert np.array_equal(np.sort(scores[got].astype(np.float32)),
                                  np.sort(scores[expected].astype(np.float32)))


def test_one_question_searches_on_one_thread_and_restores_the_setting(lexical: Retriever,
                                                                      monkeypatch):
    import faiss

    vectors = lexical.index.vectors
    q = np.asarray(lexical.index.passage_vectors[7], np.float32)
    expected = vectors.search(q[None, :], 10)[1]
    before = faiss.omp_get_max_threads()
    seen = []
    real_search = type(vectors).search

    def spy(self, x, k, **kwargs):
        seen.append(faiss.omp_get_max_threads())
        return real_search(self, x, k, **kwargs)

    monkeypatch.setattr(type(vectors), "search", spy)
    _, rows = search_one(vectors, q, 10)
    assert seen == [1] and faiss.omp_get_max_threads() == before
    assert np.array_equal(rows, expected)
