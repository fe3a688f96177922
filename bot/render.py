"""Pure functions that render Retriever results as Discord embeds, within Discord's limits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import discord
from discord.utils import escape_markdown

from retrieval.corpus import Passage
from retrieval.corpus.meta import date_key
from retrieval.search import citations as citation
from retrieval.search.citations import UNDATED, Style, copy_names, day
from retrieval.search.retriever import Answer, Hit
from retrieval.search.timeline import Story, Timeline
from retrieval.store import ArticleInfo
from retrieval.text import truncate

# Discord's embed limits (https://discord.com/developers/docs/resources/message#embed-object).
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FIELDS_MAX = 25
FOOTER_MAX = 2048
TOTAL_MAX = 6000

ANSWER_COLOUR = discord.Colour(0x2B6CB0)
MISS_COLOUR = discord.Colour(0x718096)
SOURCES_PER_PAGE = 10
SOURCE_LINE_MAX = 380  # a page's lines always fit one description
assert SOURCES_PER_PAGE * (SOURCE_LINE_MAX + 1) <= DESCRIPTION_MAX
FOOTER = "Byline · passages from the coverage, not generated text"


_BRACKETS = re.compile(r"(\\\\)|\\?([\[\]])")


def safe(text: str) -> str:
    """Article or user text shown literally: no Markdown, no masked links, one line. Every
    bracket is escaped, so that a title like `x](https://evil) [` cannot close the link it
    is put in and open one of its own."""
    text = re.sub(r"\s+", " ", text).strip()
    # escape_markdown escapes a complete `[..](..)` only; escape each bracket once more
    # (an escaped backslash `\\` is passed over whole, an already escaped bracket kept).
    return _BRACKETS.sub(lambda m: m[1] or "\\" + m[2], escape_markdown(text))


def markdown_link(text: str, url: str) -> str:
    """`[text](url)`, a ")" in the URL encoded so that it does not end the link."""
    return f"[{text}]({url.replace(')', '%29')})"


def discord_style(title_max: int, link: bool = True, part_max: int | None = None,
                  names: int | None = None, name_max: int | None = None) -> Style:
    """Citations in Discord Markdown: article text escaped, titles linked (when `link`)."""
    return Style(escape=safe, link=markdown_link if link else None, title_max=title_max,
                 part_max=part_max, names=names, name_max=name_max)


def cite(p: Passage, title_max: int = 200, link: bool = True) -> str:
    """`Title — Outlet, Date — ¶p`, the title linked when the article has a URL."""
    return citation.cite(p, discord_style(title_max, link, part_max=title_max // 2)).line()


def also_in(hit: Hit, names: int = 3, name_max: int = 40) -> str:
    """` · also in Outlet A, Outlet B and 2 more` for a passage other articles also carry
    ("" when none): at most `names` outlets (or titles), each cut to `name_max`."""
    return _also(copy_names(hit.also_in, Style(escape=safe, names=names, name_max=name_max)))


def _also(listed: str) -> str:
    return f" · also in {listed}" if listed else ""


def _sources_value(hits: Sequence[Hit]) -> str:
    """One line per source; links, then other outlets, then title length give way before a
    line is lost."""
    for link, title_max, names in ((True, 200, 3), (False, 200, 3), (False, 200, 1),
                                   (False, 80, 1), (False, 80, 0), (False, 24, 0)):
        value = "\n".join(f"**[{h.rank}]** {cite(h.passage, title_max, link)}"
                          f"{also_in(h, names)}" for h in hits)
        if len(value) <= FIELD_VALUE_MAX:
            return value
    return truncate(value, FIELD_VALUE_MAX)


def render_answer(answer: Answer) -> discord.Embed:
    """The best quote on top, each passage as source [n] with its quote, then the sources."""
    hits = answer.hits[:FIELDS_MAX - 1]
    embed = discord.Embed(title=truncate(safe(answer.question), TITLE_MAX),
                          colour=ANSWER_COLOUR,
                          description=truncate(f"> {safe(hits[0].quote)} **[1]**", 1500))
    embed.set_footer(text=FOOTER)
    names = [truncate(f"[{h.rank}] {safe(h.passage.title)}", FIELD_NAME_MAX) for h in hits]
    sources = _sources_value(hits)
    # Share what is left of the 6,000 total evenly between the passages.
    fixed = len(embed) + sum(map(len, names)) + len("Sources") + len(sources)
    budget = min(FIELD_VALUE_MAX, (TOTAL_MAX - fixed) // len(hits))
    for hit, name in zip(hits, names, strict=True):
        embed.add_field(name=name, value=quoted_passage(hit.passage.text, hit.quote, budget),
                        inline=False)
    embed.add_field(name="Sources", value=sources, inline=False)
    return fit(embed)


def quoted_passage(passage: str, quote: str, limit: int) -> str:
    """The passage with its answering sentence in bold, cut around that sentence to fit."""
    p, q = safe(passage), safe(quote)
    at = p.find(q)
    if at < 0 or len(q) + 4 > limit:
        return truncate(p, limit)
    before, after = p[:at], p[at + len(q):]
    room = limit - len(q) - 4
    if len(before) + len(after) > room:
        keep_before = min(len(before), room // 3)
        before = _truncate_left(before, keep_before)
        after = truncate(after, room - len(before))
    return f"{before}**{q}**{after}"


def _truncate_left(text: str, limit: int) -> str:
    """`text` cut from the left to at most `limit` characters, starting with "…"."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ""
    tail = text[len(text) - limit + 1:]
    space = tail.find(" ")
    if 0 <= space < limit // 2:
        tail = tail[space:]
    return "…" + tail


def render_not_covered(question: str) -> discord.Embed:
    return discord.Embed(
        title="Not covered",
        description=truncate(
            f"The coverage doesn't answer “{safe(question)}”. "
            "Use `/sources` to see which articles Byline knows.", DESCRIPTION_MAX),
        colour=MISS_COLOUR,
    )


def render_timeline(timeline: Timeline) -> discord.Embed:
    """One line per story, oldest first: date, outlet, linked headline, best sentence; the
    stories that do not fit are counted in the footer."""
    if not timeline.covered:
        return discord.Embed(title="Not covered", colour=MISS_COLOUR, description=truncate(
            f"The coverage says nothing about “{safe(timeline.topic)}”. Use `/sources` to "
            "see which articles Byline knows.", DESCRIPTION_MAX))
    lines: list[str] = []
    for story in timeline.stories:
        line = timeline_line(story)
        if sum(len(x) + 1 for x in lines) + len(line) > DESCRIPTION_MAX - 1:
            break
        lines.append(line)
    embed = discord.Embed(title=truncate(f"Timeline: {safe(timeline.topic)}", TITLE_MAX),
                          colour=ANSWER_COLOUR, description="\n".join(lines))
    shown, total = len(lines), len(timeline.stories)
    embed.set_footer(text=f"{total} stories, oldest first; wire copies shown once"
                     + (f" · showing {shown}" if shown < total else "") + f" · {FOOTER}")
    return fit(embed)


def timeline_line(story: Story, limit: int = 480) -> str:
    """`2022-09-06 · BBC · [Headline](url) — “best sentence” · also in …`, cut to fit."""
    c = citation.cite(story, discord_style(120, part_max=40, names=2, name_max=30), story.also_in)
    head = " · ".join(x for x in (f"`{c.date or UNDATED}`", c.outlet, f"**{c.title}**") if x)
    tail = _also(c.also_in)
    room = limit - len(head) - len(tail) - 5
    return f"{head} — “{truncate(safe(story.quote), max(room, 20))}”{tail}"


def sources_pages(articles: Sequence[ArticleInfo], per_page: int = SOURCES_PER_PAGE) -> int:
    """How many pages /sources has (at least 1: an empty coverage says so)."""
    return max(1, -(-len(articles) // per_page))


def render_sources_page(articles: Sequence[ArticleInfo], page: int,
                        per_page: int = SOURCES_PER_PAGE) -> discord.Embed:
    """Page `page` (from 0, clamped to the last) of /sources, rendering only its own articles:
    a click on a page button costs the same for a coverage of 20 or 20,000 articles."""
    count = sources_pages(articles, per_page)
    page = max(0, min(page, count - 1))
    shown = articles[page * per_page:(page + 1) * per_page]
    lines = [_source_line(a) for a in shown] or ["The coverage is empty."]
    total = sum(a.passages for a in articles)
    embed = discord.Embed(title="Sources in the coverage", description="\n".join(lines),
                          colour=ANSWER_COLOUR)
    embed.set_footer(text=f"Page {page + 1}/{count} · {len(articles)} articles · "
                          f"{total} passages")
    return fit(embed)


def render_help(articles: Sequence[ArticleInfo], no_coverage: str | None = None
                ) -> discord.Embed:
    """`no_coverage`: why this server has no coverage yet, and how to add some."""
    latest = max((a.date for a in articles if a.date), key=date_key, default=None)
    latest = day(latest)
    paragraphs = sum(a.passages for a in articles)
    known = (f"I know **{len(articles)}** article{'s' * (len(articles) != 1)} ({paragraphs} "
             f"paragraph{'s' * (paragraphs != 1)})"
             f"{f', the latest dated {safe(latest)}' if latest else ''}.")
    if no_coverage is not None:
        known = no_coverage
    embed = discord.Embed(title="Byline", colour=ANSWER_COLOUR, description=(
        f"{known}\n\nAsk about them with `/ask question:...` — for example "
        "`/ask question:why was the trip cancelled`. I answer with the paragraphs that say "
        "so, the sentence that answers, and where each comes from. When the coverage "
        "doesn't answer, I say so."))
    embed.add_field(name="Options", value=(
        "`results:` how many passages (1-5)\n`private:` only you see the answer\n"
        "`since:` `until:` only coverage in these dates (2022-06-01, last week, yesterday)\n"
        "`outlet:` only this outlet's coverage\n`as_of:` answer as of a date (default: now)\n"
        "Asking about the present (“this week”, “latest”, “now”) favours the newest "
        "coverage."), inline=False)
    embed.add_field(name="Other commands", value="`/timeline topic:` a topic's stories in "
                    "date order\n`/sources` the articles I know\n`/help` this message\n"
                    "Right-click a message → **Apps** → **Ask Byline**: the coverage on what "
                    "it says, only for you\n"
                    "`/coverage` (members with Manage Server) add articles and feeds, "
                    "remove articles, see the coverage's status", inline=False)
    return fit(embed)


def _source_line(a: ArticleInfo) -> str:
    """`• **[Title](url)** — Outlet, Date · 9 ¶` for one article of the coverage."""
    c = citation.cite(a, discord_style(200))
    return truncate(f"• {replace(c, title=f'**{c.title}**').line()} · {a.passages} ¶",
                    SOURCE_LINE_MAX)


def fit(embed: discord.Embed) -> discord.Embed:
    """Shrink the longest field values (then the description) until the total fits.

    The "Sources" field is never cut: its numbers must keep matching the [n] markers.
    """
    while len(embed) > TOTAL_MAX:
        excess = len(embed) - TOTAL_MAX
        fields = embed.fields
        cuttable = [i for i, f in enumerate(fields) if f.name != "Sources"]
        longest = max(cuttable, key=lambda i: len(fields[i].value or ""), default=None)
        desc = len(embed.description or "")
        if longest is None or desc > len(fields[longest].value or ""):
            embed.description = truncate(embed.description or "", max(desc - excess, 1))
            continue
        f = fields[longest]
        embed.set_field_at(longest, name=f.name, inline=f.inline,
                           value=truncate(f.value or "", max(len(f.value or "") - excess, 1)))
    return embed
