"""The PostgreSQL store against a real server (tests/support/pg_server.py): the same answers as the
folder it was copied from, migrations, transactional publishing, one-line errors."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np
import psycopg
import pytest

from retrieval.cli.main import main
from retrieval.errors import IndexMissing, StoreError
from retrieval.search.filters import Filters
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex, backend, open_store
from retrieval.store.base import Store
from retrieval.store.postgres import open_postgres, publish_postgres, schema

from .support.seed_questions import OFF_TOPIC, ON_TOPIC


@pytest.fixture
def seeded(pg_url, seed_index_dir):
    """A store holding the seed index (copied by `byline migrate`)."""
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    return pg_url


def test_both_stores_satisfy_the_interface(seeded, retriever, embedder):
    assert isinstance(retriever.index, Store)
    assert isinstance(open_store(seeded, model=embedder.name), Store)


def test_the_store_answers_as_the_folder_does(seeded, retriever, embedder):
    pg = Retriever(open_store(seeded, model=embedder.name), embedder)
    assert pg.index.manifest.generation == retriever.index.manifest.generation
    questions = [q for q, _ in ON_TOPIC] + list(OFF_TOPIC)
    local, remote = retriever.ask_many(questions, k=5), pg.ask_many(questions, k=5)
    for a, b in zip(local, remote, strict=True):
        assert b.to_dict() == a.to_dict(), a.question
        assert b.confidence == pytest.approx(a.confidence, abs=1e-6), a.question
        assert b.answered == a.answered
    assert [a.answered for a in local].count(True) >= len(ON_TOPIC) - 2  # not all refused
    assert pg.index.articles() == retriever.index.articles()
    assert pg.index.parsed_articles() == retriever.index.parsed_articles()
    rows = np.arange(len(retriever.index))
    assert pg.index.row_context(rows) == retriever.index.row_context(rows)
    np.testing.assert_array_equal(pg.index.passage_vectors[rows],
                                  np.asarray(retriever.index.passage_vectors[rows]))
    picks = np.array([3, 0, 7, 8, 1])  # the token codes late interaction reads, in order
    for got, expected in zip(pg.index.tokens.codes(picks), retriever.index.tokens.codes(picks),
                             strict=True):
        np.testing.assert_array_equal(got, expected)
    a_rows, a_articles = retriever.index.row_articles()
    b_rows, b_articles = pg.index.row_articles()
    np.testing.assert_array_equal(a_rows, b_rows)
    assert a_articles == b_articles


def test_filters_and_timelines_match(seeded, retriever, embedder):
    from retrieval.search.timeline import timeline

    pg = Retriever(open_store(seeded, model=embedder.name), embedder)
    date = retriever.index.row_articles()[1][0][0]
    filters = Filters.parse(since=date) if date else None
    q = "why was the trip cancelled"
    assert pg.ask(q, filters=filters).to_dict() == retriever.ask(q, filters=filters).to_dict()
    assert timeline(pg, q).to_dict() == timeline(retriever, q).to_dict()


def test_a_questions_rows_are_read_whole_from_their_pages(seeded, retriever, embedder):
    """A passage's vector and its sentence vectors stay in its row (PostgreSQL moves values of
    a row over 2 kB to a TOAST table by default: a lookup more per value when a question
    reads its candidates); they come back exact."""
    pg = open_postgres(seeded, model=embedder.name)
    with psycopg.connect(seeded) as conn:
        for table in ("passages", "sentences"):
            toasted = conn.execute(
                "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = %s::regclass",
                (f"{pg.schema}.{table}",)).fetchone()[0]
            assert toasted == 0, table
    rows = np.arange(len(pg))
    np.testing.assert_array_equal(pg.passage_vectors[rows],
                                  np.asarray(retriever.index.passage_vectors[rows]))
    for got, expected in zip(pg.sentences.passages(rows),
                             retriever.index.sentences.passages(rows), strict=True):
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_an_approximate_index_is_published_with_tuned_ivf_lists(pg_url, embedder):
    """An index whose folder searches a tuned IVF is published with the same lists (its one
    list, on the seeds) and an nprobe tuned for them, and answers as the folder does."""
    from retrieval.build.pipeline import build_index
    from retrieval.corpus import load_corpus
    from retrieval.search.calibrate import calibrated

    from .support.paths import SEEDS

    index = calibrated(build_index(load_corpus(SEEDS), embedder, progress=False,
                                   exact_max=5), embedder)
    assert index.manifest.ann == "ivf1"
    m = backend(pg_url).publish(index)
    assert (m.ann, m.nprobe) == ("ivf1", 1)
    pg = Retriever(open_store(pg_url, model=embedder.name), embedder)
    assert (pg.index.manifest.ann, pg.index.manifest.nprobe) == ("ivf1", 1)
    local = Retriever(index, embedder)
    for q, _ in ON_TOPIC:
        assert pg.ask(q).to_dict() == local.ask(q).to_dict(), q


def test_migrations_are_recorded_once(pg_url):
    with psycopg.connect(pg_url) as conn:
        assert schema.version(conn) == 0
    with pytest.raises(IndexMissing, match="No index in the store"):
        open_postgres(pg_url)
    assert main(["migrate", "--to", pg_url]) == 0
    assert main(["migrate", "--to", pg_url]) == 0
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version, name FROM byline_migrations").fetchall()
    assert [v for v, _ in rows] == [m[0] for m in schema.MIGRATIONS]
    with pytest.raises(IndexMissing, match="yet"):
        open_postgres(pg_url)


def test_migrate_is_idempotent_and_the_cli_reads_the_store(seeded, seed_index_dir, capsys,
                                                          monkeypatch):
    capsys.readouterr()
    assert main(["migrate", "--from", str(seed_index_dir), "--to", seeded, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["copied"] is False
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(seed_index_dir))
    assert main(["ask", "--json", "why was the trip cancelled"]) == 0
    local = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("BYLINE_STORE", seeded)
    monkeypatch.setenv("BYLINE_INDEX_DIR", "/nonexistent")
    assert main(["ask", "--json", "why was the trip cancelled"]) == 0
    assert json.loads(capsys.readouterr().out) == local
    assert main(["--store", seeded, "sources", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert main(["check"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["timeline", "--json", "summit"]) == 0
    assert json.loads(capsys.readouterr().out)["covered"] in (True, False)


def test_store_is_accepted_after_the_command(seeded, capsys, monkeypatch):
    monkeypatch.delenv("BYLINE_STORE", raising=False)
    monkeypatch.setenv("BYLINE_INDEX_DIR", "/nonexistent")
    q = "why was the trip cancelled"
    assert main(["--store", seeded, "ask", "--json", q]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["ask", "--store", seeded, "--json", q]) == 0
    assert json.loads(capsys.readouterr().out) == before and before["answered"]
    assert main(["sources", "--json", "--store", seeded]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert main(["timeline", "--store", seeded, "--json", "summit"]) == 0
    capsys.readouterr()
    assert main(["check", "--store", seeded]) == 0 and "OK" in capsys.readouterr().out
    # after the command it wins over one before it; left out, the one before stands
    assert main(["--store", "/nonexistent", "sources", "--store", seeded, "--json"]) == 0
    capsys.readouterr()


def test_bot_gets_the_store(monkeypatch):
    """`byline bot --store URL` (or `byline --store URL bot`) hands the URL to byline-bot."""
    import os

    seen: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: seen.append(argv))
    url = "postgresql://byline@db.example:5432/news"
    assert main(["bot", "--store", url]) == 1 and main(["--store", url, "bot"]) == 1
    assert all(argv[-2:] == ["--store", url] for argv in seen) and len(seen) == 2


def test_publishing_is_one_transaction(seeded, many_retriever, retriever, embedder):
    """While a new generation is being written, readers opening the store get the old one
    whole; once it commits, the new one whole; the old one stays readable after."""
    old = Retriever(open_store(seeded, model=embedder.name), embedder)
    seen: list[tuple[str, int, bool]] = []
    failed: list[BaseException] = []

    def publish() -> None:
        try:
            backend(seeded).publish(many_retriever.index)
        except BaseException as exc:
            failed.append(exc)

    # Another session holds byline_generations, so the publish stops at its last statement:
    # every row and the manifest written, nothing committed.
    with psycopg.connect(seeded) as holder, psycopg.connect(seeded, autocommit=True) as look:
        holder.execute("LOCK TABLE byline_generations IN SHARE ROW EXCLUSIVE MODE")
        publishing = threading.Thread(target=publish)
        publishing.start()
        waiting = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation " \
                  "WHERE c.relname = 'byline_generations' AND NOT l.granted"
        for _ in range(600):
            if look.execute(waiting).fetchone()[0] or not publishing.is_alive():
                break
            threading.Event().wait(0.1)
        assert publishing.is_alive() and not failed, "the publish never reached its commit"
        r = Retriever(open_store(seeded, model=embedder.name), embedder)  # while it waits
        a = r.ask("why was the trip cancelled")
        seen.append((r.index.manifest.generation, len(r.index), a.answered))
        holder.rollback()  # the lock goes: the publish commits
        publishing.join(60)
    assert not publishing.is_alive() and not failed, failed
    assert seen == [(retriever.index.manifest.generation, len(retriever.index), True)]
    new = Retriever(open_store(seeded, model=embedder.name), embedder)
    assert new.index.manifest.generation == many_retriever.index.manifest.generation
    assert len(new.index) == len(many_retriever.index)
    assert new.ask("council budget line 7").to_dict() == \
        many_retriever.ask("council budget line 7").to_dict()
    # the previous generation is kept for whoever still reads it
    assert old.ask("why was the trip cancelled").to_dict() == \
        retriever.ask("why was the trip cancelled").to_dict()


def test_old_generations_are_dropped_beyond_the_previous_one(seeded, many_retriever,
                                                             retriever, embedder):
    first = open_store(seeded, model=embedder.name)
    backend(seeded).publish(many_retriever.index)
    third = FolderIndex.load(retriever.index.root)
    third = third.with_background(third.manifest.background, third.probe_vectors)
    third.manifest = replace(third.manifest, generation="feedc0de")
    publish_postgres(third, seeded)
    with psycopg.connect(seeded) as conn:
        kept = {g for (g,) in conn.execute("SELECT generation FROM byline_generations")}
        schemas = {s for (s,) in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'byline_g_%'")}
    assert kept == {"feedc0de", many_retriever.index.manifest.generation}
    assert schemas == {schema.schema_of(g) for g in kept}
    with pytest.raises(IndexMissing, match="was dropped"):
        first.passages([0])


def test_index_into_the_store_reuses_its_vectors(pg_url, embedder, capsys):
    from .support.paths import SEEDS

    assert main(["--store", pg_url, "index", str(SEEDS), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["embedded"] == first["passages"] > 0
    assert main(["index", "--store", pg_url, str(SEEDS), "--json"]) == 0  # after the command
    again = json.loads(capsys.readouterr().out)
    assert again["reused"] == again["passages"] and again["embedded"] == 0
    assert "***" not in again["index_dir"] and "postgresql://" in again["index_dir"]


def test_a_password_from_the_environment(pg_server, seeded, monkeypatch, embedder):
    bare = seeded.replace(f":{pg_server.password}@", "@")
    assert pg_server.password not in bare
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    assert len(open_store(bare, model=embedder.name)) > 0


@pytest.mark.parametrize("case", ["wrong password", "server down", "bad url", "no database"])
def test_store_failures_are_one_line(pg_server, case, capsys, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    url = {"wrong password": pg_server.url.replace(pg_server.password, "not-it"),
           "server down": "postgresql://byline:secret@127.0.0.1:1/db",
           "bad url": "postgresql://byline:secret@127.0.0.1:notaport/db",
           "no database": pg_server.url.rsplit("/", 1)[0] + "/missing"}[case]
    assert main(["--store", url, "sources"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(("byline: Cannot use the store at postgresql://127.0.0.1",
                           "byline: The store URL for postgresql://127.0.0.1"))
    assert len(err.strip().splitlines()) == 1, err
    assert "secret" not in err and "not-it" not in err and pg_server.password not in err
    with pytest.raises(StoreError):
        open_store(url)
