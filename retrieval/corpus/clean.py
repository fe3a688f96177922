"""Byline's general cleaning rules: page furniture out, article prose kept (every reader)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

_TERMINAL = re.compile(r"""[.!?…。！？]["'”’)\]」』]*$""")
# Chinese and Japanese write no spaces: each ideograph or kana counts as a word.
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]|[^\W_][\w'’.-]*")
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

# A longer paragraph is split between sentences: one passage is one embedding, and the
# model reads only its first 256 word pieces (about 1,000 characters of news prose).
PARAGRAPH_MAX = 1200
# A paragraph shorter than this many words must end like a sentence to count as prose.
MIN_PROSE_WORDS = 8


def plain(line: str) -> str:
    """Drop Markdown markers and link targets, keep the words."""
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_NOISE.sub("", line)
    return line.replace("**", "").replace("__", "")


def blocks(lines: Iterable[str]) -> list[str]:
    """Group lines into paragraphs: blank lines separate, hard-wrapped prose is joined."""
    out: list[str] = []
    block: list[str] = []
    for line in [*lines, ""]:
        line = plain(line).strip()
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
        if counts[block] > 1 and len(text) < 200 and not is_prose(text):
            continue
        if furniture_reason(text, blocks, i) is None:
            kept.append(text)
            seen.add(text)
    return [piece for text in kept for piece in split_long(text)]


def split_long(text: str, limit: int = PARAGRAPH_MAX) -> list[str]:
    """`text` as one passage, or, when longer than `limit` characters, as pieces of about
    equal length cut between sentences (between words inside an overlong sentence)."""
    if len(text) <= limit:
        return [text]
    from retrieval.text import split_sentences

    units: list[str] = []
    for sentence in split_sentences(text):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", limit // 2, limit)
            cut = cut if cut > 0 else limit
            units.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            units.append(sentence)
    target = len(text) / math.ceil(len(text) / limit)
    pieces: list[str] = []
    for unit in units:
        if pieces and len(pieces[-1]) + 1 + len(unit) <= min(limit, target * 1.15):
            pieces[-1] = f"{pieces[-1]} {unit}"
        else:
            pieces.append(unit)
    return pieces


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
    if len(words) < MIN_PROSE_WORDS and not is_prose(text):
        return "short line, not a sentence"
    return None


def is_prose(text: str) -> bool:
    """Ends like a sentence and has a few words."""
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
