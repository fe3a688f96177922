"""CMS and news-API exports (.jsonl, .json, .csv): one article per row.

Field names, matched case-insensitively, first found wins:
  title   title, headline, name
  text    text, body, content, article, articlebody, full_text, fulltext, story,
          then summary, description (a row with none of them is skipped and named)
  date    date, published, published_at, publishedat, pubdate, datepublished, created_at,
          timestamp, time, updated
  url     url, link, canonical_url, href, permalink
  outlet  outlet, source, site, site_name, publisher, publication, source_name (an object's
          "name", as news APIs nest it)
  author  author, authors, byline, creator (a list is joined with commas)
  id      id, guid, uuid, key, then the url: a row's stable key in its article id
A body that holds HTML is reduced to its paragraphs; a list of strings is one per paragraph.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from retrieval.corpus.clean import blocks, clean_paragraphs
from retrieval.corpus.markup import html_to_blocks, looks_like_html
from retrieval.corpus.meta import make_article
from retrieval.corpus.records import Article

FIELDS: dict[str, tuple[str, ...]] = {
    "title": ("title", "headline", "name"),
    "text": ("text", "body", "content", "article", "articlebody", "full_text", "fulltext",
             "story", "summary", "description"),
    "date": ("date", "published", "published_at", "publishedat", "pubdate", "datepublished",
             "created_at", "timestamp", "time", "updated"),
    "url": ("url", "link", "canonical_url", "href", "permalink"),
    "outlet": ("outlet", "source", "site", "site_name", "publisher", "publication",
               "source_name"),
    "author": ("author", "authors", "byline", "creator"),
    "id": ("id", "guid", "uuid", "key"),
}
# A JSON document may hold its rows under one of these keys.
_ROW_LISTS = ("articles", "items", "data", "results", "entries", "docs", "hits", "posts",
              "stories", "records")
ARTICLE_TEXT_MAX = 500_000  # characters of one row's text kept
ROW_SEPARATOR = ":"  # between a file's id and a row key in an article id


class ExportError(ValueError):
    """The file is not a readable export (the message says why)."""


def read_jsonl(text: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) of a JSON Lines file; a bad line raises ExportError."""
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except ValueError as exc:
                raise ExportError(f"line {n} is not JSON ({exc.msg})") from None


def read_json(text: str) -> Iterator[tuple[int, Any]]:
    """(row number, row) of a JSON export: a list of rows, or an object holding one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ExportError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict):
        lists = [data[k] for k in data if k.lower() in _ROW_LISTS and isinstance(data[k], list)]
        data = lists[0] if lists else [data]
    if not isinstance(data, list):
        raise ExportError("not a list of articles")
    return enumerate(data, start=1)


def read_csv(text: str) -> Iterator[tuple[int, Any]]:
    """(row number, row) of a CSV export with a header row (delimiter sniffed)."""
    try:
        dialect: Any = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    csv.field_size_limit(ARTICLE_TEXT_MAX * 4)
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
    try:
        yield from enumerate(reader, start=2)  # line 1 is the header
    except csv.Error as exc:
        raise ExportError(f"not valid CSV ({exc})") from None


def rows_to_articles(rows: Iterable[tuple[int, Any]], base_id: str, source: str,
                     sha256: str, row_label: str = "row") -> tuple[list[Article], list[str]]:
    """Articles of an export's rows, and one note per row skipped (with its reason)."""
    articles: list[Article] = []
    notes: list[str] = []
    keys: set[str] = set()
    for n, row in rows:
        if not isinstance(row, Mapping):
            notes.append(f"{row_label} {n} skipped: not an object")
            continue
        fields = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        title = _first(fields, "title")
        body = fields_text(fields)
        if not body:
            notes.append(f"{row_label} {n} skipped: no text")
            continue
        if len(body) > ARTICLE_TEXT_MAX:
            notes.append(f"{row_label} {n} cut to its first {ARTICLE_TEXT_MAX:,} characters")
            body = body[:ARTICLE_TEXT_MAX]
        paragraphs = clean_paragraphs(text_blocks(body), title=str(title or ""))
        if not paragraphs:
            notes.append(f"{row_label} {n} skipped: no article text left after cleaning")
            continue
        key = row_key(_first(fields, "id") or _first(fields, "url"), n, keys)
        articles.append(make_article(
            row_id(base_id, key), title or f"{source} {row_label} {n}", source, paragraphs,
            sha256=sha256, outlet=_outlet(fields), date=_first(fields, "date"),
            url=_first(fields, "url"), author=_author(fields)))
    return articles, notes


def row_id(base_id: str, key: str) -> str:
    """The id of one row of an export or feed: `<file's id>:<row key>`. A file's id never
    holds ":" (retrieval.corpus.folder), so `a.json`'s row `b` cannot take `a/b.txt`'s id."""
    return f"{base_id}{ROW_SEPARATOR}{key}"


def fields_text(fields: Mapping[str, Any]) -> str:
    """The row's body as text (a list of paragraphs joined by blank lines)."""
    value = _first(fields, "text")
    if isinstance(value, list):
        value = "\n\n".join(str(v) for v in value if isinstance(v, str | int | float))
    return str(value).strip() if isinstance(value, str | int | float) else ""


def text_blocks(body: str) -> list[str]:
    """Paragraph blocks of a body given as HTML or as plain text."""
    if looks_like_html(body):
        return html_to_blocks(body)
    return blocks(body.replace("\r\n", "\n").split("\n"))


def row_key(value: object, n: int, taken: set[str]) -> str:
    """A short, path-safe, unique key for a row: from its id or URL, else its number."""
    key = ""
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        key = re.sub(r"^https?://", "", str(value).strip())
        key = re.sub(r"[^\w.-]+", "-", key).strip("-.")
        if len(key) > 60:
            digest = hashlib.sha256(str(value).encode()).hexdigest()[:10]
            key = f"{key[:40].rstrip('-.')}-{digest}"
    key = key or f"row-{n}"
    if key in taken:
        key = f"{key}-{n}"
    taken.add(key)
    return key


def _first(fields: Mapping[str, Any], name: str) -> Any:
    for alias in FIELDS[name]:
        value = fields.get(alias)
        if value not in (None, "", [], {}):
            return value
    return None


def _outlet(fields: Mapping[str, Any]) -> Any:
    value = _first(fields, "outlet")
    if isinstance(value, Mapping):  # news APIs: "source": {"id": "cnn", "name": "CNN"}
        value = value.get("name") or value.get("title")
    return value if isinstance(value, str) else None


def _author(fields: Mapping[str, Any]) -> Any:
    value = _first(fields, "author")
    if isinstance(value, list):
        names = [v.get("name") if isinstance(v, Mapping) else v for v in value]
        value = ", ".join(str(v) for v in names if isinstance(v, str) and v.strip())
    if isinstance(value, Mapping):
        value = value.get("name")
    return value if isinstance(value, str) else None
