"""Seed-coverage figures: index build time, warm in-process query latency, hit rate.

    .venv/bin/python -m bench.seeds
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from retrieval import index_corpus
from retrieval.model.embed import Embedder
from retrieval.search.retriever import Retriever
from tests.support.seed_questions import OFF_TOPIC, ON_TOPIC

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    start = time.perf_counter()
    embedder = Embedder()
    embedder.model  # noqa: B018 - load now, timed separately
    load_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        builds = []
        for _ in range(3):
            start = time.perf_counter()
            index = index_corpus(ROOT / "seeds", tmp, embedder, progress=False)
            builds.append(time.perf_counter() - start)
        retriever = Retriever(index, embedder)
        questions = [q for q, _ in ON_TOPIC] + OFF_TOPIC
        for q in questions:  # warm-up
            retriever.ask(q)
        latencies = []
        for _ in range(5):
            for q in questions:
                start = time.perf_counter()
                retriever.ask(q)
                latencies.append((time.perf_counter() - start) * 1000)
        answers = retriever.ask_many([q for q, _ in ON_TOPIC], k=1)
        hits = sum(a.answered and a.hits[0].passage.id in gold
                   for a, (_, gold) in zip(answers, ON_TOPIC, strict=True))
        refused = sum(not a.answered for a in retriever.ask_many(OFF_TOPIC))
    latencies.sort()
    print(f"model load (bundled, hash-checked): {load_s:.2f} s")
    print(f"index build, seeds ({len(index)} passages): median {statistics.median(builds):.2f} s "
          f"of {len(builds)} runs")
    print(f"warm query latency over {len(latencies)} asks: p50 "
          f"{statistics.median(latencies):.1f} ms, p95 "
          f"{latencies[int(0.95 * len(latencies))]:.1f} ms")
    print(f"seed questions right first: {hits}/{len(ON_TOPIC)} ({hits / len(ON_TOPIC):.0%}); "
          f"off-topic refused: {refused}/{len(OFF_TOPIC)}")


if __name__ == "__main__":
    main()
