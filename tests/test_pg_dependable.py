"""The PostgreSQL store as dependable as the folder, against a real server: a restart between
questions, a terminated session, and each failure one line (issue 24)."""

from __future__ import annotations

import psycopg

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
