"""Walk a corpus folder: pick the reader for each file, skip what is unusable."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from retrieval.corpus.plain import parse_article
from retrieval.corpus.records import Article
from retrieval.errors import CorpusError

ARTICLE_SUFFIXES = (".txt", ".md")


def load_corpus(folder: str | Path, known: Mapping[str, Article] | None = None
                ) -> list[Article]:
    """Read every .txt/.md article under `folder`, cleaned; raise CorpusError if unusable.

    `known` maps a source path to that file's article as parsed before (by this same
    parser: see `parser_fingerprint`); a file whose bytes still hash the same is not parsed
    again. A re-index takes them from the previous index."""
    root = Path(folder)
    if not root.exists():
        raise CorpusError(f"Corpus folder {root} does not exist.")
    if not root.is_dir():
        raise CorpusError(f"Corpus path {root} is not a folder.")
    # Not `is_file()`: a broken link named *.txt should be reported, not silently skipped.
    files = sorted(p for p in root.rglob("*")
                   if p.suffix.lower() in ARTICLE_SUFFIXES and not p.is_dir()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise CorpusError(f"Corpus folder {root} has no .txt or .md articles.")
    articles = [a for a in (read_article(p, root, known) for p in files) if a.paragraphs]
    if not articles:
        raise CorpusError(f"Corpus folder {root} has no article text left after cleaning.")
    return articles


def read_article(path: Path, root: Path | None = None,
                 known: Mapping[str, Article] | None = None) -> Article:
    """Read and clean one article file; the id is its path relative to `root`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not UTF-8 text (bad byte at offset {exc.start}); "
            "convert it to UTF-8 or remove it."
        ) from None
    rel = path.relative_to(root) if root else Path(path.name)
    sha256 = hashlib.sha256(raw).hexdigest()
    before = known.get(rel.as_posix()) if known else None
    if before is not None and before.sha256 == sha256 and before.id == _article_id(rel):
        return before
    return parse_article(text, article_id=_article_id(rel), source=rel.as_posix(),
                         sha256=sha256)


def _article_id(rel: Path) -> str:
    stem = rel.with_suffix("").as_posix()
    return re.sub(r"[^\w/.-]+", "-", stem).strip("-") or "article"
