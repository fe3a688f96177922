"""Byline at scale: query latency, ANN recall, load time, memory and disk at N passages.

    .venv/bin/python -m bench.scale                    # 1,000,000 passages (default)
    .venv/bin/python -m bench.scale --passages 100000  # a quicker smoke run

Data. 20,000 real passages are built from SQuAD v1.1 dev (every paragraph, plus windows of
2-4 consecutive sentences) and encoded by the real Embedder (this gives the encode
throughput). Beyond those, passages are synthetic but realistic: 2-4 real sentences of one
SQuAD article recombined, each sentence's vector its real in-context vector plus noise, the
passage vector the length-weighted mean of its sentence vectors plus noise (noise calibrated
so the composed vectors sit as far from the truth as real windows do), all re-normalised.
BM25 indexes these real-looking texts; sentence spans come from the texts themselves. The
index is assembled with `Index.from_vectors` and saved (cached under .byline/bench/, rebuilt
only with --rebuild or when the index format changes).

Queries are real SQuAD questions, asked through the full `Retriever.ask` path (encode, ANN +
BM25 candidates, fusion, best-sentence re-scoring, quotes, SQLite fetch) in a fresh
subprocess, which also gives `FolderIndex.load` time and peak RSS (VmHWM; build memory does not
count). The index's files are read once first, so they are in the OS page cache, as on a
server that has been answering. Each figure stands beside a floor measured in the same run
(exact FAISS flat search, bm25s scoring every passage, the encoder alone, a process holding
only the model). The machine is shared: the 1-minute load average is reported with them.

Another script can call `run(passages=...)`: it returns a dict of plain numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.corpus import Article, Passage
from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing
from retrieval.model.embed import Embedder
from retrieval.search.evaluate import load_squad
from retrieval.store import FolderIndex, Sentences, read_manifest
from retrieval.text import sentence_spans

ROOT = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    import faiss

    from retrieval.search.retriever import Retriever

DATA = ROOT.parent / "shared" / "data"
HALVES = ("squad-v1.1-dev-a.json", "squad-v1.1-dev-b.json")
CACHE = ROOT / ".byline" / "bench"
REAL = 20_000  # passages encoded for real
PER_ARTICLE = 10  # passages per (synthetic) article in the index
RECIPE = 1  # bump when the generated corpus changes, so caches are rebuilt
K = 10  # recall@K of dense search
STREAM_MIN = 2_000_000  # above, the index is built a chunk at a time (bench/stream.py)
BIG_FILES = ("vectors/passages.npy", "sentences/vectors.npy")  # not read ahead above it


# -- real passages ---------------------------------------------------------------------------

@dataclass
class Real:
    """The real passages: texts, sentence spans, SQuAD article titles, and their vectors."""

    texts: list[str]
    spans: list[list[tuple[int, int]]]
    titles: list[str]
    vectors: np.ndarray  # (REAL, dim) float32
    sentence_vectors: np.ndarray  # (sum of spans, dim) float32
    passages_per_s: float  # encode throughput measured when the vectors were made
    questions: list[str]  # every SQuAD dev question
    paragraphs: int  # the first this many texts are whole SQuAD paragraphs
    load_avg: float = float("nan")  # the machine's load average when they were encoded


def _squad(data: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(article title, paragraph) pairs and all questions of both SQuAD dev halves."""
    paragraphs, questions = [], []
    for name in HALVES:
        articles, qs = load_squad(data / name)
        paragraphs += [(a.title, p) for a in articles for p in a.paragraphs]
        questions += [q.question for q in qs]
    return paragraphs, questions


def _real_texts(paragraphs: list[tuple[str, str]], n: int, rng: np.random.Generator
                ) -> tuple[list[str], list[str]]:
    """Every paragraph, then windows of 2-4 consecutive sentences of them up to `n` texts."""
    texts = [p for _, p in paragraphs]
    titles = [t for t, _ in paragraphs]
    windows = []
    for title, p in paragraphs:
        sp = sentence_spans(p)
        windows += [(title, p[sp[i][0]:sp[i + w - 1][1]])
                    for w in (2, 3, 4) for i in range(len(sp) - w + 1)]
    picks = np.sort(rng.choice(len(windows), size=min(n - len(texts), len(windows)),
                               replace=False))
    texts += [windows[i][1] for i in picks]
    titles += [windows[i][0] for i in picks]
    return texts, titles


def _data_key(data: Path, embedder: Embedder) -> str:
    h = hashlib.sha256(f"{RECIPE}\0{REAL}\0{embedder.name}\0{embedder.encoder}".encode())
    for name in HALVES:
        h.update((data / name).read_bytes())
    return h.hexdigest()[:16]


def real_passages(data: Path, embedder: Embedder, cache: Path, log: bool = True) -> Real:
    """The REAL real passages, encoded (cached: encoding takes minutes on a small CPU)."""
    paragraphs, questions = _squad(data)
    texts, titles = _real_texts(paragraphs, REAL, np.random.default_rng(0))
    spans = [sentence_spans(t) for t in texts]
    path = cache / f"real-{_data_key(data, embedder)}.npz"
    if path.is_file():
        with np.load(path) as z:
            return Real(texts, spans, titles, z["vectors"], z["sentences"],
                        float(z["passages_per_s"]), questions, len(paragraphs),
                        float(z["load_avg"]) if "load_avg" in z else float("nan"))
    _say(log, f"encoding {len(texts):,} real passages (once; cached in {path.parent})")
    start = time.perf_counter()
    vecs, sents, _ = embedder.encode_passages(texts, spans, progress=log,
                                           label=f"Encoding {len(texts)} passages")
    rate = len(texts) / (time.perf_counter() - start)
    load_avg = os.getloadavg()[0]  # the machine is shared: how busy it was while encoding
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, vectors=vecs, sentences=sents, passages_per_s=rate, load_avg=load_avg)
    os.replace(tmp, path)
    return Real(texts, spans, titles, vecs, sents, rate, questions, len(paragraphs), load_avg)


def encode_rate(data: Path, embedder: Embedder, count: int = 1000) -> float:
    """Passages/s of `Embedder.encode_passages` on `count` of the real passages, now (the
    20,000 are encoded once and cached; this shows the machine as it is in this run)."""
    paragraphs, _ = _squad(data)
    texts, _ = _real_texts(paragraphs, REAL, np.random.default_rng(0))
    picks = np.random.default_rng(3).choice(len(texts), size=min(count, len(texts)),
                                            replace=False)
    sample = [texts[i] for i in picks]
    spans = [sentence_spans(t) for t in sample]
    start = time.perf_counter()
    embedder.encode_passages(sample, spans)
    return len(sample) / (time.perf_counter() - start)


def _say(log: bool, msg: str) -> None:
    if log:
        print(f"[scale] {msg}", file=sys.stderr, flush=True)


# -- the corpus at N passages ------------------------------------------------------------------

@dataclass
class Pool:
    """The sentences of the real SQuAD paragraphs, grouped by article, with their vectors."""

    texts: list[str]
    vectors: np.ndarray  # (M, dim) float32, each encoded in its paragraph's context
    lengths: np.ndarray  # (M,) characters
    starts: np.ndarray  # (A,) first sentence of each SQuAD article
    sizes: np.ndarray  # (A,) sentences of each SQuAD article
    titles: list[str]  # (A,)


def _offsets(spans: list[list[tuple[int, int]]]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(s) for s in spans])]).astype(np.int64)


def _pool(real: Real, paragraphs: int) -> Pool:
    """The sentences of the first `paragraphs` real texts (the whole SQuAD paragraphs)."""
    off = _offsets(real.spans)
    texts, owners = [], []
    for i in range(paragraphs):
        t = real.texts[i]
        texts += [t[a:b] for a, b in real.spans[i]]
        owners += [real.titles[i]] * len(real.spans[i])
    titles = list(dict.fromkeys(owners))
    first = {t: owners.index(t) for t in titles}
    counts = {t: owners.count(t) for t in titles}
    return Pool(texts, real.sentence_vectors[:off[paragraphs]],
                np.array([len(t) for t in texts], np.float32),
                np.array([first[t] for t in titles]), np.array([counts[t] for t in titles]),
                titles)


def _noise_sigma(cosine: float, dim: int) -> float:
    """Per-dimension Gaussian noise that moves a unit vector to this cosine (expected)."""
    return float(np.sqrt(max(1 / cosine**2 - 1, 0.0) / dim))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def calibrate(real: Real, paragraphs: int) -> dict[str, float]:
    """How far real vectors sit from what recombination would predict, from the real windows:
    a sentence's vector in a window vs in its paragraph, and a window's vector vs the
    length-weighted mean of its own sentence vectors (median cosines)."""
    off = _offsets(real.spans)
    index = {}  # (paragraph, sentence start char) -> global sentence row
    for p in range(paragraphs):
        for j, (a, _) in enumerate(real.spans[p]):
            index[(real.texts[p], a)] = off[p] + j
    sent_cos, pass_cos = [], []
    paras = real.texts[:paragraphs]
    by_title: dict[str, list[int]] = {}
    for p in range(paragraphs):
        by_title.setdefault(real.titles[p], []).append(p)
    for w in range(paragraphs, len(real.texts)):
        text = real.texts[w]
        own = real.sentence_vectors[off[w]:off[w + 1]]
        lengths = np.array([b - a for a, b in real.spans[w]], np.float32)
        pass_cos.append(float(real.vectors[w] @ _unit(lengths @ own)))
        for p in by_title[real.titles[w]]:
            at = paras[p].find(text)
            if at >= 0:
                for j, (a, _) in enumerate(real.spans[w]):
                    row = index.get((paras[p], at + a))
                    if row is not None:
                        sent_cos.append(float(own[j] @ real.sentence_vectors[row]))
                break
    return {"sentence_cosine": float(np.median(sent_cos)),
            "passage_cosine": float(np.median(pass_cos))}


def _articles(pool: Pool, count: int, rng: np.random.Generator) -> np.ndarray:
    """The SQuAD article of each of `count` passages (an index article's PER_ARTICLE
    passages share one), drawn in proportion to the articles' sentences."""
    groups = -(-count // PER_ARTICLE)
    return np.repeat(rng.choice(len(pool.sizes), size=groups, p=pool.sizes / pool.sizes.sum()),
                     PER_ARTICLE)[:count]


def _draw(pool: Pool, article: np.ndarray, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """Per passage, 2-4 distinct sentences of its article: (rows (n, 4), -1 padded; k)."""
    k = rng.integers(2, 5, size=len(article))
    picks = np.full((len(article), 4), -1, np.int64)
    todo = np.arange(len(article))
    while len(todo):
        a = article[todo]
        draw = pool.starts[a, None] + (rng.random((len(todo), 4)) * pool.sizes[a, None]
                                       ).astype(np.int64)
        draw[np.arange(4)[None, :] >= k[todo, None]] = -1
        picks[todo] = draw
        s = np.sort(draw, axis=1)
        todo = todo[((s[:, 1:] == s[:, :-1]) & (s[:, :-1] >= 0)).any(axis=1)]
    return picks, k


def _texts(pool: Pool, picks: np.ndarray, k: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Joined texts, and which of them split back into exactly their sentences."""
    texts, ok = [], np.zeros(len(k), bool)
    for i, row in enumerate(picks):
        parts = [pool.texts[j] for j in row[:k[i]]]
        text = " ".join(parts)
        texts.append(text)
        pos, want = 0, []
        for part in parts:
            want.append((pos, pos + len(part)))
            pos += len(part) + 1
        ok[i] = sentence_spans(text) == want
    return texts, ok


def synthetic_texts(pool: Pool, count: int, rng: np.random.Generator
                    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """`count` recombined passages whose sentence split gives back their sentences:
    (texts, sentence rows (count, 4) -1 padded, sentences per passage, SQuAD article)."""
    article = _articles(pool, count, rng)
    picks, k = _draw(pool, article, rng)
    texts, ok = _texts(pool, picks, k)
    while not ok.all():  # a join the splitter reads differently: draw those again
        bad = np.flatnonzero(~ok)
        picks[bad], k[bad] = _draw(pool, article[bad], rng)
        redo, ok[bad] = _texts(pool, picks[bad], k[bad])
        for j, i in enumerate(bad):
            texts[i] = redo[j]
    return texts, picks, k, article


def synthetic_vectors(pool: Pool, picks: np.ndarray, k: np.ndarray, noise: dict[str, float],
                      rng: np.random.Generator, chunk: int = 50_000
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(passage vectors float32, sentence vectors float16) of recombined passages."""
    dim = pool.vectors.shape[1]
    sigma_s = _noise_sigma(noise["sentence_cosine"], dim)
    sigma_p = _noise_sigma(noise["passage_cosine"], dim)
    vecs = np.empty((len(k), dim), np.float32)
    sents = np.empty((int(k.sum()), dim), np.float16)
    at = 0
    for start in range(0, len(k), chunk):
        p, kk = picks[start:start + chunk], k[start:start + chunk]
        rows = p[p >= 0]  # row-major: each passage's sentences in order
        s = _unit(pool.vectors[rows] + sigma_s * rng.standard_normal(
            (len(rows), dim), dtype=np.float32))
        sents[at:at + len(rows)] = s
        at += len(rows)
        comp = _unit(np.add.reduceat(s * pool.lengths[rows, None], np.cumsum(kk) - kk))
        vecs[start:start + len(kk)] = _unit(comp + sigma_p * rng.standard_normal(
            comp.shape, dtype=np.float32))
    return vecs, sents


def _synthetic_spans(pool: Pool, picks: np.ndarray) -> np.ndarray:
    """(start, end) of each sentence in its joined text (single spaces between)."""
    lengths = np.where(picks >= 0, pool.lengths[picks].astype(np.int64), -1)
    starts = np.cumsum(np.where(picks >= 0, lengths + 1, 0), axis=1) - (lengths + 1)
    keep = picks >= 0
    return np.stack([starts[keep], starts[keep] + lengths[keep]], axis=1).astype(np.int32)


@dataclass
class Corpus:
    """What `Index.from_vectors` takes."""

    articles: list[Article]
    passages: list[Passage]
    vectors: np.ndarray
    sentences: Sentences
    noise: dict[str, float]


def make_corpus(real: Real, n: int, log: bool = True) -> Corpus:
    """The real passages, then recombined ones up to `n` passages in all."""
    pool = _pool(real, real.paragraphs)
    noise = calibrate(real, real.paragraphs)
    rng = np.random.default_rng(1)
    count = max(n - len(real.texts), 0)
    _say(log, f"recombining {count:,} passages from {len(pool.texts):,} real sentences")
    texts, picks, k, article = synthetic_texts(pool, count, rng)
    vecs, sents = synthetic_vectors(pool, picks, k, noise, rng)
    titles = real.titles[:n] + [pool.titles[a] for a in article]
    texts = real.texts[:n] + texts
    real_rows = min(n, len(real.texts))
    real_sents = int(_offsets(real.spans[:real_rows])[-1])
    sentences = Sentences(
        vectors=np.concatenate([real.sentence_vectors[:real_sents].astype(np.float16), sents]),
        spans=np.concatenate([np.array([s for sp in real.spans[:real_rows] for s in sp],
                                       np.int32).reshape(-1, 2), _synthetic_spans(pool, picks)]),
        offsets=np.concatenate([_offsets(real.spans[:real_rows]),
                                _offsets(real.spans[:real_rows])[-1] + np.cumsum(k)]))
    articles = [Article(id=f"bench-{g:07d}", title=titles[i], source=f"squad:{titles[i]}",
                        paragraphs=tuple(texts[i:i + PER_ARTICLE]))
                for g, i in enumerate(range(0, len(texts), PER_ARTICLE))]
    passages = [p for a in articles for p in a.passages()]
    return Corpus(articles, passages, np.concatenate([real.vectors[:n], vecs]), sentences, noise)


# -- building and caching the index ----------------------------------------------------------

@contextmanager
def _timed(module: object, names: tuple[str, ...]) -> Iterator[dict[str, float]]:
    """Time calls of `module`'s functions `names` (the real build, piece by piece)."""
    times: dict[str, float] = {}
    saved = {name: getattr(module, name) for name in names}

    def wrap(name: str, fn: Callable) -> Callable:
        def timed(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[name] = times.get(name, 0.0) + time.perf_counter() - start
        return timed

    for name in names:
        setattr(module, name, wrap(name, saved[name]))
    try:
        yield times
    finally:
        for name, fn in saved.items():
            setattr(module, name, fn)


def build(n: int, embedder: Embedder, data: Path, cache: Path, rebuild: bool = False,
          log: bool = True, stream: bool = False) -> dict:
    """The index of `n` passages under `cache` (built unless a valid one is cached), and
    how it was built (seconds per step). Above STREAM_MIN passages (or with `stream`) it is
    written a chunk at a time (bench/stream.py): ten million do not fit in memory."""
    from retrieval.build.dedup import copy_groups
    from retrieval.search.calibrate import calibrated
    from retrieval.store.folder import index as store
    from retrieval.store.folder.postings import Postings

    folder = _folder(cache, n, stream)
    info_path = folder / "build.json"
    key = f"{_data_key(data, embedder)}-{n}" + ("-stream" if _folder(cache, n, stream).name
                                                 .endswith("-stream") else "")
    if not rebuild and info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        try:
            if info.get("key") == key and len(FolderIndex.load(folder / "index")) == n:
                return info
        except (IndexMissing, IndexCorrupt, IndexMismatch) as exc:
            _say(log, f"cached index unusable ({exc}); rebuilding")
    real = real_passages(data, embedder, cache, log)
    if stream or n > STREAM_MIN:
        from bench import stream as streamed

        _say(log, f"building the index of {n:,} passages a chunk at a time (bench/stream.py)")
        index, steps, noise = streamed.build(n, embedder, real, folder, f"bench-scale-{n}",
                                             log)
        return _record(info_path, key, n, index, steps, real, noise)
    started = time.perf_counter()
    corpus = make_corpus(real, n, log)
    steps = {"generate": time.perf_counter() - started}
    _say(log, f"building the index of {n:,} passages")
    started = time.perf_counter()
    groups = copy_groups([p.text for p in corpus.passages],
                         [p.article_id for p in corpus.passages])
    steps["copies"] = time.perf_counter() - started
    with _timed(store, ("build_ann", "memory_db")) as times, \
            _timed(Postings, ("build",)) as bm25:
        index = FolderIndex.from_vectors(corpus.articles, corpus.passages, corpus.vectors,
                                   corpus.sentences, model=embedder.name,
                                   encoder=embedder.encoder, corpus=f"bench-scale-{n}",
                                   groups=groups)
    steps |= {"ann": times["build_ann"], "bm25": bm25["build"], "sqlite": times["memory_db"]}
    noise = corpus.noise
    del corpus
    start = time.perf_counter()
    index = calibrated(index, embedder)  # measures the background evidence
    steps["background"] = time.perf_counter() - start
    start = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    index.save(folder / "index")
    steps["save"] = time.perf_counter() - start
    return _record(info_path, key, n, index, steps, real, noise)


def _folder(cache: Path, n: int, stream: bool = False) -> Path:
    """Where the index of `n` passages is cached (one built a chunk at a time below
    STREAM_MIN, to compare with the one built in memory, beside it)."""
    return cache / (f"scale-{n}-stream" if stream and n <= STREAM_MIN else f"scale-{n}")


def _record(info_path: Path, key: str, n: int, index: FolderIndex, steps: dict[str, float],
            real: Real, noise: dict[str, float]) -> dict:
    """build.json beside the cached index: what it is and how it was built."""
    info = {"key": key, "passages": n, "sentences": len(index.sentences.vectors),
            "ann": index.manifest.ann, "nprobe": index.manifest.nprobe,
            "build_s": {k: round(v, 2) for k, v in steps.items()},
            "encode_passages_per_s": real.passages_per_s,
            "encode_load_avg": real.load_avg, "noise": noise}
    _write_json(info_path, info)
    return info


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# -- measuring ------------------------------------------------------------------------------

def _questions(data: Path, count: int, warmup: int) -> tuple[list[str], list[str]]:
    """(timed, warm-up) real SQuAD questions, a fixed random sample."""
    _, questions = _squad(data)
    picks = np.random.default_rng(2).choice(len(questions), size=count + warmup, replace=False)
    chosen = [questions[i] for i in picks]
    return chosen[:count], chosen[count:]


def _child(index_dir: Path, questions_path: Path, out_path: Path) -> None:
    """In a fresh process: load the index, answer every question, report time and memory."""
    from retrieval.store.subset import search_one
    from retrieval.text import analyze

    q = json.loads(questions_path.read_text(encoding="utf-8"))
    start = time.perf_counter()
    index = FolderIndex.load(index_dir)
    load_s = time.perf_counter() - start
    rss_load = _rss_mb()
    retriever, latencies = asked(index, q)
    embedder = retriever.embedder
    stages: dict[str, list[float]] = {}
    n = retriever.settings.candidates
    for question in q["timed"]:
        terms = analyze(question)
        qvec = _clock(stages, "encode", embedder.encode, [question])[0]
        _clock(stages, "ann", search_one, index.vectors, qvec, n)
        _clock(stages, "bm25", _bm25_candidates, retriever, terms, n)
        rows, _, _ = _clock(stages, "rank", retriever.rank, qvec, terms)
        top = _clock(stages, "fetch", index.passages, rows[:5])
        _clock(stages, "quotes", _quotes, retriever, qvec, terms, top, rows)
    result = {"load_s": load_s, "rss_after_load_mb": rss_load, "peak_rss_mb": _rss_mb(),
              "latencies_ms": latencies,
              "stages_ms": {k: statistics.median(v) for k, v in stages.items()}}
    _write_json(out_path, result)


def asked(index: object, q: dict) -> tuple[Retriever, list[float]]:
    """A Retriever over `index` (either store) with its model loaded, after `q`'s warm-up
    questions, and the milliseconds of each of `q`'s timed questions, `rounds` times."""
    from retrieval.search.retriever import Retriever

    embedder = Embedder(index.manifest.model, encoder=index.manifest.encoder)
    embedder.model  # noqa: B018 - loaded here, not inside the first question
    retriever = Retriever(index, embedder)
    for question in q["warmup"]:
        retriever.ask(question)
    latencies = []
    for _ in range(q["rounds"]):  # the machine is shared: more samples, steadier figures
        for question in q["timed"]:
            start = time.perf_counter()
            retriever.ask(question)
            latencies.append((time.perf_counter() - start) * 1000)
    return retriever, latencies


def _bm25_candidates(retriever: Retriever, terms: list[str], n: int) -> np.ndarray:
    ids = retriever.lexical.term_ids(terms)
    return retriever.lexical.top(retriever.lexical.scores(ids), ids, n)


def _quotes(retriever: Retriever, qvec: np.ndarray, terms: list[str], top: list[Passage],
            rows: list[int]) -> list[str]:
    return [retriever.quote(qvec, terms, p, r) for p, r in zip(top, rows, strict=False)]


def _floor_child(questions_path: Path, out_path: Path) -> None:
    """In a fresh process: the model alone, encoding the questions (no index)."""
    q = json.loads(questions_path.read_text(encoding="utf-8"))
    embedder = Embedder()
    for question in q["warmup"]:
        embedder.encode([question])
    latencies = []
    for question in q["timed"]:
        start = time.perf_counter()
        embedder.encode([question])
        latencies.append((time.perf_counter() - start) * 1000)
    _write_json(out_path, {"encode_p50_ms": statistics.median(latencies),
                           "peak_rss_mb": _rss_mb()})


def _clock(stages: dict[str, list[float]], name: str, fn: Callable, *args: object) -> object:
    start = time.perf_counter()
    out = fn(*args)
    stages.setdefault(name, []).append((time.perf_counter() - start) * 1000)
    return out


def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MB: VmHWM, the high-water mark of
    this process image. (Linux carries a parent's peak over fork and exec into the child's
    ru_maxrss, so a child of the benchmark process would report the builder's peak.)"""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_page_cache(index_dir: Path, skip: tuple[str, ...] = ()) -> float:
    """Read every file of the index once (but those named in `skip`), so the timed
    questions find it in the OS page cache (a server that has been answering); seconds."""
    start = time.perf_counter()
    for path in sorted(p for p in index_dir.rglob("*") if p.is_file()
                       and str(p.relative_to(index_dir)).split("/", 1)[-1] not in skip):
        with path.open("rb") as fh:
            while fh.read(1 << 24):
                pass
    return time.perf_counter() - start


def _subprocess(args: list[str], out: Path) -> dict:
    subprocess.run([sys.executable, "-m", "bench.scale", *args], check=True,
                   cwd=ROOT)
    return json.loads(out.read_text(encoding="utf-8"))


def _flat(index: FolderIndex) -> faiss.Index:
    """Exact search over the index's own vectors (the floor, and the truth for recall)."""
    import faiss

    flat = faiss.IndexFlatIP(index.manifest.dimension)
    flat.add(np.ascontiguousarray(index.passage_vectors, dtype=np.float32))
    return flat


def _dense_checks(index: FolderIndex, vectors: np.ndarray, flat: faiss.Index | None,
                  qvecs: np.ndarray, candidates: int, timed: int = 50) -> dict[str, float]:
    """ANN recall against exact search over the same vectors (`vectors`, memory-mapped, read
    a block at a time), and exact search's time (`flat`, when the vectors fit in memory).

    Byline's dense top K is the ANN's `candidates` re-scored with the exact vectors (what
    the Retriever does); the raw ANN top K is shown beside it."""
    from retrieval.store.ann import exact_top
    from retrieval.store.subset import search_one

    exact = exact_top(qvecs, vectors, K)
    medians = []
    for search in (search_one, lambda x, v, k: x.search(v[None, :], k)):  # 1 thread, all
        if flat is None:
            break
        times = []
        for v in qvecs[:timed]:
            start = time.perf_counter()
            search(flat, v, K)
            times.append((time.perf_counter() - start) * 1000)
        medians.append(statistics.median(times))
    raw, rescored = [], []
    for v, best in zip(qvecs, exact, strict=True):
        kth = float(np.min(np.asarray(vectors[np.sort(best)], np.float32) @ v))
        _, found = index.vectors.search(v[None, :], candidates)
        rows = found[0][found[0] >= 0]
        sims = np.asarray(index.passage_vectors[rows], np.float32) @ v
        # A passage counts when its exact score reaches the exact K-th best (ties and
        # rounding between FAISS's and numpy's dot products are not misses).
        good = sims >= kth - 1e-5
        raw.append(min(np.count_nonzero(good[:K]), K) / K)
        rescored.append(min(np.count_nonzero(np.sort(sims)[::-1][:K] >= kth - 1e-5), K) / K)
    return {"recall_at_10": float(np.mean(rescored)), "ann_raw_recall_at_10": float(np.mean(raw)),
            "flat_search_ms": min(medians) if medians else float("nan")}  # the floor at its best


def _bm25_floor(index_dir: Path, questions: list[str], n: int) -> float:
    """Median ms of bm25s (its own load of the index's postings) scoring the whole corpus
    for a question, then its top n."""
    import bm25s

    from retrieval.text import analyze

    folder = index_dir / read_manifest(index_dir).folder / "bm25"
    bm25 = bm25s.BM25.load(str(folder), mmap=True)
    times = []
    for q in questions:
        ids = [bm25.vocab_dict[t] for t in analyze(q) if t in bm25.vocab_dict]
        if not ids:
            continue
        start = time.perf_counter()
        scores = bm25.get_scores_from_ids(ids)
        np.argpartition(-scores, n - 1)[:n]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _hybrid_agreement(index: FolderIndex, flat: faiss.Index, embedder: Embedder,
                      questions: list[str]) -> float:
    """Share of questions whose top 5 is the same with exact dense search instead of ANN."""
    from retrieval.search.retriever import Retriever

    exact = FolderIndex(index.manifest, flat, index.postings, index.db, index.sentences,
                  index.passage_vectors)
    a, b = Retriever(index, embedder), Retriever(exact, embedder)
    same = [[h.row for h in x.hits] == [h.row for h in y.hits]
            for x, y in zip(a.ask_many(questions, keep_refused=True),
                            b.ask_many(questions, keep_refused=True), strict=True)]
    return float(np.mean(same))


def disk_mb(index_dir: Path) -> dict[str, float]:
    """Megabytes on disk per component of the saved index."""
    folder = index_dir / FolderIndex.load(index_dir).manifest.folder

    def size(path: Path) -> float:
        paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        return sum(p.stat().st_size for p in paths) / 2**20

    vectors = folder / "vectors"
    out = {"vectors": size(vectors / "passages.npy"),
           "ann": size(vectors / "ann.faiss") if (vectors / "ann.faiss").exists() else 0.0,
           "sentences": size(folder / "sentences"), "tokens": size(folder / "tokens"),
           "bm25": size(folder / "bm25"), "sqlite": size(folder / "meta.sqlite")}
    out["total"] = sum(out.values())
    return out


# -- the benchmark --------------------------------------------------------------------------

TARGETS = {"query_p50_ms": 10.0, "query_p99_ms": 50.0, "recall_at_10": 0.98, "load_s": 2.0,
           "peak_rss_mb": 2.5 * 1024}
# At ten million passages (issue 24; `make bench-10m`): no load-time target.
TARGETS_10M = {"query_p50_ms": 25.0, "query_p99_ms": 100.0, "recall_at_10": 0.95,
               "peak_rss_mb": 6 * 1024}


def targets(passages: int) -> dict[str, float]:
    """The targets a run at `passages` is held to."""
    return TARGETS_10M if passages >= 10_000_000 else TARGETS


def run(passages: int = 1_000_000, questions: int = 300, warmup: int = 30, rounds: int = 3,
        rebuild: bool = False, data: Path = DATA, cache: Path = CACHE, log: bool = True,
        stream: bool = False) -> dict:
    """Build (or reuse) the index of `passages` passages and measure it: a flat dict of
    plain numbers (milliseconds, seconds, megabytes, shares). Each of `questions` real
    SQuAD questions is asked `rounds` times (after `warmup` others). `stream`: build it a
    chunk at a time even below STREAM_MIN (to compare the two builds)."""
    embedder = Embedder()
    info = build(passages, embedder, data, cache, rebuild, log, stream)
    index_dir = _folder(cache, passages, stream) / "index"
    timed, warm = _questions(data, questions, warmup)
    qpath, out, floor_out = (_folder(cache, passages, stream) / name
                             for name in ("questions.json", "child.json", "floor.json"))
    _write_json(qpath, {"timed": timed, "warmup": warm, "rounds": rounds})
    # Above STREAM_MIN the vectors outgrow the memory (36 GB at ten million on a 24 GB
    # machine): they stay on disk, read by row as questions need them.
    big = passages > STREAM_MIN
    warm_s = warm_page_cache(index_dir, BIG_FILES if big else ())
    _say(log, f"asking {len(timed)} questions in a fresh process")
    child = _subprocess(["--child", str(index_dir), str(qpath), str(out)], out)
    load_avg = os.getloadavg()[0]  # shared machine: how busy it was over the timed asks
    floor = _subprocess(["--floor", str(qpath), str(floor_out)], floor_out)
    _say(log, "checking recall against exact search")
    index = FolderIndex.load(index_dir)
    from retrieval.search.retriever import SearchSettings

    candidates = SearchSettings().candidates
    flat = None if big else _flat(index)
    vectors = np.load(index_dir / index.manifest.folder / "vectors" / "passages.npy",
                      mmap_mode="r")
    dense = _dense_checks(index, vectors, flat, embedder.encode(timed), candidates)
    agreement = float("nan") if flat is None else _hybrid_agreement(index, flat, embedder,
                                                                    timed[:100])
    del flat, vectors
    lat = np.array(child["latencies_ms"])
    result = {
        "passages": passages, "sentences": info["sentences"], "questions": len(timed),
        "asks": len(lat),
        "nlist": int(info["ann"][3:]) if info["ann"].startswith("ivf") else 0,
        "nprobe": info["nprobe"],
        "encode_passages_per_s": info["encode_passages_per_s"],
        "encode_load_avg": info.get("encode_load_avg", float("nan")),
        "encode_sample_passages_per_s": encode_rate(data, embedder),
        **{f"noise_{k}": v for k, v in info.get("noise", {}).items()},
        "query_p50_ms": float(np.percentile(lat, 50)),
        "query_p90_ms": float(np.percentile(lat, 90)),
        "query_p99_ms": float(np.percentile(lat, 99)),
        "query_max_ms": float(lat.max()),
        **{f"stage_{k}_ms": v for k, v in child["stages_ms"].items()},
        "floor_encode_ms": floor["encode_p50_ms"],
        "floor_bm25s_full_ms": _bm25_floor(index_dir, timed[:100], candidates),
        **dense,
        "hybrid_top5_same": agreement, "load_avg": load_avg,
        "load_s": child["load_s"], "rss_after_load_mb": child["rss_after_load_mb"],
        "peak_rss_mb": child["peak_rss_mb"], "peak_rss_gb": child["peak_rss_mb"] / 1024,
        "floor_rss_mb": floor["peak_rss_mb"], "page_cache_warm_s": warm_s,
        **{f"disk_{k}_mb": v for k, v in disk_mb(index_dir).items()},
        **{f"build_{k}_s": v for k, v in info["build_s"].items()},
    }
    result["build_total_s"] = sum(info["build_s"].values())
    return result


def markdown(r: dict) -> str:
    """The figures as a small Markdown table."""
    goal = targets(r["passages"])

    def ok(key: str, below: bool = True) -> str:
        if key not in goal:
            return ""
        return "yes" if (r[key] < goal[key]) == below else "**no**"

    def aim(key: str, unit: str = "", below: bool = True) -> str:
        return f"{'<' if below else '≥'} {goal[key]:,g}{unit}" if key in goal else ""

    flat = ("not timed (the vectors do not fit in memory)" if r["flat_search_ms"] != r[
        "flat_search_ms"] else f"exact flat {r['flat_search_ms']:.1f} ms")
    same = r["hybrid_top5_same"]
    rows = [
        ("query p50 (full `ask`)", f"{r['query_p50_ms']:.1f} ms",
         f"encode alone {r['floor_encode_ms']:.1f} ms", aim("query_p50_ms", " ms"),
         ok("query_p50_ms")),
        ("query p99", f"{r['query_p99_ms']:.1f} ms", f"p90 {r['query_p90_ms']:.1f} ms, "
         f"max {r['query_max_ms']:.1f} ms", aim("query_p99_ms", " ms"), ok("query_p99_ms")),
        ("dense search (ANN)", f"{r['stage_ann_ms']:.2f} ms", flat, "", ""),
        ("BM25 candidates", f"{r['stage_bm25_ms']:.2f} ms",
         f"bm25s full scoring {r['floor_bm25s_full_ms']:.1f} ms", "", ""),
        ("ranking (both + fusion + sentences)", f"{r['stage_rank_ms']:.2f} ms", "", "", ""),
        ("SQLite fetch / quotes", f"{r['stage_fetch_ms']:.2f} / {r['stage_quotes_ms']:.2f} ms",
         "", "", ""),
        (f"dense recall@{K} vs exact", f"{r['recall_at_10']:.3f}",
         f"raw ANN top {K}: {r['ann_raw_recall_at_10']:.3f}", aim("recall_at_10", below=False),
         ok("recall_at_10", below=False)),
        ("hybrid top 5 same as with exact search",
         "not measured (exact search needs the vectors in memory)" if same != same
         else f"{same:.0%}", "", "", ""),
        ("`FolderIndex.load`", f"{r['load_s']:.2f} s", "", aim("load_s", " s"), ok("load_s")),
        ("peak RSS, load + answer", f"{r['peak_rss_mb']:,.0f} MB",
         f"model alone {r['floor_rss_mb']:,.0f} MB", aim("peak_rss_mb", " MB"),
         ok("peak_rss_mb")),
        ("encode throughput (real text)", f"{r['encode_sample_passages_per_s']:.0f} passages/s",
         f"all {REAL:,} when cached: {r['encode_passages_per_s']:.0f}/s "
         f"(load {r['encode_load_avg']:.1f})", "", ""),
        ("machine load (1 min average) while measuring", f"{r['load_avg']:.1f}",
         "2 cores", "", ""),
    ]
    disk = ", ".join(f"{k} {r[f'disk_{k}_mb']:,.0f}" for k in
                     ("vectors", "ann", "sentences", "bm25", "sqlite"))
    build = ", ".join(f"{k.replace('_', ' + ')} {r[f'build_{k}_s']:.0f}" for k in
                      ("generate", "texts_sqlite", "vectors", "ann", "bm25", "sqlite", "copies",
                       "background", "save")
                      if f"build_{k}_s" in r)  # indexes cached before "copies" lack it
    lines = [f"Byline at {r['passages']:,} passages ({r['sentences']:,} sentences), "
             f"{r['questions']} SQuAD questions asked {r['asks'] // r['questions']} times each, "
             "dense search "
             + (f"IVF {r['nlist']} lists, nprobe {r['nprobe']}" if r["nlist"] else "exact"),
             "", "| figure | Byline | floor / beside | target | met |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", f"Disk: {r['disk_total_mb']:,.0f} MB ({disk}).",
              f"Build: {r['build_total_s']:.0f} s ({build}; encoding not included)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached index")
    parser.add_argument("--stream", action="store_true",
                        help=f"build a chunk at a time (always above {STREAM_MIN:,} passages)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--record", type=Path, metavar="PREFIX",
                        help="also write PREFIX.json and PREFIX.md (`make bench-10m`: "
                        "docs/scale-10m) and the 10M row of docs/performance.md")
    parser.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return
    if args.floor:
        _floor_child(*args.floor)
        return
    result = run(args.passages, args.questions, rebuild=args.rebuild, data=args.data,
                 stream=args.stream)
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    if args.record:
        record(result, args.record)


def record(result: dict, prefix: Path) -> None:
    """Keep a run's figures (`make bench-10m`): PREFIX.json, PREFIX.md, and the 10M row
    of docs/performance.md rewritten in place (the rest of that page is `make bench`'s)."""
    from bench.performance import machine
    from bench.report import TEN_MILLION, ten_million_row

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip() or "unknown"
    m = machine()
    figures = {**result, "date": m["date"], "commit": commit, "machine": m}
    _write_json(prefix.with_suffix(".json"), figures)
    prefix.with_suffix(".md").write_text(
        f"# Scale: {result['passages']:,} passages\n\nGenerated by `make bench-10m` "
        f"(`bench/scale.py`, `bench/stream.py`) at {commit}, {m['date']}, on {m['cpu']}, "
        f"{m['cores']} cores, {m['memory']}; do not edit by hand. How the corpus is made: "
        "bench/scale.py's docstring; how it is built a chunk at a time: bench/stream.py's.\n\n"
        + markdown(result) + "\n", encoding="utf-8")
    page = ROOT / "docs" / "performance.md"
    lines = page.read_text(encoding="utf-8").splitlines()
    lines = [ten_million_row(figures) if line.startswith(TEN_MILLION) else line
             for line in lines]
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
