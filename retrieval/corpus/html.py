"""The .html / .htm reader: main text and metadata by trafilatura, then Byline's cleaning."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from retrieval.corpus.clean import blocks, clean_paragraphs, is_prose
from retrieval.corpus.meta import clean_url, make_article
from retrieval.corpus.records import Article

if TYPE_CHECKING:  # trafilatura and lxml load only when a page is read (not for `ask`)
    from lxml.etree import _Element

_BLOCKS = {"p", "head", "list", "table", "quote", "div", "code"}
_LEAD_END = re.compile(r"[.!?:;…。！？]$")
# A list whose items are all sentences this long keeps them as separate passages.
MIN_ITEM_WORDS = 12
TABLE_ROWS = 10
# Lists mostly of link text are navigation; so is a short paragraph that is all link.
LIST_LINK_SHARE = 0.5
LINK_SHARE = 0.9
LINK_LINE_WORDS = 20
# Markup handed to the extractor, after scripts, styles, SVG and comments are dropped: of 91
# real news pages the largest holds 225 KB and 2,780 tags. Parsing costs about 35 us a tag
# (a 4 MB page of small <div>s took 21 s), so these bound a hostile page's time and memory.
MARKUP_MAX = 1_000_000
TAGS_MAX = 20_000
# What carries no article text; a JSON-LD script stays (it holds the date and the author).
_CODE_OPEN = re.compile(r"<(script|style|svg|template)\b[^>]*>|<!--", re.I)
_CODE_CLOSE = {name: re.compile(rf"</{name}\s*>", re.I)
               for name in ("script", "style", "svg", "template")}

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_CHARSET = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
# Published timestamps pages state in full (meta tags, JSON-LD, <time datetime>).
_STAMP = re.compile(
    r"""(?:published_time|datePublished|dateCreated|pubdate|publish[-_]?date|"""
    r"""<time[^>]*datetime)["'\s:=a-z-]{0,40}?["']"""
    r"""(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))""",
    re.I,
)


def parse_html(raw: bytes, article_id: str, source: str, sha256: str = "",
               url: str | None = None, notes: list[str] | None = None) -> Article:
    """Extract an HTML page's article text and metadata; no body gives no paragraphs.
    A page whose markup passes MARKUP_MAX is read up to there, with a line in `notes`."""
    import trafilatura

    html = decode_html(raw)
    markup = without_code(html)
    cut = _cut_at(markup)
    if cut < len(markup):
        markup = markup[:cut]
        if notes is not None:
            notes.append(f"only the first {MARKUP_MAX // 1000:,} KB or {TAGS_MAX:,} tags of "
                         "its markup were read")
    doc = trafilatura.bare_extraction(
        markup, url=url, with_metadata=True, include_comments=False, include_tables=True,
        include_links=True,
        date_extraction_params={"original_date": True, "extensive_search": True},
    )
    if doc is None:
        return make_article(article_id, article_id, source, [], sha256=sha256, url=url)
    title = _title(_one_line(doc.title), _one_line(doc.sitename), doc.body)
    paragraphs = clean_paragraphs(body_blocks(doc.body, title), title=title)
    return make_article(article_id, title, source, paragraphs, sha256=sha256,
                        outlet=doc.sitename, date=_date(doc.date, html),
                        url=clean_url(doc.url) or url, author=doc.author)


def without_code(html: str) -> str:
    """The page without its scripts (JSON-LD aside), styles, SVG, templates and comments, in
    one pass: an element left open drops the rest of the page, as a browser would."""
    kept: list[str] = []
    pos = 0
    while (m := _CODE_OPEN.search(html, pos)) is not None:
        name = (m.group(1) or "").lower()
        if name:
            close = _CODE_CLOSE[name].search(html, m.end())
            end = close.end() if close else -1
        else:
            end = html.find("-->", m.end())
            end = end + 3 if end >= 0 else -1
        if end < 0:  # never closed
            kept.append(html[pos:m.start()])
            return "".join(kept)
        keep = name == "script" and "ld+json" in m.group(0).lower()
        kept.append(html[pos:end if keep else m.start()])
        pos = end
    kept.append(html[pos:])
    return "".join(kept)


def _cut_at(markup: str) -> int:
    """Where the markup is cut: before its TAGS_MAX-th tag, or its last tag within
    MARKUP_MAX characters; its length when it is within both."""
    pos = -1
    for _ in range(TAGS_MAX):
        pos = markup.find("<", pos + 1, MARKUP_MAX)
        if pos < 0:
            break
    else:
        return pos
    if len(markup) <= MARKUP_MAX:
        return len(markup)
    last = markup.rfind("<", 0, MARKUP_MAX)
    return last if last > 0 else MARKUP_MAX


def _title(title: str, site: str, body: _Element | None) -> str:
    """The headline: the page title without a site-name suffix, or the body's first heading
    when the title merely extends it."""
    if body is not None:
        head = next(body.iter("head"), None)
        text = _text(head) if head is not None else ""
        if len(text) >= 0.5 * len(title) and title.startswith(text) and text != title:
            return text
    if site:
        for sep in (" | ", " - ", " – ", " — ", " :: "):
            if title.lower().endswith((sep + site).lower()) and len(title) > len(sep + site):
                return title[:-len(sep + site)]
    return title


def body_blocks(body: _Element | None, title: str = "") -> list[str]:
    """trafilatura's body tree as passages: a heading or a `...:` lead-in opens the next
    block, a list of short items or a table's rows stay together as one passage."""
    out: list[str] = []
    lead = ""
    for kind, text in _walk(body):
        if kind == "head" and text != title:
            if lead:
                out.append(lead)
            lead = text
        elif kind in ("p", "list", "table"):
            if lead:
                text = f"{lead} {text}" if _LEAD_END.search(lead) else f"{lead}: {text}"
                lead = ""
            if kind == "p" and text.endswith(":") and len(text) < 200:
                lead = text  # introduces what follows (often a list)
            else:
                out.append(text)
    if lead:
        out.append(lead)
    return out


def _walk(el: _Element | None) -> Iterator[tuple[str, str]]:
    """(kind, text) for each block of trafilatura's output tree, in reading order."""
    if el is None:
        return
    for child in el:
        tag = child.tag
        if _is_link_block(child):
            pass  # navigation, related stories
        elif tag == "head":
            yield "head", _text(child)
        elif tag == "list":
            yield from _list(child)
        elif tag == "table":
            yield from _table(child)
        elif tag in ("quote", "div") and len(child) and child[0].tag in _BLOCKS:
            yield from _walk(child)
        elif tag in ("p", "quote", "div", "code", "item"):
            for line in blocks(_text(child, lines=True).split("\n")):
                yield "p", line
        if child.tail and child.tail.strip():
            yield "p", _one_line(child.tail)


def _is_link_block(el: _Element) -> bool:
    """A list mostly of links, or a short paragraph that is all link (a related headline)."""
    if el.tag not in ("list", "p"):
        return False
    text = "".join(el.itertext()).strip()
    linked = sum(len("".join(ref.itertext()).strip()) for ref in el.iter("ref"))
    if el.tag == "list":
        return linked > LIST_LINK_SHARE * len(text)
    return linked > LINK_SHARE * len(text) and len(text.split()) < LINK_LINE_WORDS


def _list(el: _Element) -> Iterator[tuple[str, str]]:
    """Items that are whole paragraphs stay apart; short items are joined into one."""
    items = [t for t in (_text(i) for i in el if i.tag in ("item", "head")) if t]
    if not items:
        return
    if all(is_prose(t) and len(t.split()) >= MIN_ITEM_WORDS for t in items):
        for t in items:
            yield "p", t
    else:
        yield "list", _join(items)


def _table(el: _Element) -> Iterator[tuple[str, str]]:
    """A table's rows, cells joined by commas, a few rows to a passage."""
    rows = [", ".join(c for c in (_text(cell) for cell in row) if c)
            for row in el.iter("row")]
    rows = [r for r in rows if r]
    for start in range(0, len(rows), TABLE_ROWS):
        yield "table", _join(rows[start:start + TABLE_ROWS])


def _join(items: list[str]) -> str:
    """Items run together as one passage, each ending in its own or a semicolon."""
    return " ".join(t if _LEAD_END.search(t) else f"{t};" for t in items[:-1]) + " " + items[-1]


def _text(el: _Element, lines: bool = False) -> str:
    """The element's words; its <lb/> breaks kept as newlines when `lines`."""
    parts: list[str] = []

    def visit(node: _Element) -> None:
        if node.tag == "lb":
            parts.append("\n" if lines else " ")
        elif node.tag in ("item", "row", "p", "cell", "head"):
            parts.append(" ")
        if node.text and node.tag != "lb":
            parts.append(node.text)
        for child in node:
            visit(child)
            if child.tail:
                parts.append(child.tail)

    visit(el)
    text = "".join(parts)
    if lines:
        return "\n".join(_one_line(line) for line in text.split("\n"))
    return _one_line(text)


_NOT_CHARSETS = frozenset({"punycode", "idna", "utf-7", "raw-unicode-escape",
                           "unicode-escape", "undefined", "mbcs", "oem"})


def _web_charset(name: str) -> bool:
    """Whether a page's declared charset names a text encoding a page may use: Python's
    codecs also hold transforms (rot13, base64, zlib) and encodings of names (punycode,
    idna), which a page has no business naming."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        return False
    return bool(getattr(info, "_is_text_encoding", True)) and info.name not in _NOT_CHARSETS


def decode_html(raw: bytes) -> str:
    """Bytes to text: BOM, then the page's declared charset, then UTF-8, then a guess."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"),
                       (b"\xfe\xff", "utf-16-be")):
        if raw.startswith(bom):
            return raw[len(bom):].decode(codec, errors="replace")
    head = raw[:4096]
    declared = _XML_CHARSET.search(head) or _META_CHARSET.search(head)
    if declared:
        codec = declared.group(1).decode("ascii").lower()
        if codec in ("iso-8859-1", "latin-1", "us-ascii", "ascii"):
            codec = "cp1252"  # what browsers do: the WHATWG encoding standard maps these
        if _web_charset(codec):
            try:
                return raw.decode(codec)
            except (LookupError, UnicodeError, ValueError):
                pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(raw[:200_000]).best()
        return raw.decode(best.encoding if best else "utf-8", errors="replace")


def _date(day: str | None, html: str) -> str | None:
    """The publication day, with its time and offset when the page states them for that day."""
    if not day:
        return None
    for m in _STAMP.finditer(html):
        stamp = m.group(1).replace(" ", "T").replace("Z", "+00:00")
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            continue
        if when.date().isoformat() == day and when.tzinfo is not None:
            return when.replace(microsecond=0).isoformat()
    return day


def _one_line(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()

