"""`byline fetch`: pages and feeds from a real HTTP server on 127.0.0.1, failures one line each."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from retrieval.cli.main import main
from retrieval.errors import FetchError
from retrieval.feeds.fetch import (
    MAX_NAME,
    RECORD_NAME,
    USER_AGENT,
    Fetcher,
    FetchSettings,
    RateLimiter,
    recorded_urls,
    slug,
)

from .support.local_http import (  # noqa: F401 (only_localhost: autouse, nothing but 127.0.0.1)
    LOCAL,
    QuietHandler,
    only_localhost,
    rss,
    site_server,
)

FAST = FetchSettings(policy=LOCAL, rate=1000.0, timeout=0.5)  # quick; one test checks the rate
PAGE_A = (b"<html><head><title>Bridge reopens</title></head><body><article><h1>Bridge reopens"
          b"</h1><p>The Old Mill bridge reopened to traffic on Wednesday after eight months "
          b"of repairs to its deck and railings.</p></article></body></html>")
PAGE_B = "<html><body><p>Caf\u00e9 \u2014 news B</p></body></html>".encode("latin-1", "replace")
PAGE_C = (b"<html><head><title>Story C</title></head><body><article><p>The harbour "
          b"authority approved a plan on Monday to dredge the channel for larger ships.</p>"
          b"</article></body></html>")
BIG = 50 * 1024 * 1024
CHUNK = b"x" * 65536
ETAG = '"feed-v1"'
LAST_MODIFIED = "Wed, 01 May 2024 10:00:00 GMT"


@dataclass
class Site:
    """The test server: its base URL and what it saw."""

    base: str
    requests: list[tuple[str, dict[str, str], float]] = field(default_factory=list)
    big_sent: list[int] = field(default_factory=list)
    big_done: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers, _ in self.requests if p == path]


def _feed(site_base: str) -> bytes:
    return rss(site_base, [("A", "/a.html"), ("C", "/c.html"), ("Gone", "/missing"),
                           ("A again", "/a.html")])


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):

        def _redirect(self, to: str) -> None:
            self.send_response(302)
            self.send_header("Location", to)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            site.requests.append((self.path, dict(self.headers), time.monotonic()))
            path = self.path
            try:
                if path == "/a.html" and self.headers.get("If-None-Match") == '"a1"':
                    self.send_response(304)
                    self.end_headers()
                elif path == "/a.html":
                    self._send(200, PAGE_A, ETag='"a1"')
                elif path == "/news/b":
                    self._send(200, PAGE_B, "text/html; charset=iso-8859-1")
                elif path in ("/c.html", "/final.html") or path.startswith("/rate"):
                    self._send(200, PAGE_C, "application/xhtml+xml")
                elif path == "/moved":
                    self._redirect("/final.html")
                elif path == "/loop":
                    self._redirect("/loop2")
                elif path == "/loop2":
                    self._redirect(site.url("/loop"))
                elif path == "/error":
                    self._send(500, b"oops", "text/plain")
                elif path == "/slow":
                    time.sleep(1.5)
                    self._send(200, PAGE_C)
                elif path == "/image.png":
                    self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")
                elif path == "/feed.xml":
                    if self.headers.get("If-None-Match") == ETAG:
                        self.send_response(304)
                        self.end_headers()
                    else:
                        self._send(200, _feed(site.base), "application/rss+xml", ETag=ETAG,
                                   Last_Modified=LAST_MODIFIED)
                elif path == "/feed.txt":
                    self._send(200, b"\n  " + _feed(site.base), "text/plain")
                elif path == "/notes.txt":
                    self._send(200, b"just some notes", "text/plain")
                elif path in ("/big", "/big-declared"):
                    self._big(declared=path == "/big-declared")
                else:
                    self._send(404, b"not here")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up, as it should for the slow and big pages

        def _big(self, declared: bool) -> None:
            sent = 0
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                if declared:
                    self.send_header("Content-Length", str(BIG))
                self.end_headers()  # HTTP/1.0 without a length: the body ends when we close
                while sent < BIG:
                    self.wfile.write(CHUNK)
                    sent += len(CHUNK)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                site.big_sent.append(sent)
                site.big_done.set()

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    with site_server(lambda base: Site(base=base), _handler) as s:
        yield s


def _fetch(folder: Path, urls=(), feeds=(), settings=FAST, **kw):
    with Fetcher(folder, settings, **kw) as f:
        return list(f.fetch(urls, feeds))


def _record(folder: Path) -> dict:
    return json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))


def _saved(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and p.name != RECORD_NAME}


# --- the library -----------------------------------------------------------------------------


def test_pages_saved_raw_with_their_urls_recorded(site: Site, tmp_path: Path):
    results = _fetch(tmp_path, [site.url("/a.html"), site.url("/news/b"), site.url("/moved")])
    host = f"127.0.0.1_{site.base.rsplit(':', 1)[1]}"
    assert [(r.status, r.path) for r in results] == [
        ("fetched", f"{host}/a.html"), ("fetched", f"{host}/news-b.html"),
        ("fetched", f"{host}/moved.html"),
    ]
    assert (tmp_path / host / "a.html").read_bytes() == PAGE_A
    assert (tmp_path / host / "news-b.html").read_bytes() == PAGE_B  # bytes as served, latin-1
    assert (tmp_path / host / "moved.html").read_bytes() == PAGE_C
    record = _record(tmp_path)
    assert record["version"] == 1 and record["feeds"] == {}
    moved = record["files"][f"{host}/moved.html"]
    assert moved["url"] == site.url("/final.html") and moved["requested"] == site.url("/moved")
    assert moved["content_type"] == "application/xhtml+xml"
    a = record["files"][f"{host}/a.html"]
    assert a["etag"] == '"a1"' and a["last_modified"] is None
    assert a["fetched"].endswith("+00:00")
    assert recorded_urls(tmp_path) == {
        f"{host}/a.html": site.url("/a.html"), f"{host}/news-b.html": site.url("/news/b"),
        f"{host}/moved.html": site.url("/final.html"),
    }
    assert all(h["User-Agent"] == USER_AGENT for _, h, _ in site.requests)
    assert not list(tmp_path.rglob("*.tmp"))


def test_stored_page_skipped_and_refresh_asks_conditionally(site: Site, tmp_path: Path):
    _fetch(tmp_path, [site.url("/a.html")])
    again = _fetch(tmp_path, [site.url("/a.html")])
    assert again[0].status == "skipped" and len(site.hits("/a.html")) == 1  # no request at all
    record = _record(tmp_path)
    record["files"][again[0].path]["fetched"] = "2000-01-01T00:00:00+00:00"
    (tmp_path / RECORD_NAME).write_text(json.dumps(record))
    refreshed = _fetch(tmp_path, [site.url("/a.html"), site.url("/news/b")], refresh=True)
    assert [r.status for r in refreshed] == ["not_modified", "fetched"]
    assert site.hits("/a.html")[-1]["If-None-Match"] == '"a1"'
    assert (tmp_path / refreshed[0].path).read_bytes() == PAGE_A
    assert _record(tmp_path)["files"][refreshed[0].path]["fetched"] > "2000-01-01T00:00:00"

    (tmp_path / refreshed[1].path).write_bytes(b"stale")
    again = _fetch(tmp_path, [site.url("/news/b")], refresh=True)  # no validators: a plain GET
    assert again[0].status == "fetched" and "If-None-Match" not in site.hits("/news/b")[-1]
    assert (tmp_path / again[0].path).read_bytes() == PAGE_B  # the same file, overwritten
    assert _saved(tmp_path) == {refreshed[0].path, refreshed[1].path}


def test_each_failure_is_one_result_and_never_stops_the_others(site: Site, tmp_path: Path):
    urls = ["/missing", "/a.html", "/error", "/loop", "/image.png", "/slow", "/news/b"]
    results = _fetch(tmp_path, [site.url(u) for u in urls])
    by_url = {r.url.removeprefix(site.base): r for r in results}
    assert by_url["/missing"].reason == "404 Not Found"
    assert by_url["/error"].reason == "500 Internal Server Error"
    assert by_url["/loop"].reason.startswith("redirect loop")
    assert by_url["/image.png"].reason == "not HTML (image/png)"
    assert by_url["/slow"].reason == "timed out after 0.5 s"
    assert [r.status for r in results] == ["failed", "fetched", "failed", "failed", "failed",
                                           "failed", "fetched"]
    assert len(site.hits("/loop")) == 1 and len(site.hits("/loop2")) == 1
    assert {Path(p).name for p in _saved(tmp_path)} == {"a.html", "news-b.html"}
    assert len(_record(tmp_path)["files"]) == 2


def test_redirects_are_bounded(site: Site, tmp_path: Path):
    settings = FetchSettings(policy=LOCAL, rate=1000.0, timeout=0.5, max_redirects=0)
    [result] = _fetch(tmp_path, [site.url("/moved")], settings=settings)
    assert result.reason == "too many redirects (more than 0)"
    assert _saved(tmp_path) == set()


@pytest.mark.parametrize("path", ["/big", "/big-declared"])
def test_big_page_stopped_at_the_cap_and_not_saved(site: Site, tmp_path: Path, path: str):
    start = time.monotonic()
    [result] = _fetch(tmp_path, [site.url(path), site.url("/a.html")])[:1]
    assert result.status == "failed" and result.reason == "larger than 10 MB (stopped)"
    assert site.big_done.wait(10)
    # The client hung up near the cap: the server could not push the whole 50 MB.
    assert site.big_sent[0] < 30 * 1024 * 1024, site.big_sent
    assert time.monotonic() - start < 10
    assert {Path(p).name for p in _saved(tmp_path)} == {"a.html"}


def test_feed_stored_and_new_articles_fetched_then_not_modified(site: Site, tmp_path: Path):
    _fetch(tmp_path, [site.url("/a.html")])  # already stored before the feed lists it
    results = _fetch(tmp_path, feeds=[site.url("/feed.xml")])
    assert [(r.kind, r.status, r.url.removeprefix(site.base)) for r in results] == [
        ("feed", "fetched", "/feed.xml"), ("page", "skipped", "/a.html"),
        ("page", "fetched", "/c.html"), ("page", "failed", "/missing"),
    ]
    feed_path = results[0].path
    assert feed_path.startswith(".feeds/127.0.0.1_") and feed_path.endswith("-feed.xml")
    assert (tmp_path / feed_path).read_bytes() == _feed(site.base)
    assert len(site.hits("/a.html")) == 1 and len(site.hits("/c.html")) == 1
    feeds = _record(tmp_path)["feeds"]
    assert feeds[site.url("/feed.xml")]["path"] == feed_path
    assert feeds[site.url("/feed.xml")]["etag"] == ETAG
    assert feeds[site.url("/feed.xml")]["last_modified"] == LAST_MODIFIED

    again = _fetch(tmp_path, feeds=[site.url("/feed.xml")])
    sent = site.hits("/feed.xml")[-1]
    assert sent["If-None-Match"] == ETAG and sent["If-Modified-Since"] == LAST_MODIFIED
    assert [r.status for r in again] == ["not_modified", "skipped", "skipped", "failed"]
    assert len(site.hits("/c.html")) == 1  # stored articles are not asked for again
    assert len(site.hits("/missing")) == 2  # the one that failed is tried again


def test_feed_served_as_text_plain_is_sniffed(site: Site, tmp_path: Path):
    results = _fetch(tmp_path, feeds=[site.url("/feed.txt"), site.url("/notes.txt"),
                                      site.url("/error")])
    assert [(r.kind, r.status) for r in results][:2] == [("feed", "fetched"), ("page", "fetched")]
    assert [r.reason for r in results if r.kind == "feed"][1:] == [
        "not a feed (text/plain)", "500 Internal Server Error"]
    assert not any(p.endswith(("notes.xml", "error.xml")) for p in _saved(tmp_path))


def test_rate_limit_spaces_requests_to_one_host(site: Site, tmp_path: Path):
    urls = [site.url(f"/rate/{n}") for n in range(4)]
    _fetch(tmp_path, urls, settings=FetchSettings(policy=LOCAL, rate=10.0))
    times = [t for p, _, t in site.requests if p.startswith("/rate/")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # The limiter spaces the sends 0.1 s apart; arrivals also carry the first request's
    # connect (later ones reuse the connection), which shortens the first gap a little.
    assert len(gaps) == 3 and min(gaps) >= 0.06 and min(gaps[1:]) >= 0.09, gaps


def test_rate_limiter_counts_each_host_separately():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2.0, clock=lambda: now[0], sleep=sleep)
    for host in ("a", "b", "a", "a", "b"):
        limiter.wait(host)
    assert slept == [0.5, 0.5]  # a waits twice; b's second request is already 1 s later
    with pytest.raises(FetchError):
        RateLimiter(0)


def test_names_are_safe_short_and_distinct():
    long = "https://ex.com/" + "/".join(["segment"] * 40)
    names = [slug(u) for u in ("https://ex.com/", "https://ex.com/?p=1", "https://ex.com/?p=2",
                               long, long + "x", "https://ex.com/Über uns/ça?.html")]
    assert len(set(names)) == len(names)
    assert all(n and len(n) + len(".html") <= MAX_NAME for n in names)
    assert all(set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_") for n in names)
    assert slug("https://ex.com/2024/05/bridge-reopens.html") == "2024-05-bridge-reopens"


def test_two_urls_with_one_name_get_two_files(site: Site, tmp_path: Path):
    first, second = _fetch(tmp_path, [site.url("/rate/1"), site.url("/rate-1")])
    host = first.path.split("/")[0]
    assert first.path == f"{host}/rate-1.html"
    assert second.path.startswith(f"{host}/rate-1-") and second.path != first.path
    (tmp_path / host / "rate-2.html").write_text("placed by hand")
    [third] = _fetch(tmp_path, [site.url("/rate/2")])
    assert third.path.startswith(f"{host}/rate-2-")
    assert (tmp_path / host / "rate-2.html").read_text() == "placed by hand"
    assert [r.status for r in _fetch(tmp_path, [site.url("/rate-1")])] == ["skipped"]


def test_recorded_urls_tolerates_a_missing_or_damaged_record(tmp_path: Path):
    assert recorded_urls(tmp_path) == {}
    (tmp_path / RECORD_NAME).write_text("{not json")
    assert recorded_urls(tmp_path) == {}
    with pytest.raises(FetchError, match="cannot be read"):
        Fetcher(tmp_path)


# --- the command -----------------------------------------------------------------------------


def test_command_prints_a_line_per_url_and_fails_when_one_failed(site: Site, tmp_path: Path,
                                                                 capsys):
    code = main(["fetch", site.url("/a.html"), site.url("/missing"), site.url("/news/b"),
                 "--into", str(tmp_path), "--rate", "1000"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [f"byline: failed {site.url('/missing')}: 404 Not Found"]
    lines = out.splitlines()
    assert lines[0].startswith(f"fetched {site.url('/a.html')} -> {tmp_path}")
    assert lines[-1] == "fetched 2 pages, 1 failed"
    assert len(recorded_urls(tmp_path)) == 2

    code = main(["fetch", site.url("/a.html"), "--into", str(tmp_path)])
    out, _ = capsys.readouterr()
    assert code == 0 and out.splitlines()[-1] == "fetched 0 pages, 1 already stored, 0 failed"


def test_command_feed_json_and_default_folder(site: Site, tmp_path: Path, capsys,
                                               monkeypatch):
    monkeypatch.setenv("BYLINE_CORPUS", str(tmp_path / "corpus"))
    monkeypatch.setenv("BYLINE_FETCH_ALLOW", "127.0.0.1")  # its links: the test server
    assert main(["fetch", "--feed", site.url("/feed.xml"), "--rate", "1000", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["folder"] == str(tmp_path / "corpus") and data["failed"] == 1
    assert [(r["kind"], r["status"]) for r in data["results"]] == [
        ("feed", "fetched"), ("page", "fetched"), ("page", "fetched"), ("page", "failed")]
    assert set(data["results"][0]) == {"url", "kind", "status", "path", "final_url", "reason",
                                       "blocked"}
    assert len(recorded_urls(tmp_path / "corpus")) == 2

    main(["fetch", "--feed", site.url("/feed.xml"), "--rate", "1000"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"not modified {site.url('/feed.xml')}")
    assert out[-1] == "fetched 0 pages, 1 not modified, 2 already stored, 1 failed"


@pytest.mark.parametrize("args", [["ftp://127.0.0.1/a"], ["127.0.0.1/a.html"],
                                  ["--feed", "file:///etc/passwd"], []])
def test_command_rejects_bad_arguments_before_any_request(tmp_path: Path, capsys, args):
    code = main(["fetch", "http://127.0.0.1:9/never", *args, "--into", str(tmp_path)]
                if args else ["fetch", "--into", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and err.startswith("byline: ")
    assert not any(tmp_path.iterdir())


def test_fetched_feed_articles_index_with_their_urls(site: Site, tmp_path: Path):
    """`byline fetch --feed` then the folder walker: the fetched pages are articles citing
    the URLs they came from; the stored feed (a dot-folder) is not indexed twice."""
    from retrieval.corpus import scan_corpus

    _fetch(tmp_path, feeds=[site.url("/feed.xml")])
    report = scan_corpus(tmp_path)
    recorded = recorded_urls(tmp_path)
    assert report.articles and len(report.articles) == len(recorded)
    assert {a.url for a in report.articles} <= set(recorded.values())
    assert not any(a.source.startswith(".feeds/") for a in report.articles)
