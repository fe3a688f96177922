"""The .txt / .md reader: an optional `Key: value` header block, a title line, paragraphs."""

from __future__ import annotations

import re

from retrieval.corpus.clean import blocks, clean_paragraphs, furniture_reason, plain
from retrieval.corpus.meta import find_date, make_article, parse_date
from retrieval.corpus.records import Article

METADATA_KEYS = {"outlet": "outlet", "source": "outlet", "publication": "outlet",
                 "date": "date", "published": "date", "url": "url", "link": "url",
                 "author": "author", "by": "author"}

_META_LINE = re.compile(r"^\s*(?P<key>[A-Za-z]+)\s*:\s*(?P<value>\S.*?)\s*$")


def parse_article(text: str, article_id: str, source: str, sha256: str = "") -> Article:
    """Split raw text into header metadata, title and clean paragraphs."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    meta, title, body = split_header(lines)
    raw_blocks = blocks(body)
    paragraphs = clean_paragraphs(raw_blocks, title=title)
    if parse_date(meta.get("date")) is None:
        meta["date"] = dateline(raw_blocks)
    return make_article(article_id, title, source, paragraphs, sha256=sha256, **meta)


def dateline(lines: list[str]) -> str | None:
    """The date a page states near its top ("Updated 10:42 AM ET, March 4, 2022", "March 4,
    2022 (AP) —"): the first of the top few lines that is short, or the start of the first
    paragraph, that holds a date."""
    for line in lines[:6]:
        if furniture_reason(line) not in (None, "short line, not a sentence", "label"):
            continue  # a photo caption's date is not the article's
        head = line if len(line) <= 120 else line[:80]
        found = find_date(head)
        if found:
            return found
    return None


def split_header(lines: list[str]) -> tuple[dict[str, str], str, list[str]]:
    """Take `Key: value` metadata lines before and right after the title line."""
    meta: dict[str, str] = {}
    title = ""
    i = 0

    def take_meta() -> None:
        nonlocal i
        while i < len(lines):
            m = _META_LINE.match(lines[i])
            key = m and m["key"].lower()
            if key == "title" and not title:
                meta["title"] = m["value"]
            elif not key or key not in METADATA_KEYS:
                return
            else:
                meta.setdefault(METADATA_KEYS[key], m["value"])
            i += 1

    while i < len(lines) and not lines[i].strip():
        i += 1
    take_meta()
    title = meta.pop("title", "")
    while not title and i < len(lines):
        title = plain(lines[i]).strip()
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    take_meta()
    meta.pop("title", None)
    return meta, title, lines[i:]
