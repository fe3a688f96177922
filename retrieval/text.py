"""Text helpers shared by indexing and search: lexical analysis and sentence splitting."""

from __future__ import annotations

import re
from functools import lru_cache

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
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
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # Question words carry no topic; leaving them in lets "why"/"how" match noise.
    return frozenset(STOPWORDS_EN) | _QUESTION_WORDS


def analyze(text: str) -> list[str]:
    """Lowercase word tokens, English stopwords removed, Snowball-stemmed (for BM25)."""
    stop = _stopwords()
    words = [w for w in _TOKEN.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words) if words else []


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
