"""`byline-bot` (also `python -m bot`, and `byline bot`): run the Discord bot."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from retrieval.cli.config import private_files
from retrieval.cli.options import add_settings_options, open_retriever, settings_from
from retrieval.errors import BylineError, describe_os_error
from retrieval.logs import configure
from retrieval.version import __version__

log = logging.getLogger("byline.bot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byline-bot",
        description="Run Byline's Discord bot: /ask, /timeline, /sources, /help. Settings "
        "come from the environment and .env (DISCORD_TOKEN, ...; see the README). Stops "
        "gracefully on SIGTERM or Ctrl-C; picks up a re-indexed index while it runs.")
    parser.add_argument("--version", action="version", version=f"byline-bot {__version__}")
    add_settings_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    configure(logging.WARNING, "%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        with private_files():
            return _run(args)
    except BylineError as exc:
        print(f"byline-bot: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"byline-bot: {describe_os_error(exc)}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the bot's own handlers were in place
        print("byline-bot: interrupted.", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from bot.settings import PER_SERVER, BotSettings

    core = settings_from(args)  # reads .env once
    settings = BotSettings.from_env(core=core)  # fails fast, before the model loads
    try:
        from bot.app import run
    except ImportError as exc:  # installed without the bot's dependencies
        raise BylineError(f"The bot needs {exc.name or 'discord.py'}, which is not "
                          "installed; reinstall Byline (pip install byline) to get its "
                          "dependencies.") from None
    _logging()
    if settings.coverage == PER_SERVER:  # each server's index is loaded on its first question
        from retrieval.model.embed import Embedder

        embedder = Embedder(core.model, encoder=core.encoder)
        embedder.model  # loaded (and hash-checked) once, before connecting  # noqa: B018
        run(settings, embedder=embedder)
    else:
        run(settings, open_retriever(core))
    log.info("stopped")
    return 0


def _logging() -> None:
    """INFO for Byline and discord.py; libraries' start-up chatter stays out of the log."""
    configure(logging.INFO, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("faiss", "sentence_transformers", "httpx", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Byline never joins voice channels; discord.py's voice-support warnings do not apply.
    logging.getLogger("discord.client").addFilter(
        lambda record: "voice will NOT be supported" not in record.getMessage()
    )


if __name__ == "__main__":
    sys.exit(main())
