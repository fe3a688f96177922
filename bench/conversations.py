"""Follow-up questions measured on the news dev set (`make eval`'s conversation table).

Conversations are built from the dev questions (never committed: they are the dev set's), four
turns each, asked as of the question's day:

1. "What is the latest on <headline>?": the question's own article sets the topic.
2. The question with the words it shares with that headline taken out (a name becomes "it",
   "they"): a follow-up that needs the first turn. Right when its own article's passage with
   the answer comes first, answered. Its floors: the same follow-up asked alone, and the
   question written out in full (the target: seen first at least 90% as often as that).
3. Another dev question of the same week, in full: a new topic. Right when it is not taken
   for a follow-up and its own article answers first.
4. A follow-up the coverage does not answer ("what did his grandmother think about it?"):
   right when refused.

    .venv/bin/python -m bench.conversations ../news-dev
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import BadQuestion
from retrieval.search.conversation import Conversation
from retrieval.search.evaluate import EvalQuestion, is_gold
from retrieval.search.filters import Filters
from retrieval.search.retriever import Answer, Retriever
from retrieval.text import analyze

ROOT = Path(__file__).resolve().parent.parent

UNANSWERABLE = ("and what did his grandmother think about it?",
                "what is the name of their dog?", "how much did the caterer charge them?",
                "what did the neighbours' children say about it?")


@dataclass(frozen=True)
class Talk:
    """One built conversation."""

    headline: str
    full: EvalQuestion  # the question written out
    elided: str  # the same question leaning on turn 1
    switch: EvalQuestion  # another topic of the same week
    unanswerable: str


def elide(question: str, headline: str) -> str | None:
    """`question` with its capitalised names that the headline also has replaced by a
    pronoun; None when it shares none (nothing to lean on)."""
    said = set(analyze(headline))
    out, changed = question, False
    for name in sorted(set(re.findall(r"(?:[A-Z][\w’'.-]+\s?)+", question)), key=len,
                       reverse=True):
        words = analyze(name)
        if words and all(w in said for w in words) and not question.startswith(name):
            pronoun = "they" if name.rstrip().endswith("s") else "it"
            out, changed = out.replace(name.rstrip(), pronoun), True
    return out if changed and len(analyze(out)) >= 1 else None


def build(questions: list[EvalQuestion], titles: dict[str, str]) -> list[Talk]:
    """Conversations from the dev questions whose own article's headline shares a name."""
    talks = []
    for n, q in enumerate(questions):
        own = sorted(q.own_sources)
        headline = titles.get(own[0]) if own else None
        elided = elide(q.question, headline) if headline else None
        if not elided:
            continue
        others = [o for o in questions if o.as_of == q.as_of and not o.own_sources & q.own_sources]
        if not others:
            continue
        talks.append(Talk(headline, q, elided, others[n % len(others)],
                          UNANSWERABLE[n % len(UNANSWERABLE)]))
    return talks


def _first(q: EvalQuestion, a: Answer) -> bool:
    return a.answered and bool(a.hits) and is_gold(q, a.hits[0])


def evaluate(retriever: Retriever, talks: list[Talk]) -> dict[str, float]:
    """Per turn kind, the share right (see the module's docstring), and the floors."""
    tally = dict.fromkeys(("follow_up", "follow_up_alone", "full", "switch_detected",
                           "switch_first", "unanswerable_refused", "topic_answered"), 0)
    for t in talks:
        filters = Filters.parse(as_of=t.full.as_of) if t.full.as_of else None
        try:
            chat = Conversation()
            first = chat.ask(retriever, f"What is the latest on {t.headline}?", 3, filters)
            tally["topic_answered"] += first.answered
            tally["follow_up"] += _first(t.full, chat.ask(retriever, t.elided, 3))
            switch = chat.ask(retriever, t.switch.question, 3)
            tally["switch_detected"] += not chat.turns[-1].follow_up
            tally["switch_first"] += _first(t.switch, switch)
            tally["unanswerable_refused"] += not chat.ask(retriever, t.unanswerable, 3).answered
            alone = retriever.ask(t.elided, 3, filters)
            tally["follow_up_alone"] += _first(t.full, alone)
            tally["full"] += _first(t.full, retriever.ask(t.full.question, 3, filters))
        except BadQuestion:  # nothing published yet on that day
            continue
    n = max(len(talks), 1)
    return {"conversations": len(talks)} | {k: v / n for k, v in tally.items()}


def table(r: dict[str, float]) -> list[str]:
    ratio = r["follow_up"] / r["full"] if r["full"] else float("nan")
    return [f"{int(r['conversations'])} conversations of four turns (bench/conversations.py)."
            " Seen first: the question's own passage with the answer first, answered.", "",
            "| turn | measure | Byline |", "|---|---|---|",
            f"| 1. the topic | answered | {r['topic_answered']:.3f} |",
            f"| 2. the follow-up, in the conversation | seen first | {r['follow_up']:.3f} |",
            f"| 2. the same follow-up asked alone (floor) | seen first | "
            f"{r['follow_up_alone']:.3f} |",
            f"| 2. the question written out in full | seen first | {r['full']:.3f} |",
            f"| 2. follow-up / written out (target ≥ 0.90) | ratio | {ratio:.3f} |",
            f"| 3. a new topic | not taken for a follow-up | {r['switch_detected']:.3f} |",
            f"| 3. a new topic | seen first | {r['switch_first']:.3f} |",
            f"| 4. a follow-up the coverage does not answer | refused | "
            f"{r['unanswerable_refused']:.3f} |", ""]


def main(news: Path) -> None:
    from retrieval.build.pipeline import build_index
    from retrieval.model.embed import Embedder
    from retrieval.search.evaluate import load_news

    articles, questions = load_news(news)
    embedder = Embedder()
    retriever = Retriever(build_index(articles, embedder, corpus=str(news)), embedder)
    titles = {a.source.rsplit("/", 1)[-1]: a.title for a in articles}
    print("\n".join(table(evaluate(retriever, build(questions, titles)))))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "news-dev")
