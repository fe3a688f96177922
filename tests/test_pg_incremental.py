"""Incremental publishing into PostgreSQL: a re-index that changes a few articles writes only
their rows, answers exactly as a full publish of the same corpus, never shows readers half a
generation, and leaves no row that no kept generation can see."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import psycopg
import pytest

from retrieval import index_corpus
from retrieval.cli.main import main
from retrieval.errors import IndexMissing
from retrieval.search.retriever import Retriever
from retrieval.store import open_store
from retrieval.store.postgres import writer

QUESTIONS = ["What did the council approve on day 3?", "budget line 17",
             "Which story covers the harbour dredging?", "night bus routes",
             "What happened to the library roof?", "weather in Lima"]
WIRE = ("Harbour dredging will close the north channel for six weeks from May, the port "
        "authority said on Monday, citing silt that has narrowed the approach.")


def _story(i: int, extra: str = "") -> str:
    return (f"Date: 2024-03-{i % 28 + 1:02d}\n\nCouncil story number {i}\n\n"
            f"The council met on day {i} and approved budget line {i} after a long debate.\n\n"
            f"Residents of ward {i} asked about street lighting and bins.{extra}\n")


def _corpus(root: Path, n: int = 30) -> Path:
    root.mkdir()
    for i in range(n):
        (root / f"story{i:02d}.txt").write_text(_story(i), "utf-8")
    (root / "wire-a.txt").write_text(f"Date: 2024-04-01\n\nPort news\n\n{WIRE}\n", "utf-8")
    return root


def _change(root: Path) -> None:
    """Two stories edited, one removed, one added, and a copy of the wire story."""
    (root / "story03.txt").write_text(_story(3, " The library roof was repaired in June."),
                                      "utf-8")
    (root / "story17.txt").write_text(_story(17, " Night bus routes were added."), "utf-8")
    (root / "story09.txt").unlink()
    (root / "story99.txt").write_text(_story(99, " A new story, on the tram."), "utf-8")
    (root / "wire-b.txt").write_text(f"Date: 2024-04-02\n\nPort news again\n\n{WIRE}\n",
                                     "utf-8")


def _schema_rows(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        s = conn.execute("SELECT g.data FROM byline_generations g JOIN byline_manifest USING "
                         "(generation)").fetchone()[0]
        return {t: conn.execute(f"SELECT count(*) FROM {s}.{t}").fetchone()[0]
                for t in ("passages", "sentences", "articles")}


def _weights(index) -> dict[tuple[str, str], float]:
    """(term, passage id) -> BM25 weight, over the whole vocabulary."""
    postings = index.postings
    ids = [p.id for p in index.passages(np.flatnonzero(_held(index)))]
    by_row = dict(zip(np.flatnonzero(_held(index)).tolist(), ids, strict=True))
    out = {}
    terms = sorted(postings.vocab.items())
    for (term, _), (docs, weights) in zip(terms, postings.terms([t for _, t in terms]),
                                          strict=True):
        for d, w in zip(docs.tolist(), weights.tolist(), strict=True):
            out[term, by_row[d]] = w
    return out


def _held(index) -> np.ndarray:
    return getattr(index, "held", np.ones(len(index), bool))


def test_a_small_change_is_published_as_a_change_and_answers_as_a_full_publish(
        tmp_path, pg_url, pg_server, embedder):
    corpus = _corpus(tmp_path / "corpus")
    index_corpus(corpus, pg_url, embedder, progress=False)
    assert writer.last_delta is None  # the first publish is whole
    before = _schema_rows(pg_url)
    _change(corpus)
    index_corpus(corpus, pg_url, embedder, progress=False)
    delta = writer.last_delta
    assert delta is not None
    assert (delta.removed_articles, delta.added_articles) == (3, 4)  # 2 edited, 1 gone, 2 new
    after = _schema_rows(pg_url)
    assert after["passages"] == before["passages"] + delta.added_passages  # old rows kept
    incremental = Retriever(open_store(pg_url, model=embedder.name), embedder)
    changed = {"story03.txt", "story17.txt", "story99.txt", "wire-b.txt"}
    assert delta.added_passages == sum(a.passages for a in incremental.index.articles()
                                       if Path(a.source).name in changed)
    assert len(incremental.index) > incremental.index.manifest.passages  # gaps where removed

    # The same corpus published whole, into another database.
    other = pg_url.rsplit("/", 1)[0] + "/" + pg_url.rsplit("/", 1)[1] + "_full"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {other.rsplit('/', 1)[1]}")
    try:
        index_corpus(corpus, other, embedder, progress=False)
        assert writer.last_delta is None
        full = Retriever(open_store(other, model=embedder.name), embedder)
        assert incremental.index.manifest.passages == full.index.manifest.passages
        for q in QUESTIONS:
            a, b = incremental.ask(q, k=5), full.ask(q, k=5)
            assert a.to_dict() == b.to_dict(), q
            assert a.confidence == pytest.approx(b.confidence, abs=1e-6), q
        assert _weights(incremental.index) == _weights(full.index)  # BM25 bit for bit
        assert incremental.index.articles() == full.index.articles()
        assert incremental.index.parsed_articles() == full.index.parsed_articles()
        wire = incremental.ask("harbour dredging north channel", k=3)
        assert wire.hits and len(wire.hits[0].also_in) == 1  # the copy found, as in full
        assert main(["--store", pg_url, "check"]) == 0
    finally:
        from retrieval.store.postgres.connect import close_pools

        close_pools()
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {other.rsplit('/', 1)[1]} WITH (FORCE)")


def test_readers_keep_their_generation_until_it_is_dropped(tmp_path, pg_url, embedder):
    """A reader of generation 1 answers the same while 2 is published beside it (the rows
    2 removes and adds are invisible to it); when 3 retires 1, its rows go, and the reader
    is told to open the store again rather than answering from half of it."""
    corpus = _corpus(tmp_path / "corpus")
    index_corpus(corpus, pg_url, embedder, progress=False)
    # three readers of generation 1: one asks now, one after 2, one after 3 (nothing cached)
    first, later, last = (Retriever(open_store(pg_url, model=embedder.name), embedder)
                          for _ in range(3))
    asked = {q: first.ask(q, k=5).to_dict() for q in QUESTIONS}
    _change(corpus)
    index_corpus(corpus, pg_url, embedder, progress=False)
    assert writer.last_delta is not None
    assert {q: later.ask(q, k=5).to_dict() for q in QUESTIONS} == asked
    rows_two = _schema_rows(pg_url)
    (corpus / "story04.txt").unlink()
    index_corpus(corpus, pg_url, embedder, progress=False)
    assert writer.last_delta is not None
    # generation 1's removed rows (story 9's among them) are gone: only 2 and 3 are kept
    assert _schema_rows(pg_url)["passages"] < rows_two["passages"]
    with pytest.raises(IndexMissing, match="open the store again"):
        for q in [*QUESTIONS, "Council story number 9"]:
            last.ask(q, k=5)


def test_full_or_a_large_change_publishes_whole(tmp_path, pg_url, embedder):
    corpus = _corpus(tmp_path / "corpus")
    index_corpus(corpus, pg_url, embedder, progress=False)
    (corpus / "story05.txt").write_text(_story(5, " Edited."), "utf-8")
    index_corpus(corpus, pg_url, embedder, progress=False, incremental=False)  # --full
    assert writer.last_delta is None
    for f in sorted(corpus.glob("story1*.txt")):  # a third of the corpus removed
        f.unlink()
    index_corpus(corpus, pg_url, embedder, progress=False)
    assert writer.last_delta is None
    assert len(open_store(pg_url, model=embedder.name)) == _schema_rows(pg_url)["passages"]
    shutil.rmtree(corpus)


def test_term_counts_are_recovered_from_the_weights_exactly():
    """The counts a full publish stores are the ones the weights were scored from, for
    passages of every length (an empty one included) and terms common and rare."""
    from collections import Counter

    from retrieval.store.bm25 import Scoring
    from retrieval.store.folder.postings import Postings

    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    corpus = [list(rng.choice(words, size=int(rng.integers(0, 300)),
                              p=np.arange(40, 0, -1) / 820)) for _ in range(200)]
    postings = Postings.build(corpus)
    scoring = Scoring(np.diff(postings.indptr), postings.lengths)
    for term, t in postings.vocab.items():
        if term in ("", "\0"):  # bm25s's placeholders
            continue
        docs, weights = postings.term(t)
        expected = [Counter(corpus[d])[term] for d in docs]
        assert scoring.counts(t, docs, weights).tolist() == expected, term
        with pytest.raises(ValueError):  # weights no count gives are refused
            scoring.counts(t, docs, weights * np.float32(1.01))


def test_an_index_whose_weights_do_not_add_up_is_refused_in_one_line(pg_url, embedder):
    from dataclasses import replace

    from retrieval.build.pipeline import build_index
    from retrieval.corpus import load_corpus
    from retrieval.errors import IndexCorrupt
    from retrieval.store import backend

    from .support.paths import SEEDS

    index = build_index(load_corpus(SEEDS), embedder, progress=False)
    index.postings = replace(index.postings, weights=index.postings.weights * np.float32(1.5))
    with pytest.raises(IndexCorrupt, match=r"BM25 weights .* `byline index --full`"):
        backend(pg_url).publish(index)
    assert backend(pg_url).published() is None  # nothing published


def test_a_generation_of_an_older_layout_is_refused_in_one_line_then_published_whole(
        tmp_path, pg_url, embedder, capsys):
    from retrieval.errors import IndexMismatch
    from retrieval.store.postgres import schema

    corpus = _corpus(tmp_path / "corpus")
    index_corpus(corpus, pg_url, embedder, progress=False)
    with psycopg.connect(pg_url) as conn:  # as an earlier Byline left it
        conn.execute("UPDATE byline_generations SET layout = %s", (schema.LAYOUT - 1,))
    with pytest.raises(IndexMismatch, match=r"older Byline .* publish it again"):
        open_store(pg_url, model=embedder.name)
    assert main(["--store", pg_url, "ask", "budget line 17"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("byline:") and "older Byline" in err and len(err.splitlines()) == 1
    index_corpus(corpus, pg_url, embedder, progress=False)
    assert writer.last_delta is None  # published whole, in the current layout
    assert Retriever(open_store(pg_url, model=embedder.name), embedder).ask(
        "budget line 17").answered


def test_ivf_lists_after_a_change_never_propose_removed_rows(tmp_path, pg_url, embedder):
    """A generation searched by IVF lists (forced on a small corpus) keeps its removed rows in
    its lists: they are never proposed, and the nearest held rows still are."""
    from retrieval.build.pipeline import build_index
    from retrieval.corpus import load_corpus
    from retrieval.search.calibrate import calibrated
    from retrieval.store import backend

    corpus = _corpus(tmp_path / "corpus")
    for folder in (corpus, None):
        if folder is None:
            _change(corpus)
        index = calibrated(build_index(load_corpus(corpus), embedder, progress=False,
                                       exact_max=5), embedder)
        backend(pg_url).publish(index)
    assert writer.last_delta is not None and writer.last_delta.removed_passages
    pg = open_store(pg_url, model=embedder.name)
    assert pg.manifest.ann.startswith("ivf") and len(pg) > pg.manifest.passages
    held = np.flatnonzero(pg.held)
    vectors = np.asarray(pg.passage_vectors[held], np.float32)
    for q in QUESTIONS:
        qvec = embedder.encode([q])[0]
        found = pg.dense_search(qvec, 5)[0]
        assert all(pg.held[r] for r in found if r >= 0), q
        exact = held[np.argsort(-(vectors @ qvec), kind="stable")[:3]]
        assert set(found[:5]) >= set(exact), q


def test_a_generation_published_whole_again_keeps_the_rows_of_those_made_since(
        tmp_path, pg_url, embedder):
    """A, then B and C as changes to it (A retired, its schema kept for them), then A's
    index published whole again: the reader still on C keeps answering from C's rows."""
    from retrieval.build.pipeline import build_index
    from retrieval.corpus import load_corpus
    from retrieval.search.calibrate import calibrated
    from retrieval.store import backend

    corpus = _corpus(tmp_path / "corpus")
    first = calibrated(build_index(load_corpus(corpus), embedder, progress=False), embedder)
    backend(pg_url).publish(first)
    _change(corpus)
    index_corpus(corpus, pg_url, embedder, progress=False)
    (corpus / "story04.txt").unlink()
    index_corpus(corpus, pg_url, embedder, progress=False)
    assert writer.last_delta is not None
    on_c = Retriever(open_store(pg_url, model=embedder.name), embedder)
    backend(pg_url).publish(first, full=True)
    assert writer.last_delta is None
    asked = on_c.ask("Which story covers the harbour dredging?", k=3)  # rows read now
    assert asked.hits and asked.hits[0].passage.text.startswith("Harbour dredging")
    assert open_store(pg_url, model=embedder.name).manifest.generation == \
        first.manifest.generation


def test_postings_out_of_order_or_range_are_damage_told_in_one_line(tmp_path, pg_url, embedder):
    from retrieval.errors import IndexCorrupt

    corpus = _corpus(tmp_path / "corpus")
    index_corpus(corpus, pg_url, embedder, progress=False)
    pg = open_store(pg_url, model=embedder.name)
    t = pg.postings.vocab["council"]
    with psycopg.connect(pg_url) as conn:  # a row past the last, appended to the term's rows
        conn.execute(f"UPDATE {pg.schema}.postings SET docs = docs || %s, counts = counts || %s "
                     "WHERE term_id = %s", (np.int32(10**6).tobytes(), np.uint16(1).tobytes(), t))
    with pytest.raises(IndexCorrupt, match="postings holds rows out of range"):
        open_store(pg_url, model=embedder.name).postings.term(t)
    assert len(open_store(pg_url, model=embedder.name).postings.term(
        pg.postings.vocab["budget"])[0])  # the other terms still read
