"""The PostgreSQL store beside the folder store, on SQuAD dev B: answer quality and speed.

    .venv/bin/python -m bench.postgres [../shared/data]

Builds SQuAD dev B's index once in a folder, copies it into a throw-away PostgreSQL with
pgvector (tests/support/pg_server.py: pgserver's bundled binaries on 127.0.0.1), then asks every
question against both stores with the same Retriever settings and prints R@1/R@5/MRR@10,
quote hit, refusals and questions/s side by side, plus the copy rate and the database size.
The issue's bar: each ranking figure within 0.5 points of the folder's.

Then the load: PROCESSES worker processes (this script again, `--worker`), each opening the
store with `open_store` and its own Retriever and Embedder; once every one has loaded and
answered a warm-up question, they are told to go together and each fires PER_PROCESS of
SQuAD B's questions at once from as many threads: all 200 in flight against one database.
Per-question latency (from the go to the answer), errors, wall time and questions/s; the
same against the folder store for comparison, the two alternated LOAD_ROUNDS times (each
store's steadiest round kept). The issue's bar: no error, p95 within 1.5x the folder's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.concurrency import percentile
from retrieval.build.pipeline import build_index
from retrieval.model.embed import Embedder
from retrieval.search.calibrate import calibrated
from retrieval.search.evaluate import evaluate, load_squad
from retrieval.search.retriever import Retriever
from retrieval.store import backend, open_store
from retrieval.store.postgres.connect import connect
from tests.support import pg_server

ROOT = Path(__file__).resolve().parent.parent

FIGURES = ("recall@1", "recall@5", "recall@10", "mrr@10", "quote_hit", "answered_rate",
           "refused_rate", "questions_per_s")
PROCESSES, PER_PROCESS = 4, 50
# Load rounds per store: the machine is shared, and a run now and then is several times
# slower for both stores alike; each store's steadiest round is kept, every round shown.
LOAD_ROUNDS = 2


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
            backend(server.url).migrate_from(backend(folder).open(verify=True), str(folder))
            copy_s = time.perf_counter() - start
            with connect(server.url) as conn:
                size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            out = {"passages": len(index), "questions": len(questions), "copy_s": copy_s,
                   "passages_per_s": len(index) / copy_s, "database_mb": size / 2**20}
            for name, where in (("folder", folder), ("postgresql", server.url)):
                retriever = Retriever(open_store(where, model=embedder.name), embedder)
                r = evaluate(retriever, questions, off_topic=off_topic, progress=False)
                out[name] = {k: r[k] for k in FIGURES}
            asks = [q.question for q in questions[:PROCESSES * PER_PROCESS]]
            runs: dict[str, list[dict]] = {"folder": [], "postgresql": []}
            for _ in range(LOAD_ROUNDS):  # alternated, so a passing disturbance hits both
                for name, where in (("folder", folder), ("postgresql", server.url)):
                    runs[name].append(load(str(where), embedder.name, asks))
            for name, done in runs.items():
                out[f"load_{name}"] = {  # errors count from every round
                    **min(done, key=lambda r: r["p95_s"]), "p95_runs": [r["p95_s"] for r in done],
                    "errors": sum(r["errors"] for r in done),
                    "first_error": next((r["first_error"] for r in done if r["errors"]), [])}
    finally:
        server.stop()
    out["within_half_a_point"] = all(
        abs(out["folder"][k] - out["postgresql"][k]) <= 0.005
        for k in ("recall@1", "recall@5", "mrr@10"))
    out["markdown"] = markdown(out)
    return out


def load(where: str, model: str, asks: list[str], processes: int = PROCESSES) -> dict:
    """`asks` split over `processes` workers, each firing its share at once from as many
    threads, all workers starting together; latencies, errors, wall time, questions/s."""
    share = -(-len(asks) // processes)
    workers = [subprocess.Popen([sys.executable, "-m", "bench.postgres", "--worker"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                cwd=ROOT) for _ in range(processes)]
    try:
        for i, w in enumerate(workers):  # the URL on stdin, not in the process list
            w.stdin.write(json.dumps({"where": where, "model": model,
                                      "asks": asks[i * share:(i + 1) * share]}) + "\n")
            w.stdin.flush()
        for w in workers:  # each says "ready" once its model is loaded and warm
            if w.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a load worker did not start (exit {w.wait()})")
        start = time.perf_counter()
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        results = [json.loads(w.stdout.readline()) for w in workers]
        wall = time.perf_counter() - start
    finally:
        for w in workers:
            w.stdin.close()
            w.wait(30)
    latencies = [x for r in results for x in r["latencies"]]
    errors = [e for r in results for e in r["errors"]]
    return {"processes": processes, "concurrent": share, "questions": len(asks),
            "answered": len(latencies), "errors": len(errors), "first_error": errors[:1],
            "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95),
            "max_s": max(latencies, default=float("nan")), "wall_s": wall,
            "questions_per_s": len(latencies) / wall}


def _worker() -> None:
    """One load worker: read its store and questions, load, say ready, wait for go, ask them
    all at once."""
    job = json.loads(sys.stdin.readline())
    where, model, asks = job["where"], job["model"], job["asks"]
    out, sys.stdout = sys.stdout, sys.stderr  # stdout is the line protocol with the parent
    embedder = Embedder()
    retriever = Retriever(open_store(where, model=model), embedder)
    retriever.ask("warm-up question about the index")
    print("ready", file=out, flush=True)
    sys.stdin.readline()
    start = time.perf_counter()

    def one(question: str) -> tuple[float | None, str | None]:
        try:
            retriever.ask(question)
        except Exception as exc:  # every failure counts, whatever it is
            return None, f"{type(exc).__name__}: {exc}"
        return time.perf_counter() - start, None

    with ThreadPoolExecutor(max_workers=len(asks)) as pool:
        done = list(pool.map(one, asks))
    print(json.dumps({"latencies": [t for t, _ in done if t is not None],
                      "errors": [e for _, e in done if e is not None]}), file=out, flush=True)


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
            f"{'yes' if r['within_half_a_point'] else 'NO'}.\n\n" + "\n".join(rows)
            + "\n\n" + load_markdown(r))


def load_markdown(r: dict) -> str:
    """The load table: every worker's questions in flight at once, per store."""
    first = r.get("load_postgresql") or r.get("load_folder")
    if not first:
        return ""
    rows = [f"{first['processes']} processes × {first['concurrent']} concurrent questions "
            "(threads calling `Retriever.ask`), all started together; latency from the start "
            f"to each answer. {LOAD_ROUNDS} rounds, the stores alternated; each store's round "
            "with the lowest p95 is shown, and every round's p95 in the last column.", "",
            "| store | answered | errors | p50 | p95 | max | wall | questions/s "
            "| p95, each round |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in ("folder", "postgresql"):
        f = r.get(f"load_{name}")
        if f:
            rows.append(f"| {name} | {f['answered']}/{f['questions']} | {f['errors']} | "
                        f"{f['p50_s']:.2f} s | {f['p95_s']:.2f} s | {f['max_s']:.2f} s | "
                        f"{f['wall_s']:.1f} s | {f['questions_per_s']:.0f} | "
                        f"{' / '.join(f'{x:.2f} s' for x in f.get('p95_runs', []))} |")
            if f["first_error"]:
                rows.append(f"| | first error: {f['first_error'][0]} | | | | | | | |")
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker()
        sys.exit()
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    print(markdown(run(data)))
