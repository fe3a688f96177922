"""Follow-up questions: a conversation's last turns, and a new question resolved against them.

After "why was the trip cancelled" comes "when did he announce it?". Asked alone, the
follow-up names nothing to search for. A `Conversation` searches it with what the last turns
were about (their questions and the headline of what answered them) added to it, keeps their
date and outlet filters, and tells a follow-up from a new topic:

- A question that leans on what came before (a pronoun, "then", "next", a "what about" or
  "and ..." opening, or fewer than three words of its own) is a follow-up: it is searched
  with the context. A question of six or more words of its own, at most one of them the
  current topic's, starts a new topic whatever its pronouns.
- Any other question starts a new topic, and is answered as it was asked.
- A follow-up is answered only when a passage found holds some of its *own* new words (or it
  has none beyond the pronouns and words any report answers, "say", "when"): the context
  makes the old story match, so without that check "what did his wife say?" would be
  answered from the previous article (a bluff).

A conversation keeps MAX_TURNS turns and nothing else: what the bot or the CLI does with it
(for how long, how many) is theirs to bound.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field, replace

from retrieval.search.answer import MAX_QUESTION_CHARS, Answer
from retrieval.search.filters import Filters
from retrieval.search.retriever import Retriever
from retrieval.text import analyze

MAX_TURNS = 6  # turns remembered; the context is drawn from the last CONTEXT_TURNS
CONTEXT_TURNS = 2
# A follow-up's new words must have this share of their IDF mass found by the answer's
# passage, its previous paragraph and its headline: one of several is enough ("who did he
# phone while leaving?" finds "phone"), none is a bluff ("what did his wife think?").
OWN_WORDS_SUPPORT = 0.25
# Or, for a follow-up worded otherwise than the story ("did he trust Kim?" where the passage
# says he praised him), its best sentence is this much more like the follow-up asked alone
# than generic questions' are (retrieval.search.retriever.Retriever.sentence_similarity).
OWN_MEANING = 0.15
_LEANING = re.compile(
    r"\b(he|she|it|its|they|them|their|theirs|him|his|her|hers|then|afterwards?|later|"
    r"next|else|former|latter|after that)\b|^\s*(and|but|so|what about|how about)\b",
    re.IGNORECASE)
# Words that stand for what came before: not a follow-up's own words.
_FILLER = frozenset(analyze("he she it its they them their theirs him his her hers about "
                            "then afterwards later next else former latter also too"))
_NEXT = re.compile(r"\b(after that|afterwards?|then|next|later|what happened after)\b",
                   re.IGNORECASE)
_OWN_MIN = 3  # a question with fewer content words of its own leans on the context
_NEW_TOPIC_WORDS = 6  # with this many, and at most _SHARED_MAX of the topic's ...
_SHARED_MAX = 1  # ... words (generic ones aside), a question starts a new topic
DEPTH = 10  # a follow-up's candidates, among which those holding its own words go first
# Words a follow-up asks with that any report of the story answers ("when did he announce
# it?", "how did they react?"): not new words the passage must hold.
_GENERIC = frozenset(analyze("say said tell told think announce happen react reaction "
                             "respond response do make get go come want know mean plan "
                             "next after before when where why how while whom"))


def own_words(question: str) -> list[str]:
    """The question's analysed words, those that stand for what came before left out."""
    return [t for t in analyze(question) if t not in _FILLER]


@dataclass(frozen=True)
class Asked:
    """A question prepared in a conversation: what to search, how deep, under which filters."""

    question: str
    query: str
    k: int  # answers to show
    depth: int  # answers to search for
    filters: Filters | None
    follow_up: bool


@dataclass(frozen=True)
class Turn:
    """One question of the conversation and what answered it."""

    question: str  # as asked
    query: str  # as searched: the question, with the context when it was a follow-up
    answered: bool
    articles: tuple[str, ...]  # the articles shown, best first
    headline: str  # the first answer's headline ("" when refused)
    follow_up: bool
    filters: Filters | None = None
    paragraph: int = 0  # the first answer's paragraph in its article (0 when refused)


@dataclass
class Conversation:
    """The last MAX_TURNS turns of one conversation (a Discord thread, a `byline chat`)."""

    turns: deque[Turn] = field(default_factory=lambda: deque(maxlen=MAX_TURNS))

    def context(self) -> str:
        """What the current topic's last answered turns were about: their questions and the
        headlines that answered them (a refused turn says nothing about the story; a new
        topic leaves the old one behind)."""
        topic: list[Turn] = []  # the answered turns since the current topic began
        for t in self.turns:
            if t.answered and not t.follow_up:
                topic = [t]
            elif t.answered:
                topic.append(t)
        recent = topic[-CONTEXT_TURNS:]
        return " ".join(part for t in recent for part in (t.question, t.headline) if part)

    def leans(self, question: str) -> bool:
        """Whether `question` leans on what came before (see the module's docstring)."""
        if not self.turns:
            return False
        own = set(own_words(question))
        if len(own) < _OWN_MIN:
            return True
        # A pronoun alone does not make a follow-up: "which company closed its stores?"
        # names a new topic when (almost) none of its words is the current topic's.
        shared = own & set(analyze(self.context())) - _GENERIC
        return bool(_LEANING.search(question)) and (
            len(own) < _NEW_TOPIC_WORDS or len(shared) > _SHARED_MAX)

    def ask(self, retriever: Retriever, question: str, k: int = 5,
            filters: Filters | None = None) -> Answer:
        """Answer `question` in this conversation and remember the turn. Without `filters`
        the last turn's are kept (a follow-up asks about the same time and outlet)."""
        asked = self.prepare(question, k, filters)
        found = retriever.ask_many([asked.query], asked.depth, keep_refused=True,
                                   filters=asked.filters)[0]
        return self.finish(retriever, asked, found)

    def prepare(self, question: str, k: int, filters: Filters | None = None) -> Asked:
        """What to search for `question` (step one of `ask`, for callers that batch the
        searches themselves, as the bot does)."""
        if filters is None and self.turns:
            filters = self.turns[-1].filters
        follow_up = self.leans(question)
        # the question whole, then as much context as a question may hold
        query = (f"{question} {self.context()}"[:MAX_QUESTION_CHARS] if follow_up
                 else question)
        return Asked(question, query, k, max(k, DEPTH) if follow_up else k, filters, follow_up)

    def finish(self, retriever: Retriever, asked: Asked, found: Answer) -> Answer:
        """The answer to `asked.question` from what its query found (step two of `ask`: the
        retriever is read for a follow-up's check); the turn is remembered."""
        if asked.follow_up:
            found = self._resolved(retriever, asked.question, found)
        hits = found.hits[:asked.k] if found.answered else []
        self.turns.append(Turn(asked.question, asked.query, found.answered,
                               tuple(h.passage.article_id for h in hits),
                               hits[0].passage.title if hits else "", asked.follow_up,
                               asked.filters, hits[0].passage.paragraph if hits else 0))
        return Answer(asked.question, found.answered, hits, found.confidence, found.evidence)

    def _next_first(self, question: str, answer: Answer) -> Answer:
        """For "what happened next?" / "where did he go after that?": of the passages found
        later in the article that answered last, the nearest one first (a story is told in
        order)."""
        last = next((t for t in reversed(self.turns) if t.answered), None)
        if last is None or not _NEXT.search(question):
            return answer
        later = [h for h in answer.hits if h.passage.article_id == last.articles[0]
                 and h.passage.paragraph > last.paragraph]
        if not later:
            return answer
        nearest = min(later, key=lambda h: h.passage.paragraph)
        order = [nearest, *(h for h in answer.hits if h is not nearest)]
        return replace(answer, hits=[replace(h, rank=n + 1) for n, h in enumerate(order)])

    def _resolved(self, retriever: Retriever, question: str, answer: Answer) -> Answer:
        """The follow-up's answer with the context's help: the passages holding its own new
        words first; refused when it has such words and no passage found holds them (the
        context alone made the previous story match)."""
        if not answer.answered or not answer.hits:
            return answer
        answer = self._next_first(question, answer)
        known = set(analyze(self.context())) | _GENERIC
        new = [t for t in own_words(question) if t not in known]
        if not new:
            return answer
        alike = retriever.sentence_similarity(question, [h.row for h in answer.hits])
        # 2: holds the new words; 1: only means what the follow-up asks; 0: neither
        held = [2 if retriever.support(new, h.row) >= OWN_WORDS_SUPPORT else
                int(sim >= OWN_MEANING) for h, sim in zip(answer.hits, alike.tolist(),
                                                          strict=True)]
        if not any(held):
            return replace(answer, answered=False)
        # those holding the new words (in the passage itself first), then the rest by how
        # alike they are, each in rank order
        keyed = [(-tier, -retriever.support(new, h.row, alone=True) if tier == 2 else -sim, n)
                 for n, (h, tier, sim) in enumerate(zip(answer.hits, held, alike.tolist(),
                                                        strict=True))]
        order = [answer.hits[n] for *_, n in sorted(keyed)]
        return replace(answer, hits=[replace(h, rank=n + 1) for n, h in enumerate(order)])
