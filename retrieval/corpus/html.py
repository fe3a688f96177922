"""Saved web pages: the main text and metadata (trafilatura), then Byline's cleaning."""

from __future__ import annotations

from retrieval.corpus.clean import clean_paragraphs
from retrieval.corpus.meta import make_article
from retrieval.corpus.records import Article


def parse_html(raw: bytes, article_id: str, source: str, sha256: str = "",
               url: str | None = None) -> Article:
    """The article in a saved page: title, date, outlet, author, canonical URL, paragraphs."""
    import trafilatura

    doc = trafilatura.bare_extraction(raw, url=url, with_metadata=True, include_comments=False,
                                      include_tables=False)
    if doc is None:
        return make_article(article_id, article_id, source, [], sha256=sha256, url=url)
    text = doc.text or ""
    title = doc.title or ""
    paragraphs = clean_paragraphs([b for b in text.split("\n") if b.strip()], title=title)
    return make_article(article_id, title, source, paragraphs, sha256=sha256,
                        outlet=doc.sitename, date=doc.date, url=doc.url or url,
                        author=doc.author)
