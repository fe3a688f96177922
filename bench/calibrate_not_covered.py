"""Calibrate Byline's "not covered" rule on SQuAD dev half A (coverage-split protocol).

Index A's paragraphs; A's questions should be answered, B's (other articles) refused.
The rule is `(dense - bg.dense) + w * (lexical - bg.lexical) >= t`, where bg is the mean
evidence of generic probe questions against the same index (stored in the manifest).
w and t are grid-searched for balanced accuracy; then, because a wrong answer costs more
than a "not covered", t is the most conservative value within 0.5 points of the best.

    .venv/bin/python bench/calibrate_not_covered.py \\
        ../shared/data/squad-v1.1-dev-a.json ../shared/data/squad-v1.1-dev-b.json
"""

from __future__ import annotations

import sys
import time

import numpy as np

from retrieval.embed import Embedder
from retrieval.evaluate import load_squad
from retrieval.search import Retriever
from retrieval.store import Index

TOLERANCE = 0.005


def balanced(pos: np.ndarray, neg: np.ndarray, t: float) -> float:
    return float(((pos >= t).mean() + (neg < t).mean()) / 2)


def _evidence(retriever: Retriever, questions: list[str]) -> np.ndarray:
    return np.array([(e.dense, e.lexical) for e in retriever.evidence(questions)])


def main(covered_path: str, other_path: str) -> None:
    embedder = Embedder()
    articles, covered = load_squad(covered_path)
    _, other = load_squad(other_path)
    start = time.perf_counter()
    index = Index.build(articles, embedder, corpus=covered_path)
    retriever = Retriever(index, embedder)  # measures the background probes
    print(f"indexed {len(index)} passages in {time.perf_counter() - start:.1f} s; "
          f"background {retriever.index.manifest.background}")
    bg = retriever.index.manifest.background
    start = time.perf_counter()
    pos = _evidence(retriever, [q.question for q in covered])
    neg = _evidence(retriever, [q.question for q in other])
    print(f"{len(pos)} covered + {len(neg)} other questions in "
          f"{time.perf_counter() - start:.1f} s")
    pos -= (bg["dense"], bg["lexical"])
    neg -= (bg["dense"], bg["lexical"])
    grid = np.round(np.arange(-0.5, 1.0, 0.01), 2)
    results = []  # (balanced accuracy, w, t)
    for w in np.round(np.arange(0.0, 2.01, 0.05), 2):
        sp, sn = pos[:, 0] + w * pos[:, 1], neg[:, 0] + w * neg[:, 1]
        results += [(balanced(sp, sn, t), w, t) for t in grid]
    best = max(results)
    w = best[1]
    chosen = max(t for acc, ww, t in results if ww == w and acc >= best[0] - TOLERANCE)
    sp, sn = pos[:, 0] + w * pos[:, 1], neg[:, 0] + w * neg[:, 1]
    print(f"best balanced accuracy {best[0]:.4f} at w={w:.2f} t={best[2]:.2f}")
    print(f"chosen: coverage_weight={w:.2f} threshold={chosen:.2f} -> balanced accuracy "
          f"{balanced(sp, sn, chosen):.4f}, answered {(sp >= chosen).mean():.4f}, "
          f"refused {(sn < chosen).mean():.4f}")
    for name, col in (("dense top-1 cosine only", 0), ("lexical coverage only", 1)):
        acc = max(balanced(pos[:, col], neg[:, col], t) for t in grid)
        print(f"baseline, {name}: best balanced accuracy {acc:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
