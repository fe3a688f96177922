"""Which sentence of a passage answers: sentence similarity, the question's rare words, and
late interaction where the index keeps token vectors; and whether the headline answers better."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from retrieval.corpus import Passage
from retrieval.search.answer import Hit
from retrieval.search.late import sentence_maxsim
from retrieval.search.lexical import Lexical
from retrieval.search.rank import widen
from retrieval.search.settings import HEADLINE_MIN_WORDS, QUOTE_MODES, SearchSettings
from retrieval.store.base import Store
from retrieval.text import analyze


class Quotes:
    """Quote picking over `index`, with BM25's IDF (`lexical`) and `encode` for headlines."""

    def __init__(self, index: Store, settings: SearchSettings, lexical: Lexical,
                 encode: Callable[[list[str]], np.ndarray]) -> None:
        self.index = index
        self.settings = settings
        self.lexical = lexical
        self.encode = encode
        self._title_vecs: dict[str, np.ndarray] = {}  # headline -> vector (title_vector)

    def quote(self, qvec: np.ndarray, terms: list[str], passage: Passage, row: int,
              mode: str = "best", qtokens: np.ndarray | None = None) -> str:
        """The sentence of `passage` that best answers the question.

        "best": most similar sentence plus a bonus for holding the question's words that are
        rare both in the corpus and within this passage (a topic word in every sentence says
        nothing about which one answers), plus, given the question's content tokens
        (`qtokens`) and an index that keeps token vectors, each sentence's late-interaction
        similarity; "dense": similarity alone; "lead": the first sentence. The last two are
        baselines for `byline eval`."""
        if mode not in QUOTE_MODES:
            raise ValueError(f"mode must be one of {QUOTE_MODES}")
        if mode == "best":
            return self.quotes(qvec, terms, [passage], [row], qtokens)[0]
        vecs, spans = self.index.sentences.passage(row)
        texts = [passage.text[a:b] for a, b in spans]
        if len(texts) == 1 or mode == "lead":
            return texts[0]
        return texts[int(np.argmax(widen(vecs) @ qvec))]

    def quotes(self, qvec: np.ndarray, terms: list[str], passages: Sequence[Passage],
               rows: Sequence[int], qtokens: np.ndarray | None = None,
               sims: dict[int, np.ndarray] | None = None) -> list[str]:
        """`quote` ("best") of each of `passages` (at `rows`), their sentence and token
        vectors read in one go; `sims`: token cosines late interaction already measured
        (row -> question tokens x its tokens), not measured again."""
        own = self.index.sentences.passages(np.asarray(rows, np.int64))
        tokens = self.index.tokens if qtokens is not None else None
        several = [r for r, (_, sp) in zip(rows, own, strict=True) if len(sp) > 1]
        by_token: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if tokens is not None and several:
            for r, (codes, scales, chars) in zip(
                    several, tokens.raws(np.asarray(several, np.int64)), strict=True):
                kept = sims.get(int(r)) if sims is not None else None
                if kept is None:
                    kept = ((np.asarray(codes).astype(np.float32) @ qtokens.T)
                            * scales[:, None]).T  # as late interaction measures them
                by_token[int(r)] = (kept, np.asarray(chars))
        out = []
        for p, row, (vecs, spans) in zip(passages, rows, own, strict=True):
            texts = [p.text[x:y] for x, y in spans]
            if len(texts) == 1:
                out.append(texts[0])
                continue
            score = widen(np.asarray(vecs)) @ qvec
            if terms:
                score = score + self.settings.quote_lexical * self.sentence_coverage(terms,
                                                                                       texts)
            if int(row) in by_token:
                score = score + self.settings.quote_tokens * sentence_maxsim(
                    *by_token[int(row)], spans)
            out.append(texts[int(np.argmax(score))])
        return out

    def headline_answers(self, qvec: np.ndarray, terms: list[str], hit: Hit) -> bool:
        """Whether the hit's article headline answers the question better than any sentence
        of the passage: its similarity plus its share of the question's rare words, against
        the same for each sentence, by `headline_margin`."""
        margin = self.settings.headline_margin
        p = hit.passage
        if (margin is None or p.title == p.article_id
                or len(p.title.split()) < HEADLINE_MIN_WORDS):
            return False
        vecs, spans = self.index.sentences.passage(hit.row)
        texts = [p.text[a:b] for a, b in spans]
        coverage = self.sentence_coverage(terms, [*texts, p.title]) if terms else None
        scores = np.concatenate([widen(vecs) @ qvec,
                                 [float(self.title_vector(p.title) @ qvec)]])
        if coverage is not None:
            scores = scores + self.settings.quote_lexical * coverage
        return bool(scores[-1] >= scores[:-1].max() + margin)

    def title_vector(self, title: str) -> np.ndarray:
        """A headline's vector, encoded on first use and kept (a bounded cache)."""
        vec = self._title_vecs.get(title)
        if vec is None:
            if len(self._title_vecs) >= 10_000:
                self._title_vecs.clear()
            vec = self._title_vecs[title] = self.encode([title])[0]
        return vec

    def sentence_coverage(self, terms: list[str], texts: list[str]) -> np.ndarray:
        """Per sentence, the share of the question's term weight it holds, a term weighing
        its corpus IDF times (log(1 + sentences / sentences holding it))²."""
        bags = [set(analyze(t)) for t in texts]
        n = len(texts)
        weights = {}
        for t in set(terms):
            local = math.log(1 + n / (1 + sum(t in bag for bag in bags)))
            weights[t] = self.lexical.idf(t) * local * local
        total = sum(weights.values()) or 1.0
        return np.array([sum(w for t, w in weights.items() if t in bag) / total
                         for bag in bags], dtype=np.float32)
