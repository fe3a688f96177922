"""Walk a corpus folder: pick the reader for each file, skip what is unusable and name it.

Only regular files inside the folder are read: links that lead out of it, FIFOs, devices and
dot-paths are not. One bad file never blocks the rest: it is reported as a `Problem` and the
walk goes on; `load_corpus(strict=True)` turns any skip into a CorpusError.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import stat
import zlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from retrieval.corpus import exports
from retrieval.corpus.feeds import FeedError, parse_feed
from retrieval.corpus.html import parse_html
from retrieval.corpus.meta import clean_url
from retrieval.corpus.plain import parse_article
from retrieval.corpus.records import Article
from retrieval.corpus.workers import Parsers
from retrieval.errors import CorpusError
from retrieval.progress import progress_bar

# File suffix -> reader. `.gz` is read through (`page.html.gz` is a page).
READERS = {".txt": "text", ".md": "text", ".markdown": "text",
           ".html": "html", ".htm": "html", ".xhtml": "html",
           ".xml": "feed", ".rss": "feed", ".atom": "feed",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}
ARTICLE_SUFFIXES = (*READERS, ".gz")
SINGLE_MAX = 20 * 2**20  # bytes read of a one-article file (a page, a text)
# Bytes read of a feed or an export; a bigger file is skipped. Parsed whole, such a file
# takes several times its size in memory: 512 MB of JSON took 6.7 GB.
MULTI_MAX = 64 * 2**20
TEXT_MAX = 500_000  # characters of one article's text kept; the rest is cut, with a warning
SOURCES_RECORD = ".byline-sources.json"  # written by `byline fetch`: file -> URL fetched
FEEDS_LIST = "feeds.txt"  # at the folder's top: the feeds `byline follow` polls, not an article
PROGRESS_MIN = 200  # files; fewer are read without a progress bar


@dataclass(frozen=True)
class Problem:
    """Something about one file (or one row of it) that the user should hear of."""

    source: str
    reason: str
    kind: str = "skipped"  # "skipped" (not read), "empty" (no text left), "warning"
    row: str = ""  # "row 3", "line 7", "entry 2": the part of a multi-article file

    def __str__(self) -> str:
        verb = {"skipped": "skipped ", "empty": "no text in ", "warning": ""}[self.kind]
        where = f"{self.source} ({self.row})" if self.row else self.source
        return f"{verb}{where}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "row": self.row, "kind": self.kind,
                "reason": self.reason}


@dataclass
class LoadReport:
    """What a walk of the corpus folder read, and what it could not."""

    articles: list[Article] = field(default_factory=list)
    files: int = 0  # files that gave at least one article
    problems: list[Problem] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(p.kind == kind for p in self.problems)

    def summary(self) -> str:
        """`indexed 1,204 articles from 1,190 files; skipped 3 files; ...`."""
        parts = [f"indexed {len(self.articles):,} articles from {self.files:,} "
                 f"file{'s' * (self.files != 1)}"]
        whole = sum(p.kind == "skipped" and not p.row for p in self.problems)
        rows = sum(p.kind == "skipped" and bool(p.row) for p in self.problems)
        empty = self.count("empty")
        if whole:
            parts.append(f"skipped {whole:,} file{'s' * (whole != 1)}")
        if rows:
            parts.append(f"skipped {rows:,} row{'s' * (rows != 1)} or entr"
                         f"{'ies' if rows != 1 else 'y'}")
        if empty:
            parts.append(f"{empty:,} with no article text")
        if self.count("warning"):
            parts.append(f"{self.count('warning'):,} warning{'s' * (self.count('warning') != 1)}")
        return "; ".join(parts)


def load_corpus(folder: str | Path, known: Mapping[str, list[Article]] | None = None,
                strict: bool = False, progress: bool = False) -> list[Article]:
    """Every article under `folder`, cleaned; CorpusError if none (or, with `strict`, if any
    file or row had to be skipped). See `scan_corpus`."""
    return checked(scan_corpus(folder, known, progress), folder, strict).articles


def checked(report: LoadReport, folder: str | Path, strict: bool = False) -> LoadReport:
    """`report`, or CorpusError when it holds no article (or, with `strict`, any skip)."""
    lost = [p for p in report.problems if p.kind != "warning"]
    if strict and lost:
        raise CorpusError(f"--strict: {len(lost):,} file(s) or row(s) not indexed "
                          f"(first: {lost[0]}); nothing was changed.")
    if not report.articles:
        if not report.problems:
            raise CorpusError(f"Corpus folder {folder} has no articles "
                              f"({', '.join(sorted(READERS))} files).")
        raise CorpusError(f"Corpus folder {folder} has no article text left: "
                          f"{report.problems[0]}"
                          + (f" (and {len(report.problems) - 1} more)"
                             if len(report.problems) > 1 else "") + ".")
    return report


def scan_corpus(folder: str | Path, known: Mapping[str, list[Article]] | None = None,
                progress: bool = False, workers: int | None = None) -> LoadReport:
    """Read every article file under `folder` (see READERS), never failing on one file.

    `known` maps a source path to the articles parsed from it before (by this same parser:
    see `parser_fingerprint`); a file whose bytes still hash the same is not parsed again.
    Pages are parsed in up to `workers` processes (default: one per core, up to four, none
    on one core; 0: all here) when the folder is big enough to repay starting them; the
    report is the same."""
    root = Path(folder)
    if not root.exists():
        raise CorpusError(f"Corpus folder {root} does not exist.")
    if not root.is_dir():
        raise CorpusError(f"Corpus path {root} is not a folder.")
    report = LoadReport()
    files = _walk(root, report)
    ids = _file_ids(files, report)
    recorded = recorded_urls(root)
    seen: set[str] = set()

    def collect(rel: str, articles: list[Article], problems: list[Problem]) -> None:
        report.problems.extend(problems)
        if rel in recorded:
            articles = [a if a.url else replace(a, url=recorded[rel]) for a in articles]
        if articles:
            report.files += 1
        for a in articles:
            if a.id in seen:  # a row key that collides with another file's id
                report.problems.append(Problem(rel, f"article id {a.id!r} is taken; "
                                                    "this copy was skipped"))
                continue
            seen.add(a.id)
            report.articles.append(a)

    with progress_bar("Reading articles", len(files),
                      progress and len(files) >= PROGRESS_MIN) as advance, \
            Parsers(len(files), parse_file, _offload, workers) as parsers:
        for rel, articles, problems in parsers.in_order(
                (rel, *_load(path, rel, ids[rel], known)) for rel, path in files):
            collect(rel, articles, problems)
            advance(1)
    return report


def read_article(path: Path, root: Path | None = None) -> list[Article]:
    """The articles of one file (for `byline extract`), its id relative to `root`;
    CorpusError saying why when it gives none."""
    path = Path(path)
    rel = path.relative_to(root).as_posix() if root else path.name
    if not path.is_file():
        raise CorpusError(f"{path} is not a readable file.")
    articles, problems = _load(path, rel, _base_id(rel), None)
    if isinstance(articles, ParseJob):
        articles, more = parse_file(articles)
        problems += more
    if not articles:
        reason = problems[0].reason if problems else "no article text"
        raise CorpusError(f"{path}: {reason}.")
    return articles


# -- walking --------------------------------------------------------------------------------

def _walk(root: Path, report: LoadReport) -> list[tuple[str, Path]]:
    """(relative posix path, path) of the regular article files under `root`, sorted."""
    real_root = root.resolve()
    found: list[tuple[str, Path]] = []

    def unreadable(exc: OSError) -> None:
        rel = Path(exc.filename).relative_to(root).as_posix() if exc.filename else "?"
        report.problems.append(Problem(f"{rel}/", f"folder cannot be read "
                                                  f"({exc.strerror or exc}); not indexed"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        here = Path(dirpath)
        for d in list(dirnames):
            if d.startswith(".") or (here / d).is_symlink():
                if not d.startswith("."):
                    report.problems.append(Problem(
                        (here / d).relative_to(root).as_posix() + "/",
                        "a link to a folder; links are not followed"))
                dirnames.remove(d)
        dirnames.sort()
        for name in filenames:
            path = here / name
            rel = path.relative_to(root).as_posix()
            if name.startswith(".") or _suffix(name) not in READERS:
                continue
            if here == root and name == FEEDS_LIST:
                continue
            reason = _not_regular(path, real_root)
            if reason:
                report.problems.append(Problem(rel, reason))
                continue
            found.append((rel, path))
    return sorted(found)


def _not_regular(path: Path, real_root: Path) -> str | None:
    """Why `path` must not be read (a link out of the folder, a FIFO...), or None."""
    try:
        if path.is_symlink():
            target = path.resolve(strict=True)
            if not target.is_relative_to(real_root):
                return "a link to a file outside the corpus folder; not followed"
        mode = path.stat().st_mode
    except (OSError, RuntimeError) as exc:
        return f"cannot be read ({getattr(exc, 'strerror', None) or 'broken link'})"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device)"
    return None


def _suffix(name: str) -> str:
    """The reader suffix of a file name (`.html` for `page.html.gz`), lower case."""
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    return Path(lower).suffix if "." in lower else ""


# -- ids ------------------------------------------------------------------------------------

def _base_id(rel: str) -> str:
    """The file's path in the folder without its suffix(es), made path- and URL-safe."""
    stem = rel[:-3] if rel.lower().endswith(".gz") else rel
    stem = Path(stem).with_suffix("").as_posix()
    return re.sub(r"[^\w/.-]+", "-", stem).strip("-") or "article"


def _file_ids(files: list[tuple[str, Path]], report: LoadReport) -> dict[str, str]:
    """Each file's article id; files whose paths map to one id (`x.txt` and `x.md`, `a b.txt`
    and `a-b.txt`) each get a short suffix from their own path, and the clash is named."""
    by_id: dict[str, list[str]] = defaultdict(list)
    for rel, _ in files:
        by_id[_base_id(rel)].append(rel)
    ids: dict[str, str] = {}
    for base, rels in by_id.items():
        if len(rels) == 1:
            ids[rels[0]] = base
            continue
        for rel in rels:
            ids[rel] = f"{base}~{hashlib.sha256(rel.encode()).hexdigest()[:6]}"
        report.problems.append(Problem(", ".join(rels), f"these files share the id {base!r}; "
                                       "each id got a suffix from its file name", "warning"))
    return ids


# -- reading --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParseJob:
    """One file's bytes, to be parsed (here or in a worker process: see `Parsers`)."""

    kind: str
    raw: bytes
    rel: str
    base: str
    sha256: str


def _load(path: Path, rel: str, base: str, known: Mapping[str, list[Article]] | None
          ) -> tuple[list[Article] | ParseJob, list[Problem]]:
    """Read one file: its articles when it cannot be read or was parsed before, else the
    job of parsing it; and what the user should hear of so far."""
    kind = READERS[_suffix(path.name)]
    limit = SINGLE_MAX if kind in ("text", "html") else MULTI_MAX
    problems: list[Problem] = []
    try:
        raw, whole = _read_bytes(path, limit)
    except (EOFError, zlib.error, gzip.BadGzipFile):  # BadGzipFile is an OSError: first
        return [], [Problem(rel, "not a valid .gz file")]
    except OSError as exc:
        return [], [Problem(rel, f"cannot be read ({exc.strerror or exc})")]
    if not whole:
        if kind not in ("text", "html"):
            return [], [Problem(rel, f"larger than {limit // 2**20} MB; not read")]
        problems.append(Problem(rel, f"only its first {limit // 2**20} MB were read",
                                "warning"))
    sha256 = hashlib.sha256(raw).hexdigest()
    # A page or text file read before is taken as it was; a feed or an export is read again
    # (cheap beside embedding, and its skipped rows are named again).
    before = known.get(rel) if known and kind in ("text", "html") else None
    rows = base + exports.ROW_SEPARATOR
    if before and all(a.sha256 == sha256 and (a.id == base or a.id.startswith(rows))
                      for a in before):
        return list(before), problems
    return ParseJob(_sniff(kind, raw), raw, rel, base, sha256), problems


def _offload(job: ParseJob) -> bool:
    """Whether a worker process should parse this file: pages and feeds (slow); plain
    text and exports are parsed as fast as they could be sent."""
    return job.kind in ("html", "feed")


def parse_file(job: ParseJob) -> tuple[list[Article], list[Problem]]:
    """The articles of one file's bytes, never raising on bad input: what could not be
    used is a Problem."""
    rel = job.rel
    problems: list[Problem] = []
    try:
        articles, notes = _parse(job.kind, job.raw, rel, job.base, job.sha256, problems)
    except (exports.ExportError, FeedError, UnicodeDecodeError) as exc:
        reason = (f"not UTF-8 text (bad byte at offset {exc.start}); convert it to UTF-8"
                  if isinstance(exc, UnicodeDecodeError) else str(exc))
        return [], [Problem(rel, reason)]
    except RecursionError:
        return [], [Problem(rel, "nested too deeply to read")]
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        # One bad file is skipped with its reason; it never stops the others (a page's
        # charset naming a codec that is no text encoding raised a bare UnicodeError).
        return [], [Problem(rel, f"cannot be read ({type(exc).__name__})")]
    for note in notes:  # "row 3 skipped: no text", "row 9 cut to its first ... characters"
        row, skipped, reason = note.partition(" skipped: ")
        if skipped:
            problems.append(Problem(rel, reason, "skipped", row))
        else:
            problems.append(Problem(rel, note, "warning"))
    usable = [a for a in articles if a.paragraphs]
    if not usable and not notes:
        problems.append(Problem(rel, "empty, or a title and no text", "empty"))
    return usable, problems


def _read_bytes(path: Path, limit: int) -> tuple[bytes, bool]:
    """The file's first `limit` bytes (gunzipped for `.gz`), and whether that is all."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read(limit + 1)
    return data[:limit], len(data) <= limit


def _sniff(kind: str, raw: bytes) -> str:
    """The reader for these bytes: a page saved as .txt or .xml is still a page, a feed
    saved as .html still a feed, JSON Lines saved as .json still JSON Lines."""
    head = raw[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if kind in ("text", "feed") and head.startswith((b"<!doctype html", b"<html", b"<head")):
        return "html"
    if kind == "html" and (b"<rss" in head or b"<feed" in head) and b"<html" not in head:
        return "feed"
    if kind == "json" and head.startswith(b"{"):  # one object per line: JSON Lines
        first, _, rest = raw.strip().partition(b"\n")
        if first.rstrip().endswith(b"}") and rest.lstrip().startswith(b"{"):
            return "jsonl"
    return kind


def _parse(kind: str, raw: bytes, rel: str, base: str, sha256: str, problems: list[Problem]
           ) -> tuple[list[Article], list[str]]:
    """(articles, notes) of one file's bytes by the reader `kind`."""
    if kind == "html":
        notes: list[str] = []
        return [parse_html(raw, base, rel, sha256=sha256, notes=notes)], notes
    if kind == "feed":
        return parse_feed(raw, base, rel, sha256=sha256)
    text = raw.decode("utf-8-sig")
    if kind == "text":
        if len(text) > TEXT_MAX:
            cut = text.rfind("\n", 0, TEXT_MAX)
            text = text[:cut if cut > TEXT_MAX // 2 else TEXT_MAX]
            problems.append(Problem(rel, f"cut to its first {len(text):,} characters "
                                        "(an article's limit)", "warning"))
        return [parse_article(text, base, rel, sha256=sha256)], []
    rows = {"jsonl": exports.read_jsonl, "json": exports.read_json,
            "csv": exports.read_csv}[kind](text)
    return exports.rows_to_articles(rows, base, rel, sha256,
                                    row_label="line" if kind == "jsonl" else "row")


def recorded_urls(root: Path) -> dict[str, str]:
    """Each fetched file's path (relative to `root`, posix) -> the http(s) URL it was
    fetched from, as `byline fetch` recorded them; {} when there is no readable record."""
    try:
        data = json.loads((root / SOURCES_RECORD).read_text("utf-8"))
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out = {}
    for rel, info in files.items() if isinstance(files, dict) else ():
        url = clean_url(info.get("url")) if isinstance(info, dict) else None
        if url:
            out[str(rel)] = url
    return out

