"""Pure functions that render Retriever results as Discord embeds, within Discord's limits."""

from __future__ import annotations

import re
from collections.abc import Sequence

import discord
from discord.utils import escape_markdown

from retrieval.corpus import Passage
from retrieval.corpus.meta import date_key
from retrieval.search import Answer, Hit
from retrieval.store import ArticleInfo, Copy
from retrieval.timeline import Story, Timeline

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
FOOTER = "Byline · passages from the coverage, not generated text"


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, ending with "…"."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if text[limit - 1] != " " and space > limit // 2:  # do not end inside a word
        cut = cut[:space]
    return cut.rstrip(" ,;:-—") + "…"


def safe(text: str) -> str:
    """Article or user text shown literally: no Markdown, no masked links, one line breaks."""
    text = re.sub(r"\s+", " ", text).strip()
    return escape_markdown(text)


def cite(p: Passage, title_max: int = 200, link: bool = True) -> str:
    """`Title — Outlet, Date — ¶p`, the title linked when the article has a URL."""
    title = truncate(safe(p.title), title_max)
    if link and p.url and p.url.startswith(("http://", "https://")):
        title = f"[{title}]({p.url.replace(')', '%29')})"
    where = ", ".join(truncate(safe(x), title_max // 2)
                      for x in (p.outlet, (p.date or "")[:10]) if x)
    return f"{title}{f' — {where}' if where else ''} — ¶{p.paragraph}"


def also_in(hit: Hit, names: int = 3, name_max: int = 40) -> str:
    """` · also in Outlet A, Outlet B and 2 more` for a passage other articles also carry
    ("" when none): at most `names` outlets (or titles), each cut to `name_max`."""
    return _also_in(hit.also_in, names, name_max)


def _also_in(copies: Sequence[Copy], names: int, name_max: int) -> str:
    if not copies or names < 1:
        return ""
    shown = [truncate(safe(c.outlet or c.title), name_max) for c in copies[:names]]
    more = len(copies) - len(shown)
    return f" · also in {', '.join(shown)}{f' and {more} more' if more else ''}"


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
    title = truncate(safe(story.title), 120)
    if story.url and story.url.startswith(("http://", "https://")):
        title = f"[{title}]({story.url.replace(')', '%29')})"
    head = " · ".join(x for x in (f"`{(story.date or 'undated')[:10]}`",
                                  truncate(safe(story.outlet), 40) if story.outlet else "",
                                  f"**{title}**") if x)
    tail = _also_in(story.also_in, names=2, name_max=30)
    room = limit - len(head) - len(tail) - 5
    return f"{head} — “{truncate(safe(story.quote), max(room, 20))}”{tail}"


def render_sources(articles: Sequence[ArticleInfo], per_page: int = SOURCES_PER_PAGE
                   ) -> list[discord.Embed]:
    """The articles in the coverage, one embed per page (never empty)."""
    lines = [_source_line(a) for a in articles] or ["The coverage is empty."]
    pages: list[list[str]] = [[]]
    for line in lines:
        page = pages[-1]
        if len(page) >= per_page or sum(len(x) + 1 for x in page) + len(line) > 3900:
            pages.append(page := [])
        page.append(line)
    total = sum(a.passages for a in articles)
    embeds = []
    for i, page in enumerate(pages, start=1):
        embed = discord.Embed(title="Sources in the coverage", description="\n".join(page),
                              colour=ANSWER_COLOUR)
        embed.set_footer(text=f"Page {i}/{len(pages)} · {len(articles)} articles · "
                              f"{total} passages")
        embeds.append(fit(embed))
    return embeds


def render_help(articles: Sequence[ArticleInfo]) -> discord.Embed:
    latest = max((a.date for a in articles if a.date), key=date_key, default=None)
    latest = latest[:10] if latest else None
    known = (f"I know **{len(articles)}** articles ({sum(a.passages for a in articles)} "
             f"paragraphs){f', the latest dated {safe(latest)}' if latest else ''}.")
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
                    "date order\n`/sources` the articles I know\n`/help` this message",
                    inline=False)
    return fit(embed)


def _source_line(a: ArticleInfo) -> str:
    title = truncate(safe(a.title), 200)
    if a.url and a.url.startswith(("http://", "https://")):
        title = f"[{title}]({a.url.replace(')', '%29')})"
    where = ", ".join(safe(x) for x in (a.outlet, (a.date or "")[:10]) if x)
    return truncate(f"• **{title}**{f' — {where}' if where else ''} · {a.passages} ¶", 380)


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
