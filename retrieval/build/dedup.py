"""Near-duplicate passages across articles (wire copies, updated versions): MinHash + LSH.

Each passage becomes the set of its word 3-grams (lower-cased, punctuation and typographic
quotes ignored). A MinHash signature of NUM_PERM values estimates how much two sets overlap;
LSH banding (BANDS bands of ROWS values) proposes as candidates the pairs that agree on a
whole band, and a candidate is a copy when the shorter passage's 3-grams are mostly
(CONTAINMENT) in the longer one and it holds at least MIN_SHARE of the longer one's. Copies
are joined into groups (union-find); only passages of different articles are paired.

Everything is vectorised with numpy (words hashed from the UTF-8 bytes, a multiply-shift hash
per permutation), so a million passages take seconds, not the hour per-passage objects would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

SHINGLE = 3  # words per shingle: one changed word costs 3 shingles, not 5
NUM_PERM = 64  # MinHash values per passage
ROWS = 3  # values per LSH band ...
BANDS = 21  # ... and bands (63 of the 64 values): candidate at Jaccard 0.5 with p 0.93
CONTAINMENT = 0.75  # share of the shorter passage's shingles found in the longer one
MIN_SHARE = 0.5  # the shorter passage holds at least half as many shingles as the longer
STORY_SHARE = 0.5  # articles sharing copies of half the shorter one's paragraphs: one story
MIN_WORDS = 12  # shorter passages (bylines, one-line boilerplate) are never grouped
CHUNK = 10_000  # passages hashed at a time (bounds the temporary arrays)

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_PRIME = 0x100000001B3  # odd: invertible modulo 2**64
_PRIME_INV = pow(_PRIME, -1, 2**64)
_rng = np.random.default_rng(20240501)  # fixed: groups must not change between builds
_A = (_rng.integers(0, 2**63, NUM_PERM, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)
_B = _rng.integers(0, 2**63, NUM_PERM, dtype=np.uint64)
del _rng
# Word bytes: ASCII letters and digits, and every byte of a non-ASCII character.
_WORD = np.zeros(256, bool)
_WORD[[*range(ord("0"), ord("9") + 1), *range(ord("a"), ord("z") + 1), *range(0x80, 256)]] = True
# Typographic punctuation that outlets spell differently: not part of words. (A regular
# expression, not str.translate, which looks up every character.)
_PUNCT = re.compile("[\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u00ab\u00bb"
                    "\u2013\u2014\u2015\u2026\u00a0\u2032\u2033]")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the 64 output bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingles(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shingle hashes uint64, owning text index per shingle (ascending), words per text)."""
    encoded = [_PUNCT.sub(" ", t.lower()).encode("utf-8") for t in texts]
    data = np.frombuffer(b" ".join(encoded) + b" ", np.uint8)
    lengths = np.fromiter((len(e) + 1 for e in encoded), np.int64, len(encoded))
    word = _WORD[data]
    edges = np.diff(word.astype(np.int8), prepend=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    owner = np.searchsorted(np.cumsum(lengths), starts, side="right")
    words = np.bincount(owner, minlength=len(texts))
    if not len(starts):
        return np.empty(0, np.uint64), np.empty(0, np.int64), words
    # Polynomial hash of every word from prefix sums: sum(byte_j * P**j) over the word,
    # shifted to start at power 0, so equal words hash equally wherever they are.
    with np.errstate(over="ignore"):
        prefix = np.concatenate([np.zeros(1, np.uint64), np.cumsum(
            data.astype(np.uint64) * _powers(len(data), _PRIME), dtype=np.uint64)])
        hashes = _mix((prefix[ends] - prefix[starts]) * _powers(len(data), _PRIME_INV)[starts])
        n = len(hashes) - SHINGLE + 1
        if n <= 0:
            return np.empty(0, np.uint64), np.empty(0, np.int64), words
        grams = hashes[:n].copy()
        for i in range(1, SHINGLE):
            grams = _mix(grams * np.uint64(0x9E3779B97F4A7C15) + hashes[i:i + n])
    inside = owner[:n] == owner[SHINGLE - 1:]  # the n-gram does not cross two texts
    return grams[inside], owner[:n][inside], words


def _powers(n: int, base: int) -> np.ndarray:
    """base**j modulo 2**64 for j in 0..n-1."""
    out = np.empty(n, np.uint64)
    if n:
        out[0] = 1
        with np.errstate(over="ignore"):
            out[1:] = np.cumprod(np.full(n - 1, base, np.uint64), dtype=np.uint64)
    return out


def signatures(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MinHash signatures (n, NUM_PERM) uint32, distinct shingles per text, words per text).
    A text without a shingle gets all-ones values (it is never grouped: see MIN_WORDS)."""
    grams, owner, words = shingles(texts)
    order = np.lexsort((grams, owner))
    grams, owner = grams[order], owner[order]
    new = np.ones(len(grams), bool)
    new[1:] = (grams[1:] != grams[:-1]) | (owner[1:] != owner[:-1])
    grams, owner = grams[new], owner[new]
    sizes = np.bincount(owner, minlength=len(texts))
    sig = np.full((len(texts), NUM_PERM), np.iinfo(np.uint32).max, np.uint32)
    has = np.flatnonzero(sizes)
    first = np.concatenate([[0], np.cumsum(sizes[has])[:-1]])
    if len(has):
        with np.errstate(over="ignore"):
            for k in range(NUM_PERM):  # multiply-shift: the high 32 bits of a*x + b
                values = ((grams * _A[k] + _B[k]) >> np.uint64(32)).astype(np.uint32)
                sig[has, k] = np.minimum.reduceat(values, first)
    return sig, sizes, words


def band_keys(sig: np.ndarray) -> np.ndarray:
    """(BANDS, n) uint32: one hash of each band's ROWS values per passage."""
    out = np.empty((BANDS, len(sig)), np.uint32)
    with np.errstate(over="ignore"):
        for b in range(BANDS):
            key = np.full(len(sig), b, np.uint64)
            for v in sig[:, b * ROWS:(b + 1) * ROWS].T:
                key = _mix(key * np.uint64(0x9E3779B97F4A7C15) + v.astype(np.uint64))
            out[b] = (key >> np.uint64(32)).astype(np.uint32)
    return out


def copy_groups(texts: Sequence[str], articles: Sequence[object] | np.ndarray) -> np.ndarray:
    """Group id of each passage (the smallest row among its copies), or -1 when it has no
    near-duplicate in another article. `articles[i]` says which article holds passage i."""
    n = len(texts)
    _, article = np.unique(np.asarray(articles), return_inverse=True)
    short = np.empty((n, NUM_PERM), np.uint16)  # b-bit MinHash: 16 bits estimate Jaccard
    keys = np.empty((BANDS, n), np.uint32)
    sizes = np.zeros(n, np.int64)
    eligible = np.zeros(n, bool)
    for start in range(0, n, CHUNK):
        sig, size, words = signatures(texts[start:start + CHUNK])
        stop = start + len(sig)
        short[start:stop] = sig.astype(np.uint16)
        keys[:, start:stop] = band_keys(sig)
        sizes[start:stop] = size
        eligible[start:stop] = words >= MIN_WORDS
    a, b = _candidates(keys, np.flatnonzero(eligible), article)
    del keys
    contained, balanced = _overlaps(short, sizes, a, b)
    match = contained & balanced
    # A paragraph cut down to its first sentence is still a copy when the two articles are
    # copies of one story (most of the shorter one's paragraphs are copies in the other).
    match |= contained & _same_story(article, a, b, match, _union(n, a[match], b[match]))
    return _union(n, a[match], b[match])


def _same_story(article: np.ndarray, a: np.ndarray, b: np.ndarray, match: np.ndarray,
                groups: np.ndarray) -> np.ndarray:
    """For each candidate pair, whether its two articles share copies of at least
    STORY_SHARE of the shorter article's paragraphs (and at least two)."""
    if not match.any():
        return np.zeros(len(a), bool)
    n_articles = int(article.max()) + 1
    paragraphs = np.bincount(article, minlength=n_articles)
    x, y = article[a], article[b]
    pair = np.minimum(x, y).astype(np.int64) * n_articles + np.maximum(x, y)
    shared_groups = np.unique(np.stack([pair[match], groups[a[match]]]), axis=1)
    codes, shared = np.unique(shared_groups[0], return_counts=True)
    at = np.minimum(np.searchsorted(codes, pair), len(codes) - 1)
    count = np.where(codes[at] == pair, shared[at], 0)
    return (count >= 2) & (count >= STORY_SHARE * np.minimum(paragraphs[x], paragraphs[y]))


def _candidates(keys: np.ndarray, rows: np.ndarray, article: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of `rows` (a < b, different articles) that agree on at least one band. Within a
    band's bucket each member is paired with the first and with the one before it, which
    union-find needs (not all pairs, which a story copied 100 times would make quadratic)."""
    found = []
    for band in keys:
        order = rows[np.argsort(band[rows], kind="stable")]
        k = band[order]
        same = np.flatnonzero(k[1:] == k[:-1]) + 1  # positions equal to the one before
        if not len(same):
            continue
        head = np.arange(len(order))
        head[same] = 0
        head = np.maximum.accumulate(head)  # the bucket's first position
        found.append(np.stack([order[same - 1], order[same]]))
        found.append(np.stack([order[head[same]], order[same]]))
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pairs = np.concatenate(found, axis=1)
    lo, hi = pairs.min(axis=0), pairs.max(axis=0)
    keep = (lo != hi) & (article[lo] != article[hi])
    code = np.unique(lo[keep].astype(np.int64) * len(article) + hi[keep])
    return code // len(article), code % len(article)


def _overlaps(short: np.ndarray, sizes: np.ndarray, a: np.ndarray, b: np.ndarray,
              chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate pair, from the estimated Jaccard J and the exact set sizes
    (|A ∩ B| = J (|A| + |B|) / (1 + J)): whether the shorter set is mostly inside the longer
    (CONTAINMENT), and whether it is not much smaller than it (MIN_SHARE)."""
    contained, balanced = np.zeros(len(a), bool), np.zeros(len(a), bool)
    for s in range(0, len(a), chunk):
        x, y = a[s:s + chunk], b[s:s + chunk]
        jaccard = (short[x] == short[y]).mean(axis=1)
        small = np.minimum(sizes[x], sizes[y]).astype(np.float64)
        large = np.maximum(sizes[x], sizes[y]).astype(np.float64)
        inter = jaccard * (small + large) / (1 + jaccard)
        contained[s:s + chunk] = inter >= CONTAINMENT * small
        balanced[s:s + chunk] = small >= MIN_SHARE * large
    return contained, balanced


def _union(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the copy pairs: each member's smallest row, -1 if alone."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)  # the root stays the smallest row
    groups = np.full(n, -1, np.int64)
    if parent:
        members = np.unique(np.concatenate([a, b]))
        groups[members] = [find(x) for x in members.tolist()]
    return groups
