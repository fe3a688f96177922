"""Download pages and feeds into the corpus folder, recording where each file came from."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import httpx

from retrieval.corpus.folder import SOURCES_RECORD, recorded_urls  # noqa: F401 (public here too)
from retrieval.errors import FetchError
from retrieval.feeds.addresses import AddressPolicy, Blocked
from retrieval.feeds.transport import guarded_transport
from retrieval.store.files import write_atomic
from retrieval.version import __version__

TIMEOUT_SECONDS = 15.0  # each connect, read and write
DEADLINE_SECONDS = 30.0  # one fetch, from connecting to its last byte (redirects included)
MAX_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
RATE_PER_HOST = 1.0  # requests per host per second
# Add "+<project URL>; " inside the parentheses once the project has a public home.
USER_AGENT = f"Byline/{__version__} (news Q&A indexer)"
RECORD_NAME = SOURCES_RECORD  # the indexer reads it: retrieval.corpus.folder.recorded_urls
FEEDS_DIR = ".feeds"
MAX_NAME = 100  # characters in a saved file's name, extension included

PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/xml",
                        "text/xml"})
_FEED_STARTS = (b"<?xml", b"<rss", b"<feed", b"<rdf:rdf")
_PAGE_EXTENSIONS = (".html", ".htm", ".shtml", ".php", ".asp", ".aspx", ".jsp")
_FEED_EXTENSIONS = (".xml", ".rss", ".atom", ".rdf")

Status = Literal["fetched", "not_modified", "skipped", "failed"]


@dataclass(frozen=True)
class FetchSettings:
    """Limits for every request: time, size, redirects, politeness and identity, and where
    it may connect: `policy` (public addresses on ports 80 and 443 by default), except that
    with `trust_given` the URLs given (the CLI user's) are fetched wherever they point;
    their redirects elsewhere and the links of their feeds are checked all the same."""

    timeout: float = TIMEOUT_SECONDS
    deadline: float = DEADLINE_SECONDS
    max_bytes: int = MAX_BYTES
    max_redirects: int = MAX_REDIRECTS
    rate: float = RATE_PER_HOST
    user_agent: str = USER_AGENT
    policy: AddressPolicy = field(default_factory=AddressPolicy)
    trust_given: bool = False
    folder_bytes: int | None = None  # what the folder may hold in all (the bot's per server)

    @classmethod
    def for_cli(cls, rate: float | None = None) -> FetchSettings:
        """The CLI's: what its user names is fetched wherever it points; redirects elsewhere
        and feed links only where public addresses and BYLINE_FETCH_ALLOW allow."""
        try:
            policy = AddressPolicy.from_env()
        except ValueError as exc:
            raise FetchError(f"BYLINE_FETCH_ALLOW: {exc}.") from None
        return cls(policy=policy, trust_given=True, **({} if rate is None else {"rate": rate}))


@dataclass(frozen=True)
class FetchResult:
    """What happened to one URL: fetched, not modified, skipped (already stored) or failed."""

    url: str
    kind: Literal["page", "feed"]
    status: Status
    path: str | None = None  # relative to the folder, posix
    final_url: str | None = None
    reason: str | None = None
    blocked: bool = False  # refused by the address policy (the reason says where it led)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Failed(Exception):
    """One URL failed; the message is the reason shown on its line."""

    def __init__(self, reason: str, blocked: bool = False) -> None:
        super().__init__(reason)
        self.blocked = blocked


def check_url(url: str) -> str:
    """The URL without its fragment, or FetchError if it is not an absolute http(s) URL that
    can be requested (a port that is a number, a host that can be encoded, no control
    characters: a feed's malformed link once stopped the whole run)."""
    bad = FetchError(f"{url!r} is not an http(s) URL; give one like https://example.com/a.")
    try:
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise bad
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        httpx.URL(url.strip())  # the host's IDNA form, no control characters
        if any(ord(c) < 32 or ord(c) == 127 for c in url.strip()) or any(
                len(label) > 63 for label in parts.hostname.split(".")):
            raise bad
    except (ValueError, UnicodeError, httpx.InvalidURL):
        raise bad from None
    return urldefrag(url.strip())[0]


def slug(url: str, *, extensions: Iterable[str] = _PAGE_EXTENSIONS, hashed: bool = False,
         limit: int = MAX_NAME - len(".html")) -> str:
    """A filesystem-safe name from the URL's path, with a short hash of the URL when needed."""
    parts = urlsplit(url)
    path = unquote(parts.path).strip("/")
    lower = path.lower()
    for ext in extensions:
        if lower.endswith(ext):
            path = path[: -len(ext)]
            break
    name = re.sub(r"[^a-z0-9_]+", "-", path.lower()).strip("-")
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:8]
    if hashed or not name or parts.query or len(name) > limit:
        name = f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}".lstrip("-")
    return name


def host_dir(url: str) -> str:
    """The folder named for the URL's host (with the port when it is not the default)."""
    parts = urlsplit(url)
    host = re.sub(r"[^a-z0-9.-]+", "-", (parts.hostname or "unknown").lower())
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{host}_{parts.port}" if parts.port and parts.port != default else host


class RateLimiter:
    """At most `rate` requests per host per second, on the monotonic clock."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not rate > 0:
            raise FetchError("--rate must be a positive number of requests per second.")
        self._interval = 1.0 / rate
        self._next: dict[str, float] = {}
        self._clock, self._sleep = clock, sleep

    def wait(self, host: str) -> None:
        now = self._clock()
        slot = max(now, self._next.get(host, now))
        self._next[host] = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


@dataclass
class _Record:
    """The `.byline-sources.json` of a folder: where each fetched file and feed came from."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> _Record:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files, feeds = data["files"], data.get("feeds", {})
            if not isinstance(files, dict) or not isinstance(feeds, dict):
                raise TypeError("files and feeds must be objects")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FetchError(
                f"The fetch record {path} cannot be read ({exc}); fix or remove it."
            ) from None
        return cls(files, feeds)

    def save(self, path: Path) -> None:
        data = {"version": 1, "files": self.files, "feeds": self.feeds}
        write_atomic(path, (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode())

    def page_for(self, url: str) -> str | None:
        """The stored file for this URL, asked for or reached through redirects."""
        for rel, entry in self.files.items():
            if url in (entry.get("requested"), entry.get("url")):
                return rel
        return None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Fetcher:
    """Fetches pages and feeds into one folder; use as a context manager, or call close()."""

    def __init__(self, folder: Path, settings: FetchSettings | None = None, *,
                 refresh: bool = False) -> None:
        self.folder = Path(folder)
        self.settings = settings or FetchSettings()
        self.refresh = refresh
        self._record_path = self.folder / RECORD_NAME
        self._record = _Record.load(self._record_path)
        self._held: int | None = None  # the folder's bytes, counted on the first save
        self._limiter = RateLimiter(self.settings.rate)
        transport, self._backend = guarded_transport(self.settings.policy)
        self._client = httpx.Client(
            transport=transport,
            # Decoded here, piece by piece (see `decode`): only what that handles.
            headers={"User-Agent": self.settings.user_agent,
                     "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(self.settings.timeout),
            follow_redirects=False,  # followed by hand: each hop is rate-limited and counted
            trust_env=False,  # no proxies from the environment
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def fetch(self, urls: Iterable[str] = (), feeds: Iterable[str] = ()) -> Iterator[FetchResult]:
        """Each page, then each feed and its articles, one result per URL, as they finish."""
        for url in urls:
            yield self.fetch_page(url)
        for url in feeds:
            yield from self.fetch_feed(url)

    def fetch_page(self, url: str, *, given: bool = True) -> FetchResult:
        """Download one page unless it is stored already (or, with refresh, unchanged);
        `given`: named by the user, not a feed's link."""
        try:
            url = check_url(url)
        except FetchError:
            return FetchResult(url, "page", "failed", reason="not an http(s) URL")
        with self._bounded(url, given):
            return self._fetch_page(url)

    def _fetch_page(self, url: str) -> FetchResult:
        rel = self._record.page_for(url)
        stored = rel is not None and (self.folder / rel).is_file()
        if stored and not self.refresh:
            return FetchResult(url, "page", "skipped", rel, self._record.files[rel]["url"],
                               "already stored")
        entry = self._record.files[rel] if stored and rel else {}
        try:
            with closing(self._get(url, entry)) as response:
                final = str(response.url)
                if response.status_code == 304 and stored and rel:
                    entry["fetched"] = _now()
                    self._record.save(self._record_path)
                    return FetchResult(url, "page", "not_modified", rel, final)
                self._check_status(response)
                media = _media_type(response.headers.get("Content-Type"))
                if media not in PAGE_TYPES:
                    raise _Failed(f"not HTML ({media or 'no content type'})")
                body = self._read(response)
            rel = rel or self._page_path(url)
            self._make_room(len(body))
            write_atomic(self.folder / rel, body)
        except _Failed as exc:
            return FetchResult(url, "page", "failed", reason=str(exc), blocked=exc.blocked)
        except OSError as exc:
            return FetchResult(url, "page", "failed", reason=f"cannot save: {exc}")
        self._record.files[rel] = self._entry(url, response)
        self._record.save(self._record_path)
        return FetchResult(url, "page", "fetched", rel, final)

    def fetch_feed(self, url: str) -> Iterator[FetchResult]:
        """The feed (conditional GET), then each of its articles not stored yet."""
        result, links = self.feed(url)
        yield result
        for link in links:
            yield self.fetch_page(link, given=False)

    def feed(self, url: str) -> tuple[FetchResult, list[str]]:
        """The feed (conditional GET; a 304 reads the stored copy) and its article links,
        none of them fetched; no links when it failed."""
        try:
            url = check_url(url)
        except FetchError:
            return FetchResult(url, "feed", "failed", reason="not an http(s) URL"), []
        with self._bounded(url, True):
            return self._feed(url)

    def _bounded(self, url: str, given: bool) -> contextlib.AbstractContextManager[None]:
        """One fetch's deadline; the URL's own host unchecked when the user named it."""
        exempt = urlsplit(url).hostname if given and self.settings.trust_given else None
        return self._backend.deadline(self.settings.deadline, exempt)

    def _feed(self, url: str) -> tuple[FetchResult, list[str]]:
        entry = self._record.feeds.get(url, {})
        rel = entry.get("path")
        stored = bool(rel) and (self.folder / rel).is_file()
        try:
            with closing(self._get(url, entry if stored else {})) as response:
                final = str(response.url)
                if response.status_code == 304 and stored:
                    result = FetchResult(url, "feed", "not_modified", rel, final)
                    body = (self.folder / rel).read_bytes()
                else:
                    self._check_status(response)
                    media = _media_type(response.headers.get("Content-Type"))
                    not_feed = _Failed(f"not a feed ({media or 'no content type'})")
                    if media not in FEED_TYPES and media != "text/plain":
                        raise not_feed
                    body = self._read(response)
                    if media == "text/plain" and not _looks_like_feed(body):
                        raise not_feed
                    result = None
            links = _feed_links(body, final)
            if result is None:
                rel = rel or self._feed_path(url)
                self._make_room(len(body))
                write_atomic(self.folder / rel, body)
                self._record.feeds[url] = {"path": rel, **self._validators(response)}
                self._record.save(self._record_path)
                result = FetchResult(url, "feed", "fetched", rel, final)
            else:
                entry["fetched"] = _now()
                self._record.save(self._record_path)
        except _Failed as exc:
            return FetchResult(url, "feed", "failed", reason=str(exc), blocked=exc.blocked), []
        except OSError as exc:
            return FetchResult(url, "feed", "failed", reason=f"cannot save: {exc}"), []
        return result, links

    def _get(self, url: str, entry: dict[str, Any]) -> httpx.Response:
        """The first non-redirect response, streaming; conditional when entry has validators."""
        headers = {}
        if entry.get("etag"):
            headers["If-None-Match"] = entry["etag"]
        if entry.get("last_modified"):
            headers["If-Modified-Since"] = entry["last_modified"]
        request = self._client.build_request("GET", url, headers=headers)
        seen = {url}
        try:
            for _ in range(self.settings.max_redirects + 1):
                self._limiter.wait(request.url.host)
                response = self._client.send(request, stream=True)
                if response.next_request is None:
                    return response
                response.close()
                request = response.next_request
                target = str(request.url)
                if request.url.scheme not in ("http", "https"):
                    raise _Failed(f"redirected to a non-http(s) URL ({target})")
                if target in seen:
                    raise _Failed(f"redirect loop (back to {target})")
                seen.add(target)
        except httpx.HTTPError as exc:
            raise self._failure(exc) from None
        except Blocked as exc:
            raise _Failed(f"that address is not allowed: {exc}", blocked=True) from None
        raise _Failed(f"too many redirects (more than {self.settings.max_redirects})")

    def _read(self, response: httpx.Response) -> bytes:
        """The body, stopping as soon as it passes the size cap or the time limit."""
        cap = self.settings.max_bytes
        too_big = f"larger than {cap / 1024 / 1024:g} MB (stopped)"
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > cap:
            raise _Failed(too_big)
        deadline = time.monotonic() + self.settings.timeout
        chunks, size, received = [], 0, 0

        def raw() -> Iterator[bytes]:
            nonlocal received
            for piece in response.iter_raw(RAW_PIECE):
                received += len(piece)
                yield piece

        try:
            decoded = decode(raw(), response.headers.get("Content-Encoding"))
            for chunk in decoded:
                size += len(chunk)
                if size > cap:
                    raise _Failed(too_big)
                if size > BOMB_FLOOR and size > BOMB_RATIO * received:
                    raise _Failed(f"unpacks to more than {BOMB_RATIO} times its size "
                                  "(a decompression bomb)")
                if time.monotonic() > deadline:
                    raise _Failed(f"timed out after {self.settings.timeout:g} s")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise self._failure(exc) from None
        except (zlib.error, ValueError) as exc:
            raise _Failed(f"cannot be decoded ({exc})") from None
        return b"".join(chunks)

    def _make_room(self, size: int) -> None:
        """_Failed when saving `size` more bytes would pass `folder_bytes` (counted once,
        then kept up to date by what this fetcher saves)."""
        cap = self.settings.folder_bytes
        if cap is None:
            return
        if self._held is None:
            self._held = sum(p.stat().st_size for p in self.folder.rglob("*")
                             if p.is_file() and not p.is_symlink())
        if self._held + size > cap:
            raise _Failed(f"the folder is full ({cap / 2**20:g} MB); remove articles first")
        self._held += size

    def _failure(self, exc: httpx.HTTPError) -> _Failed:
        """The one-line reason for a transport error (timeout, refused connection...)."""
        if isinstance(exc, httpx.TimeoutException):
            return _Failed(f"timed out after {self.settings.timeout:g} s")
        if isinstance(exc, httpx.ConnectError):
            return _Failed(f"cannot connect ({exc})")
        return _Failed(f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _check_status(response: httpx.Response) -> None:
        if response.status_code != 200:
            raise _Failed(f"{response.status_code} {response.reason_phrase}".strip())

    @staticmethod
    def _validators(response: httpx.Response) -> dict[str, Any]:
        return {
            "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified"),
            "fetched": _now(),
        }

    @staticmethod
    def _entry(url: str, response: httpx.Response) -> dict[str, Any]:
        return {
            "url": str(response.url),
            "requested": url,
            "fetched": _now(),
            "content_type": response.headers.get("Content-Type"),
            "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified"),
        }

    def _page_path(self, url: str) -> str:
        """`<host>/<slug>.html`, hashed when the plain name belongs to another URL or file."""
        rel = f"{host_dir(url)}/{slug(url)}.html"
        if rel in self._record.files or (self.folder / rel).exists():
            rel = f"{host_dir(url)}/{slug(url, hashed=True)}.html"
        return rel

    def _feed_path(self, url: str) -> str:
        """`.feeds/<host>-<slug>.xml`, hashed when the plain name is taken."""
        taken = {e.get("path") for e in self._record.feeds.values()}
        limit = MAX_NAME - len(".xml") - len(host_dir(url)) - 1
        for hashed in (False, True):
            name = slug(url, extensions=_FEED_EXTENSIONS, hashed=hashed, limit=limit)
            rel = str(PurePosixPath(FEEDS_DIR, f"{host_dir(url)}-{name}.xml"))
            if rel not in taken and not (self.folder / rel).exists():
                break
        return rel


DECODED_PIECE = 64 * 1024  # the most a decoder gives at once
RAW_PIECE = 1024  # bytes off the wire handed to the decoders at a time
# A body that unpacks past BOMB_FLOOR at more than BOMB_RATIO times the bytes received is a
# decompression bomb: HTML compresses 4-20 times; zeros gzipped twice, a million times. It
# is given up there rather than at the size cap (docs/security.md, "Measured").
BOMB_RATIO = 200
BOMB_FLOOR = 1024 * 1024


def decode(raw: Iterable[bytes], encoding: str | None) -> Iterator[bytes]:
    """A body's bytes with its Content-Encoding (`gzip`, `deflate`, stacked as `gzip, gzip`)
    undone, in pieces of at most DECODED_PIECE bytes however much one raw chunk expands:
    the reader stops at its size cap having held no more than that (a 3.5 KB response
    of `gzip, gzip` expanded to 4.2 GB in one piece when a whole chunk was decoded at once).
    ValueError for an encoding it does not know."""
    names = [e.strip().lower() for e in (encoding or "").split(",") if e.strip()]
    names = [n for n in names if n != "identity"]
    for name in names:
        if name not in ("gzip", "x-gzip", "deflate"):
            raise ValueError(f"unknown content encoding {name!r}")
    # Applied in the order listed, so undone from the last: each stage feeds the next.
    stages = [zlib.decompressobj(zlib.MAX_WBITS | 32) for _ in reversed(names)]

    def pump(i: int, data: bytes) -> Iterator[bytes]:
        if i == len(stages):
            if data:
                yield data
            return
        stage = stages[i]
        while data:
            out = stage.decompress(data, DECODED_PIECE)
            data = stage.unconsumed_tail
            yield from pump(i + 1, out)

    for chunk in raw:
        if stages:
            yield from pump(0, chunk)
        else:  # no encoding: chunks as they came, cut to pieces too
            for start in range(0, len(chunk), DECODED_PIECE):
                yield chunk[start:start + DECODED_PIECE]
    for i, stage in enumerate(stages):  # what each stage still holds, through the rest
        yield from pump(i + 1, stage.flush())


def recorded_feeds(folder: Path) -> dict[str, dict[str, Any]]:
    """Each fetched feed's URL -> its record (path, etag, last_modified, fetched); {} when
    there is no readable record."""
    try:
        return _Record.load(Path(folder) / RECORD_NAME).feeds
    except FetchError:
        return {}


def _looks_like_feed(body: bytes) -> bool:
    """Whether a body served as text/plain starts like RSS, Atom or RDF."""
    return body.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(_FEED_STARTS)


def _feed_links(body: bytes, base: str) -> list[str]:
    """The feed's article links, absolute and in order, without repeats or non-http links."""
    import feedparser

    parsed = feedparser.parse(body)
    if not parsed.get("version"):
        raise _Failed("not a feed (cannot be parsed as RSS or Atom)")
    links: list[str] = []
    for item in parsed.entries:
        link = item.get("link")
        if not link or not isinstance(link, str):
            continue
        try:
            link = urldefrag(urljoin(base, link.strip()))[0]
            if urlsplit(link).scheme not in ("http", "https"):
                continue
        except ValueError:  # "http://[::1/x": kept, to fail on its own line when fetched
            link = link.strip()
        if link not in links:
            links.append(link)
    return links


def summary(results: Iterable[FetchResult]) -> str:
    """`fetched 3 pages, 1 failed` with the other counts that are not zero."""
    results = list(results)

    def count(kind: str | None, status: str) -> int:
        return sum(r.status == status and kind in (None, r.kind) for r in results)

    pages, feeds = count("page", "fetched"), count("feed", "fetched")
    line = f"fetched {pages} page{'s' * (pages != 1)}"
    if feeds:
        line += f" and {feeds} feed{'s' * (feeds != 1)}"
    for status, words in (("not_modified", "not modified"), ("skipped", "already stored")):
        if n := count(None, status):
            line += f", {n} {words}"
    return f"{line}, {count(None, 'failed')} failed"
