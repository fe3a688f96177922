"""The .txt / .md reader: an optional `Key: value` header block, a title line, paragraphs."""

from __future__ import annotations

import re

from retrieval.corpus.clean import blocks, clean_paragraphs, plain
from retrieval.corpus.records import Article

METADATA_KEYS = {"outlet": "outlet", "source": "outlet", "publication": "outlet",
                 "date": "date", "published": "date", "url": "url", "link": "url",
                 "author": "author", "by": "author"}

_META_LINE = re.compile(r"^\s*(?P<key>[A-Za-z]+)\s*:\s*(?P<value>\S.*?)\s*$")


def parse_article(text: str, article_id: str, source: str, sha256: str = "") -> Article:
    """Split raw text into header metadata, title and clean paragraphs."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    meta, title, body = _split_header(lines)
    paragraphs = clean_paragraphs(blocks(body), title=title)
    return Article(id=article_id, title=title or article_id, source=source, sha256=sha256,
                   paragraphs=tuple(paragraphs), **meta)



def _split_header(lines: list[str]) -> tuple[dict[str, str], str, list[str]]:
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
