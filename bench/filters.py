"""Filtered query latency at scale: `Retriever.ask` with no filter, a date range keeping
about 1% of the passages and an outlet keeping about 50%, on a synthetic IVF index.

    .venv/bin/python -m bench.filters                     # 100,000 passages
    .venv/bin/python -m bench.filters --passages 1000000

Passages are Zipf-distributed words over clustered unit vectors (as tests/test_scale.py),
ten to an article, one article a day apart (wrapping) across two outlets; questions are a
few of those words. Not a quality bench: it times the filtered paths (BM25 mask; dense
search within the allowed rows: the exact subset or FAISS's ID selector with raised nprobe)
and checks every ask still returns k results from the allowed rows.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date, timedelta

import numpy as np

from retrieval.corpus import Article
from retrieval.model.embed import Embedder
from retrieval.search.filters import Filters
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex, Sentences
from retrieval.text import sentence_spans

WORDS = [f"{a}{b}" for a in ("harbor", "ledger", "tunnel", "orchid", "glacier", "violin",
                             "pepper", "canyon", "saddle", "marble", "falcon", "meadow")
         for b in ("", "field", "stone", "wick", "mouth", "ridge", "ton", "ford", "by")]
DAYS = 1000  # articles are dated over this many days, so 10 days keep about 1%


def build(n: int, dim: int, seed: int = 0) -> tuple[list[Article], np.ndarray, Sentences]:
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, len(WORDS) + 1)
    words = rng.choice(len(WORDS), size=(n, 12), p=p / p.sum())
    texts = [f"{' '.join(WORDS[w] for w in row[:6]).capitalize()}. "
             f"{' '.join(WORDS[w] for w in row[6:]).capitalize()}." for row in words]
    day0 = date(2020, 1, 1)
    articles = [Article(id=f"a{i}", title=f"A{i}", source=f"a{i}.txt",
                        outlet="Daily" if i % 2 else "Weekly",
                        date=(day0 + timedelta(days=(i // 2) % DAYS)).isoformat(),
                        paragraphs=tuple(texts[j:j + 10]))
                for i, j in enumerate(range(0, n, 10))]
    centres = rng.standard_normal((200, dim)).astype(np.float32)
    vecs = centres[rng.integers(0, 200, n)] + 0.7 * rng.standard_normal((n, dim)).astype(
        np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    spans = [sentence_spans(t) for t in texts]
    counts = np.array([len(s) for s in spans])
    sentences = Sentences(np.repeat(vecs, counts, axis=0).astype(np.float16),
                          np.array([s for sp in spans for s in sp], np.int32),
                          np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    return articles, vecs, sentences


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--questions", type=int, default=100)
    args = ap.parse_args(argv)
    embedder = Embedder()
    start = time.perf_counter()
    articles, vecs, sentences = build(args.passages, embedder.dimension)
    passages = [p for a in articles for p in a.passages()]
    index = FolderIndex.from_vectors(articles, passages, vecs, sentences, model=embedder.name,
                               encoder=embedder.encoder)
    retriever = Retriever(index, embedder)
    print(f"{len(index):,} passages, {index.manifest.ann} nprobe {index.manifest.nprobe}; "
          f"built in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    retriever.rows_meta()
    print(f"row dates and outlets read from SQLite: {1000 * (time.perf_counter() - start):.0f} ms")
    rng = np.random.default_rng(1)
    questions = [" ".join(rng.choice(WORDS, size=rng.integers(2, 5))) + " what happened"
                 for _ in range(args.questions)]
    cases = {"no filter": Filters.parse(),
             "1% (10 days)": Filters.parse(since="2021-03-01", until="2021-03-10"),
             "50% (one outlet)": Filters.parse(outlet="Daily")}
    for name, f in cases.items():
        allowed = retriever.allowed(f)
        share = 1.0 if allowed is None else allowed.mean()
        retriever.ask_many(questions[:5], k=10, keep_refused=True, filters=f)  # warm up
        times = []
        for q in questions:
            t = time.perf_counter()
            [a] = retriever.ask_many([q], k=10, keep_refused=True, filters=f)
            times.append(1000 * (time.perf_counter() - t))
            assert len(a.hits) == 10, (name, q, len(a.hits))
            assert allowed is None or all(allowed[h.row] for h in a.hits)
        times.sort()
        print(f"{name:>17}: keeps {share:6.1%}; ask k=10 median {statistics.median(times):6.1f}"
              f" ms, p95 {times[int(0.95 * len(times)) - 1]:6.1f} ms ({len(times)} questions)")


if __name__ == "__main__":
    main()
