"""RSS and Atom feed files: each entry an article (its full content when the feed carries it,
else its summary), with the entry's link and date and the feed's title as outlet."""

from __future__ import annotations

from typing import Any

from retrieval.corpus.clean import clean_paragraphs
from retrieval.corpus.exports import ARTICLE_TEXT_MAX, row_id, row_key, text_blocks
from retrieval.corpus.meta import make_article
from retrieval.corpus.records import Article


class FeedError(ValueError):
    """The file is not an RSS or Atom feed (the message says why)."""


def parse_feed(raw: bytes, base_id: str, source: str, sha256: str = ""
               ) -> tuple[list[Article], list[str]]:
    """Articles of a feed's entries, and one note per entry skipped (with its reason)."""
    import feedparser

    feed = feedparser.parse(raw)
    if not feed.get("version") and not feed.entries:
        reason = getattr(feed.get("bozo_exception"), "getMessage", lambda: "")()
        raise FeedError(f"not an RSS or Atom feed{f' ({reason})' if reason else ''}")
    outlet = feed.feed.get("title")
    articles: list[Article] = []
    notes: list[str] = []
    keys: set[str] = set()
    for n, entry in enumerate(feed.entries, start=1):
        title = entry.get("title") or ""
        body = _entry_body(entry)
        if len(body) > ARTICLE_TEXT_MAX:  # as an export's row is: cut before it is parsed
            notes.append(f"entry {n} cut to its first {ARTICLE_TEXT_MAX:,} characters")
            body = body[:ARTICLE_TEXT_MAX]
        paragraphs = clean_paragraphs(text_blocks(body), title=title) if body else []
        if not paragraphs:
            notes.append(f"entry {n} skipped: no text")
            continue
        key = row_key(entry.get("id") or entry.get("link"), n, keys)
        articles.append(make_article(
            row_id(base_id, key), title or f"{outlet or source} entry {n}", source, paragraphs,
            sha256=sha256, outlet=outlet, date=_entry_date(entry), url=entry.get("link"),
            author=entry.get("author")))
    return articles, notes


def _entry_body(entry: Any) -> str:
    """content:encoded / Atom content when present (the longest), else the summary."""
    contents = [c.get("value", "") for c in entry.get("content", []) if c.get("value")]
    if contents:
        return max(contents, key=len)
    return entry.get("summary", "") or ""


def _entry_date(entry: Any) -> Any:
    """The entry's published (else updated) time: the parsed UTC form when feedparser
    understood it, else the raw text."""
    from calendar import timegm
    from datetime import UTC, datetime

    for key in ("published", "updated", "created"):
        parsed = entry.get(f"{key}_parsed")
        if parsed:
            return datetime.fromtimestamp(timegm(parsed), tz=UTC)
        if entry.get(key):
            return entry.get(key)
    return None
