"""BM25 read off an index's postings: the cost follows the question's postings, not the
corpus (a term's sorted passages with its BM25 score in each; memory-mapped arrays in a
folder, rows of a table in PostgreSQL)."""

from __future__ import annotations

import math

import numpy as np

from retrieval.store.base import Lexicon

# Up to this many passages, a tie at the cut of BM25's top candidates is broken by
# partitioning every matching passage; above, among the few passages over a bound on the cut.
EXACT_TIES_MAX = 100_000


class Lexical:
    """BM25 scores, top passages and term coverage over `lexicon`, an index whose rows are
    numbered below `passages` (the passages themselves: `lexicon.passages`)."""

    def __init__(self, lexicon: Lexicon, passages: int, ties_max: int = EXACT_TIES_MAX) -> None:
        self.lexicon = lexicon
        self.df = lexicon.df
        self.vocab: dict[str, int] = lexicon.vocab
        self.passages = passages
        self.ties_max = ties_max
        self._idfs: dict[str, float] = {}  # term -> idf (a question asks 50 times)

    def coverage_of_rows(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        """The share of the question's IDF weight each of `rows` holds, read off the
        postings (no re-tokenising)."""
        unique = set(terms)
        total = sum(self.idf(t) for t in unique)
        out = np.zeros(len(rows), dtype=np.float32)
        if not total:
            return out
        for t in unique:
            if t in self.vocab:
                out += self.holds(self.vocab[t], rows) * self.idf(t)
        return out / total

    def term_ids(self, terms: list[str]) -> list[int]:
        """The question's terms in BM25's vocabulary, repeats kept: a term the question
        repeats counts once per repeat, as in bm25s's own scoring."""
        return [self.vocab[t] for t in terms if t in self.vocab]

    def postings_of(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """(sorted passages containing `term`, the term's BM25 score in each)."""
        return self.lexicon.term(term)

    def holds(self, term: int, rows: np.ndarray) -> np.ndarray:
        """Which of `rows` contain `term`: a binary search per row in the term's sorted
        postings, so a common term's long postings are not read through."""
        docs = self.postings_of(term)[0]
        if not len(docs):
            return np.zeros(len(rows), bool)
        return docs[np.minimum(np.searchsorted(docs, rows), len(docs) - 1)] == rows

    def scores(self, ids: list[int]) -> np.ndarray:
        """Every passage's BM25 score for the question (float64, 0 where none of its terms
        occurs), added up from the postings of its terms in the question's order (so the
        sums equal bm25s's): the cost follows the question's postings, plus one pass over an array
        of the passages (8 MB at a million)."""
        postings = self.lexicon.terms(ids)  # one read for all the terms (a database)
        if not postings:
            return np.zeros(self.passages, np.float64)
        return np.bincount(np.concatenate([docs for docs, _ in postings]),
                           weights=np.concatenate([w for _, w in postings]),
                           minlength=self.passages)

    def top(self, scores: np.ndarray, ids: list[int], n: int) -> np.ndarray:
        """The passages among the n best BM25 scores (as float32), in no particular order:
        those a partition of every matching passage picks (ties at the cut: see
        `ties_max`), found among the few passages above a lower bound on the n-th score."""
        bound = self.nth_score_bound(scores, ids, n)
        if bound > 0:
            docs = np.flatnonzero(scores >= bound)
            top32 = scores[docs].astype(np.float32)
            top = np.argpartition(-top32, n - 1)[:n]
            if (np.count_nonzero(top32 >= top32[top].min()) == n  # no tie at the cut
                    or len(scores) > self.ties_max):
                return docs[top]
        # Every matching passage (a tie at the cut is broken the way it always was).
        docs = np.flatnonzero(scores)
        top32 = scores[docs].astype(np.float32)
        return docs[np.argpartition(-top32, n - 1)[:n]] if len(docs) > n else docs

    def nth_score_bound(self, scores: np.ndarray, ids: list[int], n: int) -> float:
        """A lower bound on the n-th best score (0 if none is found cheaply): the n-th best
        among the passages holding the question's rarest terms, lowered a little so every
        passage whose float32 score could reach the n-th float32 score stays above it."""
        seen = np.zeros(0, np.int64)
        for t in sorted(set(ids), key=lambda t: self.df[t]):
            docs = self.postings_of(t)[0]
            seen = np.union1d(seen, docs) if len(seen) else docs
            if len(seen) >= 4 * n:
                break
        if len(seen) < n:
            return 0.0
        best = scores[seen]
        return float(np.partition(best, len(best) - n)[len(best) - n]) * (1 - 1e-6)

    def idf(self, term: str) -> float:
        """BM25's IDF of a (stemmed) term in this index; unseen terms are the rarest."""
        idf = self._idfs.get(term)
        if idf is None:
            n = self.lexicon.passages
            df = int(self.df[self.vocab[term]]) if term in self.vocab else 0
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            if len(self._idfs) >= 100_000:
                self._idfs.clear()
            self._idfs[term] = idf
        return idf
