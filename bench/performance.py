"""Speed and scale benchmarks (`make bench`): prints a table and writes docs/performance.md.

Every Byline figure stands beside a floor measured in the same run: raw sentence-transformers
encoding + a FAISS flat index, the recipe a peer tool runs. Ratios matter more than absolute
times, because this machine is shared and noisy.

    .venv/bin/python -m bench.performance ../shared/data            # everything (~25 min)
    .venv/bin/python -m bench.performance ../shared/data --scale 100000   # smaller scale run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss
    from sentence_transformers import SentenceTransformer

from retrieval import index_corpus
from retrieval.build.pipeline import build_index
from retrieval.corpus import Article
from retrieval.model.embed import Embedder, bundled_model_path
from retrieval.search.calibrate import calibrated
from retrieval.search.evaluate import EvalQuestion, evaluate, load_squad
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex
from tests.support.passages import every_passage

ROOT = Path(__file__).resolve().parent.parent

HALVES = ("squad-v1.1-dev-a.json", "squad-v1.1-dev-b.json")
QUERIES = 300  # questions timed for warm latency
PER_FILE = 10  # paragraphs per article file in the incremental corpus (news-article sized)
COLD_RUNS = 7


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def machine() -> dict[str, str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                   if x.startswith("MemTotal"))
        memory = f"{mem / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        memory = "?"
    versions = {}
    for pkg in ("torch", "sentence-transformers", "transformers", "onnxruntime", "faiss-cpu",
                "bm25s", "numpy", "discord.py"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "absent"
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu,
            "cores": str(os.cpu_count()), "memory": memory,
            "python": platform.python_version(),
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items())}


def raw_model() -> SentenceTransformer:
    """The floor: sentence-transformers itself on the bundled weights."""
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return SentenceTransformer(str(bundled_model_path()), device="cpu")


def raw_build(st: SentenceTransformer, texts: list[str]) -> faiss.IndexFlatIP:
    """Encode with sentence-transformers' defaults and add to a FAISS flat index."""
    import faiss

    vecs = st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                     show_progress_bar=False)
    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(np.ascontiguousarray(vecs, dtype=np.float32))
    return flat


def measure_build(st: SentenceTransformer, embedder: Embedder, articles: list[Article],
                  tmp: Path) -> dict:
    """Full index build of the SQuAD dev paragraphs: Byline vs the raw floor."""
    texts = [p for a in articles for p in a.paragraphs]
    start = time.perf_counter()
    raw_build(st, texts)
    floor = time.perf_counter() - start
    start = time.perf_counter()
    # Everything a usable index needs: passage and sentence vectors, BM25, SQLite, the
    # not-covered background, saved atomically.
    index = calibrated(build_index(articles, embedder, progress=False), embedder)
    index.save(tmp / "build")
    byline = time.perf_counter() - start
    return {"passages": len(texts), "floor_s": floor, "byline_s": byline,
            "speedup": floor / byline, "index": index}


def measure_queries(st: SentenceTransformer, index: FolderIndex, embedder: Embedder,
                    questions: list[EvalQuestion]) -> dict:
    """Warm in-process latency of one question: Byline's whole `ask` vs encode + flat search.

    The two are interleaved question by question so machine noise hits both alike (the
    figure compared with the floor); then Byline's asks alone, and its encoding alone
    (`encode_questions`, the question's vector and token vectors), over the same questions."""
    import faiss

    flat = faiss.IndexFlatIP(index.manifest.dimension)
    flat.add(np.ascontiguousarray(index.passage_vectors, dtype=np.float32))
    retriever = Retriever(index, embedder)
    rng = np.random.default_rng(0)
    asked = [questions[i].question for i in rng.choice(len(questions), QUERIES, replace=False)]
    for q in asked[:20]:  # warm both paths
        retriever.ask(q, k=5)
        flat.search(st.encode([q], normalize_embeddings=True, show_progress_bar=False), 5)
    floor, byline = [], []
    for q in asked:
        start = time.perf_counter()
        flat.search(st.encode([q], normalize_embeddings=True, show_progress_bar=False), 5)
        floor.append(time.perf_counter() - start)
        start = time.perf_counter()
        retriever.ask(q, k=5)
        byline.append(time.perf_counter() - start)
    alone, encode = [], []
    for q in asked:  # Byline by itself: no floor evicting its caches between questions
        start = time.perf_counter()
        retriever.ask(q, k=5)
        alone.append(time.perf_counter() - start)
    for q in asked:  # the part of a question that is the model's
        start = time.perf_counter()
        embedder.encode_questions([q])
        encode.append(time.perf_counter() - start)
    f50, b50 = statistics.median(floor) * 1e3, statistics.median(byline) * 1e3
    return {"queries": len(asked), "floor_p50_ms": f50, "byline_p50_ms": b50,
            "floor_p95_ms": _p(floor, 95) * 1e3, "byline_p95_ms": _p(byline, 95) * 1e3,
            "ratio": b50 / f50, "alone_p50_ms": statistics.median(alone) * 1e3,
            "encode_p50_ms": statistics.median(encode) * 1e3}


def _write_corpus(articles: list[Article], folder: Path) -> list[Path]:
    """SQuAD articles as news-sized files of PER_FILE paragraphs each."""
    folder.mkdir(parents=True)
    files = []
    for a in articles:
        for n, start in enumerate(range(0, len(a.paragraphs), PER_FILE), start=1):
            f = folder / f"{a.id}-{n:02d}.txt"
            body = "\n\n".join(a.paragraphs[start:start + PER_FILE])
            f.write_text(f"{a.title} (part {n})\n\n{body}\n", encoding="utf-8")
            files.append(f)
    return files


def measure_incremental(embedder: Embedder, articles: list[Article], tmp: Path) -> dict:
    """Change 1% of the article files; re-index incrementally vs a full build of the result."""
    corpus = tmp / "corpus"
    files = _write_corpus(articles, corpus)
    index_corpus(corpus, tmp / "inc", embedder, progress=False, incremental=False)
    changed = files[:: max(1, round(len(files) / max(1, round(len(files) * 0.01))))]
    for n, f in enumerate(changed):
        text = f.read_text(encoding="utf-8").rstrip("\n").split("\n\n")
        text[1] = f"{text[1]} An editor's note was added to this paragraph ({n})."
        f.write_text("\n\n".join(text) + "\n", encoding="utf-8")
    start = time.perf_counter()
    inc = index_corpus(corpus, tmp / "inc", embedder, progress=False, incremental=True)
    incremental = time.perf_counter() - start
    start = time.perf_counter()
    full = index_corpus(corpus, tmp / "full", embedder, progress=False, incremental=False)
    rebuild = time.perf_counter() - start
    same = ([p.id for p in every_passage(inc)] == [p.id for p in every_passage(full)]
            and np.array_equal(np.asarray(inc.passage_vectors), np.asarray(full.passage_vectors)))
    return {"files": len(files), "changed": len(changed), "passages": len(full),
            "embedded": len(full) - inc.reused, "incremental_s": incremental,
            "full_s": rebuild, "speedup": rebuild / incremental, "identical": same}


def measure_cold(index_dir: Path) -> dict:
    """A new `byline ask` process with the index present, end to end (median of runs)."""
    exe = Path(sys.executable).with_name("byline")
    env = {**os.environ, "BYLINE_INDEX_DIR": str(index_dir)}
    base, ask = [], []
    for _ in range(COLD_RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy"], check=True, env=env)
        base.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([str(exe), "ask", "--json", "who", "won", "the", "super", "bowl"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        ask.append(time.perf_counter() - start)
    return {"ask_s": statistics.median(ask), "python_numpy_s": statistics.median(base)}


def measure_encoders(articles: list[Article], questions: list[EvalQuestion]) -> list[dict]:
    """Build time and answer quality on SQuAD B for each encoder; torch is the plain model."""
    rows = []
    for encoder in ("torch", "onnx", "onnx-int8"):
        embedder = Embedder(encoder=encoder)
        embedder.model  # noqa: B018 - load (and for ONNX build, once) outside the timing
        start = time.perf_counter()
        index = build_index(articles, embedder, progress=False)
        built = time.perf_counter() - start
        r = evaluate(Retriever(index, embedder), questions)
        rows.append({"encoder": encoder, "build_s": built,
                     "passages_per_s": len(index) / built,
                     **{k: r[k] for k in ("recall@1", "recall@5", "mrr@10", "quote_hit")}})
    return rows


def measure_batching(embedder: Embedder, texts: list[str]) -> list[dict]:
    """ONNX encoder throughput by batch size (length-sorted batches, as Embedder.encode does)."""
    model = embedder.model
    texts = sorted(texts, key=len, reverse=True)
    rows = []
    for size in (1, 4, 16, 32):
        start = time.perf_counter()
        for i in range(0, len(texts), size):
            model.encode_batch(texts[i:i + size])
        rows.append({"batch": size, "texts_per_s": len(texts) / (time.perf_counter() - start)})
    return rows


def measure_spinning(embedder: Embedder, questions: list[str], texts: list[str]) -> list[dict]:
    """ONNX Runtime with its idle threads spinning (its default) or sleeping (Byline's):
    question encode latency and passage throughput, alternating rounds."""
    import onnxruntime as ort

    from retrieval.model.onnx_model import session_options

    model = embedder.model
    default = model.session
    threads = default.get_session_options().intra_op_num_threads
    sessions = {spin: ort.InferenceSession(default._model_path, session_options(threads, spin),
                                           providers=["CPUExecutionProvider"])
                for spin in (True, False)}
    latency: dict[bool, list[float]] = {True: [], False: []}
    rate: dict[bool, list[float]] = {True: [], False: []}
    try:
        for _ in range(3):
            for spin, sess in sessions.items():
                model.session = sess
                for q in questions:
                    start = time.perf_counter()
                    model.encode_batch([q])
                    latency[spin].append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                for t in texts:
                    model.encode_batch([t])
                rate[spin].append(len(texts) / (time.perf_counter() - start))
    finally:
        model.session = default
    return [{"spinning": spin, "question_p50_ms": statistics.median(latency[spin]),
             "question_p90_ms": _p(latency[spin], 90),
             "passages_per_s": statistics.median(rate[spin])} for spin in (True, False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?", default=ROOT.parent / "shared" / "data")
    parser.add_argument("--scale", type=int, default=1_000_000,
                        help="passages for the scale run (0 skips it)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--quick", action="store_true",
                        help="only the build, warm query and re-index figures, printed (a "
                        "re-measure after a change; docs/performance.md is not written)")
    args = parser.parse_args()
    missing = [h for h in HALVES if not (args.data / h).is_file()]
    if missing:
        print(f"SKIPPED: SQuAD data not found in {args.data} ({', '.join(missing)}).")
        return
    loaded = [load_squad(args.data / h) for h in HALVES]
    articles = loaded[0][0] + loaded[1][0]
    questions = loaded[0][1] + loaded[1][1]
    figures: dict = {"machine": machine()}
    print(f"machine: {figures['machine']}", flush=True)
    st = raw_model()
    embedder = Embedder()
    embedder.model  # noqa: B018 - the ONNX graph is built (once) and loaded before timing
    tmp = Path(tempfile.mkdtemp(prefix="byline-bench-"))
    try:
        figures["build"] = measure_build(st, embedder, articles, tmp)
        print(_fmt("build", figures["build"]), flush=True)
        figures["query"] = measure_queries(st, figures["build"]["index"], embedder, questions)
        print(_fmt("query", figures["query"]), flush=True)
        figures["incremental"] = measure_incremental(embedder, articles, tmp / "inc")
        print(_fmt("incremental", figures["incremental"]), flush=True)
        if args.quick:
            return
        figures["cold"] = measure_cold(tmp / "build")
        print(_fmt("cold", figures["cold"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sample = [p for a in articles for p in a.paragraphs][::4]
    figures["batching"] = measure_batching(embedder, sample)
    print(f"batching: {figures['batching']}", flush=True)
    figures["spinning"] = measure_spinning(embedder, [q.question for q in questions[::50]],
                                           sample[::3])
    for row in figures["spinning"]:
        print(_fmt("spinning", row), flush=True)
    figures["encoders"] = measure_encoders(*loaded[1])
    for row in figures["encoders"]:
        print(_fmt("encoder", row), flush=True)
    figures["concurrency"] = _optional("concurrency", _concurrency)
    figures["heartbeat"] = _optional("heartbeat", lambda m: m.run_alone())
    figures["guild_memory"] = _optional("guild_memory", lambda m: m.run())
    figures["extraction"] = _optional("extraction", lambda m: m.run(args.data))
    figures["postgres"] = _optional("postgres", lambda m: m.run(args.data))
    if args.scale:
        figures["scale"] = _optional("scale", lambda m: _with_table(m, m.run(passages=args.scale,
                                                                                  data=args.data)))
        figures["dedup"] = _optional("dedup", lambda m: _with_table(m, m.run(passages=args.scale)))
        figures["pg_scale"] = _optional("pg_scale", lambda m: _pg_scale(m, args.scale, args.data,
                                                                        figures["scale"]))
    from bench.report import render  # the Markdown page, kept apart from the measuring

    ten = args.out.parent / "scale-10m.json"  # `make bench-10m`'s, measured apart
    if ten.is_file():
        figures["scale_10m"] = json.loads(ten.read_text(encoding="utf-8"))

    args.out.write_text(render(figures), encoding="utf-8")
    print(f"\nwritten to {args.out}")


def _concurrency(module: ModuleType) -> dict:
    """The batched run's figures for the summary, and the module's own table (both runs)."""
    result = module.run()
    return {**result["batched"], "markdown": module.table(result)}


def _with_table(module: ModuleType, result: dict) -> dict:
    """The scale figures for the summary, and the module's own table for its section."""
    return {**result, "markdown": module.markdown(result)}


def _pg_scale(module: ModuleType, passages: int, data: Path, local: dict) -> dict:
    """The scale run's index in PostgreSQL, with its table beside this run's folder figures."""
    result = module.run(passages=passages, data=data)
    return {**result, "markdown": module.markdown(result, None if "error" in local else local)}


def _optional(name: str, call: Callable[[ModuleType], dict]) -> dict:
    """Run bench/<name>.py's `run`; its failure is reported, not fatal to the other figures."""
    import importlib

    try:
        result = call(importlib.import_module(f"bench.{name}"))
    except Exception as exc:  # a benchmark's crash must not lose the other figures
        print(f"{name}: FAILED ({type(exc).__name__}: {exc})", flush=True)
        return {"error": f"{type(exc).__name__}: {exc}"}
    print(_fmt(name, result), flush=True)
    return result


def _fmt(name: str, values: dict) -> str:
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in values.items()
             if k not in ("index", "markdown")}
    return f"{name}: {shown}"


if __name__ == "__main__":
    main()
