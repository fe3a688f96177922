"""Sweep ranking and quote settings on SQuAD dev A (never B): prints one line per setting.

    .venv/bin/python -m bench.tune ../shared/data/squad-v1.1-dev-a.json
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from retrieval.build.pipeline import build_index
from retrieval.model.embed import Embedder
from retrieval.search.evaluate import load_squad
from retrieval.search.retriever import Retriever, SearchSettings
from retrieval.text import analyze
from tests.support.passages import every_passage


def main(path: str) -> None:
    embedder = Embedder()
    articles, questions = load_squad(path)
    index = build_index(articles, embedder, progress=False)
    base = Retriever(index, embedder)
    qvecs = embedder.encode([q.question for q in questions])
    terms = [analyze(q.question) for q in questions]
    ids = {p.id: i for i, p in enumerate(every_passage(index))}
    gold = [ids[next(iter(q.gold_ids))] for q in questions]

    def ranking(settings: SearchSettings) -> str:
        r = Retriever(base.index, embedder, settings)
        ranks = []
        for v, t, g in zip(qvecs, terms, gold, strict=True):
            rows = r.rank(v, t)[0][:10]
            ranks.append(rows.index(g) + 1 if g in rows else None)
        rec = {c: np.mean([x is not None and x <= c for x in ranks]) for c in (1, 5, 10)}
        mrr = np.mean([1 / x if x else 0 for x in ranks])
        return f"R@1 {rec[1]:.4f} R@5 {rec[5]:.4f} R@10 {rec[10]:.4f} MRR {mrr:.4f}"

    default = SearchSettings()
    for method in ("bm25", "dense"):
        print(f"method={method}: {ranking(replace(default, method=method))}", flush=True)
    for w in (0.3, 0.4, 0.5, 0.6):
        for sw in (0.0, 0.15, 0.3, 0.5):
            s = replace(default, dense_weight=w, sentence_weight=sw)
            print(f"dense_weight={w} sentence_weight={sw}: {ranking(s)}", flush=True)

    passages = every_passage(index)
    first = [(i, q) for i, q in enumerate(questions)]
    for lam in (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2):
        r = Retriever(base.index, embedder, replace(default, quote_lexical=lam))
        hit = np.mean([any(a in r.quote(qvecs[i], terms[i], passages[gold[i]], gold[i])
                           for a in q.answers) for i, q in first])
        print(f"quote_lexical={lam}: quote hit on the gold passage {hit:.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
