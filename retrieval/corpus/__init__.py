"""Coverage in: one reader per format, all producing Article records; cleaning in `clean`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from retrieval.corpus.clean import clean_paragraphs, furniture_reason
from retrieval.corpus.folder import (
    ARTICLE_SUFFIXES,
    LoadReport,
    Problem,
    checked,
    load_corpus,
    read_article,
    scan_corpus,
)
from retrieval.corpus.plain import parse_article
from retrieval.corpus.records import Article, Passage

__all__ = ["ARTICLE_SUFFIXES", "Article", "LoadReport", "Passage", "Problem", "checked",
           "clean_paragraphs", "furniture_reason", "load_corpus", "parse_article",
           "parser_fingerprint", "read_article", "scan_corpus"]


def parser_fingerprint() -> str:
    """Changes whenever any reader or cleaning rule (any module of this package) changes."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]
