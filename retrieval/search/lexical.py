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
    """BM25 scores, top passages and term coverage over `lexicon`, an index of `passages`."""

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

    def scores_of(self, ids: list[int], rows: np.ndarray,
                  postings: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
        """`scores(ids)[rows]` without scoring every passage: a binary search per row in
        each term's sorted postings, added in the question's order (the same float64 sums).
        `postings`: the terms' postings, if already read."""
        rows = np.asarray(rows, np.int64)
        out = np.zeros(len(rows), np.float64)
        if postings is None:
            postings = self.lexicon.terms(ids) if len(rows) else []
        for docs, weights in postings:
            if len(docs):
                at = np.minimum(np.searchsorted(docs, rows), len(docs) - 1)
                out += np.where(docs[at] == rows, weights[at], 0)
        return out

    def best(self, ids: list[int], n: int, allowed: np.ndarray | None = None,
             postings: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
        """`top(scores(ids) masked by allowed, ids, n)`, the same rows, without an array of
        every passage's score: only the passages that can reach a lower bound on the n-th
        score are scored (MaxScore: a passage holding none of the terms whose idf sums
        reach the bound cannot). Falls back to scoring every passage when those would be
        more than an eighth of the corpus. `postings`: `lexicon.terms(ids)`, if read."""
        if not ids:
            return np.zeros(0, np.int64)
        if postings is None:
            postings = self.lexicon.terms(ids)  # one read for all the terms (a database)
        by_term = dict(zip(ids, postings, strict=True))

        def scored(rows: np.ndarray) -> np.ndarray:
            s = self.scores_of(ids, rows, postings)
            return s if allowed is None else np.where(allowed[rows], s, 0.0)

        seen = self._rarest(ids, n, lambda t: by_term[t][0])
        bound = 0.0
        if len(seen) >= n:
            s = scored(seen)
            bound = float(np.partition(s, len(s) - n)[len(s) - n]) * (1 - 1e-6)
        if bound > 0:
            docs = self.reaching(ids, by_term, bound)
            if docs is None:
                full = self.scores(ids)
                return self.top(full if allowed is None else np.where(allowed, full, 0.0),
                                ids, n)
            if allowed is not None:
                docs = docs[allowed[docs]]
            s = self.scores_of(ids, docs, postings)
            docs, top32 = docs[s >= bound], s[s >= bound].astype(np.float32)
            top = np.argpartition(-top32, n - 1)[:n]
            if (np.count_nonzero(top32 >= top32[top].min()) == n  # no tie at the cut
                    or self.passages > self.ties_max):
                return docs[top]
        # Every matching passage, as `top` does (few: a small corpus, or a rare question).
        docs = np.unique(np.concatenate([d for d, _ in postings]))
        if allowed is not None:
            docs = docs[allowed[docs]]
        top32 = self.scores_of(ids, docs, postings).astype(np.float32)
        return docs[np.argpartition(-top32, n - 1)[:n]] if len(docs) > n else docs

    def reaching(self, ids: list[int], by_term: dict[int, tuple[np.ndarray, np.ndarray]],
                  bound: float) -> np.ndarray | None:
        """The sorted passages holding a term outside the least weighty terms whose bounds
        add up to less than `bound` (None when they are over an eighth of the corpus). A
        term's BM25 weight is below its idf (tf / (k + tf) < 1), repeats counting again."""
        count: dict[int, int] = {}
        for t in ids:
            count[t] = count.get(t, 0) + 1
        cap = {t: c * self._idf_of(t) * (1 + 1e-6) for t, c in count.items()}
        total, needed = 0.0, []
        for t in sorted(count, key=cap.__getitem__):
            if (total + cap[t]) * (1 + 1e-6) < bound:
                total += cap[t]
            else:
                needed.append(by_term[t][0])
        if sum(len(d) for d in needed) > self.passages // 8:
            return None
        return needed[0].astype(np.int64) if len(needed) == 1 else np.unique(
            np.concatenate(needed)).astype(np.int64)

    def _idf_of(self, term: int) -> float:
        df = int(self.df[term])
        return math.log(1 + (self.passages - df + 0.5) / (df + 0.5))

    def _rarest(self, ids: list[int], n: int, docs_of) -> np.ndarray:
        """The passages holding the question's rarest terms, taken until there are 4n."""
        seen = np.zeros(0, np.int64)
        for t in sorted(set(ids), key=lambda t: self.df[t]):
            docs = docs_of(t)
            seen = np.union1d(seen, docs) if len(seen) else docs
            if len(seen) >= 4 * n:
                break
        return seen

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
        seen = self._rarest(ids, n, lambda t: self.postings_of(t)[0])
        if len(seen) < n:
            return 0.0
        best = scores[seen]
        return float(np.partition(best, len(best) - n)[len(best) - n]) * (1 - 1e-6)

    def idf(self, term: str) -> float:
        """BM25's IDF of a (stemmed) term in this index; unseen terms are the rarest."""
        idf = self._idfs.get(term)
        if idf is None:
            n = self.passages
            df = int(self.df[self.vocab[term]]) if term in self.vocab else 0
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            if len(self._idfs) >= 100_000:
                self._idfs.clear()
            self._idfs[term] = idf
        return idf
