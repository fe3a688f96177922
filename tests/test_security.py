"""Byline's trust boundary (issue 21, docs/security.md), one section per numbered item: what
an untrusted page, feed, file or server admin can make Byline do. Real servers on 127.0.0.1
play the internal service, the redirector, the tarpit, the gzip bomb and the hostile feeds;
the bot is driven through the fake Discord. Addresses Byline must never reach (cloud
metadata, private ranges) are tested by the policy deciding on the address alone."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import BylineBot
from bot.render import cite, markdown_link, render_help, safe
from bot.replies import RESTARTING
from retrieval import index_corpus
from retrieval.corpus import Passage
from retrieval.model.embed import Embedder
from retrieval.search.filters import Filters
from retrieval.search.retriever import Retriever
from retrieval.search.timeline import timeline
from retrieval.store import ArticleInfo

from .support.bot_harness import TOKEN, bot_settings, get, run_bot
from .support.fake_discord import FakeDiscord
from .support.library_article import TRIP_Q
from .support.news_by_date import write_corpus
from .support.paths import BYLINE, SEEDS
from .support.polling import until

REAL = "https://news.example/budget"
# Titles an attacker would write: closing the link early, a second link, escaped brackets,
# nested ones, a link in angle brackets, and a backslash before the bracket.
HOSTILE_TITLES = [
    "Council passes budget](https://evil.example/phish) [.",
    "[Click](https://evil.example) here",
    "a \\](https://evil.example) b",
    "a \\\\](https://evil.example) [b",
    "[[x]](https://evil.example)]",
    "x ] (https://evil.example) [",
    "]]]]((https://evil.example))[[[",
    "<https://evil.example> ](https://evil.example)",
]


def links(markdown: str) -> list[str]:
    """The URLs of the masked links Discord would render: `[text](url)` whose brackets are
    not escaped (an odd run of backslashes before a bracket escapes it)."""
    found, depth, start = [], 0, None
    i = 0
    while i < len(markdown):
        c = markdown[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            depth += 1
            start = i if depth == 1 else start
        elif c == "]" and depth:
            depth -= 1
            if depth == 0 and markdown.startswith("(", i + 1):
                end = markdown.find(")", i + 2)
                if end > 0:
                    found.append(markdown[i + 2:end])
                    i = end
        i += 1
    return found


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_a_title_cannot_link_anywhere_but_its_article(title: str):
    assert links(markdown_link(safe(title), REAL)) == [REAL]
    passage = Passage(id="a#1", article_id="a", title=title, text=title, paragraph=1,
                      url=REAL, source="a.txt")
    assert links(cite(passage)) == [REAL]
    assert links(safe(title)) == []  # quoted text links nowhere


def test_the_link_parser_sees_the_links_an_attacker_wants():
    """The check above is worth something only if it finds injected links when unescaped."""
    from discord.utils import escape_markdown

    evil = ["https://evil.example/phish", REAL]
    assert links(markdown_link(HOSTILE_TITLES[0], REAL)) == evil
    assert links(markdown_link(escape_markdown(HOSTILE_TITLES[0]), REAL)) == evil  # before
    assert links("[a](x) \\[b](y) \\\\[c](z)") == ["x", "z"]


def _all_text(payload: dict) -> str:
    """Every string a message's JSON holds (content, embed titles, fields, descriptions)."""
    if isinstance(payload, dict):
        return "\n".join(_all_text(v) for v in payload.values())
    if isinstance(payload, list):
        return "\n".join(_all_text(v) for v in payload)
    return payload if isinstance(payload, str) else ""


def test_hostile_titles_link_nowhere_in_ask_timeline_and_sources(embedder, tmp_path: Path):
    """Through the fake Discord: articles whose titles and outlets an attacker wrote appear
    in /ask, /timeline and /sources, and every link Discord would render goes to the
    article's own URL."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, title in enumerate(HOSTILE_TITLES):
        (corpus / f"budget-{n}.txt").write_text(
            f"Outlet: Evil](https://evil.example/o{n}) [Times\nDate: 2024-03-0{1 + n % 9}\n"
            f"URL: {REAL}/{n}\n{title}\n\nThe council passed its budget on Tuesday after a "
            f"long debate about bus fares, library hours and road repairs ({n}).\n", "utf-8")
    retriever = Retriever(index_corpus(corpus, tmp_path / "index", embedder, progress=False),
                          embedder)
    seen: list[str] = []

    async def scenario(fake, bot) -> None:
        for name, options in (("ask", {"question": "did the council pass its budget?",
                                       "results": 5}),
                              ("timeline", {"topic": "council budget"}), ("sources", None)):
            handle = await fake.send_command(name, options)
            callback = await handle.callback()
            reply = callback.json["data"] if callback.json["type"] == 4 else \
                (await handle.followup(timeout=30)).json
            seen.append(_all_text(reply))

    run_bot(retriever, tmp_path, scenario)
    for text in seen:
        assert "budget" in text.lower()
        found = links(text)
        assert found and all(url.startswith(f"{REAL}/") for url in found), found
        assert "evil.example" not in "".join(found)


def test_a_file_name_cannot_write_to_the_terminal(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    name = "evil\x1b[31mred\x07\nFAKE: all is well\r.txt"
    shutil.copy(next(SEEDS.glob("*.txt")), corpus / name)
    env = {**os.environ, "BYLINE_INDEX_DIR": str(tmp_path / "idx"), "COLUMNS": "400"}
    for args in (["index", str(corpus)], ["sources"], ["ask", "why was the trip cancelled"]):
        done = subprocess.run([str(BYLINE), *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        for out in (done.stdout, done.stderr):
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out), repr(out)
            assert not re.search(r"^\W*FAKE", out, re.MULTILINE), out


def test_a_dotenv_in_a_parent_folder_is_not_read(tmp_path: Path):
    """A `.env` planted in a shared parent folder would set BYLINE_STORE or DISCORD_TOKEN."""
    (tmp_path / ".env").write_text(f"BYLINE_INDEX_DIR={tmp_path / 'planted'}\n", "utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "BYLINE_INDEX_DIR"}
    done = subprocess.run([str(BYLINE), "sources"], capture_output=True, text=True, env=env,
                          cwd=work, timeout=300)
    assert "planted" not in done.stdout + done.stderr
    assert not (tmp_path / "planted").exists()


# -- the store's password (item 7) ----------------------------------------------------------

SECRET_URLS = [  # passwords left unescaped, and libpq's key=value form
    ("postgresql://byline:pa:ss/word@db.internal:5432/byline", ["pa:ss", "word"]),
    ("postgresql://byline:p@ssw0rd@db.internal/byline", ["p@ss", "ssw0rd"]),
    ("postgres://byline:s3cr?t#x@db.internal/byline?sslmode=require", ["s3cr", "t#x"]),
    ("host=db.internal dbname=byline user=byline password=s3cret", ["s3cret"]),
]


@pytest.mark.parametrize(("url", "secrets"), SECRET_URLS)
def test_a_store_is_shown_by_host_and_database_only(url: str, secrets: list[str]):
    from retrieval.store import backend

    assert backend(url).shared
    shown = backend(url).describe()
    assert shown.startswith("postgresql://db.internal") and shown.endswith("/byline")
    assert not any(s in shown for s in secrets) and "byline@" not in shown


@pytest.mark.parametrize(("url", "secrets"), SECRET_URLS[:3])
def test_a_store_that_cannot_be_reached_never_echoes_its_password(url: str, secrets):
    """libpq's own message quotes what it mis-read (a port of "pa:ss", a host of "ss@db")."""
    from retrieval.errors import StoreError
    from retrieval.store.postgres.connect import connect

    local = url.replace("db.internal:5432", "127.0.0.1:9").replace("db.internal", "127.0.0.1:9")
    with pytest.raises(StoreError) as caught:
        connect(local)
    assert not any(s in str(caught.value) for s in secrets), caught.value
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("store", ["postgresql+psycopg://byline:s3cret@127.0.0.1:9/byline",
                                   "host=127.0.0.1 port=9 dbname=byline password=s3cret"])
def test_another_form_of_store_url_is_never_a_folder(tmp_path: Path, store: str):
    """Taken for a folder, the URL became part of "No index at ..." and of a folder's name."""
    done = subprocess.run([str(BYLINE), "sources", "--store", store], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert done.returncode != 0
    assert "s3cret" not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


# -- files at rest (item 9) -----------------------------------------------------------------

def test_the_feedback_store_keeps_no_salt_and_is_private(tmp_path: Path):
    import sqlite3
    import stat

    from retrieval.search.feedback import FeedbackStore, salt_path

    old = os.umask(0o022)  # what a shell usually has
    try:
        store = FeedbackStore(tmp_path / "fb.sqlite")
        store.record(store.remember("q", ["a#1"]), "up", 1234)
        store.close()
    finally:
        os.umask(old)
    salt = salt_path(tmp_path / "fb.sqlite").read_text().strip()
    for path in (tmp_path / "fb.sqlite", salt_path(tmp_path / "fb.sqlite")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert salt.encode() not in (tmp_path / "fb.sqlite").read_bytes()
    with sqlite3.connect(tmp_path / "fb.sqlite") as db:
        assert db.execute("SELECT count(*) FROM meta WHERE key='salt'").fetchone() == (0,)


def test_an_older_feedback_store_keeps_its_hashes_and_loses_its_salt(tmp_path: Path):
    import sqlite3

    from retrieval.search.feedback import FeedbackStore, salt_path

    path = tmp_path / "fb.sqlite"
    store = FeedbackStore(path)
    store.record(store.remember("q", ["a#1"]), "up", 1234)
    before = store.hash_user(1234)
    store.close()
    salt = salt_path(path).read_text().strip()
    with sqlite3.connect(path) as db:  # as an older Byline kept it: inside
        db.execute("INSERT INTO meta VALUES ('salt', ?)", (salt,))
    db.close()
    salt_path(path).unlink()
    again = FeedbackStore(path)
    assert again.hash_user(1234) == before
    again.close()
    assert salt_path(path).read_text().strip() == salt
    assert salt.encode() not in path.read_bytes()


def test_what_byline_writes_is_private_to_its_user(tmp_path: Path):
    """An index built by `byline index` under a permissive umask: no file or folder that
    another user could read."""
    import stat

    env = {**os.environ, "BYLINE_INDEX_DIR": str(tmp_path / "idx")}
    done = subprocess.run(["sh", "-c", f'umask 022 && exec "{BYLINE}" index "{SEEDS}"'],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    made = [tmp_path / "idx", *(tmp_path / "idx").rglob("*")]
    assert len(made) > 5
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


# -- an export row cannot displace a file (item 6) ------------------------------------------

def test_an_export_row_never_takes_a_files_id(tmp_path: Path):
    import json

    from retrieval.corpus import load_corpus

    body = "The council approved the budget on Tuesday after a long debate about roads."
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.txt").write_text(f"Real file\n\n{body}\n", "utf-8")
    rows = [{"id": "b", "title": "Row b", "text": "A row about ferries sailing again soon."},
            {"id": "../a/b", "title": "Row up", "text": "A row about the harbour wall repairs."}]
    (tmp_path / "a.json").write_text(json.dumps(rows), "utf-8")
    articles = load_corpus(tmp_path)
    titles = {a.title: a.id for a in articles}
    assert set(titles) == {"Real file", "Row b", "Row up"}
    assert len(set(titles.values())) == 3 and titles["Real file"] == "a/b"


# -- the fetch boundary: no internal addresses (item 1) -------------------------------------

SECRET = b"<html><head><title>Internal</title></head><body><article><p>The internal admin " \
         b"password is hunter2 and the database lives on db.internal.</p></article></body></html>"


class _Internal:
    """An internal service on 127.0.0.1: a secret page, a redirect to it, a feed linking it
    under other spellings of the loopback address; it counts what reached it."""

    def __init__(self) -> None:
        self.hits: list[str] = []


@pytest.fixture
def internal():
    from .support.local_http import QuietHandler, base_url, http_server

    state = _Internal()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            port = self.server.server_address[1]
            if self.path == "/secret.html":
                self._send(200, SECRET)
            elif self.path == "/to-localhost":  # a redirect to another name for it
                self._send(302, b"", Location=f"http://localhost:{port}/secret.html")
            elif self.path == "/feed.xml":
                items = "".join(
                    f"<item><title>t{n}</title><link>http://{host}:{port}/secret.html</link>"
                    "</item>" for n, host in enumerate(("localhost", "[::1]", "2130706433",
                                                        "0x7f.1", "127.1")))
                self._send(200, f"<?xml version='1.0'?><rss version='2.0'><channel>"
                                f"<title>f</title>{items}</channel></rss>".encode(),
                           "application/rss+xml")
            else:
                self._send(404, b"no")

    with http_server(Handler) as server:
        state.base = base_url(server)  # type: ignore[attr-defined]
        state.port = server.server_address[1]  # type: ignore[attr-defined]
        yield state


BLOCKED = ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
           "100.64.0.1", "224.0.0.1", "0.0.0.0", "255.255.255.255", "::", "::ffff:127.0.0.1",
           "::ffff:169.254.169.254", "2002:7f00:1::1", "2002:a9fe:a9fe::1",
           "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b:1::1", "fe80::1", "fc00::1",
           "fd12::1", "ff02::1", "2001:db8::1"]


@pytest.mark.parametrize("address", BLOCKED)
def test_the_policy_refuses_internal_addresses(address: str):
    """Decided on the address alone: nothing is sent to these."""
    import ipaddress

    from retrieval.feeds.addresses import AddressPolicy, Blocked

    with pytest.raises(Blocked):
        AddressPolicy().check("example.com", ipaddress.ip_address(address), 443)


def test_the_policy_allows_public_addresses_on_default_ports_and_what_the_operator_names():
    import ipaddress

    from retrieval.feeds.addresses import AddressPolicy, Blocked

    ip = ipaddress.ip_address
    for public in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822",
                   "::ffff:93.184.216.34"):
        AddressPolicy().check("example.com", ip(public), 443)
        AddressPolicy().check("example.com", ip(public), 80)
    with pytest.raises(Blocked, match="port 8080"):
        AddressPolicy().check("example.com", ip("93.184.216.34"), 8080)
    intranet = AddressPolicy.allowing(["10.0.0.0/8", "wiki.newsroom.example"])
    intranet.check("news.newsroom", ip("10.2.3.4"), 8080)
    intranet.check("wiki.newsroom.example", ip("192.168.1.9"), 80)
    with pytest.raises(Blocked):
        intranet.check("other.example", ip("192.168.1.9"), 80)
    with pytest.raises(ValueError):
        AddressPolicy.allowing(["not a host!"])


def test_the_bots_fetches_reach_no_internal_address(internal, tmp_path: Path):
    from retrieval.feeds.fetch import Fetcher, FetchSettings

    settings = FetchSettings(rate=1000.0, timeout=2.0)  # the bot's: public addresses only
    port = internal.port
    with Fetcher(tmp_path, settings) as fetcher:
        for host in ("127.0.0.1", "localhost", "[::1]", "2130706433", "0x7f.1", "127.1"):
            result = fetcher.fetch_page(f"http://{host}:{port}/secret.html")
            assert result.status == "failed" and result.blocked, (host, result)
        result = fetcher.fetch_page("http://169.254.169.254/latest/meta-data/")
        assert result.blocked
    assert internal.hits == [] and not list(tmp_path.rglob("*.html"))


def test_the_cli_fetches_what_its_user_names_but_checks_where_it_leads(internal,
                                                                       tmp_path: Path):
    """`byline fetch` of an internal URL works (the user asked for it); its redirect to
    another host, and a feed's links, are held to the policy."""
    from retrieval.feeds.fetch import Fetcher, FetchSettings

    settings = FetchSettings(rate=1000.0, timeout=2.0, trust_given=True)
    with Fetcher(tmp_path, settings) as fetcher:
        assert fetcher.fetch_page(f"{internal.base}/secret.html").status == "fetched"
        moved = fetcher.fetch_page(f"{internal.base}/to-localhost")
        assert moved.blocked and "not allowed" in (moved.reason or "")
        results = list(fetcher.fetch_feed(f"{internal.base}/feed.xml"))
    assert results[0].status == "fetched"
    assert [r.blocked for r in results[1:]] == [True] * 5
    assert internal.hits == ["/secret.html", "/to-localhost", "/feed.xml"]


def test_coverage_add_of_an_internal_address_is_not_allowed(internal, embedder, tmp_path):
    """Through the fake Discord and the real bot with the default fetch settings: the admin
    is told the address is not allowed, the internal service sees nothing."""
    from retrieval.feeds.fetch import FetchSettings

    from .support.guilds import admin, run_guilds

    async def scenario(fake, bot) -> None:
        for url in (f"{internal.base}/secret.html", f"http://localhost:{internal.port}/x",
                    "http://169.254.169.254/latest/meta-data/"):
            reply = await admin(fake, "coverage add", {"url": url})
            assert reply.endswith(": that address is not allowed."), reply

    run_guilds(embedder, tmp_path, scenario, fetch=FetchSettings(rate=1000.0, timeout=2.0))
    assert internal.hits == []


# -- bounded in bytes and time (item 2) -----------------------------------------------------

# A child's own peak memory in MB: VmHWM of its address space (ru_maxrss would not do: on
# Linux a child keeps its parent's maximum across fork and exec, and pytest holds the model).
PEAK_MB = ("print(next(int(line.split()[1]) for line in open('/proc/self/status') "
           "if line.startswith('VmHWM:')) // 1024)")


def _bomb(mib: int) -> bytes:
    """`mib` MiB of zeros, gzipped twice: a few KB on the wire."""
    import gzip
    import zlib

    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(1 << 20)
    once = b"".join(inner.compress(zero) for _ in range(mib)) + inner.flush()
    return gzip.compress(once, 9)


def _prose(size: int) -> bytes:
    """`size` bytes of a page whose text varies as real text does (compresses ~3-5 times)."""
    import random

    rng = random.Random(7)
    words = [f"{w}{n}" for n in range(300) for w in ("ferry", "council", "harbour", "vote")]
    body = bytearray(b"<html><head><title>Long read</title></head><body><article>")
    while len(body) < size:
        body += b"<p>" + " ".join(rng.choices(words, k=60)).encode() + b".</p>\n"
    return bytes(body + b"</article></body></html>")


def _drip(out, data: bytes, every: float) -> None:
    """A tarpit's reply: `data` a byte every `every` seconds, until the client hangs up."""
    import time as _time

    try:
        for byte in data:
            out.write(bytes([byte]))
            out.flush()
            _time.sleep(every)
    except OSError:
        pass


@pytest.fixture(scope="module")
def hostile():
    """A site that answers with a gzip bomb, a long page (gzipped, or too large), or sends
    its headers a byte at a time."""
    import gzip

    from .support.local_http import QuietHandler, base_url, http_server

    bomb = _bomb(1024)
    long = _prose(3_000_000)
    huge = gzip.compress(long * 8, 1)  # 24 MB in 6.7: under the cap on the wire, not unpacked

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.path == "/bomb.html":
                self._send(200, bomb, Content_Encoding="gzip, gzip")
                return
            if self.path == "/long.html":
                self._send(200, gzip.compress(long), Content_Encoding="gzip")
                return
            if self.path == "/huge.html":  # its Content-Length passes: stopped unpacking
                self._send(200, huge, Content_Encoding="gzip")
                return
            _drip(self.wfile, b"HTTP/1.1 200 OK\r\n" * 20, 0.2)  # a tarpit, for a minute

    with http_server(Handler) as server:
        yield base_url(server), len(bomb)


@pytest.mark.parametrize(("page", "told"), [
    ("bomb.html", "unpacks to more than 200 times its size (a decompression bomb)"),
    ("huge.html", "larger than 10 MB (stopped)"),
])
def test_a_gzip_bomb_or_huge_page_stops_without_expanding(hostile, tmp_path: Path, page, told):
    """A 1 GiB page gzipped twice (a few KB) is given up once it unpacks past 1 MB at over
    200 times the bytes received; 24 MB of text gzipped (6.7 MB, under the cap on the
    wire) stops at the 10 MB cap as it unpacks. Either way `byline fetch`'s peak memory
    stays far below what decoding whole chunks took (gigabytes)."""
    base, size = hostile
    assert size < 20_000
    script = ("import sys\nfrom retrieval.cli.main import main\nrc = main(sys.argv[1:])\n"
              f"{PEAK_MB}\nsys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", script, "fetch", f"{base}/{page}",
                           "--into", str(tmp_path / "c")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and told in done.stderr, done.stderr
    peak_mb = int(done.stdout.strip().splitlines()[-1])
    assert 10 < peak_mb < 300, peak_mb


def test_a_long_gzipped_page_is_no_bomb(hostile, tmp_path: Path):
    """3 MB of text gzipped (a long read) unpacks well under the bomb's ratio: fetched."""
    from retrieval.feeds.fetch import Fetcher, FetchSettings

    from .support.local_http import LOCAL

    with Fetcher(tmp_path, FetchSettings(policy=LOCAL, rate=1000.0)) as fetcher:
        result = fetcher.fetch_page(f"{hostile[0]}/long.html")
    assert result.status == "fetched", result
    assert (tmp_path / result.path).stat().st_size > 3_000_000


def test_a_tarpit_is_given_up_at_the_fetch_deadline(hostile, tmp_path: Path):
    """One byte every 0.2 s never trips a 1 s read timeout; the fetch's deadline ends it."""
    import time as _time

    from retrieval.feeds.fetch import Fetcher, FetchSettings

    from .support.local_http import LOCAL

    settings = FetchSettings(policy=LOCAL, rate=1000.0, timeout=1.0, deadline=2.0)
    started = _time.monotonic()
    with Fetcher(tmp_path, settings) as fetcher:
        result = fetcher.fetch_page(f"{hostile[0]}/slow.html")
    assert result.status == "failed" and "timed out" in (result.reason or ""), result
    assert _time.monotonic() - started < 10  # the tarpit runs for 60 s


def test_jobs_stuck_in_slow_fetches_never_hold_up_answers(embedder):
    """Jobs (fetches, indexing) run on the worker's own threads: with more of them stuck
    than it has, the event loop's default executor (retrieval for /ask, /help's reads)
    still answers at once."""
    import asyncio
    import threading

    from bot.settings import THREAD
    from bot.worker import JOB_THREADS, Worker

    release = threading.Event()

    def stuck(_embedder) -> int:
        release.wait(30)
        return 1

    async def main() -> None:
        worker = Worker(THREAD, embedder)
        jobs = [asyncio.create_task(worker.run(stuck)) for _ in range(JOB_THREADS + 6)]
        await asyncio.sleep(0.2)
        try:
            answers = await asyncio.wait_for(asyncio.gather(
                *(asyncio.to_thread(lambda: 2) for _ in range(12))), timeout=5)
            assert answers == [2] * 12
        finally:
            release.set()
            assert await asyncio.wait_for(asyncio.gather(*jobs), 30) == [1] * len(jobs)
            worker.close()

    asyncio.run(main())


# -- one bad item never wedges anything (item 3) --------------------------------------------

def test_hostile_files_are_skipped_with_a_reason_and_the_rest_indexed(tmp_path: Path):
    """A page declaring charset "punycode" (a bare UnicodeError killed `byline index`),
    NULs (PostgreSQL refused the publish), JSON nested 100,000 deep (RecursionError)."""
    import json

    from retrieval.corpus.folder import scan_corpus

    (tmp_path / "punycode.html").write_bytes(
        b'<html><head><meta charset="punycode"><title>Bridge reopens</title></head><body>'
        b"<article><p>The Old Mill bridge reopened to traffic on Wednesday after eight "
        b"months of repairs, the council said.</p></article></body></html>")
    (tmp_path / "nul.txt").write_bytes(b"Ferry\x00 strike\n\nFerry crews walked\x00 out on "
                                       b"Wednesday, halting sailings to the islands.\n")
    (tmp_path / "rows.json").write_text(json.dumps(
        [{"id": "a", "title": "Bus\u0000 fares", "text": "Bus fares rise\u0000 in June."}]))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    report = scan_corpus(tmp_path)
    titles = sorted(a.title for a in report.articles)
    assert titles == ["Bridge reopens", "Bus fares", "Ferry strike"]
    assert not any("\x00" in p for a in report.articles for p in (a.title, *a.paragraphs))
    assert [str(p) for p in report.problems] == ["skipped deep.json: nested too deeply to read"]


def test_nul_characters_publish_to_postgresql(pg_url, tmp_path: Path, capsys):
    """A NUL in a page, a text file or an export row failed every PostgreSQL publish (text
    columns refuse it) without naming the file; the text is cleaned before it is stored."""
    from retrieval.cli.main import main

    (tmp_path / "nul.txt").write_bytes(b"Ferry\x00 strike\n\nFerry crews walked\x00 out on "
                                       b"Wednesday, halting sailings to the islands.\n")
    (tmp_path / "nul.html").write_bytes(
        b"<html><head><title>Bridge\x00 reopens</title></head><body><article><p>The Old "
        b"Mill bridge reopened\x00 to traffic on Wednesday after eight months of repairs."
        b"</p></article></body></html>")
    (tmp_path / "rows.json").write_text(json.dumps(
        [{"id": "a", "title": "Bus\u0000 fares", "text": "Bus fares rise\u0000 in June."}]))
    assert main(["--store", pg_url, "index", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["articles"] == 3
    assert main(["--store", pg_url, "ask", "when did the ferry crews walk out?"]) == 0
    assert "Ferry strike" in capsys.readouterr().out


def test_a_feed_with_malformed_links_costs_one_line_each(tmp_path: Path):
    """Links like http://h:abc/, a 70-character label, http://[::1/x or a control character
    crashed `byline fetch`, `follow --once` and the bot's feed task."""
    from retrieval.feeds.fetch import Fetcher, FetchSettings

    from .support.local_http import LOCAL, QuietHandler, base_url, http_server

    bad = ["http://h:abc/", f"http://{'a' * 70}.example/x", "http://[::1/x",
           "http://exa\x01mple.com/a"]

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            items = "".join(f"<item><title>t{n}</title><link><![CDATA[{u}]]></link></item>"
                            for n, u in enumerate(bad))
            self._send(200, f"<?xml version='1.0'?><rss version='2.0'><channel><title>f"
                            f"</title>{items}</channel></rss>".encode(), "application/rss+xml")

    with http_server(Handler) as server, \
            Fetcher(tmp_path, FetchSettings(policy=LOCAL, rate=1000.0, timeout=2.0)) as f:
        results = list(f.fetch_feed(f"{base_url(server)}/feed.xml"))
    assert results[0].status == "fetched"
    assert len(results) >= 4 and all(r.status == "failed" for r in results[1:])


def test_a_small_gz_export_that_unpacks_huge_is_skipped_in_bounded_memory(tmp_path: Path):
    """A .json.gz of a few hundred KB that unpacks past the multi-article cap (64 MB) is
    skipped with its reason; reading it never holds more than the cap (6.7 GB once)."""
    import gzip

    row = b'{"id": "r", "title": "Padding", "text": "' + b"x" * (1 << 20) + b'"},'
    with gzip.open(tmp_path / "huge.json.gz", "wb", compresslevel=9) as fh:
        fh.write(b"[")
        for _ in range(80):
            fh.write(row)
        fh.write(b'{"id": "end", "title": "End", "text": "the end"}]')
    assert (tmp_path / "huge.json.gz").stat().st_size < 1_000_000
    (tmp_path / "ok.txt").write_text("Bridge reopens\n\nThe bridge reopened on Wednesday.\n")
    script = ("import sys\nfrom retrieval.corpus.folder import scan_corpus\n"
              "r = scan_corpus(sys.argv[1])\nprint([a.title for a in r.articles])\n"
              "print([str(p) for p in r.problems])\n"
              f"{PEAK_MB}\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    titles, problems, peak_mb = done.stdout.strip().splitlines()
    assert titles == "['Bridge reopens']", done.stderr
    assert "huge.json.gz" in problems and "larger than 64 MB" in problems
    assert 10 < int(peak_mb) < 400


def test_a_feed_fills_no_more_than_its_poll_and_the_folder_allow(tmp_path: Path, embedder):
    """A 2 KB feed linking many large pages put 199 MB on disk in 2 s: a poll now fetches at
    most PAGES_PER_POLL of a feed's links, and nothing is saved past the folder's quota."""
    from retrieval.feeds.fetch import FetchSettings
    from retrieval.feeds.follow import PAGES_PER_POLL, Follower

    from .support.local_http import LOCAL, QuietHandler, base_url, http_server

    page = (b"<html><head><title>Big page</title></head><body><article><p>Ferry crews walked "
            b"out on Wednesday, halting sailings to the islands.</p></article><!--"
            + b"padding " * 20_000 + b"--></body></html>")  # large, yet one short passage
    asked: list[str] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if self.path == "/feed.xml":
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                items = "".join(f"<item><title>p{n}</title><link>{base}/p{n}.html</link></item>"
                                for n in range(PAGES_PER_POLL + 30))
                self._send(200, f"<?xml version='1.0'?><rss version='2.0'><channel><title>f"
                                f"</title>{items}</channel></rss>".encode(), "application/rss+xml")
            else:
                self._send(200, page)

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with http_server(Handler) as server:
        (corpus / "feeds.txt").write_text(f"{base_url(server)}/feed.xml\n", "utf-8")
        quota = 20 * len(page)
        settings = FetchSettings(policy=LOCAL, rate=1000.0, timeout=5.0, folder_bytes=quota)
        follower = Follower(corpus, tmp_path / "index", embedder, settings=settings)
        report = follower.poll_due(now=0.0)
    pages = [p for p in asked if p.endswith(".html")]
    assert len(pages) == PAGES_PER_POLL  # the rest wait for the next poll
    held = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    assert held <= quota
    assert any("the folder is full" in f.error for f in report.entry_failures)


def test_a_feed_entry_is_cut_as_an_export_row_is(tmp_path: Path):
    from retrieval.corpus.exports import ARTICLE_TEXT_MAX
    from retrieval.corpus.folder import scan_corpus

    long = "Ferry crews walked out on Wednesday. " * (ARTICLE_TEXT_MAX // 30)
    (tmp_path / "feed.xml").write_text(
        "<?xml version='1.0'?><rss version='2.0'><channel><title>f</title><item><title>Long"
        f"</title><link>https://example.com/a</link><description>{long}</description></item>"
        "</channel></rss>", "utf-8")
    report = scan_corpus(tmp_path)
    [article] = report.articles
    assert sum(len(p) for p in article.paragraphs) <= ARTICLE_TEXT_MAX
    assert any("cut to its first" in str(p) for p in report.problems)


def test_a_huge_page_is_read_only_up_to_its_markup_limits(tmp_path: Path):
    """A 4 MB page of small <div>s took 21 s to parse: its markup is read up to MARKUP_MAX
    characters or TAGS_MAX tags (scripts, styles and comments dropped first), with a
    warning, and the article at its head is still read."""
    from retrieval.corpus.folder import scan_corpus
    from retrieval.corpus.html import MARKUP_MAX, TAGS_MAX, without_code

    head = (b"<html><head><title>Bridge reopens</title><script>" + b"var x = 1;" * 50_000
            + b"</script></head><body><article><p>The Old Mill bridge reopened to traffic on "
            b"Wednesday after eight months of repairs, the council said.</p></article>")
    (tmp_path / "huge.html").write_bytes(head + b"<div><span>a</span> b</div>" * 150_000
                                         + b"</body></html>")
    report = scan_corpus(tmp_path)
    [article] = report.articles
    assert article.title == "Bridge reopens" and "eight months" in article.paragraphs[0]
    [warning] = [str(p) for p in report.problems]
    assert f"{MARKUP_MAX // 1000:,} KB or {TAGS_MAX:,} tags" in warning
    page = ('a<script>x</script>b<SCRIPT type="application/ld+json">{"d":1}</script>c'
            "<!-- q -->d<style>s</style>e<svg><g/></svg>f<script>never closed</p>")
    assert without_code(page) == 'ab<SCRIPT type="application/ld+json">{"d":1}</script>cdef'


def _hostile_feed_site(asked: list[str]):
    """A feed whose links are malformed, or lead to a page with nothing to index, or to one
    good article; a second feed with another good article."""
    from .support.guilds import PAGES
    from .support.local_http import QuietHandler, http_server

    bad = ["http://h:abc/", f"http://{'a' * 70}.example/x", "http://[::1/x",
           "http://exa\x01mple.com/a"]

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if self.path.endswith(".xml"):
                links = ([*bad, f"{base}/news/empty.html", f"{base}/news/ferry.html"]
                         if self.path == "/hostile.xml" else [f"{base}/news/bridge.html"])
                items = "".join(f"<item><title>t{n}</title><link><![CDATA[{u}]]></link>"
                                "</item>" for n, u in enumerate(links))
                self._send(200, f"<?xml version='1.0'?><rss version='2.0'><channel><title>f"
                                f"</title>{items}</channel></rss>".encode(),
                           "application/rss+xml")
            elif self.path in PAGES:
                self._send(200, PAGES[self.path])
            else:
                self._send(404, b"no")

    return http_server(Handler)


def test_a_feed_page_with_nothing_to_index_is_not_kept(tmp_path: Path, embedder):
    """A fetched page that gives no article is removed and its link counted as failed (left
    in the folder, every index skipped it again); the good article is indexed."""
    from retrieval.feeds.fetch import FetchSettings
    from retrieval.feeds.follow import Follower

    from .support.local_http import LOCAL, base_url

    asked: list[str] = []
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with _hostile_feed_site(asked) as server:
        (corpus / "feeds.txt").write_text(f"{base_url(server)}/hostile.xml\n", "utf-8")
        follower = Follower(corpus, tmp_path / "index",
                            embedder, settings=FetchSettings(policy=LOCAL, rate=1000.0))
        report = follower.poll_due(now=0.0)
    assert report.new_articles == 1 and report.published
    empty = [e for e in report.entry_failures if e.url.endswith("/empty.html")]
    assert len(empty) == 1 and "nothing to index on that page" in empty[0].error
    assert len(report.entry_failures) == 5  # four malformed links, one empty page
    assert [p.name for p in corpus.rglob("*.html")] == ["news-ferry.html"]


def test_the_bots_feed_task_survives_a_hostile_feed_and_keeps_its_schedule(tmp_path: Path,
                                                                          embedder):
    """Through the fake Discord: a feed of malformed links and an empty page crashed the
    bot's feed task, which then fetched the feed again on every tick and never polled the
    feeds after it. Now each bad link is one line, both feeds are polled once per interval,
    and their good articles answer."""
    import asyncio

    from .support.guilds import FERRY, FERRY_Q, GUILD_ID, admin, ask, first_source, run_guilds
    from .support.local_http import base_url

    asked: list[str] = []

    async def scenario(fake, bot) -> None:
        for feed in ("/hostile.xml", "/good.xml"):
            reply = await admin(fake, "coverage feed add", {"url": base + feed})
            assert reply.startswith("Following"), reply
        for _ in range(600):
            listing = await admin(fake, "coverage feed list")
            if listing.count("(fetched, 1 new); next ") == 2:
                break
            await asyncio.sleep(0.1)
        first_source(await ask(fake, FERRY_Q))  # the coverage loaded
        cov = bot.coverages.get(GUILD_ID)
        await until(lambda: len(cov.articles) == 2)  # both feeds' articles published
        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]
        assert first_source(await ask(fake, "When did the Old Mill bridge reopen?")) == \
            "Old Mill bridge reopens"
        await asyncio.sleep(1.5)  # the feed task checks every 0.2 s: seven more ticks
        listing = await admin(fake, "coverage feed list")
        assert listing.count("(fetched, 1 new); next ") == 2, listing

    with _hostile_feed_site(asked) as server:
        base = base_url(server)
        run_guilds(embedder, tmp_path, scenario)
    assert asked.count("/hostile.xml") == 1 and asked.count("/good.xml") == 1, asked
    assert asked.count("/news/empty.html") == 1
    assert not list(tmp_path.rglob("empty.html"))


def test_a_feeds_links_cannot_write_to_the_terminal_or_the_log(tmp_path: Path):
    """`byline fetch` and `byline follow` print what failed and why; a feed's links and
    titles carry escape sequences and newlines, which reach neither the terminal nor a fake
    log line (the bot's log goes through the same formatter)."""
    import logging

    from retrieval.logs import OneLineFormatter

    from .support.local_http import QuietHandler, base_url, http_server

    bad = ["http://exa\x01mple.com/a", "http://127.0.0.1:1/\x1b[31mred\nFAKE: ok",
           "http://example.com/\x1b]8;;https://evil.example\x07x"]

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            items = "".join(f"<item><title>t{n}\x1b[2J</title><link><![CDATA[{u}]]></link>"
                            "</item>" for n, u in enumerate(bad))
            self._send(200, f"<?xml version='1.0'?><rss version='2.0'><channel><title>f"
                            f"</title>{items}</channel></rss>".encode(), "application/rss+xml")

    corpus = tmp_path / "c"
    corpus.mkdir()
    env = {**os.environ, "BYLINE_INDEX_DIR": str(tmp_path / "idx"),
           "BYLINE_FETCH_ALLOW": "127.0.0.1"}
    with http_server(Handler) as server:
        feed = f"{base_url(server)}/feed.xml"
        (corpus / "feeds.txt").write_text(feed + "\n", "utf-8")
        for args in (["fetch", feed, "--into", str(corpus)], ["follow", str(corpus), "--once"],
                     ["follow", str(corpus), "--list"]):
            done = subprocess.run([str(BYLINE), *args], capture_output=True, text=True,
                                  env=env, cwd=tmp_path, timeout=300)
            for out in (done.stdout, done.stderr):
                assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out), (args, out)
                assert not re.search(r"^\W*FAKE", out, re.MULTILINE), (args, out)
            if args[-1] == "--once":  # told, escaped
                assert "article http://exa\\x01mple.com/a failed" in done.stderr, done.stderr
    record = logging.LogRecord("byline.bot", logging.WARNING, __file__, 1,
                               "article %s failed", (bad[1],), None)
    line = OneLineFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING article http://127.0.0.1:1/\\x1b[31mred\\nFAKE: ok failed"


def test_a_server_has_one_fetch_in_flight_at_a_time(tmp_path: Path, embedder):
    """Three `/coverage add`s of a tarpit from one server fetch one after another (its
    writer turn: each connects only once the one before gave up at the 1 s deadline), while
    another server's add runs beside them; each admin is told only that it could not be
    fetched."""
    import time as _time

    from retrieval.feeds.fetch import FetchSettings

    from .support.guilds import OTHER_GUILD, admin, run_guilds
    from .support.local_http import LOCAL, QuietHandler, base_url, http_server

    started: dict[str, list[float]] = {"a": [], "b": []}

    class Tarpit(QuietHandler):
        def do_GET(self) -> None:
            started[self.path[1]].append(_time.monotonic())  # /a-1.html: server a's
            _drip(self.wfile, b"HTTP/1.1 200 OK\r\n" * 4, 0.1)

    async def scenario(fake, bot) -> None:
        replies = await asyncio.gather(
            *(admin(fake, "coverage add", {"url": f"{base}/a-{n}.html"}) for n in range(3)),
            admin(fake, "coverage add", {"url": f"{base}/b-0.html"}, guild=OTHER_GUILD))
        assert all(r.endswith(": could not fetch it.") for r in replies), replies

    with http_server(Tarpit) as server:
        base = base_url(server)
        run_guilds(embedder, tmp_path, scenario,
                   fetch=FetchSettings(policy=LOCAL, rate=1000.0, timeout=1.0, deadline=1.0))
    a, [b] = started["a"], started["b"]
    assert len(a) == 3
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(a))  # one at a time
    assert abs(b - a[0]) < 0.9  # the other server did not wait for this one's turn


def test_a_refused_admin_action_is_logged_with_its_target(tmp_path: Path, embedder, caplog):
    """A member without Manage Server tries `/coverage add` and `/coverage feed add`: the
    operator's log names who, where and what they tried to add (before: an empty target)."""
    from .support.guilds import GUILD_ID, run_guilds

    urls = ["https://news.example/a.html", "https://news.example/feed.xml\x1b[2J"]

    async def scenario(fake, bot) -> None:
        for name, url in zip(("coverage add", "coverage feed add"), urls, strict=True):
            handle = await fake.send_command(name, {"url": url}, guild_id=GUILD_ID)
            await handle.callback()

    with caplog.at_level(logging.INFO, logger="byline.bot"):
        run_guilds(embedder, tmp_path, scenario)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 2
    for line, url in zip(refused, urls, strict=True):
        assert f"guild {GUILD_ID}:" in line and repr(url) in line, line


# -- a timeline's filter removes only what it excludes (item 10) --------------------------

FERRY_WIRE = ("Ferry crews on the Northern Line walked out on Wednesday, halting sailings "
              "between Port Alder and the islands as talks over pay broke down.")
FERRY = {  # a strike in four articles, one of them a wire story carried by two outlets
    "ferry-vote.txt": ("Ferry workers vote to strike", "Coastal Times", "2024-03-05",
                       "Ferry workers voted to strike over pay on Tuesday, the union said, "
                       "threatening sailings to the islands this spring."),
    "ferry-wire.txt": ("Ferry strike halts island sailings", "Harbour Daily", "2024-04-10",
                       FERRY_WIRE),
    "ferry-copy.txt": ("Island ferries stop as crews walk out", "Coastal Times", "2024-04-11",
                       FERRY_WIRE),
    "ferry-ends.txt": ("Ferry strike ends with pay deal", "Coastal Times", "2024-05-20",
                       "The ferry strike ended on Monday after the union accepted a pay "
                       "deal, and sailings to the islands resume this week."),
}


@pytest.fixture(scope="module")
def ferry(tmp_path_factory, embedder: Embedder) -> Retriever:
    root = tmp_path_factory.mktemp("ferry")
    corpus = write_corpus(root / "corpus")
    for name, (title, outlet, date, body) in FERRY.items():
        (corpus / name).write_text(f"{title}\nOutlet: {outlet}\nDate: {date}\n\n{body}\n",
                                   "utf-8")
    return Retriever(index_corpus(corpus, root / "index", embedder, progress=False), embedder)


@pytest.mark.parametrize(("filters", "expected"), [
    ({"outlet": "Coastal Times"}, [("2024-03-05", "Coastal Times"), ("2024-04-11", "Coastal Times"),
                                   ("2024-05-20", "Coastal Times")]),
    ({"since": "2024-04-01"}, [("2024-04-10", "Harbour Daily"), ("2024-05-20", "Coastal Times")]),
    ({"until": "2024-04-30"}, [("2024-03-05", "Coastal Times"), ("2024-04-10", "Harbour Daily")]),
    ({"outlet": "Harbour Daily"}, [("2024-04-10", "Harbour Daily")]),
])
def test_a_timeline_filter_removes_only_what_it_excludes(ferry: Retriever, filters, expected):
    """Each story of the unfiltered timeline that one of its carriers passes the filter
    stays, told by that carrier (ranked among the filtered rows alone, stories fell under the
    relevance floor; a wire copy under its own headline scored under it too)."""
    full = timeline(ferry, "ferry strike")
    assert [(s.date, s.outlet) for s in full.stories] == [
        ("2024-03-05", "Coastal Times"), ("2024-04-10", "Harbour Daily"),
        ("2024-05-20", "Coastal Times")]
    got = timeline(ferry, "ferry strike", filters=Filters.parse(**filters))
    assert [(s.date, s.outlet) for s in got.stories] == expected


# -- the bot cut off by its shutdown, /healthz, small ones (items 11, 12) ------------------

@pytest.mark.parametrize("how", ["grace runs out", "second signal"])
def test_an_answer_cut_off_by_the_shutdown_is_told_so_without_tracebacks(retriever, tmp_path,
                                                                       caplog, how):
    """The shutdown's grace runs out (or a second SIGTERM closes at once) with an answer in
    flight: its asker is told to ask again, one log line says so, and nothing logs a
    traceback (before: ServerDisconnectedError, "Session is closed", "Task exception was
    never retrieved", and no reply)."""
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        bot.shared.batcher._lock.acquire()
        try:
            stuck = await fake.send_command("ask", {"question": TRIP_Q})
            assert (await stuck.callback()).json["type"] == 5  # deferred: in flight
            if how == "grace runs out":
                await bot.shutdown(grace=0.2)
            else:
                bot.request_shutdown("SIGTERM")
                await until(lambda: bot.drain.closing)
                bot.request_shutdown("SIGTERM")
                await until(bot.is_closed)
            told = await stuck.followup(timeout=10)
            assert told.json["content"] == RESTARTING
        finally:
            bot.shared.batcher._lock.release()

    with caplog.at_level(logging.INFO):
        run_bot(retriever, tmp_path, scenario, shutdown_seconds=30)
    assert [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()] == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    cut = [r.getMessage() for r in caplog.records if "ask again" in r.getMessage()]
    assert len(cut) == 1, cut


def test_healthz_is_ok_from_ready_not_from_the_guilds_wait(retriever, tmp_path):
    """After READY the bot answers; discord.py calls on_ready (is_ready()) only once no
    GUILD_CREATE has come for guild_ready_timeout (2 s by default). /healthz went by the
    latter and said 503 meanwhile; it goes by the gateway session now."""
    settings = bot_settings(tmp_path, metrics_port=0)

    async def main() -> None:
        async with FakeDiscord(token=TOKEN):
            bot = BylineBot(settings, retriever, guild_ready_timeout=60)
            async with bot:
                task = asyncio.create_task(bot.start(TOKEN))
                try:
                    for _ in range(400):  # READY processed: a session
                        if bot.ws is not None and bot.ws.session_id and bot.metrics_server:
                            break
                        await asyncio.sleep(0.05)
                    assert not bot.is_ready()  # still waiting out guild_ready_timeout
                    status, body = await get(bot, "/healthz")
                    assert status == 200 and json.loads(body)["gateway_connected"] is True
                finally:
                    await bot.close()
                    await asyncio.wait({task}, timeout=10)

    asyncio.run(main())


def test_help_counts_one_article_in_the_singular():
    one = ArticleInfo("a", "Bridge reopens", "a.txt", None, "2024-05-01", None, 1)
    assert render_help([one]).description.startswith(
        "I know **1** article (1 paragraph), the latest dated 2024-05-01.")
    two = [one, ArticleInfo("b", "Ferry", "b.txt", None, None, None, 3)]
    assert render_help(two).description.startswith("I know **2** articles (4 paragraphs)")
