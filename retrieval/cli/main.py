"""The `byline` command: the parser, built from one module per command group, and the one
place errors become a line and an exit status. The core never imports the Discord bot:
`byline bot` hands over to `byline-bot` (see cmd_bot)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from retrieval.cli import ask, evaluate, follow, index
from retrieval.cli.config import Settings, private_files
from retrieval.cli.options import STORE_COMMANDS, add_settings_options, settings_from, store_option
from retrieval.errors import BylineError, describe_os_error
from retrieval.logs import configure
from retrieval.version import __version__

log = logging.getLogger("byline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byline", description="Answer questions about news coverage with cited passages."
    )
    parser.add_argument("--version", action="version", version=f"byline {__version__}")
    add_settings_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # in the order `byline --help` lists them
    for add in (index.add_index, index.add_check, index.add_fetch, follow.add_follow,
                ask.add_ask, ask.add_chat, ask.add_timeline, ask.add_sources, index.add_extract,
                evaluate.add_eval, evaluate.add_feedback, index.add_migrate, add_bot):
        add(sub)
    for name in STORE_COMMANDS:  # `byline ask --store URL ...` as well as `byline --store URL ask`
        store_option(sub.choices[name], default=argparse.SUPPRESS)
    return parser


def add_bot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bot", help="run the Discord bot: the same as `byline-bot`")
    p.set_defaults(func=cmd_bot)


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
