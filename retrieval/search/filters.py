"""Time and outlet filters on the coverage, and the preference for newer coverage that
questions about the present ("this week", "latest") express."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from retrieval.corpus.meta import date_key, parse_date
from retrieval.errors import BadQuestion

if TYPE_CHECKING:
    from retrieval.store.base import Store

UNDATED = np.iinfo(np.int64).min  # a row's date (UTC seconds) when its article has none
DAY = 86_400
# Relative dates, counted back from the as-of date: "today", "yesterday", "last week",
# "3 days ago", "2 weeks ago" (a month is 30 days, a year 365).
_UNITS = {"day": 1, "week": 7, "month": 30, "year": 365}
_AGO = re.compile(r"(\d{1,4}|a|an|one)\s+(day|week|month|year)s?\s+ago")
_LAST = re.compile(r"last\s+(day|week|month|year)")
# Words by which a question asks about the present. Conservative on purpose: each says
# "the newest relevant coverage", none is common in questions about a fixed past event.
# "new" counts only in lower case, so "New York" or "New Delhi" do not.
RECENCY_WORDS = ("this week", "this month", "this year", "today", "tonight", "latest",
                 "newest", "most recent", "recent", "recently", "now", "currently", "current",
                 "so far", "new", "still")
_RECENT = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in RECENCY_WORDS
                                          if w != "new") + r")\b", re.IGNORECASE)
_NEW = re.compile(r"\bnew\b")  # lower case only
# Among candidates scoring at least RECENCY_BAND of the best one (about as relevant), a
# recency question moves newer coverage up: each gets RECENCY_WEIGHT x the best score,
# halved for every RECENCY_HALF_LIFE days it is older than the newest of them.
RECENCY_BAND = 0.7
RECENCY_WEIGHT = 0.5
RECENCY_HALF_LIFE = 7.0
GENERAL_RECENCY = 0.5  # half a recency question's preference (docs/quality.md)


@dataclass(frozen=True)
class Filters:
    """Which coverage a question is asked of: articles dated in [since, until) and not after
    `as_of`, from `outlet` (any when None). Undated articles are kept unless a since or
    until bound is given (their date cannot be placed in a range; as_of alone, which
    defaults to now, must not hide them)."""

    # Exclusive bound: coverage dated at or after it is left out; None: the time of the query
    # (so that filters built at different moments compare equal, and asks batch together).
    as_of: datetime | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    outlet: str | None = None

    @classmethod
    def parse(cls, as_of: str | None = None, since: str | None = None,
              until: str | None = None, outlet: str | None = None,
              now: datetime | None = None) -> Filters:
        """Filters from what a user typed: ISO or written dates, or relative ones ("today",
        "yesterday", "last week", "3 days ago") counted back from the as-of date (default:
        now). A day bound covers the whole day. BadQuestion for a date it cannot read, or
        since after until or after the as-of date."""
        now = now or datetime.now(UTC)
        end = _when(as_of, now, "as-of date", end=True) if _given(as_of) else None
        ref = (end - timedelta(seconds=1)) if end else now
        lo = _when(since, ref, "since date", end=False) if _given(since) else None
        hi = _when(until, ref, "until date", end=True) if _given(until) else None
        if lo and hi and lo >= hi:
            raise BadQuestion(f"The since date ({since.strip()}) is after the until date "
                              f"({until.strip()}).")
        if lo and end and lo >= end:
            raise BadQuestion(f"The since date ({since.strip()}) is after the as-of date "
                              f"({as_of.strip()}).")
        name = " ".join(outlet.split()) if _given(outlet) else None
        return cls(as_of=end, since=lo, until=hi, outlet=name)

    @property
    def dated_only(self) -> bool:
        """Whether undated coverage is left out (a since or until bound is set)."""
        return self.since is not None or self.until is not None

    def describe(self) -> str:
        """The filters in words, for messages ("" when there are none)."""
        parts = []
        if self.since:
            parts.append(f"since {self.since.date().isoformat()}")
        if self.until:
            parts.append(f"until {(self.until - timedelta(seconds=1)).date().isoformat()}")
        if self.outlet:
            parts.append(f"from {self.outlet}")
        return ", ".join(parts)


def _given(text: str | None) -> bool:
    return text is not None and bool(text.strip())


def _when(text: str, ref: datetime, what: str, end: bool) -> datetime:
    """`text` as a UTC time; a day is its start, or with `end` the start of the next day."""
    t = " ".join(text.lower().split())
    day = None
    if t in ("today", "now"):
        day = ref
    elif t == "yesterday":
        day = ref - timedelta(days=1)
    elif m := _LAST.fullmatch(t):
        day = ref - timedelta(days=_UNITS[m[1]])
    elif m := _AGO.fullmatch(t):
        count = int(m[1]) if m[1].isdigit() else 1
        day = ref - timedelta(days=count * _UNITS[m[2]])
    if day is not None:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    iso = parse_date(text)
    if iso is None:
        raise BadQuestion(f"The {what} “{text.strip()[:40]}” is not a date I can read; use "
                          "YYYY-MM-DD (e.g. 2022-06-01), “yesterday”, “last week” or "
                          "“3 days ago”.")
    when = date_key(iso)
    if len(iso) == 10 and end:  # a day: up to its end
        when += timedelta(days=1)
    elif len(iso) > 10 and end:  # a time: up to and including it
        when += timedelta(seconds=1)
    return when


def wants_recent(question: str) -> bool:
    """Whether the question asks about the present (one of RECENCY_WORDS)."""
    return bool(_RECENT.search(question) or _NEW.search(question))


def recency(question: str) -> float:
    """How strongly newer coverage is preferred for `question`: 1 when it asks about the
    present, GENERAL_RECENCY otherwise (news coverage grows by following events: among
    about equally relevant articles, the newer one is the better answer more often than not,
    and in a corpus of months the older ones multiply)."""
    return 1.0 if wants_recent(question) else GENERAL_RECENCY


def prefer_recent(scores: np.ndarray, seconds: np.ndarray, strength: float = 1.0
                  ) -> np.ndarray:
    """`scores` with newer coverage moved up among the about-equally relevant candidates
    (see RECENCY_BAND), by `strength` x RECENCY_WEIGHT; a weaker preference also looks at
    a narrower band (`strength` x its width). Unchanged when none of them is dated."""
    if not len(scores):
        return scores
    top = float(scores.max())
    width = (1 - RECENCY_BAND) * strength
    close = (scores >= top - width * abs(top)) & (seconds != UNDATED)
    if not close.any():
        return scores
    age = (seconds[close].max() - seconds[close]) / DAY
    out = np.array(scores, dtype=np.float32, copy=True)
    out[close] += (np.float32(strength * RECENCY_WEIGHT * abs(top))
                   * 0.5 ** (age / RECENCY_HALF_LIFE))
    return out


class RowMeta:
    """Each passage row's article date and outlet as arrays (built once per index from
    SQLite), so a filter becomes a boolean mask over a million rows in milliseconds."""

    def __init__(self, index: Store) -> None:
        row_article, articles = index.row_articles()
        self.row_article = row_article  # (rows,) int32: the row's article number
        self.article_seconds = np.array(
            [int(date_key(d).timestamp()) if d else UNDATED for d, _ in articles], np.int64)
        self.outlets = sorted({o for _, o in articles if o}, key=str.casefold)
        codes = {o.casefold(): n for n, o in enumerate(self.outlets)}
        self.article_outlet = np.array(
            [codes[o.casefold()] if o else -1 for _, o in articles], np.int32)
        self.seconds = self.article_seconds[row_article]  # (rows,) per passage

    def outlet_code(self, name: str) -> int:
        """The outlet's number, matched without regard to case; BadQuestion if unknown."""
        for n, o in enumerate(self.outlets):
            if o.casefold() == name.casefold():
                return n
        known = ", ".join(self.outlets[:10]) + (" …" if len(self.outlets) > 10 else "")
        raise BadQuestion(f"No coverage from outlet “{name[:60]}”"
                          + (f"; the outlets are: {known}." if known else "; no article "
                             "in the coverage names its outlet."))

    def mask(self, filters: Filters | None) -> np.ndarray | None:
        """Which rows the filters keep (a boolean array), or None when they keep all."""
        if filters is None:
            return None
        keep = self._articles(filters)
        if keep is None:
            return None
        return keep[self.row_article]

    def _articles(self, f: Filters) -> np.ndarray | None:
        s = self.article_seconds
        keep = np.ones(len(s), bool)
        dated = s != UNDATED
        as_of = f.as_of or datetime.now(UTC)
        keep &= ~dated | (s < int(as_of.timestamp()))
        if f.dated_only:
            keep &= dated
        if f.since is not None:
            keep &= s >= int(f.since.timestamp())
        if f.until is not None:
            keep &= s < int(f.until.timestamp())
        if f.outlet is not None:
            keep &= self.article_outlet == self.outlet_code(f.outlet)
        return None if keep.all() else keep


def complete_outlets(outlets: Sequence[str], typed: str, limit: int = 25) -> list[str]:
    """Outlets for an autocomplete: those starting with what was typed, then those holding
    it, at most `limit` (Discord shows 25)."""
    t = typed.strip().casefold()
    starts = [o for o in outlets if o.casefold().startswith(t)]
    holds = [o for o in outlets if t in o.casefold() and o not in starts]
    return (starts + holds)[:limit]
