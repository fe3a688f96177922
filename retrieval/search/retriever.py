"""The Retriever: a question in, ranked and cited passages out (or "not covered")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from retrieval.corpus import Passage
from retrieval.errors import BadQuestion, IndexMismatch
from retrieval.model.embed import Embedder
from retrieval.model.probes import PROBES
from retrieval.search.answer import Answer, Candidates, Evidence, Hit, check_question
from retrieval.search.filters import Filters, RowMeta, prefer_recent, recency
from retrieval.search.late import late_interaction
from retrieval.search.lexical import Lexical
from retrieval.search.memo import RowMemo
from retrieval.search.quotes import Quotes
from retrieval.search.rank import minmax, one_blas_thread, widen
from retrieval.search.refusal import lexical_background
from retrieval.search.settings import SearchSettings
from retrieval.store import open_store
from retrieval.store.base import Store
from retrieval.text import analyze

# What an index's manifest stores as its background (an index lacking one is measured again).
DENSE_READERS = 4  # threads searching a database's vectors while BM25 is read beside them


@lru_cache(maxsize=1)
def _dense_reads() -> ThreadPoolExecutor:
    """Where a store whose reads wait on a server (PostgreSQL) runs a question's dense
    search, so that it and the question's BM25 postings are read at the same time."""
    return ThreadPoolExecutor(DENSE_READERS, thread_name_prefix="byline-dense")


BACKGROUND_KEYS = frozenset({"dense", "lexical", "sentence"})


class Retriever:
    """Hybrid retrieval (dense FAISS + BM25, score-normalised fusion) with answer quotes."""

    def __init__(self, index: Store, embedder: Embedder,
                 settings: SearchSettings | None = None,
                 probe_vectors: np.ndarray | None = None) -> None:
        """Search `index` with `embedder` (the model that built it). An index without its
        background (assembled, not yet published) has it measured here, with the probes'
        vectors if given (`probe_vectors`), else encoded now."""
        if embedder.name != index.manifest.model:
            raise IndexMismatch(
                f"The index was built with model {index.manifest.model!r}, not "
                f"{embedder.name!r}; run `byline index` to rebuild it."
            )
        if embedder.encoder != index.manifest.encoder:
            raise IndexMismatch(
                f"The index was built with the {index.manifest.encoder} encoder, not "
                f"{embedder.encoder}; run `byline index` to rebuild it (or set "
                f"BYLINE_ENCODER={index.manifest.encoder})."
            )
        if embedder.dimension != index.manifest.dimension:
            raise IndexMismatch(
                f"The index holds {index.manifest.dimension}-dimensional vectors but model "
                f"{embedder.name!r} makes {embedder.dimension}; run `byline index` to rebuild it."
            )
        self.embedder = embedder
        self._setup(index, settings)
        if set(index.manifest.background) != BACKGROUND_KEYS:  # assembled, not indexed: measure
            probes = probe_vectors if probe_vectors is not None else self.embedder.encode(
                [check_question(q) for q in PROBES])
            self._setup(index.with_background(self._background_of(probes), probes), settings)

    def _setup(self, index: Store, settings: SearchSettings | None) -> None:
        """Read what searching `index` needs (everything but the question encoder)."""
        self.settings = settings or SearchSettings()
        # BM25's postings: term t's passages (sorted) with its score in each, read per term
        # (memory-mapped arrays in a folder; rows of a table in PostgreSQL).
        self.lexical = Lexical(index.postings, len(index), self.settings.exact_ties_max)
        # the embedder is set by __init__ before any question (measuring a background needs none)
        self.quoter = Quotes(index, self.settings, self.lexical,
                             lambda texts: self.embedder.encode(texts))
        self.index = index
        self._titles: dict[str, frozenset[str]] = {}  # headline -> its analysed terms
        bg = index.manifest.background
        self._background = Evidence(dense=bg.get("dense", 0.0), lexical=bg.get("lexical", 0.0),
                                    sentence=bg.get("sentence", 0.0))
        self._rows_meta: RowMeta | None = None

    @classmethod
    def open(cls, location: str | Path, model: str | None = None,
             settings: SearchSettings | None = None, encoder: str | None = None) -> Retriever:
        """Load the index at `location` (a folder or a store URL) and the model it was
        built with."""
        embedder = Embedder(model, encoder=encoder)
        return cls(open_store(location, model=embedder.name), embedder, settings)

    def ask(self, question: str, k: int = 5, filters: Filters | None = None) -> Answer:
        """Rank passages for `question`; `answered` is False when the coverage lacks it.
        With `filters`, only the coverage they keep is searched (see retrieval.search.filters)."""
        return self.ask_many([question], k, filters=filters)[0]

    def ask_many(self, questions: list[str], k: int = 5, keep_refused: bool = False,
                 filters: Filters | None = None) -> list[Answer]:
        """`ask` for several questions (all under the same `filters`), encoding them in one
        batch.

        With `keep_refused`, a refused answer still carries its ranked hits (evaluation
        scores the ranking and the refusal separately); `to_dict()` still shows none."""
        checked = [check_question(q) for q in questions]
        allowed = self.allowed(filters)
        qvecs, qtokens = self._encode(checked)
        with one_blas_thread():
            return [self._answer(q, v, t, k, keep_refused, allowed)
                    for q, v, t in zip(checked, qvecs, qtokens, strict=True)]

    def candidates(self, question: str, depth: int, filters: Filters | None = None
                   ) -> Candidates:
        """Up to `depth` candidates from each retriever for `question`, ranked as `ask` ranks
        them (without collapsing copies), with what quoting them needs (for timelines)."""
        q = check_question(question)
        allowed = self.allowed(filters)
        qvecs, qtokens = self._encode([q])
        terms = analyze(q)
        rows, scores, dense = self.rank(qvecs[0], terms, depth, allowed, qtokens[0])
        covered = bool(rows) and self._confidence(self._top_evidence(
            qvecs[0], terms, rows[0], dense)) >= self.settings.threshold
        return Candidates(q, rows, scores, qvecs[0], terms, qtokens[0], covered)

    def rows_meta(self) -> RowMeta:
        """Each row's date and outlet as arrays, read from the index on first use."""
        if self._rows_meta is None:
            self._rows_meta = RowMeta(self.index)
        return self._rows_meta

    def allowed(self, filters: Filters | None) -> np.ndarray | None:
        """The rows `filters` keep (None: all); BadQuestion when they keep none, or name an
        outlet the coverage does not have."""
        if filters is None:
            return None
        allowed = self.rows_meta().mask(filters)
        if allowed is not None and not allowed.any():
            words = filters.describe()
            raise BadQuestion(f"No article in the coverage matches the filters ({words})."
                              if words else "No article in the coverage is dated before "
                              "the as-of date.")
        return allowed

    def _encode(self, checked: list[str]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        if self.index.tokens is not None and (self.settings.quote_tokens
                                              or self.settings.late_weight):
            return self.embedder.encode_questions(checked)
        return self.embedder.encode(checked), [None] * len(checked)

    def _answer(self, q: str, qvec: np.ndarray, qtokens: np.ndarray | None, k: int,
                keep_refused: bool, allowed: np.ndarray | None = None) -> Answer:
        size = len(self.index) if allowed is None else int(np.count_nonzero(allowed))
        k = max(1, min(int(k), size))
        terms = analyze(q)
        recent = recency(q)
        memo = RowMemo()  # what each round measured, for the deeper rounds and the quotes
        rows, scores, dense, context, best = self._rank_recent(qvec, terms, None, allowed, recent,
                                                          qtokens, memo)
        picked, groups = self._distinct(rows, k)
        depth = self.settings.candidates
        while len(picked) < min(k, len(rows)) and depth < size:
            depth *= 4  # copies took the places of k stories: look deeper
            rows, scores, dense, context, best = self._rank_recent(qvec, terms, depth, allowed,
                                                              recent, qtokens, memo)
            picked, groups = self._distinct(rows, k)
        top = self.index.passages([rows[i] for i in picked])
        # Whether the coverage answers is judged on the most relevant passage, before newer
        # coverage is moved up: recency orders the answers, it is no evidence.
        evidence = self._top_evidence(qvec, terms, rows[best], dense,
                                      None if context is None else float(context[best]))
        confidence = self._confidence(evidence)
        answered = confidence >= self.settings.threshold
        if not answered and not keep_refused:
            return Answer(q, False, [], confidence, evidence)
        copies = self.index.copies(sorted({groups[rows[i]] for i in picked if rows[i] in groups}))
        hits = [Hit(rank=n + 1, score=self._display_score(float(scores[i])), passage=p,
                    row=rows[i],
                    quote=quote,
                    also_in=tuple(c for c in copies.get(groups.get(rows[i], -1), ())
                                  if c.article_id != p.article_id))
                for n, (i, p, quote) in enumerate(zip(
                    picked, top, self.quotes(qvec, terms, top, [rows[i] for i in picked],
                                             qtokens, memo.tokens), strict=True))]
        if hits and self.quoter.headline_answers(qvec, terms, hits[0]):
            hits[0] = replace(hits[0], quote=hits[0].passage.title, quote_from="headline")
        return Answer(q, answered, hits, confidence, evidence)

    def _distinct(self, rows: list[int], k: int) -> tuple[list[int], dict[int, int]]:
        """Positions in `rows` of the first `k` distinct stories (a passage whose copy
        ranked higher is skipped), and the near-duplicate group of each grouped row."""
        groups = self.index.groups_of(rows)
        if not groups:
            return list(range(min(k, len(rows)))), groups
        picked: list[int] = []
        seen: set[int] = set()
        for i, row in enumerate(rows):
            group = groups.get(row)
            if group is not None:
                if group in seen:
                    continue
                seen.add(group)
            picked.append(i)
            if len(picked) == k:
                break
        return picked, groups

    def sentence_similarity(self, question: str, rows: list[int]) -> np.ndarray:
        """Each row's best sentence similarity to `question` asked alone, less what generic
        questions score on this coverage (its background): above 0, more alike than chance."""
        qvec = self.embedder.encode([check_question(question)])[0]
        return self._best_sentence(qvec, np.array(rows)) - self._background.sentence

    def support(self, terms: list[str], row: int, alone: bool = False) -> float:
        """The share of `terms`' IDF mass that passage `row`, its previous paragraph and
        its headline hold together (what "not covered" calls lexical evidence); with
        `alone`, the passage by itself."""
        if alone:
            return float(self.lexical.coverage_of_rows(terms, np.array([row]))[0])
        return float(self._context_coverage(terms, np.array([row]))[0][0])

    def evidence(self, questions: list[str], filters: Filters | None = None
                 ) -> list[Evidence]:
        """The raw evidence behind the "not covered" decision, for calibration (within the
        coverage `filters` keep, as `ask` would judge it)."""
        checked = [check_question(q) for q in questions]
        vecs = self.embedder.encode(checked)
        allowed = self.allowed(filters)
        return [self._evidence(q, v, allowed) for q, v in zip(checked, vecs, strict=True)]

    def _background_of(self, probe_vectors: np.ndarray) -> dict[str, float]:
        """Mean evidence of the PROBES (encoded as `probe_vectors`) against this index."""
        checked = [check_question(q) for q in PROBES]
        ev = [self._evidence(q, v) for q, v in zip(checked, probe_vectors, strict=True)]
        return {key: float(np.mean([getattr(e, key) for e in ev])) for key in BACKGROUND_KEYS}

    def _evidence(self, q: str, qvec: np.ndarray, allowed: np.ndarray | None = None
                  ) -> Evidence:
        terms = analyze(q)
        rows, _, dense = self.rank(qvec, terms, allowed=allowed)
        return self._top_evidence(qvec, terms, rows[0], dense)

    def _top_evidence(self, qvec: np.ndarray, terms: list[str], top: int, dense: np.ndarray,
                      lexical: float | None = None) -> Evidence:
        """The evidence of the `top` row; `lexical`: its context coverage if the ranking
        measured it (the same number)."""
        row = np.array([top])
        if lexical is None:
            lexical = float(self._context_coverage(terms, row)[0][0])
        return Evidence(dense=float(dense.max()), lexical=lexical,
                        sentence=float(self._best_sentence(qvec, row)[0]),
                        terms=len(set(terms)))

    def _confidence(self, ev: Evidence) -> float:
        bg, s = self._background, self.settings
        lexical_bg = lexical_background(bg.lexical, ev.terms)
        return ((ev.dense - bg.dense) + s.coverage_weight * (ev.lexical - lexical_bg)
                + s.sentence_evidence_weight * (ev.sentence - bg.sentence)
                + s.length_weight * math.log(max(ev.terms, 1)))

    # -- ranking --------------------------------------------------------------------------

    def _rank_recent(self, qvec: np.ndarray, terms: list[str], depth: int | None,
                allowed: np.ndarray | None, recent: float, qtokens: np.ndarray | None = None,
                memo: RowMemo | None = None
                ) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray | None, int]:
        """`_rank_in_context` within the `allowed` rows, newer coverage moved up by `recent`
        (filters.recency); last, the position of the most relevant row in that order."""
        rows, scores, dense, context = self._rank_in_context(qvec, terms, depth, allowed,
                                                             qtokens, memo)
        if not recent or not rows or self.settings.method != "hybrid":  # baselines: plain
            return rows, scores, dense, context, 0
        scores = prefer_recent(scores, self.rows_meta().seconds[rows], recent)
        order = np.argsort(-scores, kind="stable")
        return ([rows[i] for i in order], scores[order], dense[order],
                None if context is None else context[order], int(np.argmin(order)))

    def rank(self, qvec: np.ndarray, terms: list[str], depth: int | None = None,
              allowed: np.ndarray | None = None, qtokens: np.ndarray | None = None
              ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Candidate rows sorted by score, with their scores and raw dense similarities;
        `depth` candidates from each retriever (default: the settings' `candidates`), only
        among the `allowed` rows (a boolean mask; None: all); given the question's content
        tokens, the best candidates re-scored by late interaction (SearchSettings.late_weight)."""
        return self._rank_in_context(qvec, terms, depth, allowed, qtokens)[:3]

    def _rank_in_context(self, qvec: np.ndarray, terms: list[str], depth: int | None = None,
                allowed: np.ndarray | None = None, qtokens: np.ndarray | None = None,
                memo: RowMemo | None = None
                ) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray | None]:
        """`rank`, with each row's context coverage (`_context_coverage`) where the
        ranking measured it (None where not); `memo` keeps what this round measures of each
        row for a deeper round of the same question and its quotes (and gives what an earlier
        round measured)."""
        s = self.settings
        memo = RowMemo() if memo is None else memo
        context = None
        size = len(self.index) if allowed is None else int(np.count_nonzero(allowed))
        n = min(depth or s.candidates, size)
        ids = self.lexical.term_ids(terms)
        if self.index.concurrent_reads:  # see Store.concurrent_reads
            pending = _dense_reads().submit(self.index.dense_search, qvec, n, allowed)
            bm25 = self._bm25(ids, allowed, memo)
            lexical_rows = self.lexical.top(bm25, ids, n)
            self.index.read_ahead(lexical_rows)  # while the dense search runs
            dense_rows = pending.result()
        else:
            dense_rows = self.index.dense_search(qvec, n, allowed)
            bm25 = self._bm25(ids, allowed, memo)
            lexical_rows = self.lexical.top(bm25, ids, n)
        rows = np.unique(np.concatenate([dense_rows[0][dense_rows[0] >= 0], lexical_rows]))
        dense = memo.array("dense", rows, lambda r: self._dense_for(qvec, r))
        lexical = bm25[rows].astype(np.float32)
        if s.method == "dense":
            scores = dense.copy()
        elif s.method == "bm25":
            scores = lexical + 1e-6 * dense  # dense only breaks ties (e.g. no match)
        else:
            scores = s.dense_weight * minmax(dense) + (1 - s.dense_weight) * minmax(lexical)
            if s.sentence_weight:
                best = memo.array("sentence", rows, lambda r: self._best_sentence(qvec, r))
                scores = scores + s.sentence_weight * minmax(best)
            if s.coverage_rank_weight:
                held = memo.array("coverage", rows,
                                  lambda r: self.lexical.coverage_of_rows(terms, r))
                scores = scores + s.coverage_rank_weight * held
            if s.context_rank_weight or s.article_rank_weight or s.headline_rank_weight:
                bonus, context = self._article_context(terms, rows, scores, memo)
                scores = scores + bonus
            if s.late_weight and qtokens is not None and self.index.tokens is not None:
                scores = self._late(qtokens, rows, scores, memo.tokens)
        order = np.argsort(-scores, kind="stable")
        return ([int(r) for r in rows[order]], scores[order], dense[order],
                None if context is None else context[order])

    def _late(self, qtokens: np.ndarray, rows: np.ndarray, scores: np.ndarray,
              sims: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """`scores` with the `late_depth` best candidates' late-interaction bonus added (a
        bonus in 0..late_weight, so they stay above the rest); `sims` gets the token cosines it
        measured (row -> question tokens x its tokens: RowMemo.tokens, for the quotes)."""
        s = self.settings
        top = np.argsort(-scores, kind="stable")[:s.late_depth]
        out = np.array(scores, dtype=np.float32, copy=True)
        out[top] += s.late_weight * minmax(
            late_interaction(qtokens, self.index.tokens, rows[top], keep=sims))
        return out

    def _bm25(self, ids: list[int], allowed: np.ndarray | None, memo: RowMemo) -> np.ndarray:
        """Every passage's BM25 score for the question's term ids (0 outside `allowed`),
        read once per question."""
        if memo.bm25 is None:
            bm25 = self.lexical.scores(ids)
            memo.bm25 = bm25 if allowed is None else np.where(allowed, bm25, 0.0)
        return memo.bm25

    def _article_context(self, terms: list[str], rows: np.ndarray, scores: np.ndarray,
                         memo: RowMemo) -> tuple[np.ndarray, np.ndarray | None]:
        """Each candidate's bonus from its article (see SearchSettings.context_rank_weight),
        and its context coverage where that was measured (None where not)."""
        s = self.settings
        info = memo.each("row_context", rows, self.index.row_context)
        out = np.zeros(len(rows), dtype=np.float32)
        context = None
        if s.article_rank_weight:
            best: dict[int, float] = {}
            for (code, _, _), x in zip(info, scores.tolist(), strict=True):
                best[code] = max(best.get(code, -math.inf), x)
            out += s.article_rank_weight * np.array([best[c] for c, _, _ in info], np.float32)
        if s.context_rank_weight or s.headline_rank_weight:
            pairs = memo.each("context", rows, lambda r: list(zip(*self._context_coverage(
                terms, r, memo.each("row_context", r, self.index.row_context)), strict=True)))
            context = np.array([c for c, _ in pairs], np.float32).reshape(len(rows))
            headline = np.array([h for _, h in pairs], np.float32).reshape(len(rows))
            out += s.context_rank_weight * context + s.headline_rank_weight * headline
        return out, context

    def _context_coverage(self, terms: list[str], rows: np.ndarray,
                          info: list[tuple[int, int, str]] | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the share of the question's IDF mass held by the passage, its previous
        paragraph and its article's headline together; and by the headline alone."""
        info = self.index.row_context(rows) if info is None else info
        unique = set(terms)
        total = sum(self.lexical.idf(t) for t in unique)
        context = np.zeros(len(rows), dtype=np.float32)
        headline = np.zeros(len(rows), dtype=np.float32)
        if not total:
            return context, headline
        has_prev = np.array([n > 1 for _, n, _ in info])
        titles = [self._title_terms(t) for _, _, t in info]
        for t in unique:
            in_title = np.array([t in tt for tt in titles])
            held = in_title.copy()
            if t in self.lexical.vocab:
                tid = self.lexical.vocab[t]
                both = self.lexical.holds(tid, np.concatenate([rows, rows - 1]))  # one search
                held |= both[:len(rows)] | (has_prev & both[len(rows):])
            idf = self.lexical.idf(t)
            context += held * idf
            headline += in_title * idf
        return context / total, headline / total

    def _title_terms(self, title: str) -> frozenset[str]:
        found = self._titles.get(title)
        if found is None:
            found = self._titles[title] = frozenset(analyze(title))
        return found

    def _display_score(self, fused: float) -> float:
        """A ranking score as Hit.score shows it, in 0..1 and in the ranking's order: the
        hybrid score over the most its parts can add up to (each part is in 0..1); dense
        cosine clipped at 0; BM25 squashed as x / (1 + x)."""
        s = self.settings
        if s.method == "dense":
            return min(max(fused, 0.0), 1.0)
        if s.method == "bm25":
            return max(fused, 0.0) / (1 + max(fused, 0.0))
        most = (1 + s.sentence_weight + s.coverage_rank_weight + s.context_rank_weight
                + s.headline_rank_weight + s.late_weight) * (1 + s.article_rank_weight)
        return min(max(fused / most, 0.0), 1.0)

    def _best_sentence(self, qvec: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Each row's best sentence similarity to the question."""
        vecs, counts = self.index.sentences.many(rows)
        sims = widen(vecs) @ qvec
        if not np.isfinite(sims).all():
            raise self.index.damaged("sentences/vectors.npy")
        return np.maximum.reduceat(sims, np.cumsum(counts) - counts).astype(np.float32)

    def _dense_for(self, qvec: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine similarity of each row's passage to the question (the ANN index
        only proposes candidates; above EXACT_MAX its scores are 8-bit approximations)."""
        sims = np.asarray(self.index.passage_vectors[rows], dtype=np.float32) @ qvec
        if not np.isfinite(sims).all():
            raise self.index.damaged("vectors/passages.npy")
        return sims

    # -- quotes (search/quotes.py) ---------------------------------------------------------

    def quote(self, qvec: np.ndarray, terms: list[str], passage: Passage, row: int,
              mode: str = "best", qtokens: np.ndarray | None = None) -> str:
        """The sentence of `passage` that best answers the question (see Quotes.quote)."""
        return self.quoter.quote(qvec, terms, passage, row, mode, qtokens)

    def quotes(self, qvec: np.ndarray, terms: list[str], passages: Sequence[Passage],
               rows: Sequence[int], qtokens: np.ndarray | None = None,
               sims: dict[int, np.ndarray] | None = None) -> list[str]:
        """`quote` ("best") of each of `passages` (see Quotes.quotes)."""
        return self.quoter.quotes(qvec, terms, passages, rows, qtokens, sims)
