"""HTML fragments (a feed entry's content, a CMS export's body) as blocks of plain text."""

from __future__ import annotations

import re

# Elements whose text is a block of its own (a paragraph, a heading, a list item...).
_BLOCKS = {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
           "figcaption", "caption", "td", "th", "dd", "dt", "section", "article", "header",
           "footer", "tr", "ul", "ol", "table", "figure", "br", "hr"}
_DROP = {"script", "style", "noscript", "template", "iframe", "svg", "button", "form", "nav"}
_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>")


def looks_like_html(text: str) -> bool:
    """Whether `text` holds HTML tags (more than an odd `<` in prose)."""
    return len(_TAG.findall(text[:20_000])) >= 2


def html_to_blocks(fragment: str) -> list[str]:
    """The text of `fragment`, one block per paragraph-like element, in document order."""
    import lxml.html
    from lxml import etree

    if not fragment.strip():
        return []
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return [fragment.strip()]
    out: list[str] = []
    current: list[str] = []

    def flush() -> None:
        text = " ".join("".join(current).split())
        if text:
            out.append(text)
        current.clear()

    def walk(el: etree._Element) -> None:
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if tag in _DROP or not isinstance(el.tag, str):
            if el.tail:
                current.append(el.tail)
            return
        block = tag in _BLOCKS
        if block:
            flush()
        if el.text:
            current.append(el.text)
        for child in el:
            walk(child)
        if block:
            flush()
        if el.tail:
            current.append(el.tail)

    walk(root)
    flush()
    return out
