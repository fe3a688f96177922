"""The PostgreSQL store beside the folder store, on SQuAD dev B: answer quality and speed.

    .venv/bin/python bench/postgres.py [../shared/data]

Builds SQuAD dev B's index once in a folder, copies it into a throw-away PostgreSQL with
pgvector (tests/pg_server.py: pgserver's bundled binaries on 127.0.0.1), then asks every
question against both stores with the same Retriever settings and prints R@1/R@5/MRR@10,
quote hit, refusals and questions/s side by side, plus the copy rate and the database size.
The issue's bar: each ranking figure within 0.5 points of the folder's.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retrieval.embed import Embedder  # noqa: E402
from retrieval.evaluate import evaluate, load_squad  # noqa: E402
from retrieval.indexer import build_index, calibrated  # noqa: E402
from retrieval.search import Retriever  # noqa: E402
from retrieval.store.base import open_store  # noqa: E402
from retrieval.store.postgres.connect import connect  # noqa: E402
from retrieval.store.postgres.copy import migrate_store  # noqa: E402
from tests import pg_server  # noqa: E402

FIGURES = ("recall@1", "recall@5", "recall@10", "mrr@10", "quote_hit", "answered_rate",
           "refused_rate", "questions_per_s")


def run(data: Path) -> dict:
    """Both stores' figures on SQuAD dev B (A's questions as the off-topic ones)."""
    articles, questions = load_squad(data / "squad-v1.1-dev-b.json")
    off_topic = load_squad(data / "squad-v1.1-dev-a.json")[1]
    embedder = Embedder()
    server = pg_server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="byline-pg-bench-") as tmp:
            folder = Path(tmp) / "index"
            index = calibrated(build_index(articles, embedder, progress=False), embedder)
            index.save(folder)
            start = time.perf_counter()
            migrate_store(server.url, folder)
            copy_s = time.perf_counter() - start
            with connect(server.url) as conn:
                size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            out = {"passages": len(index), "questions": len(questions), "copy_s": copy_s,
                   "passages_per_s": len(index) / copy_s, "database_mb": size / 2**20}
            for name, where in (("folder", folder), ("postgresql", server.url)):
                retriever = Retriever(open_store(where, model=embedder.name), embedder)
                r = evaluate(retriever, questions, off_topic=off_topic, progress=False)
                out[name] = {k: r[k] for k in FIGURES}
    finally:
        server.stop()
    out["within_half_a_point"] = all(
        abs(out["folder"][k] - out["postgresql"][k]) <= 0.005
        for k in ("recall@1", "recall@5", "mrr@10"))
    return out


def markdown(r: dict) -> str:
    rows = ["| store | R@1 | R@5 | R@10 | MRR@10 | quote hit | answered | refused (A) | "
            "questions/s |", "|---|---|---|---|---|---|---|---|---|"]
    for name in ("folder", "postgresql"):
        f = r[name]
        rows.append(f"| {name} | " + " | ".join(f"{f[k]:.3f}" for k in FIGURES[:-1])
                    + f" | {f['questions_per_s']:.0f} |")
    return (f"SQuAD dev B: {r['passages']:,} passages, {r['questions']:,} questions. Copied "
            f"into PostgreSQL in {r['copy_s']:.1f} s ({r['passages_per_s']:.0f} passages/s); "
            f"database {r['database_mb']:.0f} MB. Ranking within 0.5 points of the folder: "
            f"{'yes' if r['within_half_a_point'] else 'NO'}.\n\n" + "\n".join(rows))


if __name__ == "__main__":
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    print(markdown(run(data)))
