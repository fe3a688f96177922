"""Load a folder of scraped articles and clean them into Article / Passage records."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from retrieval.errors import CorpusError

ARTICLE_SUFFIXES = (".txt", ".md")
METADATA_KEYS = {"outlet": "outlet", "source": "outlet", "publication": "outlet",
                 "date": "date", "published": "date", "url": "url", "link": "url",
                 "author": "author", "by": "author"}

_META_LINE = re.compile(r"^\s*(?P<key>[A-Za-z]+)\s*:\s*(?P<value>\S.*?)\s*$")
_TERMINAL = re.compile(r"""[.!?…]["'”’)\]]*$""")
_WORD = re.compile(r"[A-Za-z0-9][\w'’.-]*")
_URL = re.compile(r"https?://\S+|www\.\S+")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_NOISE = re.compile(r"^\s{0,3}(#{1,6}\s+|[-*+]\s+|>\s*)")
# Calls to action that scraped pages scatter between paragraphs.
_PROMPT = re.compile(
    r"^(sign up|subscribe|start your day|get (the|our)|join (us|our)|follow (us|@)|"
    r"download (the|our)|click here|read more|read next|share (this|on)|advertisement|"
    r"sponsored|related( stories| coverage| articles)?:|recommended|also on|"
    r"watch( the)?( video)?:|listen( to)?:|newsletter|support (our|us)|"
    r"we'?d like to|this article (was|is) (originally|updated))",
    re.IGNORECASE,
)
# Photo and video credits: "(Photo by X/Getty Images)", "Photo: AP", "Image credit: ...".
_CREDIT = re.compile(
    r"\((photo|image|video|graphic)s? (by|courtesy|credit)[^)]*\)|"
    r"^(photo|image|video|picture|credit|caption)s?( credit)?\s*:|"
    r"\b(getty images|shutterstock|afp via getty|ap photo|reuters/|photo illustration)\b|"
    r"\bMORE\s+LESS\s*$",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(r"\s[|•·»/]\s")

# A paragraph shorter than this many words must end like a sentence to count as prose.
MIN_PROSE_WORDS = 8


@dataclass(frozen=True)
class Article:
    """One source document: its stable id, title and citation metadata."""

    id: str
    title: str
    source: str
    outlet: str | None = None
    date: str | None = None
    url: str | None = None
    author: str | None = None
    sha256: str = ""
    paragraphs: tuple[str, ...] = field(default=(), repr=False)

    def passages(self) -> list[Passage]:
        return [
            Passage(id=f"{self.id}#{n}", article_id=self.id, title=self.title,
                    source=self.source, paragraph=n, text=text, outlet=self.outlet,
                    date=self.date, url=self.url)
            for n, text in enumerate(self.paragraphs, start=1)
        ]


@dataclass(frozen=True)
class Passage:
    """One retrievable paragraph with everything needed to cite it."""

    id: str
    article_id: str
    title: str
    source: str
    paragraph: int
    text: str
    outlet: str | None = None
    date: str | None = None
    url: str | None = None

    @cached_property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]


def parser_fingerprint() -> str:
    """Changes whenever this module (all of the reading and cleaning rules) changes."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def load_corpus(folder: str | Path, known: Mapping[str, Article] | None = None
                ) -> list[Article]:
    """Read every .txt/.md article under `folder`, cleaned; raise CorpusError if unusable.

    `known` maps a source path to that file's article as parsed before (by this same
    parser: see `parser_fingerprint`); a file whose bytes still hash the same is not parsed
    again. A re-index takes them from the previous index."""
    root = Path(folder)
    if not root.exists():
        raise CorpusError(f"Corpus folder {root} does not exist.")
    if not root.is_dir():
        raise CorpusError(f"Corpus path {root} is not a folder.")
    # Not `is_file()`: a broken link named *.txt should be reported, not silently skipped.
    files = sorted(p for p in root.rglob("*")
                   if p.suffix.lower() in ARTICLE_SUFFIXES and not p.is_dir()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise CorpusError(f"Corpus folder {root} has no .txt or .md articles.")
    articles = [a for a in (read_article(p, root, known) for p in files) if a.paragraphs]
    if not articles:
        raise CorpusError(f"Corpus folder {root} has no article text left after cleaning.")
    return articles


def read_article(path: Path, root: Path | None = None,
                 known: Mapping[str, Article] | None = None) -> Article:
    """Read and clean one article file; the id is its path relative to `root`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not UTF-8 text (bad byte at offset {exc.start}); "
            "convert it to UTF-8 or remove it."
        ) from None
    rel = path.relative_to(root) if root else Path(path.name)
    sha256 = hashlib.sha256(raw).hexdigest()
    before = known.get(rel.as_posix()) if known else None
    if before is not None and before.sha256 == sha256 and before.id == _article_id(rel):
        return before
    return parse_article(text, article_id=_article_id(rel), source=rel.as_posix(),
                         sha256=sha256)


def parse_article(text: str, article_id: str, source: str, sha256: str = "") -> Article:
    """Split raw text into header metadata, title and clean paragraphs."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    meta, title, body = _split_header(lines)
    paragraphs = clean_paragraphs(_blocks(body), title=title)
    return Article(id=article_id, title=title or article_id, source=source, sha256=sha256,
                   paragraphs=tuple(paragraphs), **meta)


def _article_id(rel: Path) -> str:
    stem = rel.with_suffix("").as_posix()
    return re.sub(r"[^\w/.-]+", "-", stem).strip("-") or "article"


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
        title = _plain(lines[i]).strip()
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    take_meta()
    meta.pop("title", None)
    return meta, title, lines[i:]


def _plain(line: str) -> str:
    """Drop Markdown markers and link targets, keep the words."""
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_NOISE.sub("", line)
    return line.replace("**", "").replace("__", "")


def _blocks(lines: Iterable[str]) -> list[str]:
    """Group lines into paragraphs: blank lines separate, hard-wrapped prose is joined."""
    out: list[str] = []
    block: list[str] = []
    for line in [*lines, ""]:
        line = _plain(line).strip()
        if line:
            block.append(line)
            continue
        if block:
            out.extend(_unwrap(block))
            block = []
    return out


def _unwrap(block: list[str]) -> list[str]:
    """A block whose lines flow into each other is one paragraph; otherwise one per line."""
    if len(block) == 1:
        return block
    widths = [len(line) for line in block[:-1]]
    if min(widths) >= 40 and max(widths) <= 120 and max(widths) - min(widths) <= 40:
        return [" ".join(block)]  # hard-wrapped at a fixed width: one paragraph
    paras = [block[0]]
    for line in block[1:]:
        prev = paras[-1]
        flows = not _TERMINAL.search(prev) and line[0].islower()
        if flows:
            paras[-1] = f"{prev} {line}"
        else:
            paras.append(line)
    return paras


def clean_paragraphs(blocks: list[str], title: str = "") -> list[str]:
    """Keep the article's prose; drop page furniture by general rules."""
    counts = Counter(b for b in blocks)
    kept: list[str] = []
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        text = re.sub(r"\s+", " ", block).strip()
        if not text or text == title or text in seen:
            continue
        if counts[block] > 1 and len(text) < 200 and not _is_prose(text):
            continue
        if furniture_reason(text, blocks, i) is None:
            kept.append(text)
            seen.add(text)
    return kept


def furniture_reason(text: str, blocks: list[str] | None = None, i: int = 0) -> str | None:
    """Why `text` is page furniture rather than article prose, or None if it is prose."""
    words = _WORD.findall(text)
    if not words:
        return "no words"
    if _PROMPT.match(text) and len(words) <= 25:
        return "call to action"
    if _CREDIT.search(text):
        return "photo credit or caption"
    if _has_repeat(text):
        return "repeated caption text"
    if text.endswith(":") and len(words) <= 8:
        return "label"
    if blocks is not None and _in_label_run(blocks, i):
        return "masthead or staff list"
    if len(_URL.findall(text)) >= 2 or len(_SEPARATORS.findall(text)) >= 3:
        return "link farm"
    if len(words) < MIN_PROSE_WORDS and not _is_prose(text):
        return "short line, not a sentence"
    return None


def _is_prose(text: str) -> bool:
    return bool(_TERMINAL.search(text)) and len(_WORD.findall(text)) >= 3


def _has_repeat(text: str) -> bool:
    """Captions are often scraped twice in one line: 'X... X.' — the line is two copies of
    one chunk (the first often cut short), not a paragraph that repeats a phrase."""
    if len(text) < 80:
        return False
    second = text.find(text[:40], 1)
    if second == -1 or len(text) > 2.2 * second:
        return False
    common = 0
    for a, b in zip(text, text[second:], strict=False):
        if a != b:
            break
        common += 1
    return common >= 0.6 * second


def _in_label_run(blocks: list[str], i: int) -> bool:
    """Part of a run of 3+ short 'Role: Name' lines (mastheads, staff lists, fact boxes)."""
    def label(b: str) -> bool:
        m = re.match(r"^[^:]{2,40}:", b)
        return bool(m) and len(_WORD.findall(b)) <= 10
    if not label(blocks[i]):
        return False
    j, k = i, i
    while j > 0 and label(blocks[j - 1]):
        j -= 1
    while k + 1 < len(blocks) and label(blocks[k + 1]):
        k += 1
    return k - j + 1 >= 3
