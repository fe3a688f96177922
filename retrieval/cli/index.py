"""`byline index`, `check`, `fetch`, `extract` and `migrate`: the commands that build and keep
the index."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.cli.config import Settings
from retrieval.cli.options import print_json
from retrieval.corpus import LoadReport
from retrieval.errors import BylineError
from retrieval.store import backend

if TYPE_CHECKING:
    pass

def add_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build the index from a folder of articles")
    p.add_argument(
        "corpus",
        nargs="?",
        type=Path,
        help="folder of articles: .txt/.md, saved pages (.html/.htm, also .gz), RSS/Atom "
        "feeds (.xml/.rss/.atom), exports (.jsonl/.json/.csv) (default: $BYLINE_CORPUS or "
        "seeds/)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (and change nothing) if any file or row has to be skipped",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="re-embed everything and, in a database, publish every row (default: reuse "
        "the vectors of unchanged paragraphs and publish what changed)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once if another process is writing the index (default: wait for it)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_index)


def add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check the index's health: files, checksums, values")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_check)


def add_fetch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch", help="download pages (or a feed's articles) into the corpus")
    p.add_argument("urls", nargs="*", metavar="URL", help="pages to download (http or https)")
    p.add_argument("--feed", action="append", default=[], metavar="URL",
                   help="an RSS/Atom feed: store it and fetch each article not stored yet")
    p.add_argument("--into", type=Path, metavar="FOLDER",
                   help="where to save (default: $BYLINE_CORPUS or seeds/)")
    p.add_argument("--refresh", action="store_true",
                   help="ask again for pages already stored (conditional GET)")
    p.add_argument("--rate", type=float, default=None, metavar="N",
                   help="at most N requests per host per second (default: 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_fetch)


def add_extract(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="show what Byline keeps of a file or folder, cleaned")
    p.add_argument("path", type=Path, help="an article file (any format) or a corpus folder")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per article per line (default: readable text)")
    p.set_defaults(func=cmd_extract)


def add_migrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="copy an index folder into a PostgreSQL store (no "
                       "re-embedding), or bring a store's tables up to date")
    p.add_argument("--from", dest="source", type=Path, metavar="FOLDER",
                   help="the index folder to copy (default: only upgrade the store's tables)")
    p.add_argument("--to", dest="target", metavar="URL",
                   help="the store: postgresql://user@host/db?sslmode=... (default: "
                   "$BYLINE_STORE); the password from PGPASSWORD or ~/.pgpass")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_migrate)



def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.build.pipeline import index_corpus
    from retrieval.model.embed import Embedder
    from retrieval.search.calibrate import calibrated

    corpus = args.corpus or settings.default_corpus()
    start = time.perf_counter()

    def tell(report: LoadReport) -> None:  # one line per file skipped, before embedding
        for problem in report.problems:
            print(f"byline: {problem}", file=sys.stderr)

    index = index_corpus(
        corpus,
        settings.location,
        Embedder(settings.model, encoder=settings.encoder),
        incremental=not args.full,
        calibrate=calibrated,
        strict=args.strict,
        on_report=tell,
        wait=not args.no_wait,
        on_wait=lambda message: print(f"byline: {message}", file=sys.stderr),
    )
    seconds = time.perf_counter() - start
    m = index.manifest
    report = index.report
    if args.json:
        print_json(
            {
                "index_dir": backend(settings.location).describe(),
                "corpus": str(corpus),
                "files": report.files,
                "articles": m.articles,
                "passages": m.passages,
                "model": m.model,
                "encoder": m.encoder,
                "kernel": m.kernel,
                "embedded": m.passages - index.reused,
                "reused": index.reused,
                "seconds": round(seconds, 3),
                "problems": [p.to_dict() for p in report.problems],
            }
        )
    else:
        summary = report.summary()
        print(
            f"{summary[0].upper()}{summary[1:]}. {m.passages:,} passages from {corpus} -> "
            f"{backend(settings.location).describe()} ({seconds:.1f} s; "
            f"embedded {m.passages - index.reused:,}, "
            f"reused {index.reused:,} unchanged)"
        )
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    return backend(settings.location).check(args.json)


def cmd_fetch(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.feeds.fetch import Fetcher, FetchSettings, check_url, summary

    if not args.urls and not args.feed:
        raise BylineError("Give at least one URL to fetch, or --feed URL.")
    urls = [check_url(u) for u in args.urls]  # one bad argument stops before any request
    feeds = [check_url(u) for u in args.feed]
    folder = args.into or settings.corpus_to_write()
    fetch_settings = FetchSettings.for_cli(args.rate)
    with Fetcher(folder, fetch_settings, refresh=args.refresh) as fetcher:
        results = []
        for r in fetcher.fetch(urls, feeds):
            results.append(r)
            if args.json:
                continue
            if r.status == "failed":
                print(f"byline: failed {r.url}: {r.reason}", file=sys.stderr)
            elif r.status == "fetched":
                print(f"fetched {r.url} -> {folder / r.path}")
            elif r.status == "not_modified":
                print(f"not modified {r.url} ({folder / r.path})")
            else:
                print(f"already stored {r.url} ({folder / r.path})")
    failed = sum(r.status == "failed" for r in results)
    if args.json:
        print_json({"folder": str(folder), "failed": failed,
                     "results": [r.to_dict() for r in results]})
    else:
        print(summary(results))
    return 1 if failed else 0


def cmd_extract(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.corpus import read_article, scan_corpus

    if args.path.is_dir():
        report = scan_corpus(args.path)
        for problem in report.problems:
            print(f"byline: {problem}", file=sys.stderr)
        articles = report.articles
    else:
        articles = read_article(args.path)
    for a in articles:
        record = {"source": a.source, "id": a.id, "title": a.title, "date": a.date,
                  "outlet": a.outlet, "url": a.url, "author": a.author,
                  "paragraphs": list(a.paragraphs)}
        if args.json:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            continue
        meta = " · ".join(x for x in (a.outlet, a.date, a.author, a.url) if x)
        print(f"# {a.title}\n{a.id}{f' · {meta}' if meta else ''}\n")
        print("\n\n".join(f"[{n}] {t}" for n, t in enumerate(a.paragraphs, start=1)) + "\n")
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """`byline migrate [--from FOLDER] --to URL`: the store's tables brought up to date, then
    the folder's current generation copied in as the store's (vectors as they are; nothing
    is embedded). Copying a generation the store already serves does nothing."""
    target = args.target or settings.store
    if not target:
        raise BylineError("migrate needs --to postgresql://... (or BYLINE_STORE set to one).")
    store = backend(target)
    # every file of the folder checked: nothing damaged is copied
    index = backend(args.source).open(verify=True) if args.source else None
    result = store.migrate_from(index, str(args.source or ""), progress=not args.json,
                                on_wait=lambda message: print(f"byline: {message}",
                                                              file=sys.stderr))
    if args.json:
        print_json(result)
    else:
        print(result["message"])
    return 0
