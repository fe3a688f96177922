"""The SQLite metadata of an index: articles, passages and wire-copy groups."""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.corpus import Article, Passage

_SCHEMA = """
CREATE TABLE articles (id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL,
    outlet TEXT, date TEXT, url TEXT, author TEXT, sha256 TEXT NOT NULL);
CREATE TABLE passages (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
    article_id TEXT NOT NULL REFERENCES articles(id), paragraph INTEGER NOT NULL,
    text TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX passages_article ON passages(article_id);
CREATE TABLE copies (row INTEGER PRIMARY KEY REFERENCES passages(row), grp INTEGER NOT NULL);
CREATE INDEX copies_grp ON copies(grp);
CREATE TABLE copy_lists (grp INTEGER NOT NULL, n INTEGER NOT NULL, article_id TEXT NOT NULL,
    PRIMARY KEY (grp, n));
"""
# The articles of each near-duplicate group that an answer lists, in order, worked out once
# at index time: a story copied into thousands of pages costs an answer one indexed lookup.
MAX_COPIES = 25
COPY_LISTS_SELECT = """SELECT grp, n, id AS article_id FROM (
    SELECT grp, id, row_number() OVER (
        PARTITION BY grp ORDER BY date IS NULL, date, source, id) AS n
    FROM (SELECT DISTINCT c.grp, a.id, a.date, a.source FROM copies c
          JOIN passages p ON p.row = c.row JOIN articles a ON a.id = p.article_id))
WHERE n <= ?"""
_COPY_LISTS = f"INSERT INTO copy_lists {COPY_LISTS_SELECT}"


# SQLite result codes (primary) -> the operating-system error they report.
_ERRNOS = {sqlite3.SQLITE_FULL: errno.ENOSPC, sqlite3.SQLITE_IOERR: errno.EIO,
           sqlite3.SQLITE_READONLY: errno.EROFS, sqlite3.SQLITE_PERM: errno.EACCES}


@dataclass(frozen=True)
class ArticleInfo:
    """An article as listed by `byline sources`."""

    id: str
    title: str
    source: str
    outlet: str | None
    date: str | None
    url: str | None
    passages: int


@dataclass(frozen=True)
class Copy:
    """Another article holding a near-duplicate of a passage (a wire copy, an update)."""

    article_id: str
    source: str
    title: str
    outlet: str | None
    date: str | None
    url: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"source": self.source, "title": self.title, "outlet": self.outlet,
                "date": self.date, "url": self.url}


def memory_db(articles: list[Article], passages: list[Passage],
              groups: np.ndarray | None = None) -> sqlite3.Connection:
    """The metadata tables in memory; `copies` holds the rows that have near-duplicates in
    other articles, with their group (`groups[row]`, -1 for none)."""
    db = empty_db(":memory:")
    with db:
        db.executemany("INSERT INTO articles VALUES (?,?,?,?,?,?,?,?)", [
            (a.id, a.title, a.source, a.outlet, a.date, a.url, a.author, a.sha256)
            for a in articles])
        db.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?)", [
            (row, p.id, p.article_id, p.paragraph, p.text, p.content_hash)
            for row, p in enumerate(passages)])
        if groups is not None:
            grouped = np.flatnonzero(groups >= 0)
            db.executemany("INSERT INTO copies VALUES (?,?)",
                           zip(grouped.tolist(), groups[grouped].tolist(), strict=True))
            db.execute(_COPY_LISTS, (MAX_COPIES,))
    return db


def empty_db(path: str | Path) -> sqlite3.Connection:
    """A new database at `path` (":memory:" for one in memory) holding the empty tables:
    what `memory_db` fills, and what a build too large for memory fills in place."""
    db = sqlite3.connect(path, check_same_thread=False)
    db.executescript(_SCHEMA)
    return db


def write_db(db: sqlite3.Connection, path: Path) -> None:
    """Copy the in-memory tables into a new database file at `path`. SQLite's errors
    (a full disk is SQLITE_FULL) become the OSError they stand for, so a save reports them
    like any other write error."""
    try:
        disk = sqlite3.connect(path)
        try:
            with disk:
                db.backup(disk)
        finally:
            disk.close()
    except sqlite3.Error as exc:
        code = _ERRNOS.get(getattr(exc, "sqlite_errorcode", 0) & 0xFF)
        raise OSError(code, os.strerror(code) if code else str(exc)) from exc


SQLITE_CACHE_KB = 32 * 1024  # a read-only index's page cache, per open index


def open_db(path: Path) -> sqlite3.Connection:
    """The saved tables, read-only and shared across threads (the bot searches from worker
    threads); sqlite3.DatabaseError when the file is not a database of ours."""
    if not path.is_file():
        raise FileNotFoundError(path)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    db.execute("SELECT 1 FROM articles LIMIT 1")
    # A question looks up ~100 scattered rows; with SQLite's default 2 MB cache each lookup
    # reads the B-trees' inner pages again (at a million passages 100 rows' context took
    # 0.93 ms, 0.49 ms with this cache). 32 MB at most, filled only as the file is read.
    db.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KB}")
    return db


def sources_in(folder: Path) -> set[str]:
    """The corpus files a generation folder's articles came from (none if unreadable)."""
    from contextlib import closing

    try:
        with closing(sqlite3.connect(f"file:{folder / 'meta.sqlite'}?mode=ro", uri=True)) as db:
            return {row[0] for row in db.execute("SELECT DISTINCT source FROM articles")}
    except sqlite3.Error:
        return set()
