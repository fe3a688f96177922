"""Late interaction in the ranking: length-normalised MaxSim (retrieval.search.late)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from retrieval.search.late import late_interaction
from retrieval.search.retriever import Retriever
from retrieval.store import Tokens
from retrieval.text import analyze

DIM = 8


def _unit(*pairs: tuple[int, float]) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    for axis, x in pairs:
        v[axis] = x
    return v / np.linalg.norm(v)


def test_matches_spread_over_a_long_passage_do_not_beat_a_short_one_holding_them():
    question = np.stack([_unit((0, 1.0)), _unit((1, 1.0))])
    noise = [_unit((2 + i % 6, 1.0)) for i in range(200)]
    # Long: one strong match for each question token, 200 tokens apart.
    long = np.stack([_unit((0, 0.95), (2, 0.3)), *noise, _unit((1, 0.95), (3, 0.3))])
    # Short: a weaker match for each, side by side (a one-line news paragraph).
    short = np.stack([_unit((0, 0.8), (4, 0.6)), _unit((1, 0.8), (5, 0.6))])
    tokens = Tokens.pack([long, short], DIM)
    plain = [(question @ t.T).max(axis=1).mean() for t in (tokens.of(0), tokens.of(1))]
    assert plain[0] > plain[1]  # whole-passage MaxSim prefers the long passage
    scores = late_interaction(question, tokens, np.array([0, 1]))
    assert scores[1] > scores[0]


def test_a_window_spans_two_blocks():
    question = np.stack([_unit((0, 1.0)), _unit((1, 1.0))])
    filler = [_unit((2, 1.0))] * 40
    # Matches 12 tokens apart, across a block boundary (16): one window holds both ...
    near = np.stack([*filler[:10], _unit((0, 1.0)), *filler[:11], _unit((1, 1.0)), *filler])
    # ... and 40 tokens apart: no window does.
    far = np.stack([*filler[:10], _unit((0, 1.0)), *filler, _unit((1, 1.0)), *filler[:10]])
    scores = late_interaction(question, Tokens.pack([near, far], DIM), np.array([0, 1]))
    assert scores[0] > scores[1]


def test_late_weight_reranks_only_the_best_candidates(retriever: Retriever):
    late = Retriever(retriever.index, retriever.embedder,
                     replace(retriever.settings, late_weight=1.0, late_depth=3))
    question = "Who helped with the reporting on the cancelled visit?"
    qvecs, qtokens = late.embedder.encode_questions([question])
    terms = analyze(question)
    plain = Retriever(retriever.index, retriever.embedder,
                      replace(retriever.settings, late_weight=0.0))
    rows0, _, _ = plain.rank(qvecs[0], terms, qtokens=qtokens[0])
    rows1, _, _ = late.rank(qvecs[0], terms, qtokens=qtokens[0])
    assert set(rows1[:3]) == set(rows0[:3]) and rows1[3:] == rows0[3:]


def test_sentence_maxsim_by_runs_equals_by_masks():
    from retrieval.search.late import sentence_maxsim, sentence_maxsim_masked

    rng = np.random.default_rng(3)
    spans = np.array([[0, 10], [11, 25], [26, 40], [41, 60]], np.int32)
    words = np.array([[0, 4], [5, 10], [11, 13], [14, 20], [20, 27], [27, 33], [34, 40]])
    cases = [words,
             np.concatenate([[[0, 0]], words, [[0, 0], [0, 0]]]),  # special tokens
             words[[0, 2, 1, 3, 4, 5, 6]],  # out of order: masks
             np.zeros((3, 2), np.int64), words[:0]]
    for offsets in cases:
        sims = rng.standard_normal((5, len(offsets))).astype(np.float32)
        expected = sentence_maxsim_masked(sims, offsets, spans)
        assert np.array_equal(sentence_maxsim(sims, offsets, spans), expected)


def test_late_interaction_keeps_each_rows_token_cosines():
    rng = np.random.default_rng(4)
    passages = [rng.standard_normal((n, DIM)).astype(np.float32) for n in (5, 0, 40, 3)]
    tokens = Tokens.pack([p / np.linalg.norm(p, axis=1, keepdims=True) if len(p) else p
                          for p in passages], DIM)
    question = np.stack([_unit((0, 1.0)), _unit((3, 1.0), (5, 0.5))])
    kept: dict[int, np.ndarray] = {}
    late_interaction(question, tokens, np.array([2, 0, 1, 3]), keep=kept)
    assert sorted(kept) == [0, 1, 2, 3]
    for row, sims in kept.items():
        np.testing.assert_allclose(sims, question @ tokens.of(row).T, atol=1e-6)
