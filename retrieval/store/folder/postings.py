"""BM25's inverted index: built as bm25s builds it, saved in its layout, read with numpy.

Searching needs only the three arrays and the vocabulary, so loading them here (rather than
through `bm25s.BM25.load`) keeps bm25s, and the scipy it imports (about 0.2 s), out of every
`byline ask` start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.errors import IndexCorrupt
from retrieval.store.bm25 import K1, B, Scoring

# bm25s's file names, so an index saved by either reads with either.
_ARRAYS = {"weights": "data.csc.index.npy", "docs": "indices.csc.index.npy",
           "indptr": "indptr.csc.index.npy"}
_LENGTHS = "lengths.index.npy"  # Byline's own: each passage's token count (BM25's length)
_VOCAB = "vocab.index.json"
_PARAMS = "params.index.json"


@dataclass(frozen=True)
class Postings:
    """For term id t: the rows holding it, `docs[indptr[t]:indptr[t + 1]]` (sorted), and its
    BM25 score in each, `weights[...]`. `vocab` maps stemmed terms to term ids; `lengths`,
    each passage's token count, where known (an index saved before it was kept has none)."""

    indptr: np.ndarray
    docs: np.ndarray
    weights: np.ndarray
    vocab: dict[str, int]
    passages: int
    lengths: np.ndarray | None = None

    @property
    def df(self) -> np.ndarray:
        """How many passages hold each term id."""
        return np.diff(self.indptr)

    def term(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """(sorted rows holding term id `term`, the term's BM25 score in each). IndexCorrupt
        when they fall outside the index: checked here, per term (two values, as the rows
        are sorted), rather than over every posting at load (1.6 GB at 10M passages)."""
        a, b = self.indptr[term], self.indptr[term + 1]
        docs = self.docs[a:b]
        if len(docs) and (docs[0] < 0 or docs[-1] >= self.passages):
            from retrieval.store.manifest import REBUILD

            raise IndexCorrupt(f"The index is damaged: bm25/{_ARRAYS['docs']} holds rows "
                               f"out of range; {REBUILD}.")
        return docs, self.weights[a:b]

    def terms(self, terms: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """`term` of each of `terms` (a store over a network reads them in one go)."""
        return [self.term(t) for t in terms]

    @classmethod
    def build(cls, corpus: list[list[str]]) -> Postings:
        """Score every (term, passage) pair of `corpus` (one analysed token list per passage)
        as bm25s does with its defaults (Lucene BM25, k1 1.5, b 0.75), bit for bit, in a few
        numpy passes rather than bm25s's per-passage loop."""
        docs = [toks or ["\0"] for toks in corpus]  # as bm25s: an empty passage gets a token
        vocab: dict[str, int] = {}
        ids = np.fromiter((vocab.setdefault(t, len(vocab)) for d in docs for t in d), np.int64)
        lengths = np.fromiter((len(d) for d in docs), np.int64, len(docs))
        n, v = len(docs), max(len(vocab), 1)
        pairs, tf = np.unique(np.repeat(np.arange(n, dtype=np.int64), lengths) * v + ids,
                              return_counts=True)
        rows, terms = pairs // v, pairs % v
        df = np.bincount(terms, minlength=len(vocab))
        weights = Scoring(df, lengths).weights(terms, rows, tf)
        order = np.lexsort((rows, terms))
        vocab.setdefault("", len(vocab))  # bm25s's empty token (past the last posting list)
        return cls(np.concatenate([[0], np.cumsum(df)]).astype(np.int64),
                   rows[order].astype(np.int32), weights[order], vocab, len(corpus),
                   lengths.astype(np.int32))

    def save(self, folder: Path) -> None:
        """Write the arrays, vocabulary and parameters into the new folder `folder`."""
        from retrieval.store.files import save_array  # not at the top: the store imports this

        folder.mkdir()
        for attr, name in _ARRAYS.items():
            save_array(folder / name, getattr(self, attr))
        if self.lengths is not None:
            save_array(folder / _LENGTHS, np.asarray(self.lengths, np.int32))
        _write_vocab(folder, self.vocab, self.passages)

    @classmethod
    def load(cls, folder: Path) -> Postings:
        """Memory-map the arrays in `folder`; raises OSError/ValueError/KeyError if damaged."""
        # Plain ndarray views of the maps: np.memmap's per-index bookkeeping is slow.
        arrays = {attr: np.load(folder / name, mmap_mode="r", allow_pickle=False)
                  .view(np.ndarray) for attr, name in _ARRAYS.items()}
        vocab = json.loads((folder / _VOCAB).read_text(encoding="utf-8"))
        params = json.loads((folder / _PARAMS).read_text(encoding="utf-8"))
        lengths = (np.load(folder / _LENGTHS, mmap_mode="r", allow_pickle=False).view(np.ndarray)
                   if (folder / _LENGTHS).exists() else None)
        postings = cls(**arrays, vocab=vocab, passages=int(params["num_docs"]), lengths=lengths)
        indptr = postings.indptr
        if (indptr.ndim != 1 or not len(indptr) or int(indptr[0]) != 0
                or postings.docs.shape != postings.weights.shape
                or int(indptr[-1]) != len(postings.docs) or bool((np.diff(indptr) < 0).any())
                or (lengths is not None and lengths.shape != (postings.passages,))
                or not isinstance(vocab, dict)
                or not all(isinstance(t, int) and 0 <= t < len(indptr)
                           for t in vocab.values())):
            raise ValueError("BM25 postings do not fit together")
        return postings


class PostingsWriter:
    """`Postings.build` for a corpus too large for memory, a chunk of passages at a time:
    each chunk's (term, passage, count) triples are kept compactly (10 bytes each), and
    `finish` writes the arrays in place on disk, scored as `Postings.build` scores them, bit
    for bit. Term ids are given in order of first use, as in `build`."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._lengths: list[np.ndarray] = []
        self._df = np.zeros(0, np.int64)
        self.passages = 0

    def ids(self, tokens: list[str]) -> np.ndarray:
        """The term ids of `tokens` (new terms get the next ids)."""
        vocab = self.vocab
        return np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), np.int64,
                           len(tokens))

    def add_tokens(self, corpus: list[list[str]]) -> None:
        """The next passages, one analysed token list each."""
        docs = [toks or ["\0"] for toks in corpus]  # as `build`: an empty passage gets a token
        self.add(self.ids([t for d in docs for t in d]),
                 np.fromiter((len(d) for d in docs), np.int64, len(docs)))

    def add(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        """The next passages: their term ids one passage after another, `lengths[i]` of them
        for passage i (none may be 0: see `add_tokens`)."""
        lengths = np.asarray(lengths, np.int64)
        if len(lengths) and (lengths.min() < 1 or int(lengths.sum()) != len(ids)):
            raise ValueError("every passage needs a token, and the lengths must add up")
        n, v = len(lengths), max(len(self.vocab), 1)
        pairs, tf = np.unique(ids * n + np.repeat(np.arange(n, dtype=np.int64), lengths),
                              return_counts=True)  # by term, then passage
        terms = (pairs // n).astype(np.int32)
        if len(self._df) < v:
            self._df = np.concatenate([self._df, np.zeros(v - len(self._df), np.int64)])
        self._df += np.bincount(terms, minlength=v)
        if tf.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError("a term repeats more than 65,535 times in one passage")
        self._chunks.append((terms, (pairs % n + self.passages).astype(np.int32),
                             tf.astype(np.uint16)))
        self._lengths.append(lengths)
        self.passages += n

    def finish(self, folder: Path, scratch: Path) -> Postings:
        """Write the postings into the new folder `folder` (through arrays in `scratch`, a
        folder on the same disk) and return them, memory-mapped."""
        n, v = self.passages, len(self.vocab)
        df = np.concatenate([self._df, np.zeros(v - len(self._df), np.int64)])[:v]
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        scoring = Scoring(df, lengths)
        indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
        total = int(indptr[-1])
        scratch.mkdir(parents=True, exist_ok=True)
        docs = np.lib.format.open_memmap(scratch / _ARRAYS["docs"], "w+", np.int32, (total,))
        weights = np.lib.format.open_memmap(scratch / _ARRAYS["weights"], "w+", np.float32,
                                            (total,))
        cursor = indptr[:-1].copy()
        while self._chunks:
            terms, rows, tf = self._chunks.pop(0)
            count = np.bincount(terms, minlength=v)
            first = np.cumsum(count) - count
            at = cursor[terms] + np.arange(len(terms)) - first[terms]
            docs[at] = rows
            weights[at] = scoring.weights(terms, rows, tf)
            cursor += count
        vocab = dict(self.vocab)
        vocab.setdefault("", len(vocab))  # as `build`: bm25s's empty token
        docs.flush()
        weights.flush()
        del docs, weights  # unmapped before the files move
        folder.mkdir()
        for name in ("docs", "weights"):
            (scratch / _ARRAYS[name]).replace(folder / _ARRAYS[name])
        from retrieval.store.files import save_array

        save_array(folder / _ARRAYS["indptr"], indptr)
        save_array(folder / _LENGTHS, lengths.astype(np.int32))
        _write_vocab(folder, vocab, n)
        return Postings.load(folder)


def _write_vocab(folder: Path, vocab: dict[str, int], passages: int) -> None:
    (folder / _VOCAB).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    params = {"k1": K1, "b": B, "method": "lucene", "num_docs": passages}
    (folder / _PARAMS).write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
