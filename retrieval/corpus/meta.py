"""Citation metadata made safe: plain bounded text, http(s) URLs only, dates as ISO 8601."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time
from email.utils import parsedate_to_datetime

from retrieval.corpus.records import Article

TITLE_MAX = 300  # characters kept of a title
FIELD_MAX = 200  # of an outlet or author
URL_MAX = 2048  # a longer URL is dropped, not cut (a cut URL points elsewhere)

# Terminal escape sequences (CSI / OSC) first, then any other control or format character.
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b.?")
_SPACE = re.compile(r"\s+")
_URL_OK = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|"
           "december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec")
# "March 4, 2022", "4 March 2022", "Mar. 4, 2022 10:42 AM", "2022-03-04", "2022/03/04".
_DATE_IN_TEXT = re.compile(
    rf"\b(?:(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|\d{{1,2}}\s+(?:{_MONTHS})\.?,?\s+\d{{4}}"
    r"|\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{4}/\d{2}/\d{2})\b",
    re.IGNORECASE,
)
_EARLIEST, _LATEST_YEAR = 1800, 2200


def clean_text(value: object, limit: int = FIELD_MAX) -> str | None:
    """One line of plain text: no control characters or escapes, spaces collapsed, at most
    `limit` characters (cut at a word); None when nothing is left."""
    if value is None:
        return None
    text = _ESCAPE.sub("", str(value))
    text = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in text)
    text = _SPACE.sub(" ", text).strip()
    if len(text) > limit:
        cut = text[: limit - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-—") + "…"
    return text or None


def clean_url(value: object) -> str | None:
    """`value` when it is an absolute http(s) URL of sane length, else None."""
    if value is None:
        return None
    url = str(value).strip()
    if len(url) > URL_MAX or any(unicodedata.category(c)[0] == "C" for c in url):
        return None
    return url if _URL_OK.match(url) else None


def parse_date(value: object) -> str | None:
    """`value` as ISO 8601 (`2024-05-01`, or `2024-05-01T09:30:00+00:00` when the time is
    known), or None when it is not a date. Accepts ISO forms, RFC 822 (feeds), Unix times
    and common written forms ("March 4, 2022", "4 Mar 2022 10:42 AM")."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _iso(value, has_time=True)
    if isinstance(value, date):
        return _iso(datetime.combine(value, time()), has_time=False)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_timestamp(float(value))
    text = clean_text(value, 100)
    if not text:
        return None
    if re.fullmatch(r"\d{9,13}", text):
        return _from_timestamp(float(text) / (1000 if len(text) > 11 else 1))
    for parse in (_from_iso, _from_rfc822, _from_words):
        parsed = parse(text)
        if parsed is not None:
            return parsed
    return None


def find_date(text: str) -> str | None:
    """The first date written in `text` (a dateline, "Updated 10:42 AM ET, Fri March 4,
    2022"), as ISO 8601, or None."""
    m = _DATE_IN_TEXT.search(text)
    return parse_date(m.group(0)) if m else None


def _iso(dt: datetime, has_time: bool) -> str | None:
    if not _EARLIEST <= dt.year <= _LATEST_YEAR:
        return None
    if not has_time or (dt.time() == time() and dt.tzinfo is None):
        return dt.date().isoformat()
    return dt.replace(microsecond=0).isoformat()


def _from_timestamp(seconds: float) -> str | None:
    from datetime import UTC

    try:
        return _iso(datetime.fromtimestamp(seconds, tz=UTC), has_time=True)
    except (OverflowError, OSError, ValueError):
        return None


def _from_iso(text: str) -> str | None:
    t = text.replace("/", "-") if re.fullmatch(r"\d{4}/\d{2}/\d{2}", text) else text
    if not re.match(r"^\d{4}-\d{2}(-\d{2})?", t):
        return None
    if re.fullmatch(r"\d{4}-\d{2}", t):
        t += "-01"
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None
    return _iso(dt, has_time=len(t) > 10)


def _from_rfc822(text: str) -> str | None:
    if not re.search(r"\d{1,2} \w{3} \d{4}", text):
        return None
    try:
        dt = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return _iso(dt, has_time=True) if dt else None


def _from_words(text: str) -> str | None:
    """Written dates ("March 4, 2022 10:42 AM"): dateutil, strict (no fuzzy guessing), and
    only when the text names a month or a year-like number."""
    if not re.search(rf"\b({_MONTHS})\b|\b\d{{4}}\b", text, re.IGNORECASE):
        return None
    from dateutil import parser as dateutil_parser

    try:
        dt = dateutil_parser.parse(text, default=datetime(1, 1, 1))
    except (ValueError, OverflowError, TypeError):
        return None
    if dt.year == 1:  # no year given: not a usable date
        return None
    has_time = bool(re.search(r"\d{1,2}:\d{2}|\b\d{1,2}\s*(am|pm)\b", text, re.IGNORECASE))
    return _iso(dt, has_time=has_time)


def make_article(article_id: str, title: object, source: str, paragraphs: list[str],
                 sha256: str = "", outlet: object = None, date: object = None,
                 url: object = None, author: object = None) -> Article:
    """An Article whose citation fields are all safe: every reader ends here."""
    return Article(id=article_id, title=clean_text(title, TITLE_MAX) or article_id,
                   source=source, outlet=clean_text(outlet), date=parse_date(date),
                   url=clean_url(url), author=clean_text(author), sha256=sha256,
                   paragraphs=tuple(paragraphs))


def date_key(iso: str | None) -> datetime:
    """A stored ISO date as a comparable UTC time (a day alone is its midnight UTC; no
    date sorts first), so `2022-05-03T23:00:00-05:00` is later than `2022-05-04`."""
    from datetime import UTC

    if not iso:
        return datetime.min.replace(tzinfo=UTC)
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
