"""The feeds a corpus folder follows: `feeds.txt`, one URL a line, edited atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import BylineError, FetchError
from retrieval.feeds.fetch import check_url
from retrieval.store.files import write_atomic

HEADER = "# Feeds `byline follow` polls: one URL a line; # starts a comment.\n"


class FeedListError(BylineError):
    """The feed list cannot be read or written."""


@dataclass(frozen=True)
class FeedList:
    """The feeds of a feeds.txt, and one line for each line of it that was left out."""

    urls: list[str]
    problems: list[str]


def read_feeds(path: Path) -> FeedList:
    """The feed URLs in a feeds.txt: one a line, `#` comments, blank lines; a bad line is
    left out and named, never fatal; no file is no feeds."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return FeedList([], [])
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        return FeedList([], [f"{path}: cannot be read ({reason}); no feeds polled"])
    urls: list[str] = []
    problems: list[str] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        url = _url_part(raw)
        if not url:
            continue
        try:
            url = _checked(url)
        except FetchError:
            problems.append(f"{path.name} line {n}: {url[:200]!r} is not an http(s) URL; "
                            "left out")
            continue
        if url in urls:
            problems.append(f"{path.name} line {n}: {url} is listed twice; left out")
            continue
        urls.append(url)
    return FeedList(urls, problems)


def add_feed(path: Path, url: str) -> str | None:
    """Append a feed to the list (FetchError if not an http(s) URL): its URL as listed, or
    None when it is listed already."""
    url = _checked(url)
    if url in read_feeds(path).urls:
        return None
    text = _read(path) or HEADER
    _write(path, text + ("\n" if not text.endswith("\n") else "") + url + "\n")
    return url


def remove_feed(path: Path, url: str) -> str | None:
    """Take every line listing this feed out of the list: its URL, or None if not listed."""
    try:
        target = _checked(url)
    except FetchError:
        target = url.strip()
    lines = _read(path).splitlines(keepends=True)
    kept = [line for line in lines if _listed_url(line) != target]
    if len(kept) == len(lines):
        return None
    _write(path, "".join(kept))
    return target


def _url_part(line: str) -> str:
    """The URL part of a line: none for a comment, and no ` # comment` after the URL."""
    line = line.strip()
    if line.startswith("#"):
        return ""
    return line.split(" #", 1)[0].split("\t#", 1)[0].strip()


def _checked(url: str) -> str:
    """The URL as the Fetcher keys it (no fragment), or FetchError."""
    if any(c.isspace() for c in url.strip()):
        raise FetchError(f"{url!r} is not a URL (it has spaces).")
    return check_url(url)


def _listed_url(line: str) -> str:
    """The URL a line lists, compared as `_checked` gives it ("" for none)."""
    url = _url_part(line)
    try:
        return _checked(url) if url else ""
    except FetchError:
        return url


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedListError(f"Cannot read {path} ({exc}).") from None


def _write(path: Path, text: str) -> None:
    """Write beside the list, then rename over it: a reader sees the old list or the new."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise FeedListError(f"Cannot write {path} ({exc}).") from None
