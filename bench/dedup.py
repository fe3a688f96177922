"""What near-duplicate detection costs at scale, and how well it finds injected copies.

Synthetic news-like paragraphs (Zipf-distributed words in sentences, 10 to an article), of
which 2% are wire stories copied into 1-3 other articles with an edit each (a word or two
changed, the ending trimmed, a line added), and 1% share a quoted stretch (40% of their
words) with another paragraph without being copies. Times `retrieval.dedup.copy_groups` over
all of them and its peak memory (tracemalloc: numpy's arrays included), scores the groups
against the injected copies (pairs of passages), and times the answer-time lookups (the
copies table of a million-row SQLite index).

    .venv/bin/python -m bench.dedup --passages 1000000
"""

from __future__ import annotations

import argparse
import sqlite3
import time
import tracemalloc
from types import SimpleNamespace

import numpy as np

from retrieval.build.dedup import copy_groups

VOCAB = 40_000
PER_ARTICLE = 10


def _vocabulary(rng: np.random.Generator) -> list[str]:
    syllables = ["ba", "ko", "ri", "tan", "mel", "su", "do", "ver", "lin", "ga", "pe", "stro",
                 "nu", "ha", "zel", "or", "im", "que", "an", "et"]
    codes = rng.permutation(len(syllables) ** 4)[:VOCAB]  # 2-4 syllables each
    return ["".join(syllables[c // len(syllables) ** d % len(syllables)]
                    for d in range(2 + c % 3)) for c in codes.tolist()]


def _paragraph(words: list[str], ids: np.ndarray) -> str:
    out = []
    for i, w in enumerate(words[j] for j in ids):
        out.append(w.capitalize() if i % 18 == 0 else w)
        if i % 18 == 17:
            out[-1] += "."
    return " ".join(out) + "."


def corpus(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(texts, article of each, injected copy family (-1 none), quote-sharing pair id)."""
    rng = np.random.default_rng(seed)
    words = _vocabulary(rng)
    copies_per = rng.integers(1, 4, size=int(n * 0.02 / 3))  # 1-3 copies of each wire base
    bases = n - int(copies_per.sum())
    lengths = rng.integers(25, 90, size=bases)
    ids = (rng.zipf(1.15, size=int(lengths.sum())) - 1) % VOCAB
    ends = np.cumsum(lengths)
    paragraphs = [ids[e - m:e] for e, m in zip(ends, lengths, strict=True)]
    quoted = np.full(n, -1, np.int64)
    sharers = rng.choice(bases, size=int(n * 0.01) * 2, replace=False).reshape(-1, 2)
    for q, (a, b) in enumerate(sharers):  # b quotes 40% of the shorter one's words
        span = max(3, int(0.4 * min(len(paragraphs[a]), len(paragraphs[b]))))
        start = rng.integers(0, max(1, len(paragraphs[a]) - span))
        paragraphs[b] = np.concatenate([paragraphs[a][start:start + span],
                                        paragraphs[b][span:]])
        quoted[[a, b]] = q
    family = np.full(n, -1, np.int64)
    wire = rng.choice(np.setdiff1d(np.arange(bases), sharers.ravel()), size=len(copies_per),
                      replace=False)
    copies = []
    for f, (base, count) in enumerate(zip(wire, copies_per, strict=True)):
        family[base] = f
        for _ in range(count):
            copies.append((f, _edit(paragraphs[base], rng)))
    texts = [_paragraph(words, p) for p in paragraphs]
    texts += [_paragraph(words, p) for _, p in copies]
    family[bases:] = [f for f, _ in copies]
    article = np.concatenate([np.arange(bases) // PER_ARTICLE,
                              bases // PER_ARTICLE + 1 + np.arange(len(copies))])
    return texts, article, family, quoted


def _edit(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy as another outlet runs it: words changed, the ending trimmed or a line added."""
    ids = ids.copy()
    kind = rng.integers(0, 3)
    if kind == 0:
        at = rng.choice(len(ids), size=rng.integers(1, 3), replace=False)
        ids[at] = rng.integers(0, VOCAB, size=len(at))
    elif kind == 1:
        ids = ids[:max(12, int(len(ids) * rng.uniform(0.7, 0.9)))]
    else:
        ids = np.concatenate([ids, rng.integers(0, VOCAB, size=rng.integers(5, 15))])
    return ids


def _pairs(counts: np.ndarray) -> int:
    return int((counts * (counts - 1) // 2).sum())


def score(groups: np.ndarray, family: np.ndarray, quoted: np.ndarray) -> dict[str, float]:
    """Pairwise precision and recall of the groups against the injected copies."""
    predicted = _pairs(np.unique(groups[groups >= 0], return_counts=True)[1])
    true = _pairs(np.unique(family[family >= 0], return_counts=True)[1])
    both = (groups >= 0) & (family >= 0)
    hits = _pairs(np.unique(np.stack([groups[both], family[both]]), axis=1,
                            return_counts=True)[1])
    return {"precision": hits / predicted if predicted else 1.0,
            "recall": hits / true if true else 1.0, "true_pairs": true,
            "grouped_pairs": predicted,
            "quote_sharers_grouped": int(((quoted >= 0) & (groups >= 0)).sum())}


def answer_lookups(article: np.ndarray, groups: np.ndarray, rounds: int = 300) -> dict[str, float]:
    """Per answer, the Retriever's two extra SQLite queries at this size: the groups of ~100
    candidate rows, then the articles of the 5 hits' groups."""
    from retrieval.store import FolderIndex

    db = _lookup_db(article, groups)
    index = SimpleNamespace(_db=db, has_copies=True)
    rng = np.random.default_rng(2)
    grouped = np.flatnonzero(groups >= 0)
    times = []
    for _ in range(rounds):
        rows = np.concatenate([rng.choice(len(article), 95), rng.choice(grouped, 5)]).tolist()
        start = time.perf_counter()
        found = FolderIndex.groups_of(index, rows)
        FolderIndex.copies(index, sorted(set(found.values()))[:5])
        times.append(time.perf_counter() - start)
    return {"lookup_p50_ms": float(np.median(times)) * 1e3,
            "lookup_p95_ms": float(np.percentile(times, 95)) * 1e3}


def _lookup_db(article: np.ndarray, groups: np.ndarray) -> sqlite3.Connection:
    """An index's metadata tables for these passages (empty texts: only lookups run)."""
    from retrieval.corpus import Article, Passage
    from retrieval.store.tables import memory_db

    n_articles = int(article.max()) + 1
    articles = [Article(id=f"a{a}", title=f"Story {a}", source=f"a{a}.txt",
                        outlet=f"Outlet {a % 50}", date=f"2024-05-{a % 28 + 1:02d}",
                        sha256="0") for a in range(n_articles)]
    passages = [Passage(id=f"a{a}#{i}", article_id=f"a{a}", title="", source="",
                        paragraph=1, text="") for i, a in enumerate(article.tolist())]
    return memory_db(articles, passages, groups)


def run(passages: int = 1_000_000) -> dict:
    start = time.perf_counter()
    texts, article, family, quoted = corpus(passages)
    generated = time.perf_counter() - start
    tracemalloc.start()
    start = time.perf_counter()
    groups = copy_groups(texts, article)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result = {"passages": len(texts), "generate_s": generated, "detect_s": seconds,
              "passages_per_s": len(texts) / seconds, "peak_mb": peak / 2**20,
              **score(groups, family, quoted)}
    result |= answer_lookups(article, groups)
    return result


def markdown(r: dict) -> str:
    return "\n".join([
        "| passages | detection | rate | peak memory | precision | recall | quote-sharers "
        "grouped | answer-time lookups p50 / p95 |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['passages']:,} | {r['detect_s']:.1f} s | {r['passages_per_s']:,.0f}/s | "
        f"{r['peak_mb']:,.0f} MB | {r['precision']:.4f} | {r['recall']:.4f} | "
        f"{r['quote_sharers_grouped']} | {r['lookup_p50_ms']:.2f} / {r['lookup_p95_ms']:.2f} ms |",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    args = parser.parse_args()
    result = run(args.passages)
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})
    print(markdown(result))


if __name__ == "__main__":
    main()
