"""How a passage is cited, decided once for every surface (the `byline` CLI, the Discord bot).

A citation reads `Title — Outlet, 2022-09-30 — ¶4` and names the other articles that carry
the same passage: `The Courier, Derailed and 2 more`. Dates are shown as the day
(`2022-09-30`), never as the stored timestamp. This module knows nothing of Discord or
rich: a surface passes a `Style` with its escaping, link syntax and lengths, and gets back
a `Citation` whose parts it may lay out itself or join with `Citation.line`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from retrieval.corpus.meta import clean_text
from retrieval.corpus.records import Passage
from retrieval.text import truncate

UNDATED = "undated"  # what a timeline shows in place of a missing date


class Citable(Protocol):
    """What a citation is read from: a Passage, an ArticleInfo, a timeline Story, a Copy."""

    @property
    def title(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def outlet(self) -> str | None: ...
    @property
    def date(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...


def day(date: str | None) -> str | None:
    """The day of an ISO 8601 date or timestamp: `2022-09-30T14:05:00+00:00` -> `2022-09-30`."""
    return date[:10] if date else None


def _unchanged(text: str) -> str:
    return text


def _cut(text: str, limit: int | None) -> str:
    return text if limit is None else truncate(text, limit)


@dataclass(frozen=True)
class Style:
    """What differs between surfaces; the defaults give plain text with nothing cut."""

    escape: Callable[[str], str] = _unchanged  # applied to each piece of article text
    link: Callable[[str, str], str] | None = None  # (title, url) -> linked title; None: no link
    title_max: int | None = None  # the (escaped) title cut to this many characters
    part_max: int | None = None  # the outlet and the date each cut to this
    source: bool = False  # give the source file, for `line` to end with `(a.txt)`
    names: int | None = None  # name at most this many copies, then `and 2 more`; 0: none
    name_max: int | None = None  # each copy's name cut to this
    copy_dates: bool = False  # each copy with its day: `The Courier (2024-05-01)`


PLAIN = Style()


@dataclass(frozen=True)
class Citation:
    """A citation's parts, escaped, cut and linked for one surface ("" where unknown)."""

    title: str  # linked when the article has a web address and the style links
    outlet: str = ""
    date: str = ""  # the day
    paragraph: int | None = None
    source: str = ""
    also_in: str = ""  # the other articles carrying the passage: `A, B and 2 more`

    @property
    def where(self) -> str:
        """`Outlet, 2022-09-30` with the parts that are known."""
        return ", ".join(x for x in (self.outlet, self.date) if x)

    def line(self) -> str:
        """`Title — Outlet, 2022-09-30 — ¶4 (a.txt)` with the parts that are known."""
        where = f" — {self.where}" if self.where else ""
        paragraph = f" — ¶{self.paragraph}" if self.paragraph is not None else ""
        source = f" ({self.source})" if self.source else ""
        return f"{self.title}{where}{paragraph}{source}"


def cite(item: Citable, style: Style = PLAIN, copies: Sequence[Citable] = ()) -> Citation:
    """The citation of a passage (with its paragraph) or of an article or story, and of the
    `copies` other articles carry, in `style`."""
    esc = style.escape
    title = _cut(esc(item.title), style.title_max)
    if style.link and item.url and item.url.startswith(("http://", "https://")):
        title = style.link(title, item.url)
    return Citation(
        title=title,
        outlet=_cut(esc(item.outlet), style.part_max) if item.outlet else "",
        date=_cut(esc(d), style.part_max) if (d := day(item.date)) else "",
        paragraph=item.paragraph if isinstance(item, Passage) else None,
        # A file name is the corpus owner's, not cleaned when read: one line, no escapes.
        source=esc(clean_text(item.source) or "") if style.source else "",
        also_in=copy_names(copies, style),
    )


def copy_names(copies: Sequence[Citable], style: Style = PLAIN) -> str:
    """`Outlet A, Outlet B and 2 more` for the other articles carrying a passage (each by
    outlet, else title), "" when none or when the style names none."""
    if not copies or (style.names is not None and style.names < 1):
        return ""
    shown = copies if style.names is None else copies[:style.names]
    names = []
    for c in shown:
        name = _cut(style.escape(c.outlet or c.title), style.name_max)
        if style.copy_dates and (d := day(c.date)):
            name += f" ({style.escape(d)})"
        names.append(name)
    more = len(copies) - len(shown)
    return ", ".join(names) + (f" and {more} more" if more else "")
