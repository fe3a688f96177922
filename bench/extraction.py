"""HTML extraction quality and speed (`byline extract` vs trafilatura alone); docs/extraction.md.

Quality on the dev half of the ScrapingHub article-extraction benchmark (../shared/data/
article-extraction-dev, see SOURCES.md there), with the benchmark's own metric. Speed: pages/s
of extraction, and optionally a 1,000-page HTML folder indexed end to end, extraction seconds
beside embedding seconds.

    .venv/bin/python -m bench.extraction ../shared/data            # quality + pages/s
    .venv/bin/python -m bench.extraction ../shared/data --index    # + 1,000 pages indexed
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from retrieval.corpus.html import parse_html

ROOT = Path(__file__).resolve().parent.parent

DEV = "article-extraction-dev"
SHINGLE = 4
_TOKEN = re.compile(r"\w+")

Extractor = Callable[[bytes], str]


def byline_body(raw: bytes) -> str:
    """What Byline indexes for a page: its body paragraphs, after the cleaning rules."""
    return "\n\n".join(parse_html(raw, "page", "page.html").paragraphs)


def trafilatura_body(raw: bytes) -> str:
    """trafilatura's default extraction, alone."""
    import trafilatura

    return trafilatura.extract(raw) or ""


EXTRACTORS: dict[str, Extractor] = {"byline extract": byline_body,
                                    "trafilatura alone": trafilatura_body}


def load_dev(data: Path) -> list[tuple[str, bytes, str]]:
    """(key, page bytes, true body) for every page of the dev half, in key order."""
    truth = json.loads((data / DEV / "ground-truth.json").read_text(encoding="utf-8"))
    return [(key, gzip.decompress((data / DEV / "html" / f"{key}.html.gz").read_bytes()),
             truth[key]["articleBody"]) for key in sorted(truth)]


def shingles(text: str) -> Counter[tuple[str, ...]]:
    """The benchmark's shingles: runs of 4 `\\w+` tokens (a shorter text is one shingle)."""
    tokens = _TOKEN.findall(text or "")
    n = min(SHINGLE, len(tokens))
    return Counter(tuple(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1))
                   if tokens)


def page_counts(true: str, pred: str) -> tuple[float, float, float]:
    """One page's TP, FP, FN over shingles, normalised by their sum."""
    t, p = shingles(true), shingles(pred)
    tp = sum((t & p).values())
    fp = sum((p - t).values())
    fn = sum((t - p).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def scores(counts: list[tuple[float, float, float]]) -> dict[str, float]:
    """Mean precision and recall over pages (as the benchmark skips undefined ones), their F1."""
    def ratio(tp: float, other: float, fp: float, fn: float) -> float:
        if fp == fn == 0:
            return 1.0
        return tp / (tp + other) if tp else 0.0

    precision = statistics.mean(ratio(tp, fp, fp, fn) for tp, fp, fn in counts if tp + fp)
    recall = statistics.mean(ratio(tp, fn, fp, fn) for tp, fp, fn in counts if tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def evaluate(pages: list[tuple[str, bytes, str]], extract: Extractor) -> dict:
    """Quality and speed of one extractor over the pages."""
    counts, per_page = [], {}
    start = time.perf_counter()
    for key, raw, true in pages:
        pred = extract(raw)
        counts.append(page_counts(true, pred))
        per_page[key] = counts[-1]
    seconds = time.perf_counter() - start
    return {**scores(counts), "pages_per_s": len(pages) / seconds, "per_page": per_page}


def measure_index(pages: list[tuple[str, bytes, str]], n: int = 1000) -> dict:
    """`n` HTML pages (the dev pages repeated under new names) in a folder, indexed end to end
    by `index_corpus` (walk, extract, clean, embed, save); the walk and extraction alone
    (`scan_corpus`) are timed first."""
    from retrieval import index_corpus
    from retrieval.corpus import scan_corpus
    from retrieval.model.embed import Embedder

    embedder = Embedder()
    embedder.model  # noqa: B018 - the ONNX graph is loaded before timing
    tmp = Path(tempfile.mkdtemp(prefix="byline-extract-"))
    try:
        corpus = tmp / "corpus"
        corpus.mkdir()
        for i in range(n):
            key, raw, _ = pages[i % len(pages)]
            # A per-copy comment keeps every file's bytes (and hash) distinct.
            (corpus / f"{i:04d}-{key[:12]}.html").write_bytes(raw + f"<!-- copy {i} -->".encode())
        start = time.perf_counter()
        report = scan_corpus(corpus)
        extract_s = time.perf_counter() - start
        start = time.perf_counter()
        index = index_corpus(corpus, tmp / "index", embedder, progress=False, incremental=False)
        total_s = time.perf_counter() - start
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rest = total_s - extract_s  # embedding, BM25, store
    return {"pages": n, "articles": len(report.articles), "passages": len(index),
            "extract_s": extract_s, "index_s": total_s, "rest_s": rest,
            "extract_vs_rest": extract_s / rest}


def render(results: dict[str, dict], pages: int, index: dict | None, command: str) -> str:
    """The Markdown page docs/extraction.md."""
    lines = ["# HTML extraction", "",
             f"Dev half of the ScrapingHub article-extraction benchmark ({pages} pages, "
             "../shared/data/article-extraction-dev), scored with the benchmark's metric: "
             "`\\w+` tokens, 4-token shingles, per-page TP/FP/FN normalised by their sum, "
             "precision and recall averaged over pages, F1 of the two averages. Byline's "
             "body is the paragraphs it indexes (title and metadata excluded), joined. "
             f"trafilatura {metadata.version('trafilatura')}, {os.cpu_count()} CPU cores.", "",
             "| extractor | precision | recall | F1 | pages/s |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} "
                     f"| {r['pages_per_s']:.1f} |")
    if index:
        lines += ["", f"End to end: a folder of {index['pages']} HTML pages "
                  f"({index['articles']} articles, {index['passages']} passages) indexed by "
                  f"`byline index` in {index['index_s']:.1f} s; reading and extracting them "
                  f"alone takes {index['extract_s']:.1f} s (pages parsed in worker "
                  "processes, one per core up to four: retrieval/corpus/workers.py) "
                  f"({index['pages'] / index['extract_s']:.0f} pages/s), the rest "
                  f"(embedding, BM25, "
                  f"store) {index['rest_s']:.1f} s: "
                  f"extraction costs {index['extract_vs_rest']:.2f}× the embedding time "
                  "(target: under 1/3)."]
    lines += ["", "Tried on this dev half and not kept (Byline F1): trafilatura's "
              "favor_precision 0.962, favor_recall 0.962. Byline's reader takes trafilatura's "
              "body tree (comments off, tables and links in), drops link lists and short "
              "all-link lines, opens each passage with its heading or `...:` lead-in, keeps "
              "short list items and table rows together, then applies Byline's cleaning "
              "rules (retrieval/corpus/clean.py).", "", "Reproduce:", "", f"    {command}", ""]
    return "\n".join(lines)


def run(data: Path, pages_indexed: int = 1000) -> dict:
    """For `make bench`: extraction quality and pages/s on the dev half, and a folder of
    `pages_indexed` pages indexed end to end; `markdown` is this module's own page."""
    if not (data / DEV / "ground-truth.json").is_file():
        raise FileNotFoundError(f"{DEV} not found in {data}")
    pages = load_dev(data)
    results = {name: evaluate(pages, fn) for name, fn in EXTRACTORS.items()}
    index = measure_index(pages, pages_indexed)
    mine = results["byline extract"]
    markdown = render(results, len(pages), index, "make bench (or: "
                      ".venv/bin/python -m bench.extraction ../shared/data --index)")
    return {"f1": mine["f1"], "trafilatura_f1": results["trafilatura alone"]["f1"],
            "pages_per_s": mine["pages_per_s"], **index,
            "markdown": markdown.split("\n", 2)[2]}  # without its own "# " heading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?", default=ROOT.parent / "shared" / "data")
    parser.add_argument("--index", action="store_true",
                        help="also index 1,000 HTML pages end to end (embedding time)")
    parser.add_argument("--worst", type=int, default=0, help="list the N worst pages")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "extraction.md")
    args = parser.parse_args()
    if not (args.data / DEV / "ground-truth.json").is_file():
        print(f"SKIPPED: {DEV} not found in {args.data}.")
        return
    pages = load_dev(args.data)
    results = {name: evaluate(pages, fn) for name, fn in EXTRACTORS.items()}
    print(f"{'extractor':<20} {'precision':>9} {'recall':>7} {'F1':>6} {'pages/s':>8}")
    for name, r in results.items():
        print(f"{name:<20} {r['precision']:>9.3f} {r['recall']:>7.3f} {r['f1']:>6.3f} "
              f"{r['pages_per_s']:>8.1f}")
    if args.worst:
        mine, base = results["byline extract"]["per_page"], results["trafilatura alone"]
        for key in sorted(mine, key=lambda k: _f1(mine[k]))[:args.worst]:
            print(f"  {key[:16]}  byline {_f1(mine[key]):.3f}  "
                  f"trafilatura {_f1(base['per_page'][key]):.3f}  {mine[key]}")
    index = measure_index(pages) if args.index else None
    if index:
        print(f"index: {index}")
    command = ".venv/bin/python -m bench.extraction ../shared/data" + (
        " --index" if args.index else "")
    args.out.write_text(render(results, len(pages), index, command), encoding="utf-8")
    print(f"written to {args.out}")


def _f1(counts: tuple[float, float, float]) -> float:
    tp, fp, fn = counts
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


if __name__ == "__main__":
    main()
