"""A topic's coverage in date order: one line per story, wire copies collapsed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retrieval.corpus.meta import date_key
from retrieval.search import Retriever
from retrieval.store import Copy
from retrieval.timefilter import Filters

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
    found = retriever.candidates(topic, TIMELINE_DEPTH, filters)
    if not found.answered or not found.rows:
        return Timeline(found.question, False, [])
    floor = TIMELINE_FLOOR * float(found.scores[0])
    keep = [i for i, s in enumerate(found.scores) if s >= floor]
    rows = [found.rows[i] for i in keep]
    index = retriever.index
    passages = index.passages(rows)
    groups = index.groups_of(rows)
    leads: list[int] = []  # position in `rows` of each story's best passage
    story_of_article: dict[str, int] = {}
    story_of_group: dict[int, int] = {}
    carriers: list[dict[str, Copy]] = []  # per story: the other articles, by id
    for i, (row, p) in enumerate(zip(rows, passages, strict=True)):
        group = groups.get(row)
        s = story_of_article.get(p.article_id)
        if s is None and group is not None:
            s = story_of_group.get(group)
        if s is None:
            if len(leads) == n:
                continue
            s = len(leads)
            leads.append(i)
            carriers.append({})
        elif p.article_id != passages[leads[s]].article_id:
            carriers[s].setdefault(p.article_id, Copy(p.article_id, p.source, p.title,
                                                      p.outlet, p.date, p.url))
        story_of_article.setdefault(p.article_id, s)
        if group is not None:
            story_of_group.setdefault(group, s)
    copies = index.copies(sorted({groups[rows[i]] for i in leads if rows[i] in groups}))
    stories = []
    for s, i in enumerate(leads):
        p = passages[i]
        also = dict(carriers[s])
        for c in copies.get(groups.get(rows[i], -1), ()):
            if c.article_id != p.article_id:
                also.setdefault(c.article_id, c)
        quote = retriever.quote(found.qvec, found.terms, p, rows[i], qtokens=found.qtokens)
        stories.append(Story(p.date, p.outlet, p.title, quote, p.source, p.url, p.id,
                             float(found.scores[keep[i]]),
                             tuple(sorted(also.values(), key=_when))))
    stories.sort(key=lambda st: (st.date is None, date_key(st.date), -st.score))
    return Timeline(found.question, True, stories)


def _when(c: Copy) -> tuple[bool, object, str]:
    return (c.date is None, date_key(c.date), c.source)
