"""Read replicas: a hot standby refuses LISTEN (and NOTIFY is not replicated), so a
LiveRetriever on one polls the manifest row's generation; a real primary and a real
streaming standby (tests/support/pg_server.py, pg_basebackup) show a publish on the
primary picked up from the standby. And the safety-net poll where LISTEN works but a
notification is lost."""

from __future__ import annotations

import logging

import pytest

from retrieval.cli.main import main
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Retriever
from retrieval.store import backend, open_store

from .support.library_article import TRIP_Q
from .support.polling import wait_for


@pytest.fixture(scope="module")
def replica():
    """A primary and a hot standby streaming from it, each in a temporary folder on
    127.0.0.1; both stopped at the end."""
    from retrieval.store.postgres.connect import close_pools

    from .support import pg_server as server

    try:
        primary = server.start()
    except server.ServerFailed as exc:
        pytest.fail(f"the test PostgreSQL could not be started: {exc}", pytrace=False)
    try:
        standby = server.start_standby(primary)
    except server.ServerFailed as exc:
        primary.stop()
        pytest.fail(f"the standby could not be started: {exc}", pytrace=False)
    try:
        yield primary, standby
    finally:
        close_pools()
        standby.stop()
        primary.stop()


def test_a_follower_on_a_standby_polls_and_picks_up_a_publish(
        replica, seed_index_dir, many_retriever, retriever, embedder, caplog):
    from .support import pg_server as server

    primary, standby = replica
    assert main(["migrate", "--from", str(seed_index_dir), "--to", primary.url]) == 0
    assert server.caught_up(primary, standby), "the standby did not replay the publish"
    on_standby = Retriever(open_store(standby.url, model=embedder.name), embedder)
    assert on_standby.ask(TRIP_Q).to_dict() == retriever.ask(TRIP_Q).to_dict()
    first = on_standby.index.manifest.generation
    with caplog.at_level(logging.INFO, logger="byline.live"):
        live = LiveRetriever(on_standby, poll_seconds=0.2)
    try:
        assert live.watch is not None and live.watch.mode == "poll"
        said = [r.getMessage() for r in caplog.records if "following" in r.getMessage()]
        assert len(said) == 1 and "polling" in said[0] and primary.password not in said[0]
        assert not live.stale()
        backend(primary.url).publish(many_retriever.index)  # a writer on the primary
        assert wait_for(live.stale, 20), "the standby's follower never saw the new generation"
        held = live.current
        assert live.refresh()
        assert live.generation == many_retriever.index.manifest.generation != first
        q = "council budget line 7"
        assert live.current.ask(q).to_dict() == many_retriever.ask(q).to_dict()
        assert held.ask(TRIP_Q).answered  # the previous generation is kept on the standby too
        assert not live.stale()
        assert len([r for r in caplog.records if "following" in r.getMessage()]) == 1
    finally:
        live.close()


@pytest.mark.parametrize("command", ["migrate", "index"])
def test_a_writer_on_a_standby_fails_in_one_line(replica, seed_index_dir, command, capsys):
    from .support.paths import SEEDS

    _, standby = replica
    args = (["migrate", "--from", str(seed_index_dir), "--to", standby.url]
            if command == "migrate" else ["--store", standby.url, "index", str(SEEDS)])
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("byline: ") and len(err.splitlines()) == 1, err
    assert "read-only, a hot standby" in err and "primary" in err, err
    assert standby.password not in err


def test_a_lost_notification_is_caught_by_the_safety_poll(
        pg_url, seed_index_dir, many_retriever, embedder):
    """On a primary LISTEN works; a publish whose NOTIFY never arrives (sent on another
    channel here, as through a pooler that drops it) is still seen by the periodic poll."""
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    # The listener polls every 0.3 s and listens where no publish notifies (a pooler that
    # drops NOTIFY): only the safety poll can see the publish.
    watch = backend(pg_url).watch(safety_seconds=0.3, channel="byline_nobody_notifies")
    live = LiveRetriever(Retriever(open_store(pg_url, model=embedder.name), embedder),
                         watch=watch)
    try:
        assert live.watch is not None and live.watch.mode == "listen"
        backend(pg_url).publish(many_retriever.index)
        assert wait_for(live.stale, 10), "the safety poll did not see the new generation"
        assert live.refresh()
        assert live.generation == many_retriever.index.manifest.generation
    finally:
        live.close()


def test_index_into_a_standby_fails_before_reading_anything(replica, tmp_path, capsys):
    """`byline index` with a standby's URL: refused at once, in one line naming the primary,
    before a file is read or a passage embedded."""
    _, standby = replica
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "unreadable.txt").write_bytes(b"\xff\xfe not an article")  # would be reported
    assert main(["--store", standby.url, "index", str(corpus)]) == 1
    err = capsys.readouterr().err
    assert "read-only, a hot standby" in err and "primary" in err, err
    assert len(err.strip().splitlines()) == 1 and "unreadable" not in err, err
