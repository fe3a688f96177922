"""Settings shared by the CLI and the bot, read from the environment (and `.env`).

Each entry point (`byline`, `byline-bot`) calls `load_env()` once, then reads `Settings`
(and the bot its own settings, composed with these) from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from retrieval.model.embed import DEFAULT_MODEL
from retrieval.store import backend

DEFAULT_INDEX_DIR = Path(".byline/index")
# The seed coverage, shipped in the package (in a checkout, a link to the project's seeds/):
# what `byline ask` indexes on a fresh machine when there is no ./seeds nor BYLINE_CORPUS.
PACKAGED_SEEDS = Path(__file__).resolve().parents[1] / "data" / "seeds"


@contextmanager
def private_files() -> Iterator[None]:
    """Files and folders made inside are the user's alone (umask 077: indexes, feedback,
    fetched pages, caches), whatever umask Byline was started with; the old one after."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def load_env() -> None:
    """Read the `.env` of the folder Byline runs in into the environment (variables already
    set win). Only that folder's: a `.env` in a parent (a shared folder, say) is not ours."""
    from dotenv import load_dotenv

    env = Path.cwd() / ".env"
    if env.is_file():
        load_dotenv(env)


@dataclass(frozen=True)
class Settings:
    """Where the index lives, which model embeds, and which folder is the default coverage."""

    index_dir: Path = DEFAULT_INDEX_DIR
    model: str = DEFAULT_MODEL
    corpus_dir: Path | None = None
    encoder: str | None = None  # None: onnx-int8 for the bundled model, torch otherwise
    # BYLINE_STORE / --store: a postgresql:// URL (the shared store) or a folder; unset: the
    # index folder (BYLINE_INDEX_DIR). Its password is best left to PGPASSWORD or ~/.pgpass.
    store: str | None = None

    @property
    def location(self) -> str | Path:
        """Where the index is read and published: the store URL, or a folder."""
        return backend(self.store).location if self.store else self.index_dir

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        corpus = env.get("BYLINE_CORPUS")
        return cls(
            index_dir=Path(env.get("BYLINE_INDEX_DIR") or DEFAULT_INDEX_DIR),
            model=env.get("BYLINE_MODEL") or DEFAULT_MODEL,
            corpus_dir=Path(corpus) if corpus else None,
            encoder=env.get("BYLINE_ENCODER") or None,
            store=env.get("BYLINE_STORE") or None,
        )

    def default_corpus(self) -> Path:
        """BYLINE_CORPUS if set, else ./seeds, else the seeds shipped in the package."""
        if self.corpus_dir is not None:
            return self.corpus_dir
        local = Path("seeds")
        return local if local.is_dir() else PACKAGED_SEEDS

    def corpus_to_write(self) -> Path:
        """Where new articles go (`byline fetch`): BYLINE_CORPUS if set, else ./seeds."""
        return self.corpus_dir if self.corpus_dir is not None else Path("seeds")
