"""The `byline` command: index, ask, sources — a thin shell over the retrieval library.

The core never imports the Discord bot: `byline bot` hands over to `byline-bot` (see cmd_bot).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.cli.config import Settings, load_env, private_files
from retrieval.corpus import LoadReport, Passage
from retrieval.corpus.meta import clean_text
from retrieval.errors import BylineError, IndexMissing, describe_os_error
from retrieval.logs import configure
from retrieval.model.embed import ENCODERS
from retrieval.search.answer import Answer, Hit, check_question
from retrieval.search.citations import PLAIN, UNDATED, Style, cite, copy_names, day
from retrieval.search.filters import Filters
from retrieval.search.retriever import Retriever
from retrieval.search.settings import METHODS
from retrieval.store import backend, open_store
from retrieval.version import __version__

if TYPE_CHECKING:
    from retrieval.search.timeline import Story

log = logging.getLogger("byline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byline", description="Answer questions about news coverage with cited passages."
    )
    parser.add_argument("--version", action="version", version=f"byline {__version__}")
    add_settings_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        help="re-embed everything (default: reuse the vectors of unchanged paragraphs)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once if another process is writing the index (default: wait for it)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("check", help="check the index's health: files, checksums, values")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_check)

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

    from retrieval.cli.follow import add_parser as add_follow_parser

    add_follow_parser(sub).set_defaults(func=cmd_follow)

    p = sub.add_parser("ask", help="ask a question; prints the cited passages that answer it")
    p.add_argument("question", nargs="+", help="the question (quotes optional)")
    p.add_argument("-k", type=int, default=5, metavar="N", help="passages to show (1-20)")
    p.add_argument("--as-of", metavar="DATE",
                   help="answer as of this date: later coverage is left out (default: now)")
    _filter_options(p)
    p.add_argument("--after", action="append", default=[], metavar="QUESTION",
                   help="an earlier question of the conversation: the question is a "
                   "follow-up to it (repeat, oldest first)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="ask questions one per line; each may follow up on the "
                       "ones before")
    p.add_argument("-k", type=int, default=3, metavar="N", help="passages to show (1-20)")
    p.add_argument("--as-of", metavar="DATE",
                   help="answer as of this date: later coverage is left out (default: now)")
    _filter_options(p)
    p.add_argument("--json", action="store_true",
                   help="read questions from standard input, print one JSON answer per line")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("timeline", help="a topic's stories in date order, one line each")
    p.add_argument("topic", nargs="+", help="the topic (quotes optional)")
    _filter_options(p)
    p.add_argument("-n", type=int, default=20, metavar="N",
                   help="most relevant stories to list (1-50, default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_timeline)

    p = sub.add_parser("sources", help="list the articles in the index")
    p.add_argument("--sort", choices=("id", "date", "outlet", "title"), default="id",
                   help="order of the list (date: newest first; default: id)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("extract", help="show what Byline keeps of a file or folder, cleaned")
    p.add_argument("path", type=Path, help="an article file (any format) or a corpus folder")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per article per line (default: readable text)")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("eval", help="measure retrieval, quotes and refusals on a dataset")
    p.add_argument(
        "dataset",
        type=Path,
        help="SQuAD JSON or a news dev set folder (questions.jsonl + corpus/), both indexed "
        'on the fly, or a JSONL of {"question", "gold"} rows (asked against the current index)',
    )
    p.add_argument(
        "--off-topic",
        type=Path,
        metavar="OTHER",
        help="questions that should be refused (SQuAD JSON or JSONL)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="hybrid",
        help="ranking to evaluate (default: hybrid, what ask uses)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("feedback", help="export the 👍/👎 ratings readers gave answers")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("migrate", help="copy an index folder into a PostgreSQL store (no "
                       "re-embedding), or bring a store's tables up to date")
    p.add_argument("--from", dest="source", type=Path, metavar="FOLDER",
                   help="the index folder to copy (default: only upgrade the store's tables)")
    p.add_argument("--to", dest="target", metavar="URL",
                   help="the store: postgresql://user@host/db?sslmode=... (default: "
                   "$BYLINE_STORE); the password from PGPASSWORD or ~/.pgpass")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("bot", help="run the Discord bot: the same as `byline-bot`")
    p.set_defaults(func=cmd_bot)
    for name in STORE_COMMANDS:  # `byline ask --store URL ...` as well as `byline --store URL ask`
        _store_option(sub.choices[name], default=argparse.SUPPRESS)
    return parser


# The commands that read or write the index: they take --store after their name too.
STORE_COMMANDS = ("index", "check", "follow", "ask", "chat", "timeline", "sources", "eval",
                  "bot")
STORE_HELP = ("where the index lives: a postgresql:// URL or a folder (default: $BYLINE_STORE, "
              "else the index folder)")


def _store_option(parser: argparse.ArgumentParser, default: object = None) -> None:
    """--store URL; after a command's name its default is SUPPRESS, so it never hides a
    --store given before the name."""
    parser.add_argument("--store", metavar="URL", default=default, help=STORE_HELP)


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """--index-dir, --model, --encoder: the options over Settings (`byline`, `byline-bot`)."""
    parser.add_argument(
        "--index-dir", type=Path, help="index folder (default: $BYLINE_INDEX_DIR or .byline/index)"
    )
    _store_option(parser)
    parser.add_argument(
        "--model",
        help="sentence-transformers model (default: $BYLINE_MODEL or the bundled all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--encoder",
        choices=ENCODERS,
        help="how the model runs (default: $BYLINE_ENCODER, else onnx-int8 for the bundled "
        "model and torch for others)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The Settings: the environment (after reading `.env`, once), then the options."""
    load_env()
    env = Settings.from_env()
    return Settings(
        index_dir=args.index_dir or env.index_dir,
        model=args.model or env.model,
        corpus_dir=env.corpus_dir,
        encoder=args.encoder or env.encoder,
        store=getattr(args, "store", None) or env.store,
    )


def _filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="DATE",
                   help="only coverage dated on or after DATE (YYYY-MM-DD, 'last week', ...)")
    p.add_argument("--until", metavar="DATE", help="only coverage dated on or before DATE")
    p.add_argument("--outlet", metavar="NAME", help="only this outlet's coverage")


def _filters(args: argparse.Namespace) -> Filters:
    """The filters the options give (BadQuestion for a date that cannot be read)."""
    return Filters.parse(as_of=getattr(args, "as_of", None), since=args.since,
                         until=args.until, outlet=args.outlet)


def main(argv: Sequence[str] | None = None) -> int:
    configure(logging.WARNING, "%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    try:
        with private_files():
            return args.func(args, settings)
    except BylineError as exc:
        print(f"byline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        done = ("pages saved so far are kept and recorded" if args.command == "fetch"
                else "nothing was changed")
        print(f"byline: interrupted; {done}.", file=sys.stderr)
        return 130
    except OSError as exc:  # what the operating system refused, in one line
        print(f"byline: {describe_os_error(exc)}.", file=sys.stderr)
        return 1
    except Exception:  # the outermost edge: keep the traceback, give a short line
        log.exception("unexpected error")
        print("byline: unexpected error (traceback above); please report it.", file=sys.stderr)
        return 1


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
        _print_json(
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
        _print_json({"folder": str(folder), "failed": failed,
                     "results": [r.to_dict() for r in results]})
    else:
        print(summary(results))
    return 1 if failed else 0


def cmd_follow(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.cli.follow import run

    return run(args, settings)


def open_retriever(settings: Settings) -> Retriever:
    """The Retriever over the configured index, built from the default corpus if missing."""
    from retrieval.build.pipeline import index_corpus
    from retrieval.model.embed import Embedder
    from retrieval.search.calibrate import calibrated
    from retrieval.search.retriever import Retriever

    embedder = Embedder(settings.model, encoder=settings.encoder)
    try:
        index = open_store(settings.location, model=embedder.name)
    except IndexMissing:
        corpus = settings.default_corpus()
        print(
            f"No index at {backend(settings.location).describe()} yet; building one from "
            f"{corpus} first.",
            file=sys.stderr,
        )
        index = index_corpus(corpus, settings.location, embedder, calibrate=calibrated)
    return Retriever(index, embedder)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    question = check_question(" ".join(args.question))  # fail fast, before loading a model
    if not 1 <= args.k <= 20:
        raise BylineError("-k must be between 1 and 20.")
    earlier = [check_question(q) for q in args.after]
    filters = _filters(args)
    retriever = open_retriever(settings)
    if earlier:
        from retrieval.search.conversation import Conversation

        conversation = Conversation()
        for before in earlier:
            conversation.ask(retriever, before, k=args.k, filters=filters)
        answer = conversation.ask(retriever, question, k=args.k, filters=filters)
    else:
        answer = retriever.ask(question, k=args.k, filters=filters)
    if args.json:
        _print_json(answer.to_dict())
    else:
        _print_answer(answer)
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    """A question per line, each answered in the conversation so far; an empty line, EOF
    or Ctrl-C ends it."""
    from retrieval.errors import BadQuestion
    from retrieval.search.conversation import Conversation

    if not 1 <= args.k <= 20:
        raise BylineError("-k must be between 1 and 20.")
    filters = _filters(args)
    retriever = open_retriever(settings)
    conversation = Conversation()
    interactive = not args.json and sys.stdin.isatty()
    if interactive:
        print("Ask about the coverage; a question may follow up on the ones before. An empty "
              "line ends.", file=sys.stderr)
    while True:
        try:
            line = input("> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            break
        if not line.strip():
            if interactive:
                break
            continue
        try:
            answer = conversation.ask(retriever, check_question(line), k=args.k,
                                      filters=filters)
        except BadQuestion as exc:
            if args.json:
                _print_json({"question": line, "error": str(exc)}, indent=None)
            else:
                print(f"byline: {exc}", file=sys.stderr)
            continue
        if args.json:
            _print_json(answer.to_dict(), indent=None)
        else:
            _print_answer(answer)
    return 0


def cmd_timeline(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.search.timeline import timeline

    topic = check_question(" ".join(args.topic))
    if not 1 <= args.n <= 50:
        raise BylineError("-n must be between 1 and 50.")
    filters = _filters(args)
    result = timeline(open_retriever(settings), topic, n=args.n, filters=filters)
    if args.json:
        _print_json(result.to_dict())
        return 0
    if not result.covered:
        print(f"The coverage says nothing about “{topic}”. Run `byline sources` to see what "
              "it covers.")
        return 0
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    for story in result.stories:
        line = timeline_line(story)
        console.print(escape(line))
    return 0


def timeline_line(story: Story) -> str:
    """`2022-09-06  BBC  Headline: best sentence (also in: …)` for one story."""
    c = cite(story, PLAIN, story.also_in)
    return (f"{c.date or UNDATED:<10}  {c.outlet or '-'}  {c.title}: "
            f"{story.quote}{f' (also in: {c.also_in})' if c.also_in else ''}")


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    return backend(settings.location).check(args.json)


def cmd_sources(args: argparse.Namespace, settings: Settings) -> int:
    articles = open_store(settings.location, model=settings.model).articles()
    if args.sort == "date":  # newest first; undated last
        from retrieval.corpus.meta import date_key

        articles.sort(key=lambda a: date_key(a.date), reverse=True)
    elif args.sort in ("outlet", "title"):
        articles.sort(key=lambda a: (getattr(a, args.sort) or "\uffff").casefold())
    if args.json:
        _print_json([a.__dict__ for a in articles])
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("Article", "Outlet", "Date", "Passages", "Source")
    for a in articles:
        table.add_row(a.title, a.outlet or "", day(a.date) or "", str(a.passages),
                      clean_text(a.source) or "")  # a file name may hold escapes or newlines
    Console().print(table)
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.build.pipeline import build_index
    from retrieval.model.embed import Embedder
    from retrieval.search.evaluate import evaluate, load_dataset
    from retrieval.search.retriever import SearchSettings

    articles, questions = load_dataset(args.dataset)
    off_topic = load_dataset(args.off_topic)[1] if args.off_topic else None
    search = SearchSettings(method=args.method)
    if articles is None:  # JSONL: the questions are about the current index
        retriever = open_retriever(settings)
        retriever = Retriever(retriever.index, retriever.embedder, search)
    else:
        embedder = Embedder(settings.model, encoder=settings.encoder)
        index = build_index(articles, embedder, corpus=str(args.dataset))
        retriever = Retriever(index, embedder, search)  # measures the background too
    report = {
        "dataset": str(args.dataset),
        "method": args.method,
        **evaluate(retriever, questions, off_topic),
    }
    if args.json:
        _print_json(report)
        return 0
    for key, value in report.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:>20}  {shown}")
    return 0


def cmd_feedback(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from retrieval.search.feedback import default_path, read_feedback

    path = Path(os.environ.get("BYLINE_FEEDBACK_DB") or default_path(settings.index_dir))
    rows = read_feedback(path) if path.exists() else []
    if args.json:
        _print_json([r.__dict__ for r in rows])
        return 0
    if not rows:
        print(f"No feedback yet ({path}).")
        return 0
    up = sum(r.verdict == "up" for r in rows)
    print(f"{len(rows)} ratings: {up} helpful, {len(rows) - up} not helpful ({path})")
    for r in rows:
        mark = "+" if r.verdict == "up" else "-"
        print(f"{r.created}  {mark}  {r.question}  [{', '.join(r.passage_ids)}]")
    return 0


def cmd_bot(args: argparse.Namespace, settings: Settings) -> int:
    """`byline bot` becomes `byline-bot` (`python -m bot`) in this same process, which is
    replaced: signals and the exit status are the bot's. The core never imports the bot."""
    import importlib.util
    import os

    if importlib.util.find_spec("bot") is None:
        raise BylineError("The Discord bot is not installed with this Byline; reinstall it "
                          "(pip install byline) and run byline-bot.")
    argv = [sys.executable, "-m", "bot"]
    for option, value in (("--index-dir", args.index_dir), ("--store", args.store),
                          ("--model", args.model), ("--encoder", args.encoder)):
        if value is not None:
            argv += [option, str(value)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 1  # not reached


def _print_json(data: object, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=indent) + "\n")
    sys.stdout.flush()


CLI_CITATION = Style(source=True, copy_dates=True)  # plain text: rich escapes it on print


def citation(p: Passage, n: int) -> str:
    """`[n] Title — Outlet, Date — ¶p (source)` with the parts that are known."""
    return f"[{n}] {cite(p, CLI_CITATION).line()}"


def also_in(hit: Hit) -> str:
    """`also in: Outlet (Date), Other Outlet` for the other articles carrying the passage."""
    return f"also in: {copy_names(hit.also_in, CLI_CITATION)}"


def _print_answer(answer: Answer) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(f"[bold]Q:[/bold] {escape(answer.question)}")
    if not answer.answered:
        console.print(
            "The coverage does not answer this question. "
            "Run `byline sources` to see what it covers."
        )
        return
    for hit in answer.hits:
        console.print()
        console.print(
            f"[bold cyan][{hit.rank}][/bold cyan] [dim]score {hit.score:.2f}[/dim]  "
            + ("[dim](headline)[/dim] " if hit.quote_from == "headline" else "")
            + f"[bold]{escape(hit.quote)}[/bold]"
        )
        if hit.quote != hit.passage.text:
            console.print(f"    {escape(hit.passage.text)}", style="dim", highlight=False)
        console.print(
            f"    {escape(citation(hit.passage, hit.rank))}", style="green", highlight=False
        )
        if hit.also_in:
            console.print(f"    {escape(also_in(hit))}", style="green", highlight=False)


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
    result = store.migrate_from(index, str(args.source or ""), progress=not args.json)
    if args.json:
        _print_json(result)
    else:
        print(result["message"])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

