"""`byline ask`, `chat`, `timeline` and `sources`: the commands that answer from the index."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from retrieval.cli.config import Settings
from retrieval.cli.options import filter_options, filters_from, open_retriever, print_json
from retrieval.corpus import Passage
from retrieval.corpus.meta import clean_text
from retrieval.errors import BylineError
from retrieval.search.answer import Answer, Hit, check_question
from retrieval.search.citations import PLAIN, UNDATED, Style, cite, copy_names, day
from retrieval.store import open_store

if TYPE_CHECKING:
    from retrieval.search.timeline import Story

def add_ask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="ask a question; prints the cited passages that answer it")
    p.add_argument("question", nargs="+", help="the question (quotes optional)")
    p.add_argument("-k", type=int, default=5, metavar="N", help="passages to show (1-20)")
    p.add_argument("--as-of", metavar="DATE",
                   help="answer as of this date: later coverage is left out (default: now)")
    filter_options(p)
    p.add_argument("--after", action="append", default=[], metavar="QUESTION",
                   help="an earlier question of the conversation: the question is a "
                   "follow-up to it (repeat, oldest first)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_ask)


def add_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="ask questions one per line; each may follow up on the "
                       "ones before")
    p.add_argument("-k", type=int, default=3, metavar="N", help="passages to show (1-20)")
    p.add_argument("--as-of", metavar="DATE",
                   help="answer as of this date: later coverage is left out (default: now)")
    filter_options(p)
    p.add_argument("--json", action="store_true",
                   help="read questions from standard input, print one JSON answer per line")
    p.set_defaults(func=cmd_chat)


def add_timeline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("timeline", help="a topic's stories in date order, one line each")
    p.add_argument("topic", nargs="+", help="the topic (quotes optional)")
    filter_options(p)
    p.add_argument("-n", type=int, default=20, metavar="N",
                   help="most relevant stories to list (1-50, default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_timeline)


def add_sources(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sources", help="list the articles in the index")
    p.add_argument("--sort", choices=("id", "date", "outlet", "title"), default="id",
                   help="order of the list (date: newest first; default: id)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_sources)



def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    question = check_question(" ".join(args.question))  # fail fast, before loading a model
    if not 1 <= args.k <= 20:
        raise BylineError("-k must be between 1 and 20.")
    earlier = [check_question(q) for q in args.after]
    filters = filters_from(args)
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
        print_json(answer.to_dict())
    else:
        print_answer(answer)
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    """A question per line, each answered in the conversation so far; an empty line, EOF
    or Ctrl-C ends it."""
    from retrieval.errors import BadQuestion
    from retrieval.search.conversation import Conversation

    if not 1 <= args.k <= 20:
        raise BylineError("-k must be between 1 and 20.")
    filters = filters_from(args)
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
                print_json({"question": line, "error": str(exc)}, indent=None)
            else:
                print(f"byline: {exc}", file=sys.stderr)
            continue
        if args.json:
            print_json(answer.to_dict(), indent=None)
        else:
            print_answer(answer)
    return 0


def cmd_timeline(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.search.timeline import timeline

    topic = check_question(" ".join(args.topic))
    if not 1 <= args.n <= 50:
        raise BylineError("-n must be between 1 and 50.")
    filters = filters_from(args)
    result = timeline(open_retriever(settings), topic, n=args.n, filters=filters)
    if args.json:
        print_json(result.to_dict())
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


def cmd_sources(args: argparse.Namespace, settings: Settings) -> int:
    articles = open_store(settings.location, model=settings.model).articles()
    if args.sort == "date":  # newest first; undated last
        from retrieval.corpus.meta import date_key

        articles.sort(key=lambda a: date_key(a.date), reverse=True)
    elif args.sort in ("outlet", "title"):
        articles.sort(key=lambda a: (getattr(a, args.sort) or "\uffff").casefold())
    if args.json:
        print_json([a.__dict__ for a in articles])
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("Article", "Outlet", "Date", "Passages", "Source")
    for a in articles:
        table.add_row(a.title, a.outlet or "", day(a.date) or "", str(a.passages),
                      clean_text(a.source) or "")  # a file name may hold escapes or newlines
    Console().print(table)
    return 0


CLI_CITATION = Style(source=True, copy_dates=True)  # plain text: rich escapes it on print


def citation(p: Passage, n: int) -> str:
    """`[n] Title — Outlet, Date — ¶p (source)` with the parts that are known."""
    return f"[{n}] {cite(p, CLI_CITATION).line()}"


def also_in(hit: Hit) -> str:
    """`also in: Outlet (Date), Other Outlet` for the other articles carrying the passage."""
    return f"also in: {copy_names(hit.also_in, CLI_CITATION)}"


def print_answer(answer: Answer) -> None:
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
