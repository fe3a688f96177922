"""The PostgreSQL store as dependable as the folder, against a real server: a restart between
questions, a terminated session, and each failure one line (issue 24)."""

from __future__ import annotations

import psycopg

from retrieval import index_corpus
from retrieval.cli.main import main
from retrieval.search.retriever import Retriever
from retrieval.store import open_store


def test_no_question_fails_once_the_server_is_back_after_a_restart(
        pg_server, pg_url, seed_index_dir, embedder):
    """A long-lived reader (the bot's) keeps pooled connections; a restart kills them all.
    The next questions are answered, none fails, and from the same Retriever."""
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    retriever = Retriever(open_store(pg_url, model=embedder.name), embedder)
    before = retriever.ask("why was the trip cancelled").to_dict()
    pg_server.restart()
    for _ in range(3):  # every pooled connection was dead: each question meets one
        assert retriever.ask("why was the trip cancelled").to_dict() == before


def test_a_terminated_session_costs_no_question(pg_url, seed_index_dir, embedder):
    """pg_terminate_backend on the reader's connections (an administrator, a pooler): the
    next question is answered on new connections."""
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    retriever = Retriever(open_store(pg_url, model=embedder.name), embedder)
    before = retriever.ask("who met in Singapore").to_dict()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
    assert killed >= 1
    assert retriever.ask("who met in Singapore").to_dict() == before


def test_migrating_back_to_a_kept_generation_serves_it_again(
        pg_url, seed_index_dir, embedder, tmp_path, capsys):
    """migrate A, then B, then A again: A's tables are still kept (the store keeps the last
    generations for readers still on them), so A is served again, its tables untouched under
    whoever still reads them; a reader of A opened before keeps answering throughout."""
    corpus, many = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    (corpus / "bridge.txt").write_text("Bridge closes\n\nThe river bridge closed on Monday "
                                       "for repairs to its deck.\n", encoding="utf-8")
    index_corpus(corpus, many, embedder, progress=False)
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    reader = Retriever(open_store(pg_url, model=embedder.name), embedder)
    before = reader.ask("why was the trip cancelled").to_dict()
    assert main(["migrate", "--from", str(many), "--to", pg_url]) == 0
    capsys.readouterr()
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0, \
        capsys.readouterr().err
    again = Retriever(open_store(pg_url, model=embedder.name), embedder)
    assert again.index.manifest.generation == reader.index.manifest.generation
    assert again.ask("why was the trip cancelled").to_dict() == before
    assert reader.ask("why was the trip cancelled").to_dict() == before
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT generation FROM byline_generations").fetchall()
    assert len(rows) == 2  # A and B, each once


def test_a_server_without_pgvector_is_one_line(capsys):
    """`migrate` (and an index into it) on a server that has no vector extension: one line
    saying so and what to do, exit 1, no traceback."""
    from .support import pg_server as servers

    server = servers.start(pgvector=False)
    try:
        for args in (["migrate", "--to", server.url],
                     ["--store", server.url, "check"]):
            assert main(args) == 1
            err = capsys.readouterr().err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert "pgvector" in err and server.password not in err, err
    finally:
        server.stop()


def test_check_says_in_one_line_when_the_served_generation_is_gone(
        pg_url, seed_index_dir, capsys):
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        generation = conn.execute("SELECT generation FROM byline_manifest").fetchone()[0]
        conn.execute(f"DROP SCHEMA byline_g_{generation.lower()} CASCADE")
    capsys.readouterr()
    assert main(["--store", pg_url, "check"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert generation in err and "publish the index again" in err, err


def test_a_writer_killed_mid_statement_does_not_hold_the_publish_lock(pg_url):
    """A writer killed (kill -9) while its session runs a long statement holding the publish
    lock (an index build at scale; a sleep here): the server ends that session within seconds,
    so the next writer is not kept waiting for the statement to finish."""
    import subprocess
    import sys
    import time

    from retrieval.store.postgres import schema

    script = ("import sys\nfrom retrieval.store.postgres.connect import connect\n"
              "conn = connect(sys.argv[1])\nwith conn.transaction():\n"
              f"    conn.execute('SELECT pg_advisory_xact_lock({schema.PUBLISH_LOCK})')\n"
              "    print('locked', flush=True)\n    conn.execute('SELECT pg_sleep(120)')\n")
    writer = subprocess.Popen([sys.executable, "-c", script, pg_url], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        with psycopg.connect(pg_url, autocommit=True) as look:
            taken = "SELECT pg_try_advisory_lock(%s)"
            assert not look.execute(taken, (schema.PUBLISH_LOCK,)).fetchone()[0]
            writer.kill()
            writer.wait(10)
            start = time.monotonic()
            while not look.execute(taken, (schema.PUBLISH_LOCK,)).fetchone()[0]:
                assert time.monotonic() - start < 30, "the killed writer's session kept the lock"
                time.sleep(0.2)
            assert time.monotonic() - start < 15  # the check interval, not the 120 s sleep
    finally:
        writer.kill()


def test_ask_on_an_empty_database_says_so_and_writes_nothing(pg_url, capsys):
    """A shared database with no index: `ask` answers "No index in the store…", as
    docs/postgres.md says, and leaves the database as it was (no seeds written into it)."""
    assert main(["--store", pg_url, "ask", "why was the trip cancelled"]) == 1
    err = capsys.readouterr().err
    assert "No index in the store" in err and len(err.strip().splitlines()) == 1, err
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'byline%' "
                              "OR schemaname LIKE 'byline%'").fetchone()[0]
    assert tables == 0
