"""A synthetic coverage for the code paths only large indexes take: passages of
Zipf-distributed words with clustered unit vectors, built without the model."""

from __future__ import annotations

import numpy as np

from retrieval.corpus import Article
from retrieval.store import Sentences
from retrieval.text import sentence_spans

WORDS = [f"{a}{b}" for a in ("harbor", "ledger", "tunnel", "orchid", "glacier", "violin",
                             "pepper", "canyon", "saddle", "marble")
         for b in ("", "field", "stone", "wick", "mouth", "ridge", "ton", "ford")]


def zipf_corpus(passages: int, dim: int, seed: int = 0) -> tuple[list[Article], np.ndarray,
                                                                   Sentences]:
    """Passages of Zipf-distributed words (long postings, many tied scores) with clustered
    unit vectors; two sentences each."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, len(WORDS) + 1)
    texts = []
    for _ in range(passages):
        halves = [" ".join(rng.choice(WORDS, size=rng.integers(3, 12), p=p / p.sum()))
                  for _ in range(2)]
        texts.append(f"{halves[0].capitalize()}. {halves[1].capitalize()}.")
    articles = [Article(id=f"a{i}", title=f"A{i}", source=f"a{i}.txt",
                        paragraphs=tuple(texts[i:i + 10])) for i in range(0, passages, 10)]
    centres = rng.standard_normal((20, dim)).astype(np.float32)
    vecs = centres[rng.integers(0, 20, passages)] + 0.5 * rng.standard_normal(
        (passages, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    spans = [sentence_spans(t) for t in texts]
    assert all(len(s) == 2 for s in spans)
    sentences = Sentences(np.repeat(vecs, 2, axis=0).astype(np.float16),
                          np.array([s for sp in spans for s in sp], np.int32),
                          np.arange(0, 2 * passages + 1, 2, dtype=np.int64))
    return articles, vecs, sentences
