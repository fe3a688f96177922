"""Filters by date and outlet, the preference for recent coverage, and timelines."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from retrieval import index_corpus
from retrieval.errors import BadQuestion
from retrieval.model.embed import Embedder
from retrieval.search.filters import Filters, complete_outlets, prefer_recent, wants_recent
from retrieval.search.retriever import Retriever
from retrieval.search.timeline import timeline

from .support.news_by_date import write_corpus
from .support.seed_questions import ON_TOPIC

NOW = datetime(2022, 9, 8, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def dated(tmp_path_factory, embedder: Embedder) -> Retriever:
    root = tmp_path_factory.mktemp("dated")
    index = index_corpus(write_corpus(root / "corpus"), root / "index", embedder, progress=False)
    return Retriever(index, embedder)


def titles(answer) -> list[str]:
    return [h.passage.title for h in answer.hits]


# -- parsing ---------------------------------------------------------------------------

def test_dates_are_parsed_as_whole_days_and_relative_to_the_as_of_date():
    f = Filters.parse(since="2022-06-01", until="June 30, 2022", now=NOW)
    assert f.since == datetime(2022, 6, 1, tzinfo=UTC)
    assert f.until == datetime(2022, 7, 1, tzinfo=UTC)  # the whole of June 30th
    assert f.as_of is None and f.dated_only  # None: now, when asked
    rel = Filters.parse(as_of="2022-09-06", since="last week", until="yesterday", now=NOW)
    assert rel.as_of == datetime(2022, 9, 7, tzinfo=UTC)
    assert rel.since == datetime(2022, 8, 30, tzinfo=UTC)
    assert rel.until == datetime(2022, 9, 6, tzinfo=UTC)
    assert Filters.parse(since="3 days ago", now=NOW).since == datetime(2022, 9, 5, tzinfo=UTC)
    assert Filters.parse(outlet="  The   Times ").outlet == "The Times"
    assert not Filters.parse(as_of="2022-01-01").dated_only


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"since": "the other day"}, "since date “the other day” is not a date"),
    ({"as_of": "soonish"}, "as-of date “soonish” is not a date"),
    ({"since": "2022-06-05", "until": "2022-06-01"}, "is after the until date"),
    ({"since": "2022-06-05", "as_of": "2022-06-01"}, "is after the as-of date"),
])
def test_bad_dates_are_one_clear_error(kwargs, message):
    with pytest.raises(BadQuestion, match=message):
        Filters.parse(**kwargs, now=NOW)


def test_recency_words():
    for q in ("Who is the new prime minister this week?", "What is the latest on the strike?",
              "Who leads the party now?", "Is he currently in office?", "Recently, who won?",
              "How many have died so far?"):
        assert wants_recent(q), q
    for q in ("Who was prime minister in 2019?", "When did New York ban plastic bags?",
              "Why was the trip cancelled?", "What did the knowledge show?"):
        assert not wants_recent(q), q


def test_prefer_recent_moves_up_only_close_dated_candidates():
    day = 86_400
    undated = np.iinfo(np.int64).min
    scores = np.array([2.0, 1.8, 1.7, 0.5], np.float32)
    seconds = np.array([0, 30 * day, undated, 60 * day], np.int64)
    order = np.argsort(-prefer_recent(scores, seconds), kind="stable")
    assert order.tolist() == [1, 0, 2, 3]  # the far less relevant newest one stays last
    none_dated = np.full(4, undated, np.int64)
    assert prefer_recent(scores, none_dated) is scores


def test_outlet_completion():
    outlets = ["Associated Press", "BBC", "CNN", "The Riverside Courier"]
    assert complete_outlets(outlets, "") == outlets
    assert complete_outlets(outlets, "c") == ["CNN", "Associated Press", "BBC",
                                              "The Riverside Courier"]
    assert complete_outlets(outlets, "river") == ["The Riverside Courier"]
    assert len(complete_outlets([f"O{i}" for i in range(40)], "o")) == 25


# -- filtered retrieval ------------------------------------------------------------------

def test_this_week_prefers_the_newest_relevant_coverage(dated: Retriever):
    # The two Covid stories score close together (which comes first without "this week" is
    # a near-tie that the CPU's last bits may tip); asked about this week, the newer leads.
    plain = dated.ask("Which official has Covid?", k=2)
    assert sorted(titles(plain)) == ["Kamala Harris tests positive for Covid",
                                     "President Biden tests positive for Covid"]
    recent = dated.ask("Which official has Covid this week?", k=2)
    assert titles(recent) == ["President Biden tests positive for Covid",
                              "Kamala Harris tests positive for Covid"]
    pm = dated.ask("Who is the new prime minister this week?", k=3)
    assert titles(pm)[0] == "Liz Truss becomes prime minister"
    assert pm.hits[0].to_dict()["citation"]["date"] == "2022-09-06"


def test_as_of_leaves_out_later_coverage(dated: Retriever):
    before = dated.ask("Which official has Covid this week?", k=3,
                       filters=Filters.parse(as_of="2022-05-01"))
    assert titles(before)[0] == "Kamala Harris tests positive for Covid"
    assert all(h.passage.date is None or h.passage.date < "2022-05-02" for h in before.hits)
    pm = dated.ask("Who is the new prime minister this week?", k=3,
                   filters=Filters.parse(as_of="2022-07-31"))
    assert "Liz Truss becomes prime minister" not in titles(pm)
    assert titles(pm)[0] == "Boris Johnson resigns as Conservative leader"


def test_since_until_and_outlet_still_give_k_results(dated: Retriever):
    june_on = dated.ask("Who is the prime minister?", k=4,
                        filters=Filters.parse(since="2022-06-01", until="2022-12-31"))
    assert len(june_on.hits) == 4  # filled from the allowed rows, however unrelated
    assert all("2022-06-01" <= h.passage.date <= "2022-12-31" for h in june_on.hits)
    bbc = dated.ask("Who is the prime minister?", k=3, filters=Filters.parse(outlet="bbc"))
    assert len(bbc.hits) == 3 and {h.passage.outlet for h in bbc.hits} == {"BBC"}
    # The undated article is kept by as-of alone, left out by a since/until range.
    garden = "How big was the tomato harvest in the community gardens?"
    assert titles(dated.ask(garden, k=1, filters=Filters.parse(as_of="2022-01-01"))) == \
        ["Community gardens bloom"]
    ranged = dated.ask(garden, k=1, filters=Filters.parse(until="2030-01-01"))
    assert titles(ranged) != ["Community gardens bloom"]


def test_filters_that_keep_nothing_or_name_no_outlet(dated: Retriever):
    with pytest.raises(BadQuestion, match="No article in the coverage matches"):
        dated.ask("Who is the prime minister?", filters=Filters.parse(until="1999-01-01"))
    with pytest.raises(BadQuestion, match="No coverage from outlet “Fox”; the outlets are: "
                                          "Associated Press, BBC, CNN"):
        dated.ask("Who is the prime minister?", filters=Filters.parse(outlet="Fox"))


def test_seed_rankings_do_not_move_with_recency_words_or_default_filters(retriever: Retriever):
    """The seeds are undated: neither the as-of default nor a recency word changes a thing."""
    assert retriever.allowed(Filters.parse()) is None  # no mask at all
    for question, _ in ON_TOPIC[:8]:
        plain = retriever.ask(question, k=5)
        default = retriever.ask(question, k=5, filters=Filters.parse())
        assert [h.row for h in default.hits] == [h.row for h in plain.hits]
    scores = np.linspace(2.0, 0.1, len(retriever.index)).astype(np.float32)
    assert prefer_recent(scores, retriever.rows_meta().seconds) is scores


# -- timelines ---------------------------------------------------------------------------

def test_timeline_is_in_date_order_one_line_per_story(dated: Retriever):
    t = timeline(dated, "prime minister")
    assert t.covered
    assert [(s.date, s.outlet, s.title) for s in t.stories] == [
        ("2022-02-01", "CNN", "Boris Johnson is prime minister"),
        ("2022-07-07", "BBC", "Boris Johnson resigns as Conservative leader"),
        ("2022-09-06", "BBC", "Liz Truss becomes prime minister")]
    assert "Liz Truss became the British prime minister" in t.stories[-1].quote
    assert [s.date for s in timeline(dated, "prime minister", n=2).stories] == \
        ["2022-02-01", "2022-09-06"]  # the two most relevant, still in date order
    since = timeline(dated, "prime minister", filters=Filters.parse(since="2022-07-01"))
    assert since.stories[0].title == "Boris Johnson resigns as Conservative leader"
    assert all(s.date >= "2022-07-01" for s in since.stories)


def test_timeline_collapses_wire_copies(dated: Retriever):
    t = timeline(dated, "freight train derailment near Marlow")
    [story] = [s for s in t.stories if "Marlow" in s.quote or "train" in s.title.lower()]
    # Told by a first-published copy (two ran on May 1st), the later one listed after.
    assert story.date == "2024-05-01"
    assert {story.outlet, *(c.outlet for c in story.also_in)} == {
        "Associated Press", "Plains Public Radio", "The Riverside Courier"}
    assert [c.date for c in story.also_in] == ["2024-05-01", "2024-05-02"]
    assert len(t.stories) == len({s.title for s in t.stories})


def test_timeline_of_an_uncovered_topic_is_empty(dated: Retriever):
    t = timeline(dated, "the capital of France")
    assert not t.covered and t.stories == []


# -- at scale: the IVF index ---------------------------------------------------------------

@pytest.fixture(scope="module")
def ivf(embedder: Embedder) -> Retriever:
    """3,000 passages in 300 dated articles (one a day from 2022-01-01), behind IVF."""
    from dataclasses import replace
    from datetime import timedelta

    from retrieval.store import FolderIndex

    from .support.synthetic import zipf_corpus

    articles, vecs, sentences = zipf_corpus(3000, embedder.dimension)
    day0 = datetime(2022, 1, 1)
    articles = [replace(a, date=(day0 + timedelta(days=i)).date().isoformat(),
                        outlet=("Daily" if i % 2 else "Weekly")) for i, a in enumerate(articles)]
    passages = [p for a in articles for p in a.passages()]
    index = FolderIndex.from_vectors(articles, passages, vecs, sentences, model=embedder.name,
                               encoder=embedder.encoder, exact_max=1000)
    assert index.manifest.ann.startswith("ivf")
    return Retriever(index, embedder)


@pytest.mark.parametrize("exact_subset_max", [20_000, 10])  # exact subset; IVF + selector
@pytest.mark.parametrize(("filters", "share"), [
    ({"since": "2022-03-01", "until": "2022-03-03"}, 0.01),  # 3 of 300 days
    ({"outlet": "daily"}, 0.5),
])
def test_ivf_filters_still_give_k_results_from_the_allowed_rows(
        ivf: Retriever, filters, share, exact_subset_max):
    from retrieval.store.subset import dense_candidates

    f = Filters.parse(**filters)
    allowed = ivf.allowed(f)
    assert abs(allowed.mean() - share) < 0.005
    qvec = ivf.index.passage_vectors[5]  # a passage's own vector
    found = dense_candidates(ivf.index, qvec, 10, allowed, exact_subset_max)[0]
    assert len(found) == 10 and allowed[found].all()
    rows = np.flatnonzero(allowed)
    exact = rows[np.argsort(-(ivf.index.passage_vectors[rows] @ qvec))[:10]]
    assert len(set(found) & set(exact)) >= 9
    [answer] = ivf.ask_many(["harbor ledgerfield tunnel"], k=10, keep_refused=True, filters=f)
    assert len(answer.hits) == 10 and all(allowed[h.row] for h in answer.hits)
