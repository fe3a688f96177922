"""Late interaction (ColBERT's MaxSim) between a question's content tokens and the token
vectors an index keeps, for re-ranking the best candidates.

Plain MaxSim (the mean over the question's tokens of the best cosine with any of the
passage's tokens) favours long passages: the more tokens, the better each question token's
best match by chance. Scoring a passage by its best *window* of a fixed number of tokens
instead puts a one-line news paragraph on the same footing as a 250-token one (see
docs/quality.md, "Late interaction in the ranking")."""

from __future__ import annotations

import numpy as np

from retrieval.store import Tokens

BLOCK = 16  # tokens; a window is two adjacent blocks (32 tokens, moved 16 at a time)


def late_interaction(qtokens: np.ndarray, tokens: Tokens, rows: np.ndarray,
                     block: int = BLOCK, keep: dict[int, np.ndarray] | None = None
                     ) -> np.ndarray:
    """Per row, its best window's late-interaction score among the candidate `rows`.

    A window is 2 x `block` consecutive tokens (a stride of `block`; a passage of at most
    2 x `block` tokens is one window). In a window, each question token takes its best
    cosine with one of the window's tokens; that is standardised per question token over
    every window of every candidate (a token that matches all the candidates, the topic,
    says little about which one answers), and the window scores the mean over the question's
    tokens. `keep`, if given, gets each row's (question tokens x its tokens) cosines."""
    out = np.zeros(len(rows), dtype=np.float32)
    if not len(rows) or not len(qtokens):
        return out
    codes, scales, counts = tokens.codes(rows)
    if not len(codes):
        return out
    # (question tokens, all rows' tokens); the tall product is the fast one for BLAS. The
    # product of the int8 codes is scaled, not each token vector (a pass over all of them).
    sims = ((codes.astype(np.float32) @ qtokens.T) * scales[:, None]).T
    if keep is not None:
        ends = np.cumsum(counts).tolist()
        for row, a, b in zip(np.asarray(rows).tolist(), [0, *ends[:-1]], ends, strict=True):
            keep[int(row)] = sims[:, a:b]
    # Blocks of `block` tokens, never across two rows: each row's tokens are consecutive.
    have = np.flatnonzero(counts)
    blocks = -(-counts[have] // block)
    first = np.concatenate([[0], np.cumsum(blocks)[:-1]])  # each row's first block
    row_start = np.concatenate([[0], np.cumsum(counts)[:-1]])[have]
    starts = (np.repeat(row_start - first * block, blocks)
              + np.arange(blocks.sum()) * block)  # first token of each block
    best = np.maximum.reduceat(sims, starts, axis=1)  # (question tokens, blocks)
    # A window is two adjacent blocks of one row; a one-block row is one window.
    windows = np.maximum(blocks - 1, 1)
    left = np.repeat(first, windows) + np.arange(windows.sum()) - np.repeat(
        np.cumsum(windows) - windows, windows)
    right = np.where(np.repeat(blocks, windows) > 1, left + 1, left)
    every = np.maximum(best[:, left], best[:, right])  # (question tokens, windows)
    owner = np.repeat(have, windows)
    z = (every - every.mean(axis=1, keepdims=True)) / (every.std(axis=1, keepdims=True) + 1e-3)
    score = z.mean(axis=0)
    out[:] = -np.inf
    np.maximum.at(out, owner, score)
    out[np.isinf(out)] = score.min()  # a row without tokens: as its worst candidate
    return out


def sentence_maxsim(sims: np.ndarray, offsets: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Per sentence (character `spans`), the mean over the question's tokens of the best
    cosine (`sims`: question tokens x the passage's tokens, at character `offsets`) with one
    of the sentence's tokens (0 for a sentence past the model's truncation)."""
    ranges = token_ranges(offsets, spans)
    if ranges is None:  # tokens out of order: look at each sentence's tokens one by one
        return sentence_maxsim_masked(sims, offsets, spans)
    lo, hi = ranges
    out = np.zeros(len(spans), dtype=np.float32)
    some = np.flatnonzero(hi > lo)
    if len(some):
        # The max over each range, the ranges' ends in between (a final end past the last
        # token is left out: reduceat then runs to the end).
        bounds = np.stack([lo[some], hi[some]], axis=1).reshape(-1)
        best = np.maximum.reduceat(sims, bounds[:-1] if bounds[-1] == sims.shape[1]
                                   else bounds, axis=1)[:, ::2]
        out[some] = np.ascontiguousarray(best.T).mean(axis=1)  # row by row
    return out


def token_ranges(offsets: np.ndarray, spans: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per sentence, the first and past-the-last token lying within it (start >= a, end
    <= b, end > a: a token across a boundary belongs to neither), as index ranges; None
    unless the tokens' starts and ends both rise (as a tokenizer's do) between any empty
    ones (special tokens, ending at 0) at either end, so each sentence's tokens are one run."""
    if len(spans) and int(spans[:, 0].min()) < 0:
        return None
    live = np.flatnonzero(offsets[:, 1] > 0)  # the others lie in no sentence (end <= a)
    if not len(live):
        return np.zeros(len(spans), np.int64), np.zeros(len(spans), np.int64)
    first = int(live[0])
    starts, ends = offsets[first:int(live[-1]) + 1, 0], offsets[first:int(live[-1]) + 1, 1]
    if (np.diff(starts) < 0).any() or (np.diff(ends) < 0).any():
        return None
    a, b = spans[:, 0], spans[:, 1]
    lo = np.maximum(np.searchsorted(starts, a, "left"), np.searchsorted(ends, a, "right"))
    return lo + first, np.searchsorted(ends, b, "right") + first


def sentence_maxsim_masked(sims: np.ndarray, offsets: np.ndarray, spans: np.ndarray
                            ) -> np.ndarray:
    """`sentence_maxsim` for tokens in any order: each sentence's tokens found by masks."""
    out = np.zeros(len(spans), dtype=np.float32)
    for i, (a, b) in enumerate(spans):
        take = (offsets[:, 0] >= a) & (offsets[:, 1] <= b) & (offsets[:, 1] > a)
        if take.any():
            out[i] = sims[:, take].max(axis=1).mean()
    return out
