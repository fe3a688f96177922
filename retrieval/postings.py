"""BM25's inverted index: built with bm25s, saved in its file layout, read back with numpy.

Searching needs only the three arrays and the vocabulary, so loading them here (rather than
through `bm25s.BM25.load`) keeps bm25s, and the scipy it imports (about 0.2 s), out of every
`byline ask` start-up.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# bm25s's file names, so an index saved by either reads with either.
_ARRAYS = {"weights": "data.csc.index.npy", "docs": "indices.csc.index.npy",
           "indptr": "indptr.csc.index.npy"}
_VOCAB = "vocab.index.json"
_PARAMS = "params.index.json"


@dataclass(frozen=True)
class Postings:
    """For term id t: the rows holding it, `docs[indptr[t]:indptr[t + 1]]` (sorted), and its
    BM25 score in each, `weights[...]`. `vocab` maps stemmed terms to term ids."""

    indptr: np.ndarray
    docs: np.ndarray
    weights: np.ndarray
    vocab: dict[str, int]
    passages: int

    @property
    def df(self) -> np.ndarray:
        """How many passages hold each term id."""
        return np.diff(self.indptr)

    def term(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """(sorted rows holding term id `term`, the term's BM25 score in each)."""
        a, b = self.indptr[term], self.indptr[term + 1]
        return self.docs[a:b], self.weights[a:b]

    def terms(self, terms: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """`term` of each of `terms` (a store over a network reads them in one go)."""
        return [self.term(t) for t in terms]

    @classmethod
    def build(cls, corpus: list[list[str]]) -> Postings:
        """Score every (term, passage) pair of `corpus` (one analysed token list per passage)
        with bm25s's defaults (Lucene BM25, k1 1.5, b 0.75)."""
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every build at DEBUG
        bm25 = bm25s.BM25()
        # bm25s needs a non-empty vocabulary; an all-stopword corpus still gets one token.
        bm25.index([toks or ["\0"] for toks in corpus], show_progress=False)
        s = bm25.scores
        return cls(np.asarray(s["indptr"]), np.asarray(s["indices"]), np.asarray(s["data"]),
                   dict(bm25.vocab_dict), len(corpus))

    def save(self, folder: Path) -> None:
        """Write the arrays, vocabulary and parameters into the new folder `folder`."""
        from retrieval.store.files import save_array  # not at the top: the store imports this

        folder.mkdir()
        for attr, name in _ARRAYS.items():
            save_array(folder / name, getattr(self, attr))
        (folder / _VOCAB).write_text(json.dumps(self.vocab, ensure_ascii=False),
                                     encoding="utf-8")
        params = {"k1": 1.5, "b": 0.75, "method": "lucene", "num_docs": self.passages}
        (folder / _PARAMS).write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Postings:
        """Memory-map the arrays in `folder`; raises OSError/ValueError/KeyError if damaged."""
        # Plain ndarray views of the maps: np.memmap's per-index bookkeeping is slow.
        arrays = {attr: np.load(folder / name, mmap_mode="r", allow_pickle=False)
                  .view(np.ndarray) for attr, name in _ARRAYS.items()}
        vocab = json.loads((folder / _VOCAB).read_text(encoding="utf-8"))
        params = json.loads((folder / _PARAMS).read_text(encoding="utf-8"))
        postings = cls(**arrays, vocab=vocab, passages=int(params["num_docs"]))
        indptr = postings.indptr
        if (indptr.ndim != 1 or not len(indptr) or int(indptr[0]) != 0
                or postings.docs.shape != postings.weights.shape
                or int(indptr[-1]) != len(postings.docs) or bool((np.diff(indptr) < 0).any())
                or not isinstance(vocab, dict)
                or not all(isinstance(t, int) and 0 <= t < len(indptr)
                           for t in vocab.values())
                or (len(postings.docs) and int(postings.docs.min()) < 0)):
            raise ValueError("BM25 postings do not fit together")
        return postings
