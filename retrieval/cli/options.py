"""What every `byline` command shares: the settings options, the filters, JSON output, and
the Retriever over the configured index."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from retrieval.cli.config import Settings, load_env
from retrieval.errors import IndexMissing
from retrieval.model.embed import ENCODERS
from retrieval.search.filters import Filters
from retrieval.search.retriever import Retriever
from retrieval.store import backend, open_store

# The commands that read or write the index: they take --store after their name too.
STORE_COMMANDS = ("index", "check", "follow", "ask", "chat", "timeline", "sources", "eval",
                  "bot")


STORE_HELP = ("where the index lives: a postgresql:// URL or a folder (default: $BYLINE_STORE, "
              "else the index folder)")


def store_option(parser: argparse.ArgumentParser, default: object = None) -> None:
    """--store URL; after a command's name its default is SUPPRESS, so it never hides a
    --store given before the name."""
    parser.add_argument("--store", metavar="URL", default=default, help=STORE_HELP)


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """--index-dir, --model, --encoder: the options over Settings (`byline`, `byline-bot`)."""
    parser.add_argument(
        "--index-dir", type=Path, help="index folder (default: $BYLINE_INDEX_DIR or .byline/index)"
    )
    store_option(parser)
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


def filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="DATE",
                   help="only coverage dated on or after DATE (YYYY-MM-DD, 'last week', ...)")
    p.add_argument("--until", metavar="DATE", help="only coverage dated on or before DATE")
    p.add_argument("--outlet", metavar="NAME", help="only this outlet's coverage")


def filters_from(args: argparse.Namespace) -> Filters:
    """The filters the options give (BadQuestion for a date that cannot be read)."""
    return Filters.parse(as_of=getattr(args, "as_of", None), since=args.since,
                         until=args.until, outlet=args.outlet)


def print_json(data: object, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=indent) + "\n")
    sys.stdout.flush()


def open_retriever(settings: Settings) -> Retriever:
    """The Retriever over the configured index; a missing one is built from the default
    corpus in a folder of this machine, never into a database others share (there, the
    IndexMissing error says how to fill it)."""
    from retrieval.build.pipeline import index_corpus
    from retrieval.model.embed import Embedder
    from retrieval.search.calibrate import calibrated
    from retrieval.search.retriever import Retriever

    embedder = Embedder(settings.model, encoder=settings.encoder)
    try:
        index = open_store(settings.location, model=embedder.name)
    except IndexMissing:
        if backend(settings.location).shared:
            raise
        corpus = settings.default_corpus()
        print(
            f"No index at {backend(settings.location).describe()} yet; building one from "
            f"{corpus} first.",
            file=sys.stderr,
        )
        index = index_corpus(corpus, settings.location, embedder, calibrate=calibrated)
    return Retriever(index, embedder)
