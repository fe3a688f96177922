"""The store seam: what the Retriever, the CLI and the bot read from an index, whichever
store holds it, and the factory that opens one.

Two stores implement it: the on-disk `Index` (a folder of generations; retrieval.store.folder.index)
and the PostgreSQL store (retrieval.store.postgres, for `postgresql://` locations). Callers
use `open_store(location)` and `publish(index, location)` and never ask which they got; a
writer such as the bot's /coverage jobs also uses `published`, `indexed_sources`,
`stored_bytes`, `withdraw`, `prepare` and `release`, each dispatching on the location.

The interface is the Retriever's own reads, no wider: dense candidates (`dense_search`),
BM25 postings by term (`postings`; a question's terms together), each candidate's exact
vector (`passage_vectors[rows]`), its sentences (`sentences`) and token vectors (`tokens`),
and the metadata queries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from retrieval.corpus import Article, Passage
    from retrieval.errors import IndexCorrupt
    from retrieval.model.embed import Embedder
    from retrieval.store.manifest import Manifest
    from retrieval.store.tables import ArticleInfo, Copy

URL_SCHEMES = ("postgresql://", "postgres://")
# libpq's other form, `host=db dbname=byline password=...`: a store, never a folder's name.
_DSN = re.compile(r"\s*(host|hostaddr|dbname|user|password|port|service|sslmode)\s*=", re.I)
_SCHEME = re.compile(r"\s*[a-z][a-z0-9+.-]*://", re.I)


class Lexicon(Protocol):
    """BM25's postings: `vocab` (stemmed term -> id), `df` (passages per term id) and each
    term's sorted rows with its BM25 score in each."""

    vocab: dict[str, int]

    @property
    def df(self) -> np.ndarray: ...

    def term(self, term: int) -> tuple[np.ndarray, np.ndarray]: ...

    def terms(self, terms: list[int]) -> list[tuple[np.ndarray, np.ndarray]]: ...


class SentenceStore(Protocol):
    """Each passage's sentence vectors (float16) and character spans."""

    def passage(self, row: int) -> tuple[np.ndarray, np.ndarray]: ...

    def passages(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def many(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TokenStore(Protocol):
    """Each passage's int8 token vectors (late interaction, quotes)."""

    def __len__(self) -> int: ...

    def many(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def raw(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def raws(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]: ...

    def codes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@runtime_checkable
class Store(Protocol):
    """One published generation of an index, open for reading."""

    manifest: Manifest
    postings: Any  # a Lexicon
    sentences: Any  # a SentenceStore
    tokens: Any  # a TokenStore, or None when the index keeps no token vectors
    passage_vectors: Any  # row-indexable: passage_vectors[rows] -> (len(rows), dim) float32
    probe_vectors: np.ndarray | None
    root: Path | None  # the folder it was loaded from (None: not a folder)
    reused: int

    def __len__(self) -> int: ...

    def dense_search(self, qvec: np.ndarray, n: int,
                     allowed: np.ndarray | None = None) -> np.ndarray: ...

    def passages(self, rows: list[int] | np.ndarray) -> list[Passage]: ...

    def row_context(self, rows: Sequence[int]) -> list[tuple[int, int, str]]: ...

    def groups_of(self, rows: Sequence[int]) -> dict[int, int]: ...

    def copies(self, groups: list[int]) -> dict[int, list[Copy]]: ...

    def row_articles(self) -> tuple[np.ndarray, list[tuple[str | None, str | None]]]: ...

    def articles(self) -> list[ArticleInfo]: ...

    def parsed_articles(self) -> dict[str, list[Article]]: ...

    def made_by(self, embedder: Embedder) -> bool: ...

    def reusable(self, embedder: Embedder) -> dict[str, int]: ...

    def damaged(self, part: str) -> IndexCorrupt: ...

    def with_background(self, background: dict[str, float],
                        probe_vectors: np.ndarray | None = None) -> Store: ...


def is_url(location: str | Path | None) -> bool:
    """Whether `location` names a PostgreSQL database (a postgresql:// URL or a key=value
    connection string) rather than a folder."""
    return isinstance(location, str) and (location.startswith(URL_SCHEMES)
                                          or bool(_DSN.match(location)))


def check_location(location: str) -> None:
    """StoreError unless `location` is a folder or a PostgreSQL store: another `scheme://`
    (`postgresql+psycopg://`, say) would otherwise become a folder, its password part of the
    name and of every message. The location itself is not repeated: it may hold a secret."""
    from retrieval.errors import StoreError

    if not is_url(location) and _SCHEME.match(location):
        raise StoreError("The store must be a folder or a postgresql:// URL (or a libpq "
                         "key=value string); its scheme is not one of these.")


def open_store(location: str | Path, model: str | None = None,
               verify: bool | None = None) -> Store:
    """The index published at `location` (a folder, or a postgresql:// URL); `model`, if
    given, must be the one it was built with."""
    if is_url(location):
        from retrieval.store.postgres import open_postgres

        return open_postgres(str(location), model=model)
    from retrieval.store.folder.index import Index

    return Index.load(location, model=model, verify=verify)


def publish(index: Any, location: str | Path) -> Manifest:
    """Publish the assembled `index` (an Index) as the new generation at `location`."""
    if is_url(location):
        from retrieval.store.postgres import publish_postgres

        return publish_postgres(index, str(location))
    index.save(location)
    return index.manifest


def writer_lock(location: str | Path, wait: bool = True,
                on_wait: Callable[[str], None] | None = None) -> AbstractContextManager[Any]:
    """One writer at a time at `location` (IndexBusy without `wait`)."""
    if is_url(location):
        from retrieval.store.postgres import PostgresWriterLock

        return PostgresWriterLock(str(location), wait=wait, on_wait=on_wait)
    from retrieval.store.folder.lock import WriterLock

    return WriterLock(location, wait=wait, on_wait=on_wait)


def describe_location(location: str | Path) -> str:
    """`location` as it may be shown: a URL without its password."""
    if is_url(location):
        from retrieval.store.postgres.connect import redact

        return redact(str(location))
    return str(location)


# -- what a writer needs besides publishing (the bot's /coverage jobs) --------------------

def published(location: str | Path) -> Manifest | None:
    """The manifest of the generation `location` serves now, read without opening the
    index (None: no index there)."""
    if is_url(location):
        from retrieval.store.postgres.manage import published as pg_published

        return pg_published(str(location))
    from retrieval.errors import IndexMissing
    from retrieval.store.manifest import read_manifest

    try:
        return read_manifest(Path(location))
    except IndexMissing:
        return None


def indexed_sources(location: str | Path) -> set[str]:
    """The corpus files (relative paths) the current generation holds articles from."""
    if is_url(location):
        from retrieval.store.postgres.manage import sources

        return sources(str(location))
    from retrieval.errors import BylineError
    from retrieval.store.tables import sources_in

    try:
        manifest = published(location)
    except BylineError:
        return set()
    return sources_in(Path(location) / manifest.folder) if manifest is not None else set()


def stored_bytes(location: str | Path, manifest: Manifest) -> int:
    """What `manifest`'s generation takes: its files on disk, or its tables in the database."""
    if is_url(location):
        from retrieval.store.postgres.manage import size

        return size(str(location))
    return sum(int(n) for n, *_ in manifest.files.values())


def withdraw(location: str | Path) -> bool:
    """Take the index at `location` out of use, for a corpus with no article left (an
    index cannot be empty); whether there was one."""
    if is_url(location):
        from retrieval.store.postgres.manage import withdraw as pg_withdraw

        return pg_withdraw(str(location))
    from retrieval.store.folder.generations import withdraw as folder_withdraw

    return folder_withdraw(Path(location))


def prepare(location: str | Path) -> None:
    """Make `location` ready for its first publish: a store's database is created if it
    does not exist (a folder is created by the publish itself)."""
    if is_url(location):
        from retrieval.store.postgres.manage import create_database

        create_database(str(location))


def release(location: str | Path) -> None:
    """Close what this process holds open for `location` (a database's connection pool, not
    the connections in use); a folder holds nothing. The next open reconnects."""
    if is_url(location):
        from retrieval.store.postgres.connect import forget_pool

        forget_pool(str(location))
