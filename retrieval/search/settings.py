"""The knobs of retrieval (SearchSettings); the defaults are the calibrated ones."""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.search.lexical import EXACT_TIES_MAX
from retrieval.store import ANN_DEPTH

METHODS = ("hybrid", "dense", "bm25")
QUOTE_MODES = ("best", "dense", "lead")
HEADLINE_MARGIN = 0.1  # measured on the news dev set: docs/quality.md
# A headline can state an answer only when it says something: a bare topic name ("Warsaw",
# "Super Bowl 50", "Intergovernmental Panel on Climate Change") never replaces a sentence.
HEADLINE_MIN_WORDS = 6


@dataclass(frozen=True)
class SearchSettings:
    """Knobs of retrieval; the defaults are the calibrated ones (see docs/quality.md)."""

    method: str = "hybrid"  # "dense" and "bm25" alone are the baselines
    dense_weight: float = 0.4  # share of the min-max normalised dense score in the fusion
    sentence_weight: float = 0.7  # weight of the candidates' best-sentence similarity
    candidates: int = ANN_DEPTH  # how many passages each retriever proposes for fusion
    coverage_rank_weight: float = 0.6  # bonus for holding more of the question's IDF mass
    quote_lexical: float = 2.0  # weight of the question's rare words in picking the quote
    # Weight, in picking the quote, of a sentence's late-interaction similarity: the mean over
    # the question's content tokens of the best cosine with one of the sentence's tokens.
    quote_tokens: float = 1.0
    # The top passage's headline is shown as the answer (the quote) when it scores this much
    # above the passage's best sentence on the same terms (similarity + quote_lexical x rare
    # words); None never shows it. News headlines often state the answer the body assumes.
    headline_margin: float | None = HEADLINE_MARGIN
    # "Covered" when (dense - bg.dense) + coverage_weight * (lexical - bg.lexical(terms))
    # + sentence_evidence_weight * (sentence - bg.sentence) + length_weight * ln(terms)
    # >= threshold, the background (bg) being what generic off-topic probes score on this
    # corpus (see Evidence), its lexical share scaled to the question's length
    # (`lexical_background`). Calibrated jointly on SQuAD dev A, the news dev set and that
    # set padded to 10 and 17 times its articles by bench/calibrate_not_covered.py (see
    # docs/quality.md).
    coverage_weight: float = 0.9
    sentence_evidence_weight: float = 1.0
    length_weight: float = 0.05
    threshold: float = 0.61
    # Article context (news paragraphs are short; the subject is often named in the paragraph
    # before or in the headline): weight of the question's IDF mass held by the passage, its
    # previous paragraph and its headline together; of the best fused score among the
    # candidates of the same article; of the headline's share of the question's IDF mass.
    context_rank_weight: float = 0.4
    article_rank_weight: float = 0.0  # measured, did not help (docs/quality.md)
    headline_rank_weight: float = 0.3
    # Late interaction in the ranking: the `late_depth` best candidates get `late_weight` x
    # their (min-max normalised) length-corrected MaxSim with the question's content tokens
    # (retrieval.search.late), where the index keeps token vectors.
    late_weight: float = 0.6
    late_depth: int = 20
    # Up to this many passages, a tie at the cut of BM25's top candidates is broken by
    # partitioning every matching passage; above, among the few passages over a bound on the
    # cut (the same top n but for ties; search/lexical.py).
    exact_ties_max: int = EXACT_TIES_MAX

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}")
