"""The store seam: what the Retriever, the CLI and the bot read from an index, whichever
backend holds it.

`retrieval.store.backend(location)` gives a `Backend`: the folder backend (store/folder/)
for a path, the PostgreSQL backend (store/postgres/) for a `postgresql://` URL or a libpq
key=value string.
Everything done at a location (open, publish, lock, describe, published, sources, size,
withdraw, prepare, release, check, watch, migrate) is a method of it; callers never ask
which backend they got. `open_store(location)` is `backend(location).open()`.

The interface is the Retriever's own reads, no wider: dense candidates (`dense_search`),
BM25 postings by term (`postings`; a question's terms together), each candidate's exact
vector (`passage_vectors[rows]`), its sentences (`sentences`) and token vectors (`tokens`),
and the metadata queries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
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



class Lexicon(Protocol):
    """BM25's postings: `vocab` (stemmed term -> id), `df` (passages per term id), how many
    `passages` they cover, and each term's sorted rows with its BM25 score in each."""

    vocab: dict[str, int]
    passages: int

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

    copied_on_save: bool  # a new generation copies unchanged rows itself (else they are read)

    def __len__(self) -> int: ...

    def many(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def raw(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def raws(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]: ...

    def codes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@runtime_checkable
class Store(Protocol):
    """One published generation of an index, open for reading."""

    manifest: Manifest
    postings: Lexicon
    sentences: SentenceStore
    tokens: TokenStore | None  # None when the index keeps no token vectors
    passage_vectors: Any  # row-indexable: passage_vectors[rows] -> (len(rows), dim) float32
    probe_vectors: np.ndarray | None
    location: str | Path | None  # where it was read from (None: never published)
    reused: int
    # whether dense search waits on a server (another process does the work): a question
    # then runs it beside its BM25 reads
    concurrent_reads: bool

    def __len__(self) -> int: ...

    def dense_search(self, qvec: np.ndarray, n: int,
                     allowed: np.ndarray | None = None) -> np.ndarray: ...

    def read_ahead(self, rows: np.ndarray) -> None:
        """Rows the question reads next (its BM25 candidates, while its dense search runs):
        a store whose reads wait on a server reads them now; a folder, nothing."""
        ...

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


class Watch(Protocol):
    """How a long-running reader notices a new generation at a location (hot reload)."""

    mode: str  # how: "stat" (a folder's manifest), "listen" or "poll" (a database)

    def stamp(self) -> Hashable | None:
        """What changes when a generation is published (None: nothing to go by now)."""
        ...

    def named(self) -> str:
        """The generation the location serves now (BylineError when it cannot be read)."""
        ...

    def catch_up(self) -> None:
        """Look now rather than wait for the next change to be heard."""
        ...

    def close(self) -> None: ...


class Backend(ABC):
    """Where an index lives and everything done there; `backend(location)` picks one."""

    location: str | Path  # a folder's Path, or a database's connection string
    shared: bool  # a database server, shared with other processes and machines
    place: str  # where the index's bytes are, in words ("on disk", "in the database")

    @abstractmethod
    def open(self, model: str | None = None, verify: bool | None = None) -> Store:
        """The generation published here now; `model`, if given, must be the one it was
        built with."""

    @abstractmethod
    def publish(self, index: Any, full: bool = False) -> Manifest:
        """Publish the assembled `index` (a FolderIndex) as the new generation here; a store
        that can write it as a change to the generation it serves does so unless `full`."""

    @abstractmethod
    def writer_lock(self, wait: bool = True, on_wait: Callable[[str], None] | None = None
                    ) -> AbstractContextManager[Any]:
        """One writer at a time here (IndexBusy without `wait`)."""

    @abstractmethod
    def describe(self) -> str:
        """The location as it may be shown (a URL without its password)."""

    @abstractmethod
    def published(self) -> Manifest | None:
        """The manifest of the generation served now, read without opening the index
        (None: no index here)."""

    @abstractmethod
    def sources(self) -> set[str]:
        """The corpus files (relative paths) the current generation holds articles from."""

    @abstractmethod
    def size(self, manifest: Manifest) -> int:
        """What `manifest`'s generation takes, in bytes."""

    @abstractmethod
    def withdraw(self) -> bool:
        """Take the index out of use, for a corpus with no article left (an index cannot be
        empty); whether there was one."""

    @abstractmethod
    def prepare(self) -> None:
        """Make the location ready for its first publish."""

    @abstractmethod
    def release(self) -> None:
        """Close what this process holds open here (the next open reconnects)."""

    @abstractmethod
    def check(self, as_json: bool = False) -> int:
        """`byline check`: verify the index here, print the report; the exit status."""

    @abstractmethod
    def watch(self, poll_seconds: float | None = None, **options: Any) -> Watch:
        """A Watch on the generations published here (`options`: the backend's own)."""

    def migrate_from(self, index: Store | None, source: str = "", progress: bool = False,
                     on_wait: Callable[[str], None] | None = None) -> dict[str, Any]:
        """`byline migrate`: bring the store's tables up to date and copy in `index` (read
        from the folder `source`), waiting for any other writer (`on_wait` is told); only a
        database store takes one."""
        from retrieval.errors import BylineError

        raise BylineError("migrate needs --to postgresql://... (or BYLINE_STORE set to one).")
