"""What pgvector's own indexes would give the PostgreSQL store at a million passages: the dense
search alone, the store's IVF lists (lists.py) beside pgvector's HNSW over full-precision
vectors, a newer pgvector's halfvec and binary-quantised HNSW re-ranked exactly in SQL, and its
iterative scans under a filter.

    .venv/bin/python -m bench.pgvector_current          # pgserver's pgvector (0.6.2)
    BYLINE_TEST_PGINSTALL=DIR/pgserver/pginstall .venv/bin/python -m bench.pgvector_current

The server is tests/support/pg_server.py's, run from the PostgreSQL install that
BYLINE_TEST_PGINSTALL names: a copy of pgserver's install (`pgserver/pginstall`, with
`pgserver.libs` beside `pgserver/`) with a newer pgvector built into it from its source
(`make OPTFLAGS="" PG_CONFIG=DIR/pgserver/pginstall/bin/pg_config install` in a clone of
github.com/pgvector/pgvector). Unset: pgserver's own, pgvector 0.6.2, which has none of the
variants (they are skipped), so the store's row is the baseline from the same bench.

The data: bench/scale.py's cached million passages, copied with `byline migrate` as
bench/pg_scale.py copies them, and the same 300 SQuAD questions, encoded once. The store's
rows are its own dense search (`PgIndex.dense_search`, nprobe tuned when published); the HNSW
rows are a table of the same vectors and article codes (`hnsw_bench`) under an HNSW index
(m 16, ef_construction 64; its build time shown). Every variant proposes 50 candidates per
question; recall@10 is the share of the exact top 10 (FAISS flat over the same vectors) that
the candidates' exact top 10 holds, as the Retriever re-scores them. Time: one statement's
round trip from this process (for HNSW a transaction setting ef_search, then the query), p50
and p99. The filtered rows keep the passages of one article in ten (`code % 10 = 0`): the
store reads the allowed rows of more lists; HNSW over-fetches 10 x 50 and keeps the allowed
ones, or (pgvector 0.8) filters in SQL with iterative scans.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from bench import scale
from bench.pg_scale import SERVER
from retrieval.model.embed import Embedder

CANDIDATES = 50
TABLE = "hnsw_bench"  # the vectors and article codes, under pgvector's HNSW
FILTER_SHARE = 10  # the filtered search keeps one article in this many


def _exact(vectors: np.ndarray, qvecs: np.ndarray, rows: np.ndarray | None = None
           ) -> np.ndarray:
    """The exact 10th-best cosine of each question (over `rows` only, if given)."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors if rows is None else vectors[rows], np.float32))
    scores, _ = index.search(np.ascontiguousarray(qvecs, np.float32), scale.K)
    return scores[:, scale.K - 1]


def _recall(found: list[list[int]], vectors: np.ndarray, qvecs: np.ndarray,
            tenth: np.ndarray) -> float:
    """Recall@10 of each question's candidates, re-scored with the exact vectors."""
    out = []
    for rows, q, kth in zip(found, qvecs, tenth, strict=True):
        sims = np.sort(vectors[np.asarray(rows, np.int64)] @ q)[::-1][:scale.K] if rows else []
        out.append(min(int(np.count_nonzero(np.asarray(sims) >= kth - 1e-5)), scale.K) / scale.K)
    return float(np.mean(out))


def _timed(conn: object, sql: str, qvecs: np.ndarray, ef: int, setup: tuple[str, ...] = ()
           ) -> tuple[list[list[int]], list[float]]:
    """Each question's rows from `sql` (its parameter `q`, the question's vector) and the
    milliseconds of its round trip; `setup`: statements run first in its transaction."""
    from retrieval.store.postgres.connect import vector_text

    found, ms = [], []
    for q in qvecs:
        text = vector_text(q)
        start = time.perf_counter()
        with conn.transaction():
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
            for line in setup:
                conn.execute(line)
            rows = conn.execute(sql, {"q": text}).fetchall()
        ms.append((time.perf_counter() - start) * 1000)
        found.append([r for (r,) in rows])
    return found, ms


def _row(name: str, found: list[list[int]], ms: list[float], vectors: np.ndarray,
         qvecs: np.ndarray, tenth: np.ndarray, **extra: object) -> dict:
    row = {"variant": name, "recall_at_10": _recall(found, vectors, qvecs, tenth),
           "p50_ms": statistics.median(ms), "p99_ms": float(np.percentile(ms, 99)), **extra}
    print(f"  {name}: recall@10 {row['recall_at_10']:.3f}, p50 {row['p50_ms']:.1f} ms, "
          f"p99 {row['p99_ms']:.1f} ms", flush=True)
    return row


def _built(conn: object, sql: str) -> float:
    start = time.perf_counter()
    conn.execute(sql)
    return time.perf_counter() - start


def run(passages: int = 1_000_000, questions: int = 300, data: Path = scale.DATA,
        cache: Path = scale.CACHE) -> dict:
    """Migrate the cached index into a fresh server and measure every variant it supports."""
    from retrieval.store import backend, open_store
    from retrieval.store.folder.index import FolderIndex
    from retrieval.store.postgres.connect import close_pools, connect
    from retrieval.store.postgres.fill import vector_binary
    from tests.support import pg_server

    embedder = Embedder()
    scale.build(passages, embedder, data, cache, False, True)
    index_dir = cache / f"scale-{passages}" / "index"
    timed, _ = scale._questions(data, questions, 0)
    qvecs = embedder.encode(timed)
    local = FolderIndex.load(index_dir)
    vectors = np.asarray(local.passage_vectors[np.arange(len(local))], np.float32)
    tenth = _exact(vectors, qvecs)
    server = pg_server.start(SERVER)
    rows: list[dict] = []
    try:
        print(f"copying {passages:,} passages into PostgreSQL (byline migrate)", flush=True)
        backend(server.url).migrate_from(backend(index_dir).open(verify=True), str(index_dir),
                                         progress=True)
        store = open_store(server.url)
        codes = np.asarray(store.row_articles()[0], np.int64)  # each row's article, in order
        rows += _store(store, qvecs, vectors, tenth, codes)
        close_pools()
        with connect(server.url) as conn:
            conn.autocommit = True
            version = conn.execute("SELECT extversion FROM pg_extension "
                                   "WHERE extname = 'vector'").fetchone()[0]
            major = tuple(int(x) for x in version.split(".")[:2])
            print(f"pgvector {version}: building HNSW over a copy of the vectors", flush=True)
            conn.execute(f"CREATE TABLE {TABLE} (rowno integer, code integer, "
                         f"embedding vector({vectors.shape[1]}))")
            with conn.cursor() as cur, cur.copy(f"COPY {TABLE} FROM STDIN (FORMAT BINARY)"
                                                ) as cp:
                cp.set_types(["int4", "int4", "bytea"])
                for r, (code, v) in enumerate(zip(codes, vectors, strict=True)):
                    cp.write_row((r, int(code), vector_binary(v)))
            conn.execute(f"SET maintenance_work_mem = '{SERVER['maintenance_work_mem']}'")
            build_s = _built(conn, f"CREATE INDEX ON {TABLE} USING hnsw (embedding "
                                   "vector_cosine_ops) WITH (m = 16, ef_construction = 64)")
            print(f"  built in {build_s:.0f} s", flush=True)
            conn.autocommit = False
            hnsw_sql = (f"SELECT rowno FROM {TABLE} ORDER BY embedding <=> %(q)s::vector "
                        f"LIMIT {CANDIDATES}")
            for ef in (100, 400, 1000):
                found, ms = _timed(conn, hnsw_sql, qvecs, ef)
                rows.append(_row(f"HNSW vector, ef_search {ef}", found, ms,
                                 vectors, qvecs, tenth, ef_search=ef, build_s=build_s))
            rows += _filtered(conn, codes, qvecs, vectors, 400, major)
            if major >= (0, 7):
                rows += _quantised(conn, qvecs, vectors, tenth)
    finally:
        close_pools()
        server.stop()
    return {"pgvector": version, "passages": passages, "questions": len(timed),
            "server": dict(SERVER), "variants": rows}


def _store(store: object, qvecs: np.ndarray, vectors: np.ndarray, tenth: np.ndarray,
           codes: np.ndarray) -> list[dict]:
    """The store's own dense search (its IVF lists), unfiltered and kept to one article in
    FILTER_SHARE."""
    allowed = codes % FILTER_SHARE == 0
    out = []
    for name, keep, kth in (
            (f"the store's IVF lists, nprobe {store.manifest.nprobe}", None, tenth),
            (f"filtered 1/{FILTER_SHARE}: the store's IVF lists", allowed,
             _exact(vectors, qvecs, np.flatnonzero(allowed)))):
        found, ms = [], []
        for q in qvecs:
            start = time.perf_counter()
            got = store.dense_search(q, CANDIDATES, keep)[0]
            ms.append((time.perf_counter() - start) * 1000)
            found.append([int(r) for r in got if r >= 0])
        out.append(_row(name, found, ms, vectors, qvecs, kth, nprobe=store.manifest.nprobe))
    return out


def _filtered(conn: object, codes: np.ndarray, qvecs: np.ndarray, vectors: np.ndarray,
              ef: int, major: tuple[int, int]) -> list[dict]:
    """One article in FILTER_SHARE kept: HNSW's over-fetch beside iterative scans."""
    allowed = np.flatnonzero(codes % FILTER_SHARE == 0)
    tenth = _exact(vectors, qvecs, allowed)
    want = CANDIDATES * len(codes) // max(len(allowed), 1)
    over = (f"SELECT rowno FROM {TABLE} ORDER BY embedding <=> %(q)s::vector "
            f"LIMIT {want}")
    found, ms = _timed(conn, over, qvecs, min(1000, max(ef, want)))
    keep = set(allowed.tolist())
    found = [[r for r in f if r in keep][:CANDIDATES] for f in found]
    out = [_row(f"filtered 1/{FILTER_SHARE}: HNSW over-fetch ({want} rows)", found, ms,
                vectors, qvecs, tenth)]
    if major >= (0, 8):
        where = (f"SELECT rowno FROM {TABLE} WHERE code %% {FILTER_SHARE} = 0 "
                 f"ORDER BY embedding <=> %(q)s::vector LIMIT {CANDIDATES}")
        for mode in ("strict_order", "relaxed_order"):
            found, ms = _timed(conn, where, qvecs, ef,
                               (f"SET LOCAL hnsw.iterative_scan = {mode}",))
            out.append(_row(f"filtered 1/{FILTER_SHARE}: HNSW iterative scan ({mode})", found,
                            ms, vectors, qvecs, tenth))
    return out


def _quantised(conn: object, qvecs: np.ndarray, vectors: np.ndarray,
               tenth: np.ndarray) -> list[dict]:
    """halfvec and binary-quantised HNSW (pgvector >= 0.7), each re-ranked exactly in SQL."""
    dim = vectors.shape[1]
    out = []
    variants: list[tuple[str, str, str, tuple[int, ...]]] = [
        ("halfvec", f"(embedding::halfvec({dim})) halfvec_cosine_ops",
         f"embedding::halfvec({dim}) <=> %(q)s::halfvec({dim})", (50, 100, 200, 400)),
        ("binary", f"(binary_quantize(embedding)::bit({dim})) bit_hamming_ops",
         f"binary_quantize(embedding)::bit({dim}) <~> binary_quantize(%(q)s::vector)",
         (200, 400, 1000)),
    ]
    for name, expression, distance, depths in variants:
        conn.autocommit = True
        print(f"building the {name} HNSW index", flush=True)
        build_s = _built(conn, f"CREATE INDEX {name}_hnsw ON {TABLE} USING hnsw "
                               f"({expression}) WITH (m = 16, ef_construction = 64)")
        size_mb = conn.execute("SELECT pg_relation_size(%s)", (f"{name}_hnsw",)
                               ).fetchone()[0] / 2 ** 20
        print(f"  built in {build_s:.0f} s, {size_mb:,.0f} MB", flush=True)
        conn.autocommit = False
        for depth in depths:
            sql = (f"SELECT rowno FROM (SELECT rowno, embedding FROM {TABLE} "
                   f"ORDER BY {distance} LIMIT {depth}) c "
                   f"ORDER BY embedding <=> %(q)s::vector LIMIT {CANDIDATES}")
            found, ms = _timed(conn, sql, qvecs, min(1000, max(40, depth)))
            out.append(_row(f"HNSW {name}, {depth} re-ranked exactly", found, ms, vectors,
                            qvecs, tenth, build_s=build_s, index_mb=size_mb))
        conn.autocommit = True
        conn.execute(f"DROP INDEX {name}_hnsw")
        conn.autocommit = False
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--data", type=Path, default=scale.DATA)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    result = run(args.passages, args.questions, args.data)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
