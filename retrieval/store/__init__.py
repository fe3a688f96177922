"""The store: where an index lives, behind one interface (store/base.py).

`backend(location)` chooses the backend once (the folder backend, store/folder/, or the
PostgreSQL backend, store/postgres/); everything else goes through the Backend and the Store
it opens. Shared by both: `manifest`, `tables` (article metadata), `ann` (FAISS structures),
`quantise`, `files` (fsync, checksums, atomic writes). The build assembles a `FolderIndex` (the
folder backend's in-memory form) and either backend publishes it.
"""

from __future__ import annotations

import re
from pathlib import Path

from retrieval.model.probes import probes_key
from retrieval.store.ann import ANN_DEPTH, EXACT_MAX
from retrieval.store.base import Backend, Store
from retrieval.store.folder.index import TOKENS_MAX, FolderIndex, corpus_fingerprint
from retrieval.store.folder.lock import WriterLock
from retrieval.store.folder.parts import SPLICE_MIN, PendingTokens, Sentences, Tokens
from retrieval.store.folder.rows import RowFile
from retrieval.store.manifest import FORMAT_VERSION, MANIFEST, Manifest, read_manifest
from retrieval.store.tables import ArticleInfo, Copy

__all__ = ["ANN_DEPTH", "EXACT_MAX", "FORMAT_VERSION", "MANIFEST", "SPLICE_MIN", "TOKENS_MAX",
           "ArticleInfo", "Backend", "Copy", "FolderIndex", "Manifest", "PendingTokens", "RowFile",
           "Sentences", "Store", "Tokens", "WriterLock", "backend", "corpus_fingerprint",
           "open_store", "probes_key", "read_manifest"]

URL_SCHEMES = ("postgresql://", "postgres://")
# libpq's other form, `host=db dbname=byline password=...`: a store, never a folder's name.
_DSN = re.compile(r"\s*(host|hostaddr|dbname|user|password|port|service|sslmode)\s*=", re.I)
_SCHEME = re.compile(r"\s*[a-z][a-z0-9+.-]*://", re.I)


def _is_database(location: str | Path | None) -> bool:
    """Whether `location` names a PostgreSQL database (a postgresql:// URL or a key=value
    connection string) rather than a folder."""
    return isinstance(location, str) and (location.startswith(URL_SCHEMES)
                                          or bool(_DSN.match(location)))


def backend(location: str | Path | Backend) -> Backend:
    """The backend of `location`: the one place where a folder and a database are told
    apart. StoreError for another `scheme://` (`postgresql+psycopg://`, say), which would
    otherwise become a folder with its password in the name; the location itself is not
    repeated in the message, as it may hold a secret."""
    if isinstance(location, Backend):
        return location
    if _is_database(location):
        from retrieval.store.postgres.backend import PostgresBackend

        return PostgresBackend(str(location))
    if isinstance(location, str) and _SCHEME.match(location):
        from retrieval.errors import StoreError

        raise StoreError("The store must be a folder or a postgresql:// URL (or a libpq "
                         "key=value string); its scheme is not one of these.")
    from retrieval.store.folder.backend import FolderBackend

    return FolderBackend(Path(location))


def open_store(location: str | Path, model: str | None = None,
               verify: bool | None = None) -> Store:
    """The index published at `location` (a folder, or a postgresql:// URL)."""
    return backend(location).open(model=model, verify=verify)
