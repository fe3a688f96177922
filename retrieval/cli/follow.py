"""`byline follow`: poll the coverage's feeds on a schedule, in a process of its own."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.errors import BylineError

if TYPE_CHECKING:  # the follower (httpx, the model) is imported only when the command runs
    from retrieval.cli.config import Settings
    from retrieval.feeds.follow import Follower, PollReport

TICK = 60.0  # the longest sleep: a feed added to feeds.txt is polled within a minute


def add_follow(sub: argparse._SubParsersAction) -> None:
    """The `follow` subcommand's options."""
    p = sub.add_parser("follow", help="poll the feeds in feeds.txt and index new articles")
    p.add_argument("corpus", nargs="?", type=Path, metavar="CORPUS_DIR",
                   help="the article folder holding feeds.txt (default: $BYLINE_CORPUS or "
                   "seeds/)")
    p.add_argument("--interval", type=float, default=15.0, metavar="MIN",
                   help="minutes between two polls of a feed, ±10%% (default: 15)")
    p.add_argument("--once", action="store_true",
                   help="poll the feeds that are due (all of them on a first run), index, exit")
    p.add_argument("--list", action="store_true",
                   help="show each feed's state: last poll, failures, next poll, last error")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per poll round (with --list: one JSON list)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Poll until SIGINT or SIGTERM (exit 0), or once with `--once`; or list the feeds."""
    from retrieval.feeds.fetch import FetchSettings
    from retrieval.feeds.follow import Follower
    from retrieval.model.embed import Embedder

    corpus = args.corpus or settings.default_corpus()
    embedder = Embedder(settings.model, encoder=settings.encoder)  # loaded only to index
    follower = Follower(corpus, settings.location, embedder, interval=args.interval * 60,
                        settings=FetchSettings.for_cli())
    if args.list:
        return _list(follower, args.json)
    feeds = follower.feeds()
    if not feeds.urls:
        _problems(feeds.problems)
        raise BylineError(f"No feeds to follow: list feed URLs in {follower.feeds_path}, "
                          "one a line.")
    stop = threading.Event()
    shown: list[str] = []
    failed = False
    with _stop_on_signals(stop):
        while True:
            report = follower.poll_due(stop=stop.is_set)
            if report.problems != shown:
                _problems(report.problems)
                shown = report.problems
            if args.once or report.eventful:
                _show(report, args.json)
            failed = bool(report.failures or report.index_error)
            if args.once or stop.is_set():
                break
            due = report.next_due
            stop.wait(TICK if due is None else min(TICK, max(1.0, due - time.time())))
            if stop.is_set():
                break
    return int(failed) if args.once else 0


def _show(report: PollReport, as_json: bool) -> None:
    """The round's line on stdout (or its JSON object), each failure on stderr."""
    from retrieval.feeds.follow import ENTRY_ATTEMPTS, stamp
    from retrieval.logs import escape_controls

    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    # a feed chose these links (and the errors quote them): escaped, they cannot write to
    # the terminal or start a line of their own
    for f in report.failures:
        print(escape_controls(f"byline: feed {f.url} failed: {f.error} (failures in a row: "
                              f"{f.failures}; next try {stamp(f.next_poll)})"), file=sys.stderr)
    for e in report.entry_failures:
        tail = (f"gave up after {e.attempts} tries" if e.gave_up
                else f"try {e.attempts} of {ENTRY_ATTEMPTS}")
        print(escape_controls(f"byline: article {e.url} failed: {e.error} ({tail})"),
              file=sys.stderr)
    if report.index_error:
        print(escape_controls(f"byline: not indexed yet: {report.index_error}"),
              file=sys.stderr)
    print(report.line(), flush=True)


def _times(n: int) -> str:
    return f"{n} time{'s' * (n != 1)}"


def _problems(problems: list[str]) -> None:
    for problem in problems:
        print(f"byline: {problem}", file=sys.stderr)


def _list(follower: Follower, as_json: bool) -> int:
    """Each feed on a line, its state indented below it."""
    from retrieval.feeds.follow import stamp

    states = follower.states()
    _problems(follower.feeds().problems)
    if as_json:
        sys.stdout.write(json.dumps([s.to_dict() for s in states], indent=2) + "\n")
        return 0
    if not states:
        print(f"No feeds listed in {follower.feeds_path}.")
        return 0
    for s in states:
        print(s.url)
        if s.last_polled is None or s.next_poll is None:
            print("    never polled; due now")
            continue
        if s.failures:
            outcome = f"failed {_times(s.failures)} in a row: {s.last_error}"
        else:
            outcome = f"{(s.last_status or 'ok').replace('_', ' ')}, {s.last_new_count} new"
        print(f"    last poll {stamp(s.last_polled)} ({outcome}); next {stamp(s.next_poll)}")
    return 0


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` instead of interrupting: the current step finishes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
