"""docs/cli.md: the `byline` command's reference, rendered from its own argparse parser.

`python -m retrieval.cli.reference > docs/cli.md` (or `make docs`) writes it; a test fails
when the page and the parser drift apart. Help is laid out at a fixed width, so the page is
the same whatever terminal renders it.
"""

from __future__ import annotations

import argparse
import functools

from retrieval.cli.main import build_parser

WIDTH = 100  # columns of the rendered help, whatever the terminal

INTRO = """\
# The `byline` command

Generated from the command's own parser by `make docs` (`python -m retrieval.cli.reference >
docs/cli.md`); a test fails when this page and `byline --help` drift apart, so do not edit it
by hand.

What the commands are for, with examples: [usage.md](usage.md) (`ask`, `chat`, `timeline`,
`sources`, the JSON answer, filters, follow-ups), [coverage.md](coverage.md) (`index`,
`extract`), [feeds.md](feeds.md) (`fetch`, `follow`), [operations.md](operations.md) (`check`,
errors and exit statuses), [postgres.md](postgres.md) (`--store`, `migrate`),
[quality.md](quality.md) (`eval`), [bot.md](bot.md) (`bot`, `feedback`). The variables the
defaults come from: [settings.md](settings.md).
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    """Lay `parser`'s help out at WIDTH columns instead of the terminal's width."""
    parser.formatter_class = functools.partial(parser.formatter_class, width=WIDTH)


def _section(title: str, parser: argparse.ArgumentParser) -> str:
    _fixed_width(parser)
    return f"## `{title}`\n\n```text\n{parser.format_help().rstrip()}\n```\n"


def markdown() -> str:
    """docs/cli.md: a short introduction, then `byline --help` and every command's help."""
    parser = build_parser()
    sections = [INTRO, _section("byline", parser)]
    sections += [_section(f"byline {name}", sub)
                 for name, sub in _subcommands(parser).items()]
    return "\n".join(sections)


if __name__ == "__main__":
    print(markdown(), end="")
