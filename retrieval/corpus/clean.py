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
# Bold markers open before a word or close after one; "**" between two letters is a word.
_MD_EMPHASIS = re.compile(r"(?<!\w)(\*\*|__)(?=\S)|(?<=\S)(\*\*|__)(?!\w)")
# Calls to action that scraped pages scatter between paragraphs.
_PROMPT = re.compile(
    r"^(sign up|subscribe|start your day|get (the|our)|join (us|our)|follow (us|@)|"
    r"download (the|our)|click here|read more|read next|share (this|on)|advertisement|"
    r"sponsored|related( stories| coverage| articles)?:|recommended|also on|"
    r"watch( the)?( video)?:|listen( to)?:|newsletters?|support (our|us)|"
    r"we'?d like to|this article (was|is) (originally|updated))(?!\w)",  # not "Subscribers"
    re.IGNORECASE,
)
# Photo and video credits: "(Photo by X/Getty Images)", "Photo: AP", "Image credit: ...".
_CREDIT = re.compile(
    r"\((photo|image|video|graphic)s? (by|courtesy|credit)[^)]*\)|"
    r"^(photo|image|video|picture|credit|caption)s?( credit)?\s*:|"
    r"\bMORE\s+LESS\s*$",
    re.IGNORECASE,
)
# An agency named in a caption-sized line; in a longer paragraph it is the prose's own word.
_CREDIT_WORDS = re.compile(
    r"\b(getty images|shutterstock|afp via getty|ap photo|reuters/|photo illustration)\b",
    re.IGNORECASE,
)
CAPTION_MAX = 300
_SEPARATORS = re.compile(r"\s[|•·»/]\s")
# Editorial notes about the story, not part of it: "Correction: An earlier version…",
# "This story has been updated with…", "Editor's note: …".
_NOTE = re.compile(
    r"^(corrections?|clarifications?|editor[’'`]?s[’']? notes?)\s*:|"
    r"^this (story|article|report|post) (has been|was|is being) (updated|corrected)\b",
    re.IGNORECASE,
)
# Video-player and ad-feedback widgets: "How relevant is this ad to you?", its list of
# complaints, "Video Ad Feedback <title> 02:54 - Source: <outlet>", "JUST WATCHED … Replay".
_WIDGET = re.compile(
    r"\bhow relevant is this ad\b|\bvideo ad feedback\b|\bad froze\b|"
    r"\bvideo content never loaded\b|\breplay more videos\b|^just watched\b|"
    r"\b\d{1,2}:\d{2} - source: \S+$",
    re.IGNORECASE,
)
# A gallery's "Hide Caption 3 of 37" marker between its captions.
_GALLERY_MARK = re.compile(r"\s*\bHide Caption \d+ of \d+\b\s*", re.IGNORECASE)
# A sentence asking the reader to sign up: "To get it in your inbox, sign up for free, here."
_SIGN_UP = re.compile(r"\b(sign(ing)?[ -]up|subscrib(e|ed|ing))\b", re.IGNORECASE)
_SIGN_UP_FOR = re.compile(
    r"\b(newsletters?|inbox)\b|\b(sign(ing)?[ -]up|subscribe) here\b|"
    r"\bhere\W*$",
    re.IGNORECASE,
)
# Photo agencies and wire services a caption credit ends with: "Jane Doe/AP",
# "John Roe/AFP/Getty Images", "Ann Poe/Pool via Reuters".
_AGENCY = (
    r"AP(?: Images| Photo)?|Associated Press|Reuters|AFP|Getty Images?|EPA(?:-EFE)?|"
    r"Shutterstock|Redux|Alamy(?: Stock Photo)?|Bloomberg|Sipa(?: USA)?|ZUMA(?: Press| Wire)?|"
    r"NurPhoto|Anadolu(?: Agency)?|Xinhua|Kyodo(?: News)?|Yonhap|picture alliance|dpa|"
    r"PA(?: Images| Wire)?|Landov|Polaris|SOPA Images|LightRocket|WireImage|Imagn|Pool|Handout|"
    r"USA Today(?: Network| Sports)?"
)
# From the first slash after the photographer's name to the agency ending the credit; the
# segments between slashes are short and hold no sentence end.
_CREDIT_CHAIN = re.compile(
    rf"(?<=[\w.’)-])/(?:(?:[^/.!?\s]|\.(?!\s)|\s(?!\s)){{0,60}}?/)*?\s?(?:{_AGENCY})"
    rf"(?:\s+via\s+(?:{_AGENCY}))?(?:/file)?(?=[\s)]|$)",
    re.IGNORECASE,
)
# A credit in brackets: "(Photo by …)", "(AP Photo/Jane Doe)", "(Jane Doe/Pool via Reuters)".
_PHOTO_BY = re.compile(
    r"\s*\(((photo|image|video|graphic)s? (by|courtesy|credit)|(AP|AFP|Reuters) Photo/)[^)]*\)|"
    rf"\s*\([^()/]{{1,60}}/(?:[^()/]{{0,60}}/)*\s?(?:{_AGENCY})(?:\s+via\s+(?:{_AGENCY}))?\)",
    re.IGNORECASE)
# A credit without a slash between two captions: "… in 1990. Getty Images Prince …",
# "… on Monday. Jane Doe via Reuters Crowds …".
_BARE_CREDIT = re.compile(
    r"(?<=[.!?\"”’)] )(?:Getty Images|"
    rf"[A-Z][\w.’'-]*(?: (?:of|the|[A-Z][\w.’'-]*)){{0,5}} via (?i:{_AGENCY}))"
    r"(?:/file)?(?=\s+[A-Z“\"]|\s*$)"
)
_INITIAL = re.compile(r"^[A-Z]\.$")
_NAME_PARTICLES = {"of", "the", "de", "van", "von", "der", "del", "da", "di", "du", "la", "le",
                   "bin", "al", "and", "-"}

# A longer paragraph is split between sentences: one passage is one embedding, and the
# model reads only its first 256 word pieces (about 1,000 characters of news prose).
PARAGRAPH_MAX = 1200
# A paragraph shorter than this many words must end like a sentence to count as prose.
MIN_PROSE_WORDS = 8


def plain(line: str) -> str:
    """Drop Markdown markers and link targets, keep the words (and "f**k": markers inside a
    word are not markup)."""
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_NOISE.sub("", line)
    return _MD_EMPHASIS.sub("", line)


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
        # Control characters (NUL among them, which PostgreSQL refuses in text) are spaces.
        text = re.sub(r"[\s\x00-\x1f\x7f]+", " ", block).strip()
        if not text or text == title or text in seen:
            continue
        if counts[block] > 1 and len(text) < 200 and not is_prose(text):
            continue
        text = strip_sign_up(strip_credits(_gallery_captions(text)))
        if not text or text == title or text in seen:
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
    """Why `text` is page furniture rather than article prose, or None if it is prose.
    A caption with a credit is furniture as it stands; `clean_paragraphs` keeps its words
    without the credit (`strip_credits`)."""
    words = _WORD.findall(text)
    if not words:
        return "no words"
    if _NOTE.match(text):
        return "editorial note"
    if _WIDGET.search(text):
        return "video or ad widget"
    if _PROMPT.match(text) and len(words) <= 25:
        return "call to action"
    if (_CREDIT.search(text) or strip_credits(text) != text
            or (len(text) < CAPTION_MAX and _CREDIT_WORDS.search(text))):
        return "photo credit or caption"
    if strip_sign_up(text) != text:
        return "call to action"
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


def _gallery_captions(text: str) -> str:
    """A photo gallery scraped as one line ("Photos: <gallery> <caption> Hide Caption 1 of
    37 Photos: <gallery> <caption> …") as its captions, without the markers and the
    gallery's name repeated before each."""
    parts = [f"{p.strip()} " for p in _GALLERY_MARK.split(text) if p.strip()]
    if len(parts) < 2:
        return _GALLERY_MARK.sub(" ", text).strip()
    first, last = min(parts), max(parts)  # the prefix these share, all parts share
    shared = next((n for n, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
                  len(first))
    prefix = first[: first.rfind(" ", 0, shared + 1) + 1]
    if re.match(r"(photos?|gallery|in pictures)\s*:", prefix, re.IGNORECASE):
        parts = [p[len(prefix):] for p in parts]
    return " ".join(p.strip() for p in parts if p.strip())


def strip_credits(text: str) -> str:
    """`text` without its photo credits: "(Photo by …)" and "Jane Doe/AP" at the end of a
    caption or between the captions of a gallery scraped as one line."""
    text = _BARE_CREDIT.sub("", _PHOTO_BY.sub("", text))
    pos = 0
    while m := _CREDIT_CHAIN.search(text, pos):
        if any(u.start() <= m.start() < u.end() for u in _URL.finditer(text)):
            pos = m.end()
            continue
        start = _name_start(text, m.start())
        text = f"{text[:start].rstrip()} {text[m.end():].lstrip()}"
        pos = start
    return re.sub(r"\s{2,}", " ", text).strip()


def _name_start(text: str, slash: int) -> int:
    """Where the photographer's name before `slash` begins: after the caption's last sentence
    when the name follows one ("…on Tuesday. Jane Q. Doe/AP"), else its last two words."""
    head = text[:slash]
    tokens = head.split(" ")
    names = [tokens.pop()]  # the word the slash is attached to
    while tokens and len(names) < 6:
        word = tokens[-1]
        if _TERMINAL.search(word) and not _INITIAL.match(word):
            break  # the caption's sentence ends here
        if not (word[:1].isupper() or word[:1].isdigit() or word in _NAME_PARTICLES):
            names = names[:2]  # no sentence end before the name: keep the caption's words
            break
        names.append(tokens.pop())
    else:
        if tokens:
            names = names[:2]
    return len(head) - len(" ".join(reversed(names)))


def strip_sign_up(text: str) -> str:
    """`text` without the sentences asking the reader to sign up for a newsletter ("To get
    it in your inbox, sign up here."); "" when what is left is the prompt's own box."""
    from retrieval.text import split_sentences

    if not _SIGN_UP.search(text):
        return text
    sentences = split_sentences(text)
    rest = [s for s in sentences if not (_SIGN_UP.search(s) and _SIGN_UP_FOR.search(s))]
    if len(rest) == len(sentences):
        return text
    rest = [s for s in rest if not re.search(r"\bnewsletters?\b", s, re.IGNORECASE)]
    if len(_WORD.findall(" ".join(rest))) < 20:  # a prompt's own box, not a paragraph
        return ""
    return " ".join(rest)


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
