"""What a search gives back: cited hits, the evidence behind "not covered", the answer; and
the check every question passes first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrieval.corpus import Passage
from retrieval.errors import BadQuestion
from retrieval.store import Copy

MAX_QUESTION_CHARS = 1000


@dataclass(frozen=True)
class Hit:
    """One cited passage: its rank, fused score and the sentence that best answers."""

    rank: int
    # The fused ranking score in 0..1 (higher ranks first); comparable within one question.
    score: float
    passage: Passage
    quote: str
    row: int = -1  # the passage's row in the index
    quote_from: str = "text"  # "headline" when the article's headline answers best
    # Other articles holding a near-duplicate of this passage (shown once, cited for all).
    also_in: tuple[Copy, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        p = self.passage
        return {
            "rank": self.rank, "score": round(self.score, 4), "id": p.id, "text": p.text,
            "quote": self.quote, "quote_from": self.quote_from,
            "citation": {"title": p.title, "source": p.source, "paragraph": p.paragraph,
                         "outlet": p.outlet, "date": p.date, "url": p.url,
                         "also_in": [c.to_dict() for c in self.also_in]},
        }


@dataclass(frozen=True)
class Evidence:
    """How strongly the coverage speaks to a question (the "not covered" decision's inputs)."""

    dense: float  # best cosine similarity between the question and any candidate passage
    # IDF-weighted share of the question's terms found in the top passage, its previous
    # paragraph and its headline (news paragraphs are short; the subject is named before).
    lexical: float
    sentence: float = 0.0  # the top passage's best sentence similarity to the question
    # How many distinct content terms the question has: a long question (news trivia) holds
    # words no single passage repeats, so its coverage runs lower for the same certainty.
    terms: int = 0


@dataclass(frozen=True)
class Answer:
    """What the coverage says about a question; `hits` is empty when not answered."""

    question: str
    answered: bool
    hits: list[Hit] = field(default_factory=list)
    confidence: float = 0.0
    evidence: Evidence | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answered": self.answered,
                "results": [h.to_dict() for h in self.hits]}


@dataclass(frozen=True)
class Candidates:
    """A question's ranked candidate rows, before copies are collapsed."""

    question: str
    rows: list[int]
    scores: np.ndarray
    qvec: np.ndarray
    terms: list[str]
    qtokens: np.ndarray | None
    answered: bool  # whether the coverage answers it (the "not covered" decision)


def check_question(question: str) -> str:
    """The question, stripped; BadQuestion if it is empty or too long."""
    if not isinstance(question, str) or not question.strip():
        raise BadQuestion("The question is empty; ask something about the coverage.")
    q = " ".join(question.split())
    try:  # a command-line argument that was not UTF-8 arrives with lone surrogates
        q.encode("utf-8")
    except UnicodeEncodeError:
        raise BadQuestion("The question is not valid UTF-8 text; type it again.") from None
    if len(q) > MAX_QUESTION_CHARS:
        raise BadQuestion(
            f"The question is {len(q):,} characters long; the limit is {MAX_QUESTION_CHARS:,}."
        )
    return q
