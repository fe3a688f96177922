"""Byline at scale in PostgreSQL: the 1M-passage index of bench/scale.py copied into a real
PostgreSQL with pgvector, and measured as bench/scale.py measures the folder.

    .venv/bin/python -m bench.pg_scale                    # 1,000,000 passages (default)
    .venv/bin/python -m bench.pg_scale --passages 100000  # a quicker run

The index is bench/scale.py's (built there, or reused from its cache under .byline/bench/),
so both stores hold the same passages, vectors, sentences and postings. It is copied with
`byline migrate` (`Backend.migrate_from`: one transaction, binary COPY, the vectors in their
IVF lists taken from the folder's IVF and nprobe tuned, then the indexes), which gives the load
rate; the database's size follows.

Queries: the same real SQuAD questions as bench/scale.py, asked through the full
`Retriever.ask` path on `open_store(URL)` in a fresh process (after the same warm-up), each
`rounds` times. Before them the server's data files are read once, as bench/scale.py reads
the folder's: both stores' pages are then in the OS page cache, as on a server that has been
answering (without it, a cold row cost the rows query 10 to 14 ms of a question's 20).
Dense recall@10 is the store's IVF lists (through `PgIndex.dense_search`, re-scored with the
exact vectors as the Retriever does) against exact search over the same vectors.

Incremental publishes (`CHANGES`: 1, 100 and 10,000 articles, one after another): the cached
index with that many of its articles edited (a sentence added to one paragraph each, the
vectors kept: a publish copies vectors, it does not make them), assembled by
`FolderIndex.from_vectors` and published with `Backend.publish` over the generation before;
timed from the call to its return (the transaction committed, old generations retired).
The questions are then asked once more, of the last of these generations (its removed rows
still in their IVF lists and the postings).
The edited index is assembled flat (no IVF is trained: a PostgreSQL publish never reads it)
and carries the cached index's manifest fields for its search and background, as
`byline index` would after an edit.

The server: pgserver's PostgreSQL 16 + pgvector 0.6.2 (tests/support/pg_server.py) on 127.0.0.1,
on this machine's disk, with the settings in SERVER (shown in the report).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import scale
from retrieval.model.embed import Embedder
from retrieval.store import FolderIndex

ROOT = Path(__file__).resolve().parent.parent

# Index builds sort a million rows in memory (and bench/pgvector_current.py's HNSW builds want
# the graph in memory, pgvector's advice); the rest are PostgreSQL's defaults but for WAL room
# for one big transaction.
CHANGES = (1, 100, 10_000)  # articles edited by each incremental publish, in turn
SERVER = {"shared_buffers": "2GB", "maintenance_work_mem": "4GB",
          "max_parallel_maintenance_workers": "1", "max_wal_size": "16GB",
          "effective_cache_size": "8GB"}


def _child(questions_path: Path, out_path: Path) -> None:
    """In a fresh process: open the store (its URL in BYLINE_STORE), answer every question,
    report time and memory."""
    from retrieval.store import open_store

    q = json.loads(questions_path.read_text(encoding="utf-8"))
    start = time.perf_counter()
    index = open_store(os.environ["BYLINE_STORE"])
    load_s = time.perf_counter() - start
    rss_load = scale._rss_mb()
    retriever, latencies = scale.asked(index, q)
    dense = []
    n = retriever.settings.candidates
    for qvec in retriever.embedder.encode(q["timed"]):
        start = time.perf_counter()
        index.dense_search(qvec, n)
        dense.append((time.perf_counter() - start) * 1000)
    scale._write_json(out_path, {"load_s": load_s, "rss_after_load_mb": rss_load,
                                 "peak_rss_mb": scale._rss_mb(), "latencies_ms": latencies,
                                 "dense_ms": statistics.median(dense)})


def _recall(url: str, local_dir: Path, qvecs: np.ndarray, candidates: int) -> dict[str, float]:
    """The store's dense recall@10 against exact search over the same vectors: its
    `candidates` re-scored with the exact vectors (what the Retriever does), and its raw top 10
    beside."""
    from retrieval.store import open_store
    from retrieval.store.folder.index import FolderIndex

    K = scale.K
    flat = scale._flat(FolderIndex.load(local_dir))
    exact, _ = flat.search(qvecs, K)
    del flat
    pg = open_store(url)
    raw, rescored = [], []
    for v, scores in zip(qvecs, exact, strict=True):
        rows = pg.dense_search(v, candidates)[0]
        rows = rows[rows >= 0]
        sims = np.asarray(pg.passage_vectors[rows], np.float32) @ v
        good = sims >= scores[K - 1] - 1e-5  # ties and rounding are not misses
        raw.append(min(np.count_nonzero(good[:K]), K) / K)
        rescored.append(min(np.count_nonzero(np.sort(sims)[::-1][:K] >= scores[K - 1] - 1e-5),
                            K) / K)
    return {"recall_at_10": float(np.mean(rescored)), "ann_raw_recall_at_10": float(np.mean(raw))}


def _sizes(url: str, generation: str) -> dict[str, float]:
    """The database's size and its main parts, in MB."""
    from retrieval.store.postgres.connect import connect
    from retrieval.store.postgres.schema import schema_of

    s = schema_of(generation)
    mb = 2.0 ** 20
    with connect(url) as conn:
        out = {"database_mb": conn.execute(
            "SELECT pg_database_size(current_database())").fetchone()[0] / mb}
        for table in ("passages", "vectors", "sentences", "tokens", "postings", "articles"):
            out[f"table_{table}_mb"] = conn.execute(
                "SELECT pg_table_size(%s)", (f"{s}.{table}",)).fetchone()[0] / mb
        out["vector_indexes_mb"] = conn.execute(
            "SELECT pg_indexes_size(%s)", (f"{s}.vectors",)).fetchone()[0] / mb
    return out


def run(passages: int = 1_000_000, questions: int = 300, warmup: int = 30, rounds: int = 3,
        data: Path = scale.DATA, cache: Path = scale.CACHE, log: bool = True) -> dict:
    """Copy bench/scale.py's index of `passages` into a fresh PostgreSQL and measure it: a
    flat dict of plain numbers."""
    from retrieval.search.retriever import SearchSettings
    from retrieval.store import backend
    from tests.support import pg_server

    embedder = Embedder()
    info = scale.build(passages, embedder, data, cache, False, log)
    index_dir = cache / f"scale-{passages}" / "index"
    timed, warm = scale._questions(data, questions, warmup)
    folder = cache / f"pg-scale-{passages}"
    folder.mkdir(parents=True, exist_ok=True)
    qpath, out = folder / "questions.json", folder / "child.json"
    scale._write_json(qpath, {"timed": timed, "warmup": warm, "rounds": rounds})
    server = pg_server.start(SERVER)
    try:
        scale._say(log, f"copying {passages:,} passages into PostgreSQL (byline migrate)")
        start = time.perf_counter()
        copied = backend(server.url).migrate_from(backend(index_dir).open(verify=True),
                                                  str(index_dir), progress=log)
        load_s = time.perf_counter() - start
        sizes = _sizes(server.url, copied["generation"])
        warm_s = scale.warm_page_cache(server.folder / "data" / "base")
        scale._say(log, f"asking {len(timed)} questions in a fresh process")
        subprocess.run([sys.executable, "-m", "bench.pg_scale", "--child", str(qpath),
                        str(out)], check=True, cwd=ROOT,
                       env={**os.environ, "BYLINE_STORE": server.url})
        child = json.loads(out.read_text(encoding="utf-8"))
        load_avg = os.getloadavg()[0]
        scale._say(log, "checking the dense search's recall against exact search")
        recall = _recall(server.url, index_dir, embedder.encode(timed),
                         SearchSettings().candidates)
        changes = _incremental(server.url, index_dir, embedder, log)
        scale._say(log, "asking the questions again, of the last incremental generation")
        again = folder / "questions-after.json"
        scale._write_json(again, {"timed": timed, "warmup": warm, "rounds": 1})
        subprocess.run([sys.executable, "-m", "bench.pg_scale", "--child", str(again),
                        str(out)], check=True, cwd=ROOT,
                       env={**os.environ, "BYLINE_STORE": server.url})
        after = json.loads(out.read_text(encoding="utf-8"))
    finally:
        from retrieval.store.postgres.connect import close_pools

        close_pools()
        server.stop()
    lat = np.array(child["latencies_ms"])
    return {
        "passages": passages, "sentences": info["sentences"], "questions": len(timed),
        "asks": len(lat), "server": dict(SERVER),
        "query_p50_ms": float(np.percentile(lat, 50)),
        "query_p90_ms": float(np.percentile(lat, 90)),
        "query_p99_ms": float(np.percentile(lat, 99)),
        "query_max_ms": float(lat.max()),
        "dense_search_ms": child["dense_ms"], **recall,
        "load_s": load_s, "load_passages_per_s": passages / load_s,
        "open_s": child["load_s"], "peak_rss_mb": child["peak_rss_mb"],
        "load_avg": load_avg, **sizes, "incremental": changes, "page_cache_warm_s": warm_s,
        "first_round_p50_ms": float(np.percentile(lat[:len(timed)], 50)),
        "first_round_p99_ms": float(np.percentile(lat[:len(timed)], 99)),
        "after_p50_ms": float(np.percentile(after["latencies_ms"], 50)),
        "after_p99_ms": float(np.percentile(after["latencies_ms"], 99)),
        "after_dense_ms": after["dense_ms"],
    }


def _edited(base: FolderIndex, articles: int, mark: str, embedder: Embedder) -> FolderIndex:
    """`base` with its first `articles` articles edited (`mark` appended to their first
    paragraph), assembled as `byline index` assembles a build (see the module's doc)."""
    from dataclasses import replace

    from retrieval.corpus import Article

    db = base.db
    paragraphs: dict[str, list[str]] = {}
    for aid, text in db.execute("SELECT article_id, text FROM passages ORDER BY row"):
        paragraphs.setdefault(aid, []).append(text)
    docs = []
    for i, (aid, *fields) in enumerate(db.execute(
            "SELECT id, title, source, outlet, date, url, author, sha256 FROM articles "
            "ORDER BY rowid")):
        texts = paragraphs.get(aid, [])
        if i < articles and texts:
            texts = [f"{texts[0]} {mark}", *texts[1:]]
        docs.append(Article(aid, *fields, paragraphs=tuple(texts)))
    passages = [p for a in docs for p in a.passages()]
    groups = np.full(len(passages), -1, np.int64)
    for row, grp in db.execute("SELECT row, grp FROM copies"):
        groups[row] = grp
    m = base.manifest
    index = FolderIndex.from_vectors(docs, passages, np.asarray(base.passage_vectors),
                                     base.sentences, model=m.model, encoder=m.encoder,
                                     corpus=m.corpus, exact_max=len(passages) + 1,
                                     tokens=base.tokens, groups=groups, graph=m.graph,
                                     kernel=m.kernel)
    index = index.with_background(m.background, base.probe_vectors)
    index.manifest = replace(index.manifest, ann=m.ann, nprobe=m.nprobe)
    return index


def _incremental(url: str, index_dir: Path, embedder: Embedder, log: bool) -> list[dict]:
    """Publish CHANGES articles edited, one publish after another; each one's figures."""
    from retrieval.store import backend
    from retrieval.store.postgres import writer

    base = FolderIndex.load(index_dir)
    out = []
    for round_, count in enumerate(CHANGES, 1):
        edited = _edited(base, count, f"(Updated, round {round_}.)", embedder)
        scale._say(log, f"publishing {count:,} edited articles incrementally")
        start = time.perf_counter()
        backend(url).publish(edited)
        seconds = time.perf_counter() - start
        delta = writer.last_delta
        if delta is None:
            raise RuntimeError(f"the publish of {count} edited articles was not incremental")
        out.append({"articles": count, "publish_s": seconds,
                    "removed_passages": delta.removed_passages,
                    "added_passages": delta.added_passages})
        del edited
    return out


def markdown(r: dict, local: dict | None = None) -> str:
    """The figures as a small Markdown table, beside the folder's (bench/scale.py's run) when
    given."""
    def beside(key: str, fmt: str) -> str:
        return fmt.format(local[key]) if local and key in local else "(not run)"

    rows = [
        ("query p50 (full `ask`)", f"{r['query_p50_ms']:.1f} ms",
         beside("query_p50_ms", "{:.1f} ms")),
        ("query p99", f"{r['query_p99_ms']:.1f} ms", beside("query_p99_ms", "{:.1f} ms")),
        ("dense search alone (IVF lists in SQL / FAISS IVF)", f"{r['dense_search_ms']:.2f} ms",
         beside("stage_ann_ms", "{:.2f} ms")),
        (f"dense recall@{scale.K} vs exact", f"{r['recall_at_10']:.3f}",
         beside("recall_at_10", "{:.3f}")),
        (f"raw ANN top {scale.K} recall", f"{r['ann_raw_recall_at_10']:.3f}",
         beside("ann_raw_recall_at_10", "{:.3f}")),
        ("load into the store", f"{r['load_passages_per_s']:,.0f} passages/s "
         f"({r['load_s']:.0f} s, `byline migrate`, indexes included)",
         (f"{local['passages'] / local['build_total_s']:,.0f} passages/s "
          f"({local['build_total_s']:.0f} s: build + save when the cached index was made, "
          "encoding excluded)")
         if local and local.get("build_total_s") else "(cached, not timed)"),
        ("open the store", f"{r['open_s']:.2f} s", beside("load_s", "{:.2f} s")),
        ("size", f"{r['database_mb']:,.0f} MB (database)",
         beside("disk_total_mb", "{:,.0f} MB (index folder)")),
        ("peak RSS of the asking process", f"{r['peak_rss_mb']:,.0f} MB",
         beside("peak_rss_mb", "{:,.0f} MB")),
    ]
    rows += [(f"publish after {c['articles']:,} article{'s' * (c['articles'] > 1)} "
              "change (incremental)", f"{c['publish_s']:.1f} s ({c['removed_passages']:,} "
              f"passages out, {c['added_passages']:,} in)", "(a folder writes a new generation "
              "whole: see the re-index figure)") for c in r.get("incremental", [])]
    if "after_p50_ms" in r:
        rows.append(("query p50 / p99 after those publishes, each question asked once "
                     "(removed rows still in their lists)",
                     f"{r['after_p50_ms']:.1f} / {r['after_p99_ms']:.1f} ms (dense search "
                     f"{r['after_dense_ms']:.2f} ms); before them, first asks: "
                     f"{r['first_round_p50_ms']:.1f} / {r['first_round_p99_ms']:.1f} ms", ""))
    parts = ", ".join(f"{t} {r[f'table_{t}_mb']:,.0f}" for t in
                      ("passages", "vectors", "sentences", "postings", "articles"))
    lines = [f"{r['passages']:,} passages, {r['questions']} SQuAD questions asked "
             f"{r['asks'] // r['questions']} times each, in one `make bench` run "
             f"(machine load {r['load_avg']:.1f}, 2 cores)", "",
             "| figure | PostgreSQL + pgvector | folder (same run) |", "|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    settings = ", ".join(f"{k}={v}" for k, v in r["server"].items())
    lines += ["", f"Database: {r['database_mb']:,.0f} MB ({parts}; the vectors' indexes "
              f"{r['vector_indexes_mb']:,.0f} MB). Server: PostgreSQL 16, pgvector 0.6.2, "
              f"{settings}, fsync off (a benchmark's throw-away server)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--data", type=Path, default=scale.DATA)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return
    result = run(args.passages, args.questions, data=args.data)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
