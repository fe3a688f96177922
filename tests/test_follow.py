"""Following feeds: a real HTTP server on 127.0.0.1, real files, a real index, an injected clock."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from retrieval.cli.main import main
from retrieval.corpus import scan_corpus
from retrieval.errors import FetchError
from retrieval.feeds.addresses import AddressPolicy
from retrieval.feeds.fetch import FetchSettings
from retrieval.feeds.follow import INDEX_RETRY, MAX_BACKOFF, STATE_FILE, FeedState, Follower
from retrieval.feeds.lists import read_feeds
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex, WriterLock, read_manifest

from .support.local_http import (
    QuietHandler,
    only_localhost,  # noqa: F401 (autouse: nothing but 127.0.0.1)
    rss,
    site_server,
)

LOCAL = AddressPolicy.allowing(["127.0.0.1"])  # the test servers, on any port
FAST = FetchSettings(policy=LOCAL, rate=1000.0, timeout=2.0)
T0 = 1_714_557_600.0  # 2024-05-01 10:00:00Z
INTERVAL = 900.0
LAST_MODIFIED = "Wed, 01 May 2024 09:00:00 GMT"
BYLINE = Path(sys.executable).parent / "byline"


def _page(title: str, *paragraphs: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
            f"{body}</article></body></html>").encode()


PAGES = {
    "/news/ferry.html": _page(
        "Eastport ferry resumes crossings",
        "The Eastport ferry resumed its crossings on Monday after the harbour authority "
        "finished rebuilding the main pier, which storm waves wrecked in January.",
        "Commuters had driven around the bay for three months, adding an hour each way."),
    "/news/library.html": _page(
        "Central library to open late",
        "The central library will stay open until 10 pm on weekdays from March, the council "
        "said, after a petition signed by four thousand students.",
        "The longer hours will be paid for by closing the library on Sunday mornings."),
    "/news/bridge.html": _page(
        "Old Mill bridge reopens",
        "The Old Mill bridge reopened to traffic on Wednesday after eight months of repairs "
        "to its deck and railings, the county engineer said."),
}


@dataclass
class Site:
    """The test server: what its feed lists, whether its flaky feed fails, what it saw."""

    base: str = ""
    items: list[str] = field(default_factory=lambda: ["/news/ferry.html",
                                                      "/news/library.html"])
    failing: bool = True
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def feed(self, paths: list[str]) -> bytes:
        return rss(self.base, [(p, p) for p in paths], "Test News")


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):

        def do_GET(self) -> None:
            site.requests.append((self.path, dict(self.headers)))
            if self.path == "/feed.xml":
                body = site.feed(site.items)
                etag = '"' + hashlib.sha256(body).hexdigest()[:12] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self._send(200, body, "application/rss+xml", ETag=etag,
                           Last_Modified=LAST_MODIFIED)
            elif self.path == "/empty.xml" or (self.path == "/flaky.xml" and not site.failing):
                self._send(200, site.feed([]), "application/rss+xml")
            elif self.path == "/flaky.xml":
                self._send(500, b"oops", "text/plain")
            elif self.path == "/broken.xml":
                self._send(200, site.feed(["/missing.html"]), "application/rss+xml")
            elif self.path in PAGES:
                self._send(200, PAGES[self.path], "text/html; charset=utf-8")
            else:
                self._send(404, b"not here", "text/plain")

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    with site_server(lambda base: Site(base=base), _handler) as s:
        yield s


@pytest.fixture
def refused() -> str:
    """A 127.0.0.1 URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"


@dataclass
class Clock:
    """The follower's clock, moved by hand."""

    now: float = T0

    def __call__(self) -> float:
        return self.now


def _folders(tmp_path: Path, *feeds: str) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "feeds.txt").write_text("".join(f"{f}\n" for f in feeds), encoding="utf-8")
    return corpus, tmp_path / "index"


def _follower(corpus: Path, index: Path, embedder, clock: Clock, **kw) -> Follower:
    kw.setdefault("jitter", 0.0)
    return Follower(corpus, index, embedder, interval=INTERVAL, settings=FAST, clock=clock,
                    **kw)


def _state(follower: Follower, url: str) -> FeedState:
    return {s.url: s for s in follower.states()}[url]


def _ask(index_dir: Path, embedder, question: str):
    return Retriever(FolderIndex.load(index_dir, model=embedder.name), embedder).ask(question)


# --- the feed list ---------------------------------------------------------------------------


def test_feeds_txt_comments_blank_lines_and_bad_lines(tmp_path: Path):
    path = tmp_path / "feeds.txt"
    assert read_feeds(path).urls == [] and read_feeds(path).problems == []
    path.write_text("# our feeds\n\nhttps://a.example/rss.xml\n"
                    "  https://b.example/feed#top   # the B feed\n"
                    "ftp://c.example/feed\nnot a url\nhttps://a.example/rss.xml\n",
                    encoding="utf-8")
    feeds = read_feeds(path)
    assert feeds.urls == ["https://a.example/rss.xml", "https://b.example/feed"]
    assert feeds.problems == [
        "feeds.txt line 5: 'ftp://c.example/feed' is not an http(s) URL; left out",
        "feeds.txt line 6: 'not a url' is not an http(s) URL; left out",
        "feeds.txt line 7: https://a.example/rss.xml is listed twice; left out",
    ]
    # feeds.txt is the folder's feed list, not an article.
    (tmp_path / "note.txt").write_text("A note\n\nThe council met on Tuesday to vote.\n")
    assert [a.source for a in scan_corpus(tmp_path).articles] == ["note.txt"]


def test_add_and_remove_edit_feeds_txt_atomically(tmp_path: Path, embedder):
    corpus, index = _folders(tmp_path)
    (corpus / "feeds.txt").write_text("# mine\nhttps://a.example/rss.xml", encoding="utf-8")
    follower = _follower(corpus, index, embedder, Clock())
    assert follower.add_feed(" https://b.example/feed.xml#x ")
    assert not follower.add_feed("https://a.example/rss.xml")  # listed already
    with pytest.raises(FetchError):
        follower.add_feed("file:///etc/passwd")
    assert (corpus / "feeds.txt").read_text() == ("# mine\nhttps://a.example/rss.xml\n"
                                                  "https://b.example/feed.xml\n")
    assert follower.remove_feed("https://a.example/rss.xml")
    assert not follower.remove_feed("https://a.example/rss.xml")
    assert (corpus / "feeds.txt").read_text() == "# mine\nhttps://b.example/feed.xml\n"
    assert [s.url for s in follower.states()] == ["https://b.example/feed.xml"]
    assert not [p for p in corpus.iterdir() if p.name.endswith(".tmp")]

    (corpus / "feeds.txt").unlink()  # a fresh list starts with a comment saying what it is
    assert follower.add_feed("https://c.example/atom")
    assert (corpus / "feeds.txt").read_text().startswith("# ")
    assert follower.feeds().urls == ["https://c.example/atom"]


# --- polling ---------------------------------------------------------------------------------


def test_first_poll_indexes_then_conditional_then_only_the_new_item(site: Site,
                                                                   tmp_path: Path, embedder):
    corpus, index = _folders(tmp_path, site.url("/feed.xml"))
    clock = Clock()
    follower = _follower(corpus, index, embedder, clock)

    first = follower.poll_due()
    assert first.polled == [site.url("/feed.xml")] and first.new_articles == 2
    assert first.published and first.failures == [] and first.index_error is None
    assert first.next_due == T0 + INTERVAL
    assert site.paths() == ["/feed.xml", "/news/ferry.html", "/news/library.html"]
    answer = _ask(index, embedder, "When did the Eastport ferry resume its crossings?")
    assert answer.answered
    assert answer.hits[0].passage.url == site.url("/news/ferry.html")
    generation = read_manifest(index).generation

    clock.now = T0 + INTERVAL
    second = follower.poll_due()
    assert second.polled == [site.url("/feed.xml")] and second.new_articles == 0
    assert not second.published and read_manifest(index).generation == generation
    sent = site.hits("/feed.xml")[-1]
    assert sent["If-None-Match"].startswith('"') and sent["If-Modified-Since"] == LAST_MODIFIED
    assert site.paths()[3:] == ["/feed.xml"]  # the feed, answered 304; no article asked for
    state = follower.states()[0]
    assert state.last_status == "not_modified" and state.etag == sent["If-None-Match"]

    site.items.append("/news/bridge.html")
    clock.now = T0 + 2 * INTERVAL
    third = follower.poll_due()
    assert third.new_articles == 1 and third.published
    assert site.paths()[4:] == ["/feed.xml", "/news/bridge.html"]
    assert third.reused and third.reused > 0  # the two earlier articles' vectors
    answer = _ask(index, embedder, "Which bridge reopened after eight months of repairs?")
    assert answer.answered and answer.hits[0].passage.url == site.url("/news/bridge.html")


def test_a_restart_resumes_without_fetching_again(site: Site, tmp_path: Path, embedder):
    corpus, index = _folders(tmp_path, site.url("/feed.xml"))
    clock = Clock()
    assert _follower(corpus, index, embedder, clock).poll_due().published
    asked = len(site.requests)

    again = _follower(corpus, index, embedder, clock)  # a new process on the same folders
    assert again.poll_due().polled == [] and len(site.requests) == asked  # nothing due yet
    assert again.next_due() == T0 + INTERVAL
    clock.now = T0 + INTERVAL
    report = again.poll_due()
    assert report.polled == [site.url("/feed.xml")] and not report.published
    assert site.paths()[asked:] == ["/feed.xml"] and "If-None-Match" in site.hits("/feed.xml")[-1]

    # Even with the feed's stored copy gone (a full 200), its articles are not asked again.
    for stored in (corpus / ".feeds").iterdir():
        stored.unlink()
    clock.now = T0 + 2 * INTERVAL
    assert again.poll_due().new_articles == 0
    assert site.paths()[asked + 1:] == ["/feed.xml"]


def test_failing_feeds_back_off_exponentially_and_the_others_still_work(
        site: Site, tmp_path: Path, embedder, refused: str):
    corpus, index = _folders(tmp_path, site.url("/flaky.xml"), refused, site.url("/empty.xml"))
    clock = Clock()
    follower = _follower(corpus, index, embedder, clock)

    report = follower.poll_due()
    assert report.polled == [site.url("/empty.xml")]
    assert [(f.url, f.error.split(" (")[0], f.failures, f.next_poll) for f in report.failures] \
        == [(site.url("/flaky.xml"), "500 Internal Server Error", 1, T0 + 2 * INTERVAL),
            (refused, "cannot connect", 1, T0 + 2 * INTERVAL)]
    assert all("\n" not in f.error for f in report.failures)
    assert report.line() == ("2024-05-01 10:00:00Z: polled 3 feeds: 0 new articles, 2 failed; "
                             "next poll 2024-05-01 10:15:00Z")

    delays = []
    for _ in range(8):  # poll when the flaky feed is due again: each failure doubles its wait
        clock.now = _state(follower, site.url("/flaky.xml")).next_poll
        report = follower.poll_due()
        [flaky] = [f for f in report.failures if f.url == site.url("/flaky.xml")]
        delays.append(flaky.next_poll - clock.now)
        assert report.polled == [site.url("/empty.xml")]  # the good feed still works
    assert delays == [4 * INTERVAL, 8 * INTERVAL, 16 * INTERVAL, 32 * INTERVAL,
                      64 * INTERVAL, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF]
    assert _state(follower, refused).failures > 1  # backing off the same way

    hits = len(site.hits("/flaky.xml"))
    clock.now += 1  # not due: polling again asks nothing of a failing feed
    follower.poll_due(clock.now)
    assert len(site.hits("/flaky.xml")) == hits
    state = _state(follower, site.url("/flaky.xml"))
    assert state.failures == hits == 9 and state.last_error == "500 Internal Server Error"

    site.failing = False  # it recovers: one success resets the schedule
    clock.now = state.next_poll
    report = follower.poll_due()
    assert site.url("/flaky.xml") in report.polled
    state = _state(follower, site.url("/flaky.xml"))
    assert (state.failures, state.last_error, state.next_poll) == (0, None,
                                                                  clock.now + INTERVAL)


def test_jitter_spreads_polls_within_ten_percent(site: Site, tmp_path: Path, embedder):
    corpus, index = _folders(tmp_path, site.url("/empty.xml"))
    clock = Clock()
    follower = _follower(corpus, index, embedder, clock, jitter=0.1, rng=random.Random(7))
    delays = []
    for _ in range(6):
        follower.poll_due()
        delays.append(follower.next_due() - clock.now)
        clock.now = follower.next_due()
    assert all(0.9 * INTERVAL <= d <= 1.1 * INTERVAL for d in delays)
    assert len(set(delays)) == len(delays)


def test_an_article_that_fails_is_tried_three_times_then_given_up(site: Site, tmp_path: Path,
                                                                   embedder):
    corpus, index = _folders(tmp_path, site.url("/broken.xml"))
    clock = Clock()
    follower = _follower(corpus, index, embedder, clock)
    tries = []
    for _ in range(5):
        report = follower.poll_due()
        tries += [(e.attempts, e.gave_up, e.error) for e in report.entry_failures]
        clock.now += INTERVAL
    assert tries == [(1, False, "404 Not Found"), (2, False, "404 Not Found"),
                     (3, True, "404 Not Found")]
    assert len(site.hits("/missing.html")) == 3 and len(site.hits("/broken.xml")) == 5
    assert not index.exists()  # nothing new was saved: nothing indexed


def test_a_busy_index_is_retried_a_minute_later(site: Site, tmp_path: Path, embedder):
    corpus, index = _folders(tmp_path, site.url("/feed.xml"))
    clock = Clock()
    follower = _follower(corpus, index, embedder, clock)
    held, release = threading.Event(), threading.Event()

    def writer() -> None:  # another writer (here a thread) holds the index's lock
        with WriterLock(index):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert held.wait(10)
        report = follower.poll_due()
    finally:
        release.set()
        thread.join()
    assert report.new_articles == 2 and not report.published
    assert "being written" in report.index_error and report.next_due == T0 + INDEX_RETRY
    assert "not indexed yet" in report.line()

    asked = len(site.requests)
    restarted = _follower(corpus, index, embedder, clock)  # the retry survives a restart
    clock.now = T0 + INDEX_RETRY
    report = restarted.poll_due()
    assert report.published and report.polled == [] and len(site.requests) == asked
    assert _ask(index, embedder, "How late will the central library stay open?").answered
    assert restarted.poll_due(T0 + 2 * INDEX_RETRY).published is False  # done: not again


def test_a_stop_ends_the_round_between_requests_and_indexing_waits(site: Site,
                                                                  tmp_path: Path, embedder):
    corpus, index = _folders(tmp_path, site.url("/feed.xml"))
    clock = Clock()
    follower = _follower(corpus, index, embedder, clock)
    report = follower.poll_due(stop=lambda: len(site.hits("/news/ferry.html")) > 0)
    assert report.stopped and report.new_articles == 1 and not report.published
    assert site.paths() == ["/feed.xml", "/news/ferry.html"] and not index.exists()
    assert "; stopped; " in report.line() and report.next_due == T0  # the index is owed

    clock.now = T0 + 1  # the next round indexes what was saved; the feed is not due yet
    report = follower.poll_due()
    assert report.published and report.polled == [] and len(site.requests) == 2
    clock.now = T0 + INTERVAL  # the article left unfetched comes with the feed's next poll
    report = follower.poll_due()
    assert report.new_articles == 1 and site.paths()[2:] == ["/feed.xml", "/news/library.html"]


def test_a_damaged_state_file_is_one_clear_error(tmp_path: Path, embedder):
    corpus, index = _folders(tmp_path)
    (corpus / STATE_FILE).write_bytes(b"not a database" * 100)
    with pytest.raises(Exception, match="remove it to start over") as caught:
        _follower(corpus, index, embedder, Clock())
    assert "\n" not in str(caught.value)


# --- the command -----------------------------------------------------------------------------


def test_follow_once_then_list_then_json(site: Site, tmp_path: Path, monkeypatch, capsys,
                                          refused: str):
    corpus, index = _folders(tmp_path, site.url("/feed.xml"), "gopher://old.example/")
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(index))
    monkeypatch.setenv("BYLINE_FETCH_ALLOW", "127.0.0.1")  # its links: the test server

    assert main(["follow", str(corpus), "--once"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == ["byline: feeds.txt line 2: 'gopher://old.example/' is not an "
                                "http(s) URL; left out"]
    [line] = out.splitlines()
    assert "polled 1 feed: 2 new articles; published generation " in line
    assert main(["ask", "--json", "When did the Eastport ferry resume its crossings?"]) == 0
    assert json.loads(capsys.readouterr().out)["answered"]

    assert main(["follow", str(corpus), "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == site.url("/feed.xml")
    assert out[1].startswith("    last poll ") and "(fetched, 2 new); next " in out[1]

    with (corpus / "feeds.txt").open("a") as f:
        f.write(f"{refused}\n")
    assert main(["follow", str(corpus), "--once", "--json"]) == 1  # a feed failed
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert report["polled"] == [] and report["published"] is False  # the first: not due
    assert [f["url"] for f in report["failures"]] == [refused]
    assert main(["follow", str(corpus), "--list", "--json"]) == 0
    states = json.loads(capsys.readouterr().out)
    assert [(s["url"], s["failures"]) for s in states] == [(site.url("/feed.xml"), 0),
                                                           (refused, 1)]
    assert states[1]["last_error"].startswith("cannot connect")


def test_follow_without_feeds_says_where_to_list_them(tmp_path: Path, capsys):
    (tmp_path / "corpus").mkdir()
    assert main(["--index-dir", str(tmp_path / "i"), "follow", str(tmp_path / "corpus")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"byline: No feeds to follow: list feed URLs in "
                   f"{tmp_path / 'corpus' / 'feeds.txt'}, one a line.")


def test_follow_process_stops_cleanly_on_sigterm(tmp_path: Path, refused: str):
    corpus, index = _folders(tmp_path, refused)
    env = {**os.environ, "BYLINE_INDEX_DIR": str(index)}
    proc = subprocess.Popen([str(BYLINE), "follow", str(corpus)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = proc.stdout.readline()  # the first round, then it sleeps
        assert "polled 1 feed: 0 new articles, 1 failed; next poll " in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert err.startswith(f"byline: feed {refused} failed: cannot connect")
    with sqlite3.connect(corpus / STATE_FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT failures FROM feeds").fetchall() == [(1,)]


def test_follow_publishes_into_a_postgresql_store(site: Site, tmp_path: Path, monkeypatch,
                                                  capsys, pg_url):
    corpus, _ = _folders(tmp_path, site.url("/feed.xml"))
    monkeypatch.setenv("BYLINE_STORE", pg_url)
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(tmp_path / "unused"))
    monkeypatch.setenv("BYLINE_FETCH_ALLOW", "127.0.0.1")  # its links: the test server
    assert main(["follow", str(corpus), "--once"]) == 0
    assert "2 new articles; published generation " in capsys.readouterr().out
    assert main(["ask", "--json", "When did the Eastport ferry resume its crossings?"]) == 0
    assert json.loads(capsys.readouterr().out)["answered"]
    assert not (tmp_path / "unused").exists()
