"""The records every reader produces: Article (one source document) and Passage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Article:
    """One source document: its stable id, title and citation metadata."""

    id: str
    title: str
    source: str
    outlet: str | None = None
    date: str | None = None
    url: str | None = None
    author: str | None = None
    sha256: str = ""
    paragraphs: tuple[str, ...] = field(default=(), repr=False)

    def passages(self) -> list[Passage]:
        return [
            Passage(id=f"{self.id}#{n}", article_id=self.id, title=self.title,
                    source=self.source, paragraph=n, text=text, outlet=self.outlet,
                    date=self.date, url=self.url)
            for n, text in enumerate(self.paragraphs, start=1)
        ]


@dataclass(frozen=True)
class Passage:
    """One retrievable paragraph with everything needed to cite it."""

    id: str
    article_id: str
    title: str
    source: str
    paragraph: int
    text: str
    outlet: str | None = None
    date: str | None = None
    url: str | None = None

    @cached_property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]
