"""A topic's coverage in date order: one line per story, wire copies collapsed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retrieval.corpus import Passage
from retrieval.corpus.meta import date_key
from retrieval.search.filters import Filters
from retrieval.search.retriever import Candidates, Retriever
from retrieval.store import Copy

# Relevant to the topic: a passage whose fused score is at least TIMELINE_FLOOR of the best
# passage's, among TIMELINE_DEPTH candidates from each retriever; a story is an article
# (its best passage speaks for it), and articles sharing a near-duplicate passage are one
# story (wire copies). The topic must pass the "not covered" test first.
TIMELINE_FLOOR = 0.6
TIMELINE_DEPTH = 200
TIMELINE_MAX = 50


@dataclass(frozen=True)
class Story:
    """One story of a timeline: its article's date, outlet, headline and best sentence."""

    date: str | None
    outlet: str | None
    title: str
    quote: str
    source: str
    url: str | None
    passage_id: str
    score: float
    also_in: tuple[Copy, ...] = ()  # the other articles carrying the story

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.date, "outlet": self.outlet, "title": self.title,
                "quote": self.quote, "source": self.source, "url": self.url,
                "id": self.passage_id, "score": round(self.score, 4),
                "also_in": [c.to_dict() for c in self.also_in]}


@dataclass(frozen=True)
class Timeline:
    """The stories on a topic, oldest first (undated last); empty when not covered."""

    topic: str
    covered: bool
    stories: list[Story]

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "covered": self.covered,
                "stories": [s.to_dict() for s in self.stories]}


def timeline(retriever: Retriever, topic: str, n: int = 20,
             filters: Filters | None = None) -> Timeline:
    """The `n` most relevant stories on `topic` (see TIMELINE_FLOOR), in date order."""
    n = max(1, min(int(n), TIMELINE_MAX))
    allowed = retriever.allowed(filters)  # BadQuestion when they keep no article
    # Relevance is judged over the whole coverage, then the filters remove what they exclude:
    # ranked among the filtered rows alone, scores are normalised over fewer candidates and
    # a story the filters keep could fall under the floor that it passes unfiltered.
    found = retriever.candidates(topic, TIMELINE_DEPTH)
    if not found.answered or not found.rows:
        return Timeline(found.question, False, [])
    floor = TIMELINE_FLOOR * float(found.scores[0])
    index = retriever.index
    # A wire copy is as relevant as its best copy (its own headline may score lower): with
    # that copy filtered out, it still tells the story.
    grouped = index.groups_of(found.rows)
    best: dict[int, float] = {}
    for row, score in zip(found.rows, found.scores, strict=True):
        if row in grouped:
            best[grouped[row]] = max(best.get(grouped[row], score), float(score))
    keep = [i for i, (row, s) in enumerate(zip(found.rows, found.scores, strict=True))
            if max(float(s), best.get(grouped.get(row, -1), 0.0)) >= floor
            and (allowed is None or allowed[row])]
    if not keep:
        return Timeline(found.question, False, [])
    rows = [found.rows[i] for i in keep]
    passages = index.passages(rows)
    groups = {row: grouped[row] for row in rows if row in grouped}
    members: list[dict[str, int]] = []  # per story: article id -> its best passage
    story_of_article: dict[str, int] = {}
    story_of_group: dict[int, int] = {}
    for i, (row, p) in enumerate(zip(rows, passages, strict=True)):
        group = groups.get(row)
        s = story_of_article.get(p.article_id)
        if s is None and group is not None:
            s = story_of_group.get(group)
        if s is None:
            if len(members) == n:
                continue
            s = len(members)
            members.append({})
        members[s].setdefault(p.article_id, i)
        story_of_article.setdefault(p.article_id, s)
        if group is not None:
            story_of_group.setdefault(group, s)
    stories = [_story(retriever, found, rows, passages, groups, m, keep) for m in members]
    stories.sort(key=lambda st: (st.date is None, date_key(st.date), -st.score))
    return Timeline(found.question, True, stories)


def _story(retriever: Retriever, found: Candidates, rows: list[int], passages: list[Passage],
           groups: dict[int, int], members: dict[str, int], keep: list[int]) -> Story:
    """A story told by its first-published article (the most relevant among equals), the
    others carrying it listed in `also_in`."""
    lead = min(members.values(), key=lambda i: (*_when(passages[i]), i))
    p, row = passages[lead], rows[lead]
    also = {passages[i].article_id: _copy(passages[i]) for i in members.values() if i != lead}
    shared = sorted({groups[rows[i]] for i in members.values() if rows[i] in groups})
    for copies in retriever.index.copies(shared).values():
        for c in copies:
            if c.article_id != p.article_id:
                also.setdefault(c.article_id, c)
    quote = retriever.quote(found.qvec, found.terms, p, row, qtokens=found.qtokens)
    return Story(p.date, p.outlet, p.title, quote, p.source, p.url, p.id,
                 float(found.scores[keep[lead]]), tuple(sorted(also.values(), key=_when)))


def _copy(p: Passage) -> Copy:
    return Copy(p.article_id, p.source, p.title, p.outlet, p.date, p.url)


def _when(c: Copy | Passage) -> tuple[bool, datetime]:
    return (c.date is None, date_key(c.date))
