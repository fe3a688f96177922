"""Text helpers shared by indexing, search and display: lexical analysis, sentence splitting
and cutting text to a length."""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

_TOKEN = re.compile(r"\w\w+")  # maximal runs of 2+ word characters
# Words whose trailing period does not end a sentence ("U.S.", "Mr.", "Jan.").
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "gen", "sen", "rep", "gov", "lt",
    "col", "sgt", "capt", "cmdr", "adm", "pres", "vs", "etc", "inc", "corp", "ltd", "co",
    "no", "fig", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec", "u.s", "u.k", "u.n", "e.g", "i.e", "a.m", "p.m", "d.c",
}
_QUESTION_WORDS = frozenset(
    {"what", "why", "how", "who", "whom", "whose", "where", "when", "which", "did", "does", "do"}
)
_SENTENCE_END = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9])""")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer: fast C Snowball stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """English stopwords (bm25s's list) plus question words, lowercase."""
    # Question words carry no topic; leaving them in lets "why"/"how" match noise.
    return frozenset(_bm25s_stopwords()) | _QUESTION_WORDS


def _bm25s_stopwords() -> tuple[str, ...]:
    """bm25s's English stopword list, read from its plain-data module without running
    `bm25s/__init__`, which imports scipy (about 0.2 s of every `byline ask` start-up)."""
    spec = importlib.util.find_spec("bm25s")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("bm25s is not installed")
    path = Path(spec.submodule_search_locations[0]) / "stopwords.py"
    data = importlib.util.spec_from_file_location("_bm25s_stopwords", path)
    module = importlib.util.module_from_spec(data)
    data.loader.exec_module(module)
    return tuple(module.STOPWORDS_EN)


def analyze(text: str) -> list[str]:
    """Lowercase word tokens, English stopwords removed, Snowball-stemmed (for BM25)."""
    return list(_analyzed(text))


@lru_cache(maxsize=8192)
def _analyzed(text: str) -> tuple[str, ...]:
    """`analyze`, remembered: a question's quotes analyse the same few hundred candidate
    sentences again and again (23 calls a question, a tenth of a warm `ask`)."""
    stop = stopwords()
    words = [w for w in _TOKEN.findall(text.lower()) if w not in stop]
    return tuple(_stemmer().stemWords(words)) if words else ()


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences, keeping abbreviations like 'U.S.' intact."""
    sentences: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        head = text[start:m.start()].rsplit(None, 1)
        last_word = head[-1].lower().strip("“\"'(") if head else ""
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        sentence = text[start:m.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, in order."""
    spans, pos = [], 0
    for sentence in split_sentences(text) or [text]:
        start = text.find(sentence, pos)
        if start < 0:  # cannot happen for split_sentences' output; be safe anyway
            return [(0, len(text))]
        spans.append((start, start + len(sentence)))
        pos = start + len(sentence)
    return spans


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, ending with "…"."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if text[limit - 1] != " " and space > limit // 2:  # do not end inside a word
        cut = cut[:space]
    return cut.rstrip(" ,;:-—") + "…"
