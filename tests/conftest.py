"""Shared fixtures: the real bundled model and a real index of the seed coverage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from retrieval import index_corpus
from retrieval.model.embed import Embedder
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex

from .support.paths import SEEDS

if TYPE_CHECKING:
    from .support.guilds import Site


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    e = Embedder()
    e.model  # load once for the whole session  # noqa: B018
    return e


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    index_dir = tmp_path_factory.mktemp("seed-index")
    index_corpus(SEEDS, index_dir, embedder, progress=False)
    return index_dir


@pytest.fixture(scope="session")
def retriever(seed_index_dir: Path, embedder: Embedder) -> Retriever:
    return Retriever(FolderIndex.load(seed_index_dir, model=embedder.name), embedder)


@pytest.fixture(scope="session")
def many_retriever(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Retriever:
    """A coverage of 25 dated articles: three /sources pages."""
    corpus = tmp_path_factory.mktemp("many")
    for i in range(25):
        (corpus / f"story{i:02d}.txt").write_text(
            f"Date: 2024-03-{i + 1:02d}\n\nCouncil story number {i}\n\n"
            f"The council met on day {i} and approved budget line {i} after a long debate.\n",
            "utf-8")
    index_dir = tmp_path_factory.mktemp("many-index")
    return Retriever(index_corpus(corpus, index_dir, embedder, progress=False), embedder)


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL 16 with pgvector on 127.0.0.1, in a temporary folder, for the whole
    session (tests/support/pg_server.py); stopped at the end. A server that cannot start fails the
    tests that need it, with the reason: they are never skipped."""
    from .support import pg_server as server

    try:
        running = server.start()
    except server.ServerFailed as exc:
        pytest.fail(f"the test PostgreSQL could not be started: {exc}", pytrace=False)
    yield running
    from retrieval.store.postgres.connect import close_pools

    close_pools()
    running.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the test server (with the vector extension), its URL."""
    import secrets

    import psycopg

    from retrieval.store.postgres.connect import close_pools

    name = f"t_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    yield url
    close_pools()
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def site() -> Iterator[Site]:
    """A news site on 127.0.0.1 (tests/support/guilds.py): the articles and feeds a server's
    admins add. test_fetch.py and test_follow.py have sites of their own."""
    from .support.guilds import news_site  # the bot's modules: only the tests that use it

    with news_site() as s:
        yield s
