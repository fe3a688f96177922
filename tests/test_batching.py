"""The /ask batcher on the real Retriever: shared calls, per-ask k, errors, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from bot.batching import AskBatcher
from retrieval.errors import BadQuestion
from retrieval.search.retriever import Answer, Retriever

QUESTIONS = ["why was the trip cancelled", "Where did Pompeo go after leaving Vietnam?",
             "Who did Trump phone while leaving Vietnam?", "What is the capital of France?",
             "Why was no agreement signed in Hanoi?"]


def summary(answer: Answer) -> tuple:
    return (answer.question, answer.answered,
            [(h.rank, h.passage.id, h.quote) for h in answer.hits])


def test_concurrent_asks_share_a_call_and_keep_their_own_k(retriever: Retriever):
    ks = [1, 5, 2, 3, 4]
    batcher = AskBatcher(retriever)

    async def main() -> list[Answer]:
        return await asyncio.gather(*(batcher.ask(q, k) for q, k in zip(QUESTIONS, ks,
                                                                        strict=True)))

    answers = asyncio.run(main())
    assert list(batcher.batch_sizes) == [5]  # one ask_many for all of them
    for q, k, answer in zip(QUESTIONS, ks, answers, strict=True):
        alone = retriever.ask(q, k)
        assert summary(answer) == summary(alone)  # the same as asked alone, with its own k
        if answer.answered:
            assert [h.rank for h in answer.hits] == list(range(1, k + 1))


def test_a_bad_question_fails_only_itself(retriever: Retriever):
    batcher = AskBatcher(retriever)

    async def main() -> list[Answer | BaseException]:
        return await asyncio.gather(batcher.ask("  \n ", 3), batcher.ask(QUESTIONS[0], 3),
                                    batcher.ask("x " * 600, 3), return_exceptions=True)

    empty, good, too_long = asyncio.run(main())
    assert isinstance(empty, BadQuestion) and "empty" in str(empty)
    assert isinstance(too_long, BadQuestion) and "1,199 characters" in str(too_long)
    assert isinstance(good, Answer) and good.answered and len(good.hits) == 3
    assert list(batcher.batch_sizes) == [1]  # refused before they were queued


def test_a_failing_batch_fails_all_its_waiters_then_recovers(retriever: Retriever, monkeypatch):
    index_type = type(retriever.index.vectors)  # FAISS's, not ours
    real_search = index_type.search
    batcher = AskBatcher(retriever)

    def broken(self, *args, **kwargs):
        raise RuntimeError("simulated FAISS failure")

    async def main() -> tuple[list[Answer | BaseException], Answer]:
        monkeypatch.setattr(index_type, "search", broken)
        failed = await asyncio.wait_for(asyncio.gather(
            *(batcher.ask(q, 2) for q in QUESTIONS[:3]), return_exceptions=True), 10)
        monkeypatch.setattr(index_type, "search", real_search)
        return failed, await asyncio.wait_for(batcher.ask(QUESTIONS[0], 2), 10)

    failed, after = asyncio.run(main())
    assert [type(e) for e in failed] == [RuntimeError] * 3
    assert all("simulated FAISS failure" in str(e) for e in failed)
    assert after.answered and len(after.hits) == 2
    assert list(batcher.batch_sizes) == [3, 1]


def test_batch_size_is_capped(retriever: Retriever):
    batcher = AskBatcher(retriever, max_batch=2)

    async def main() -> list[Answer]:
        return await asyncio.gather(*(batcher.ask(q, 1) for q in QUESTIONS))

    answers = asyncio.run(main())
    assert list(batcher.batch_sizes) == [2, 2, 1]
    assert [a.question for a in answers] == QUESTIONS
    with pytest.raises(ValueError):
        AskBatcher(retriever, max_batch=0)


def test_a_cancelled_ask_is_left_out_of_its_batch(retriever: Retriever):
    batcher = AskBatcher(retriever)

    async def main() -> Answer:
        gone = asyncio.create_task(batcher.ask(QUESTIONS[0], 3))
        kept = asyncio.create_task(batcher.ask(QUESTIONS[1], 3))
        await asyncio.sleep(0)  # both queued; the batch has not been taken yet
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    answer = asyncio.run(main())
    assert answer.question == QUESTIONS[1] and answer.answered
    assert list(batcher.batch_sizes) == [1]


def test_asks_under_different_filters_share_a_batch_and_keep_their_own(tmp_path, embedder):
    """One batch, one ask_many per set of filters; bad filters fail their own asks only."""
    from retrieval import index_corpus
    from retrieval.search.filters import Filters

    from .support.news_by_date import write_corpus

    dated = Retriever(index_corpus(write_corpus(tmp_path / "c"), tmp_path / "i", embedder,
                                   progress=False), embedder)
    batcher = AskBatcher(dated)
    q = "Which official has Covid this week?"
    asks = [(q, Filters.parse()), (q, Filters.parse(as_of="2022-05-01")),
            ("Who is the prime minister?", Filters.parse()),
            (q, Filters.parse(outlet="Nowhere Gazette"))]

    async def main() -> list[Answer | BaseException]:
        return await asyncio.gather(*(batcher.ask(x, 2, f) for x, f in asks),
                                    return_exceptions=True)

    now, may, pm, nowhere = asyncio.run(main())
    assert list(batcher.batch_sizes) == [4]
    assert now.hits[0].passage.title == "President Biden tests positive for Covid"
    assert may.hits[0].passage.title == "Kamala Harris tests positive for Covid"
    assert summary(pm) == summary(dated.ask("Who is the prime minister?", 2, Filters.parse()))
    assert isinstance(nowhere, BadQuestion) and "Nowhere Gazette" in str(nowhere)
