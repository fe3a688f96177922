"""Sweep late-interaction re-ranking (SearchSettings.late_weight / late_depth, and ways to
normalise MaxSim for passage length) on the news dev set, SQuAD dev A and the seeds.

    .venv/bin/python -m bench.late_sweep ../shared/data/squad-v1.1-dev-a.json ../news-dev \
        [--cache /tmp/late-idx]

Each corpus is indexed once (kept under --cache between runs). News and the seeds are scored
with `evaluate` / `ask_many` (the code path of `byline eval` and `ask`); SQuAD A's ranking
with the late term applied to a cached ranking without it (exactly what `rank` adds), so a
sweep costs seconds, not minutes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

import retrieval.search.retriever as search
from retrieval import index_corpus
from retrieval.build.pipeline import build_index
from retrieval.model.embed import Embedder
from retrieval.search.evaluate import evaluate, load_jsonl, load_news, load_squad
from retrieval.search.filters import prefer_recent, wants_recent
from retrieval.search.late import late_interaction
from retrieval.search.rank import minmax as _minmax
from retrieval.search.retriever import Retriever, SearchSettings
from retrieval.store import FolderIndex, Tokens
from retrieval.text import analyze
from tests.support.passages import every_passage
from tests.support.seed_questions import OFF_TOPIC, ON_TOPIC

ROOT = Path(__file__).resolve().parent.parent

Late = Callable[[np.ndarray, Tokens, np.ndarray], np.ndarray]


def cached(path: Path, build: Callable[[], FolderIndex], embedder: Embedder) -> FolderIndex:
    if not (path / "manifest.json").is_file():
        build().save(path)
    return FolderIndex.load(path, model=embedder.name)


# -- normalisations of MaxSim for passage length (each: qtokens, tokens, rows -> scores) ----

def _sims(qtokens: np.ndarray, tokens: Tokens, row: int) -> np.ndarray:
    vecs = tokens.of(row)
    return qtokens @ vecs.T if len(vecs) else np.zeros((len(qtokens), 1), np.float32)


def raw(q, tokens, rows):
    """Plain MaxSim over the whole passage."""
    return np.array([_sims(q, tokens, r).max(axis=1).mean() for r in rows.tolist()],
                    np.float32)


def _keeping_none(late: Late) -> Callable[..., np.ndarray]:
    """`late` as the Retriever calls it (it keeps no token cosines: quotes measure theirs)."""
    return lambda q, tokens, rows, keep=None: late(q, tokens, rows)


def blocks(block: int) -> Late:
    """retrieval.search.late's windows of 2 x `block` tokens (SearchSettings.late_weight)."""
    return lambda q, tokens, rows: late_interaction(q, tokens, rows, block)


def window(width: int) -> Late:
    """The best window of `width` tokens (stride width / 2): a passage's length adds
    windows, not tokens to each match."""
    def late(q, tokens, rows):
        out = np.zeros(len(rows), np.float32)
        for i, row in enumerate(rows.tolist()):
            sims = _sims(q, tokens, row)
            n = sims.shape[1]
            starts = range(0, max(n - width, 0) + 1, max(width // 2, 1))
            out[i] = max(sims[:, a:a + width].max(axis=1).mean() for a in starts)
        return out
    return late


def log_length(c: float) -> Late:
    def late(q, tokens, rows):
        lengths = np.diff(np.asarray(tokens.offsets))[rows]
        return raw(q, tokens, rows) - c * np.log(np.maximum(lengths, 1))
    return late


def expected_max(sample: np.ndarray, alpha: float) -> Late:
    """MaxSim minus its expectation for the passage's length: per question token, the
    expected best of L^alpha random corpus tokens (`sample`, unit vectors)."""
    def late(q, tokens, rows):
        s = np.sort(q @ sample.T, axis=1)  # (Q, n) ascending
        n = s.shape[1]
        k = np.arange(1, n + 1) / n
        out = np.zeros(len(rows), np.float32)
        for i, row in enumerate(rows.tolist()):
            sims = _sims(q, tokens, row)
            length = max(sims.shape[1], 1) ** alpha
            w = k ** length - (k - 1 / n) ** length  # P(max is the k-th order statistic)
            out[i] = (sims.max(axis=1) - s @ w).mean()
        return out
    return late


def sentences(index: FolderIndex, embedder: Embedder) -> Late:
    """The best sentence's MaxSim (as quotes use it): a passage's length adds sentences."""
    offsets: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def late(q, tokens, rows):
        out = np.zeros(len(rows), np.float32)
        for i, row in enumerate(rows.tolist()):
            if row not in offsets:
                text = index.passages([row])[0].text
                offsets[row] = (embedder.token_offsets(text)[:len(tokens.of(row))],
                                index.sentences.spans[index.sentences.of(row)])
            offs, spans = offsets[row]
            sims = _sims(q, tokens, row)
            best = 0.0
            for a, b in spans:
                take = (offs[:, 0] >= a) & (offs[:, 1] <= b) & (offs[:, 1] > a)
                if take.any():
                    best = max(best, float(sims[:, take].max(axis=1).mean()))
            out[i] = best
        return out
    return late


# -- scoring --------------------------------------------------------------------------------

class SquadCache:
    """SQuAD A's questions ranked without the late term, once; the late term added on top."""

    def __init__(self, index: FolderIndex, embedder: Embedder, path: str) -> None:
        _, questions = load_squad(path)
        self.r = Retriever(index, embedder)
        texts = [q.question for q in questions]
        start = time.perf_counter()
        self.qvecs, self.qtokens = embedder.encode_questions(texts)
        ids = {p.id: i for i, p in enumerate(every_passage(index))}
        self.gold = [ids[next(iter(q.gold_ids))] for q in questions]
        self.recent = [wants_recent(t) for t in texts]
        self.base = [self.r.rank(v, analyze(t)) for v, t in zip(self.qvecs, texts, strict=True)]
        print(f"A: {len(texts)} questions ranked in {time.perf_counter() - start:.0f} s",
              flush=True)
        self.late: dict[str, list[np.ndarray]] = {}

    def scores(self, name: str, late: Late, depth: int) -> list[np.ndarray]:
        if name not in self.late:
            tokens = self.r.index.tokens
            self.late[name] = [late(q, tokens, np.array(rows[:depth]))
                               for q, (rows, _, _) in zip(self.qtokens, self.base, strict=True)]
        return self.late[name]

    def metrics(self, name: str, late: Late, weight: float, depth: int,
                max_depth: int) -> dict[str, float]:
        raw_late = self.scores(name, late, max_depth)
        ranks = []
        for (rows, scores, _), x, g, rec in zip(self.base, raw_late, self.gold, self.recent,
                                                strict=True):
            scores = np.array(scores, np.float32, copy=True)
            if weight:
                scores[:depth] += weight * _minmax(x[:depth])
            rows = np.asarray(rows)
            if rec:
                scores = prefer_recent(scores, self.r.rows_meta().seconds[rows])
            top = rows[np.argsort(-scores, kind="stable")][:10].tolist()
            ranks.append(top.index(g) + 1 if g in top else None)
        n = len(ranks)
        return {"R@1": sum(r == 1 for r in ranks) / n,
                "R@5": sum(r is not None and r <= 5 for r in ranks) / n,
                "MRR": sum(1 / r for r in ranks if r) / n}


def seeds(index: FolderIndex, embedder: Embedder, settings: SearchSettings) -> tuple[int, int, int]:
    r = Retriever(index, embedder, settings)
    answers = r.ask_many([q for q, _ in ON_TOPIC], k=1)
    right = sum(a.answered and a.hits[0].passage.id in gold
                for a, (_, gold) in zip(answers, ON_TOPIC, strict=True))
    answered = sum(a.answered for a in answers)
    refused = sum(not a.answered for a in r.ask_many(OFF_TOPIC))
    return right, answered, refused


def news(index: FolderIndex, embedder: Embedder, settings: SearchSettings, questions, off_topic
         ) -> dict[str, float]:
    r = evaluate(Retriever(index, embedder, settings), questions, off_topic, progress=False)
    return {k: r[k] for k in ("first_and_answered", "recall@1", "recall@5", "mrr@10",
                              "answered_rate", "refused_rate")}


def latency(index: FolderIndex, embedder: Embedder, texts: list[str], settings: SearchSettings
            ) -> str:
    """Warm `ask` p50 / p95 (ms) without and with the late term, interleaved, and the
    late term's own cost per ask."""
    import statistics

    plain = Retriever(index, embedder, replace(settings, late_weight=0.0))
    late = Retriever(index, embedder, settings)
    for q in texts[:20]:
        plain.ask(q), late.ask(q)
    times: dict[str, list[float]] = {"plain": [], "late": []}
    for _ in range(3):
        for q in texts:
            for name, r in (("plain", plain), ("late", late)):
                start = time.perf_counter()
                r.ask(q)
                times[name].append((time.perf_counter() - start) * 1000)
    qvecs, qtokens = embedder.encode_questions(texts)
    rows = [late.rank(v, analyze(t))[0] for v, t in zip(qvecs, texts, strict=True)]
    start = time.perf_counter()
    for q, r in zip(qtokens, rows, strict=True):
        late_interaction(q, index.tokens, np.array(r[:settings.late_depth]))
    own = (time.perf_counter() - start) * 1000 / len(texts)
    out = []
    for name, t in times.items():
        t.sort()
        out.append(f"{name} p50 {statistics.median(t):.1f} ms p95 {t[int(0.95 * len(t))]:.1f} ms")
    return "; ".join(out) + f"; late term alone {own:.2f} ms per ask"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("squad", type=Path)
    parser.add_argument("news", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/late-idx"))
    parser.add_argument("--only", default="", help="comma-separated variant names")
    parser.add_argument("--latency", action="store_true", help="time asks and stop")
    parser.add_argument("--weights", default="0.3,0.6,1.0")
    parser.add_argument("--depths", default="5,10,20")
    args = parser.parse_args()
    embedder = Embedder()
    args.cache.mkdir(exist_ok=True)
    articles, questions = load_news(args.news)
    questions = [q for q in questions if not q.as_of or q.as_of <= "2022-09-30"]
    off_topic = load_jsonl(ROOT / "tests" / "data" / "news_off_topic.jsonl")
    news_index = cached(args.cache / "news",
                        lambda: build_index(articles, embedder, corpus=str(args.news)), embedder)
    seed_dir = args.cache / "seeds"
    if not (seed_dir / "manifest.json").is_file():
        index_corpus(ROOT / "seeds", seed_dir, embedder, progress=False)
    seed_index = FolderIndex.load(seed_dir, model=embedder.name)
    squad_index = cached(args.cache / "a",
                         lambda: build_index(load_squad(args.squad)[0], embedder,
                                             corpus=args.squad.name), embedder)
    print(f"indexes: news {len(news_index)}, seeds {len(seed_index)}, A {len(squad_index)}",
          flush=True)
    if args.latency:
        settings = replace(SearchSettings(), late_weight=float(args.weights.split(",")[0]),
                           late_depth=int(args.depths.split(",")[0]))
        for name, idx, texts in (("news", news_index, [q.question for q in questions]),
                                 ("seeds", seed_index, [q for q, _ in ON_TOPIC] + OFF_TOPIC)):
            print(f"{name} ({len(idx)} passages): {latency(idx, embedder, texts, settings)}")
        return
    rng = np.random.default_rng(0)
    toks = squad_index.tokens
    pick = rng.choice(len(toks), 4096, replace=False)
    sample = np.stack([np.asarray(toks.vectors[int(i)], np.float32) * toks.scales[int(i)]
                       for i in pick])
    variants: dict[str, Late] = {
        "raw": raw,
        "block12": blocks(12), "block16": blocks(16), "block24": blocks(24),
        "window16": window(16), "window32": window(32),
        "log0.02": log_length(0.02), "log0.05": log_length(0.05),
        "expmax1": expected_max(sample, 1.0), "expmax0.5": expected_max(sample, 0.5),
        "sentence": None,  # per index, below
    }
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only.split(",")}
    squad = SquadCache(squad_index, embedder, str(args.squad))
    base = SearchSettings()
    print(f"baseline: seeds {seeds(seed_index, embedder, base)} news "
          f"{news(news_index, embedder, base, questions, off_topic)} A "
          f"{squad.metrics('raw', raw, 0.0, 20, 20)}", flush=True)
    weights = [float(w) for w in args.weights.split(",")]
    depths = [int(d) for d in args.depths.split(",")]
    grid = [(w, d) for d in depths for w in weights]
    for name, late in variants.items():
        for w, d in grid:
            settings = replace(base, late_weight=w, late_depth=d)
            for idx_name, idx in (("seeds", seed_index), ("news", news_index),
                                  ("A", squad_index)):
                fn = late or sentences(idx, embedder)
                if idx_name == "seeds":
                    search.late_interaction = _keeping_none(fn)
                    s = seeds(seed_index, embedder, settings)
                elif idx_name == "news":
                    search.late_interaction = _keeping_none(fn)
                    nw = news(news_index, embedder, settings, questions, off_topic)
                else:
                    a = squad.metrics(name, fn, w, d, 20)
            print(f"{name} w={w} depth={d}: seeds {s} news "
                  + " ".join(f"{k} {v:.3f}" for k, v in nw.items())
                  + " | A " + " ".join(f"{k} {v:.4f}" for k, v in a.items()), flush=True)
    search.late_interaction = late_interaction


if __name__ == "__main__":
    main()
