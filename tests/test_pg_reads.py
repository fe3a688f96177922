"""Round trips per question on the PostgreSQL read path, counted for real (every statement
the question's thread executes): a question costs at most QUESTION_QUERIES queries on a
freshly opened store (dense candidates, or a flat generation's vectors once, the terms'
postings, the candidates' whole rows, their token vectors; one more for wire copies), with the
same answers as the folder; asked again, none."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from retrieval import index_corpus
from retrieval.cli.main import main
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex, open_store

from .support.seed_questions import OFF_TOPIC, ON_TOPIC
from .support.wire_story import QUESTION, write_corpus

QUESTION_QUERIES = 4  # was 8 to 18 (13.3 on average) before reads were batched
COPIES_QUERIES = 1  # the other outlets of a wire story's copies


class Counter:
    """Statements a question executes through psycopg, with their text: on the asking
    thread, and on the threads it hands its dense search to (not the listener's)."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.sql: list[str] = []

    def reset(self) -> None:
        self.sql.clear()

    @property
    def n(self) -> int:
        return len(self.sql)


@pytest.fixture
def counted(monkeypatch) -> Iterator[Counter]:
    counter = Counter()
    execute = psycopg.Cursor.execute

    def counting(self, query, params=None, **kwargs):
        if (threading.get_ident() == counter.thread
                or threading.current_thread().name.startswith("byline-dense")):
            counter.sql.append(str(query))
        return execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    yield counter


def _cold(url: str, embedder) -> Retriever:
    """A freshly opened store (nothing cached), with what filters need read already (as a
    LiveRetriever does when it loads a generation)."""
    r = Retriever(open_store(url, model=embedder.name), embedder)
    r.rows_meta()
    return r


def test_a_question_costs_at_most_four_queries(pg_url, seed_index_dir, retriever, embedder,
                                               counted):
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    costs = {}
    for q in [q for q, _ in ON_TOPIC] + list(OFF_TOPIC):
        pg = _cold(pg_url, embedder)
        counted.reset()
        answer = pg.ask(q)
        costs[q] = counted.n
        assert counted.n <= QUESTION_QUERIES, (q, counted.sql)
        assert answer.to_dict() == retriever.ask(q).to_dict(), q
        counted.reset()
        assert pg.ask(q).to_dict() == answer.to_dict()
        assert pg.index.manifest.ann == "flat"
        assert counted.n == 0, counted.sql  # asked again: all kept, flat vectors searched here
    assert max(costs.values()) == QUESTION_QUERIES  # counted for real, not zero


def test_wire_copies_cost_one_more_query_and_answer_as_the_folder(pg_url, tmp_path, embedder,
                                                                   counted):
    folder = tmp_path / "index"
    local = Retriever(index_corpus(write_corpus(tmp_path / "corpus"), folder, embedder,
                                   progress=False), embedder)
    assert main(["migrate", "--from", str(folder), "--to", pg_url]) == 0
    answers = {}
    for q in (QUESTION, "Who will pay for the cleanup of the derailment?",
              "why was the trip cancelled"):
        pg = _cold(pg_url, embedder)
        assert pg.index.has_copies
        counted.reset()
        answers[q] = pg.ask(q, k=5)
        assert counted.n <= QUESTION_QUERIES + COPIES_QUERIES, (q, counted.sql)
        assert answers[q].to_dict() == local.ask(q, k=5).to_dict(), q
    assert len(answers[QUESTION].hits[0].also_in) == 2  # the copies were read
    pg = Retriever(open_store(pg_url, model=embedder.name), embedder)
    rows = list(range(len(pg.index)))
    assert pg.index.groups_of(rows) == FolderIndex.load(folder).groups_of(rows)


def test_a_scan_reads_only_its_column(seeded_store, embedder, counted):
    """Reads of more rows than a question's candidates bypass the read-ahead."""
    from retrieval.store.postgres import rows as pg_rows

    pg = open_store(seeded_store, model=embedder.name)
    pg_rows.READ_AHEAD_MAX, before = 5, pg_rows.READ_AHEAD_MAX
    try:
        counted.reset()
        everything = pg.passages(range(len(pg)))
        assert len(everything) == len(pg) and "s.vectors" not in counted.sql[-1]
        assert pg.passages([3, 1]) == [everything[3], everything[1]]
        assert "s.vectors" in counted.sql[-1]  # whole rows, their sentences' vectors too
    finally:
        pg_rows.READ_AHEAD_MAX = before


@pytest.fixture
def seeded_store(pg_url, seed_index_dir) -> str:
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    return pg_url


def test_a_reloaded_generation_reads_its_flat_vectors_before_the_first_question(
        pg_url, seed_index_dir, embedder, tmp_path, counted):
    """A LiveRetriever that loads a newly published flat generation reads its vectors while
    loading (a worker thread's time): the first question after the swap does not."""
    import shutil

    from retrieval.search.live import LiveRetriever

    from .support.library_article import LIBRARY, LIBRARY_Q
    from .support.paths import SEEDS

    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    live = LiveRetriever(Retriever(open_store(pg_url, model=embedder.name), embedder))
    try:
        corpus = shutil.copytree(SEEDS, tmp_path / "corpus")
        (corpus / "library.txt").write_text(LIBRARY, "utf-8")
        index_corpus(corpus, pg_url, embedder, progress=False)
        live.catch_up()  # this process published: no need to wait for the notification
        assert live.refresh()
        counted.reset()
        assert live.current.ask(LIBRARY_Q).answered
        assert live.current.index.manifest.ann == "flat"
        assert not [sql for sql in counted.sql if "ORDER BY rowno" in sql], counted.sql
        assert 0 < counted.n < QUESTION_QUERIES
    finally:
        live.close()


def test_ivf_brings_its_candidates_whole_beside_the_bm25_reads(pg_url, embedder, counted):
    """A generation searched by IVF lists (forced on the seeds) reads its dense candidates' whole
    rows in the search's own statement, on the thread beside BM25, and the BM25 candidates'
    rows in one more (`read_ahead`): reading their vectors, sentences and citations afterwards
    costs no query, a question costs at most QUESTION_QUERIES, and its answer is the
    folder's."""
    from retrieval.build.pipeline import build_index
    from retrieval.corpus import load_corpus
    from retrieval.search.calibrate import calibrated
    from retrieval.store import backend

    from .support.paths import SEEDS

    index = calibrated(build_index(load_corpus(SEEDS), embedder, progress=False,
                                   exact_max=5), embedder)
    backend(pg_url).publish(index)
    local = Retriever(index, embedder)
    for q, _ in ON_TOPIC[:3]:
        pg = open_store(pg_url, model=embedder.name)
        assert pg.manifest.ann.startswith("ivf")
        qvec = embedder.encode([q])[0]
        counted.reset()
        found = pg.dense_search(qvec, 10)[0]
        assert counted.n == 1 and "JOIN" in counted.sql[-1]  # the search, rows joined in
        rows = found[found >= 0]
        assert len(rows) == 10
        counted.reset()
        vectors = pg.passage_vectors[rows]
        assert [p.id for p in pg.passages(rows)] == [p.id for p in local.index.passages(rows)]
        pg.sentences.many(rows)
        assert counted.n == 0, counted.sql
        assert np.array_equal(vectors, local.index.passage_vectors[rows])
        # The BM25 candidates' rows, read ahead while the dense search runs: one query, and
        # none when the question reads them.
        others = np.setdiff1d(np.arange(len(pg)), rows)[:10]
        counted.reset()
        pg.read_ahead(others)
        assert counted.n == 1
        pg.passage_vectors[others]
        pg.sentences.many(others)
        pg.row_context(others)
        assert counted.n == 1, counted.sql
        counted.reset()
        assert Retriever(pg, embedder).ask(q).to_dict() == local.ask(q).to_dict(), q
        assert counted.n <= QUESTION_QUERIES, counted.sql


def test_a_flat_generation_reads_its_vectors_once_and_its_rows_without_them(
        seeded_store, seed_index_dir, embedder, counted):
    """A flat generation's vectors, read once for its in-process search, also give the
    candidates' exact vectors (no query); its rows are read without the vectors table."""
    pg = open_store(seeded_store, model=embedder.name)
    local = open_store(seed_index_dir, model=embedder.name)
    assert pg.manifest.ann == "flat"
    rows = [3, 1, len(pg) - 1]
    counted.reset()
    vectors = pg.passage_vectors[rows]
    assert counted.n == 1 and "vectors v" in counted.sql[-1]  # the generation's, once
    assert np.array_equal(vectors, np.asarray(local.passage_vectors[rows], np.float32))
    one = pg.passage_vectors[2]
    assert np.array_equal(one, np.asarray(local.passage_vectors[2]))
    one[:] = 0  # a copy: the search's own vectors are not changed through it
    assert np.array_equal(pg.passage_vectors[2:3][0], np.asarray(local.passage_vectors[2]))
    counted.reset()
    pg.sentences.many(rows)
    assert counted.n == 1 and "vectors v" not in counted.sql[-1], counted.sql
    pg.passage_vectors[rows]
    assert counted.n == 1
