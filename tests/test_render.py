"""Rendering answers as embeds: Discord's limits, matching [n] numbers, inert Markdown."""

from __future__ import annotations

import re

import discord
import pytest

from bot.render import (
    DESCRIPTION_MAX,
    FIELD_NAME_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    FOOTER_MAX,
    TITLE_MAX,
    TOTAL_MAX,
    quoted_passage,
    render_answer,
    render_help,
    render_not_covered,
    render_sources_page,
    sources_pages,
    truncate,
)
from retrieval.corpus import Passage
from retrieval.search.retriever import Answer, Hit, Retriever
from retrieval.store import ArticleInfo, Copy


def check_limits(embed: discord.Embed) -> None:
    assert len(embed.title or "") <= TITLE_MAX
    assert len(embed.description or "") <= DESCRIPTION_MAX
    assert len(embed.fields) <= FIELDS_MAX
    for f in embed.fields:
        assert 0 < len(f.name) <= FIELD_NAME_MAX and 0 < len(f.value) <= FIELD_VALUE_MAX
    assert len(embed.footer.text or "") <= FOOTER_MAX
    assert len(embed) <= TOTAL_MAX


def source_numbers(embed: discord.Embed) -> tuple[list[int], list[int]]:
    """[n] markers in the passage fields, and the numbers listed under Sources."""
    fields = {f.name: f.value for f in embed.fields}
    markers = [int(m) for f in embed.fields if f.name != "Sources"
               for m in re.findall(r"^\[(\d+)\]", f.name)]
    listed = [int(m) for m in re.findall(r"\*\*\[(\d+)\]\*\*", fields["Sources"])]
    return markers, listed


def _passage(n: int, text: str, **kw) -> Passage:
    return Passage(id=f"a{n}#{n}", article_id=f"a{n}", title=kw.pop("title", f"Article {n}"),
                   source=f"a{n}.txt", paragraph=n, text=text, **kw)


def test_truncate_cuts_at_a_word_with_an_ellipsis():
    assert truncate("short", 10) == "short"
    cut = truncate("the quick brown fox jumps over the lazy dog", 20)
    assert cut == "the quick brown fox…" and len(cut) <= 20


def test_seed_answer_embed(retriever: Retriever):
    answer = retriever.ask("why was the trip cancelled", k=5)
    embed = render_answer(answer)
    check_limits(embed)
    assert embed.title == "why was the trip cancelled"
    assert answer.hits[0].quote[:60] in embed.description
    assert embed.fields[0].name == "[1] Trump Calls Off Pompeo's North Korea Trip"
    markers, listed = source_numbers(embed)
    assert markers == listed == [1, 2, 3, 4, 5]
    assert "¶2" in {f.name: f.value for f in embed.fields}["Sources"].splitlines()[0]


def test_huge_passages_and_titles_fit_every_limit():
    words = " ".join(f"word{i}" for i in range(2000))  # ~15,000 characters
    hits = [Hit(rank=n, score=1 / n, quote=f"Sentence {n} {words[:300]}",
                passage=_passage(n, f"Sentence {n} {words}", title="T" * 400,
                                 outlet="O" * 300, date="2024-01-01",
                                 url=f"https://example.com/{'x' * 300}"))
             for n in range(1, 6)]
    embed = render_answer(Answer("q" * 1000, True, hits))
    check_limits(embed)
    markers, listed = source_numbers(embed)
    assert markers == listed == [1, 2, 3, 4, 5]
    for f in embed.fields[:5]:  # cut around the bold quote, not rejected
        assert f.value.startswith("**Sentence") and f.value.endswith("…") and len(f.value) > 300
        assert f.value.count("**") == 2


def test_passage_shows_its_quote_in_bold_within_limits():
    before, quote, after = "Lead-in words. " * 80, "The answering sentence.", " More." * 300
    value = quoted_passage(before + quote + after, quote, FIELD_VALUE_MAX)
    assert len(value) <= FIELD_VALUE_MAX
    assert value.startswith("…") and value.endswith("…")
    assert "**The answering sentence.**" in value
    assert quoted_passage("Only this.", "Only this.", 100) == "**Only this.**"


def test_markdown_and_mentions_in_text_are_inert():
    text = "**Bold** claim with `code`, a [link](https://evil.example) and @everyone <@123>."
    hits = [Hit(rank=1, score=1.0, quote=text, passage=_passage(1, text))]
    embed = render_answer(Answer("Is __this__ *safe*? @here", True, hits))
    assert "\\*\\*Bold\\*\\*" in embed.description
    assert "\\[link\\](" in embed.fields[0].value  # escaped brackets make no masked link
    assert embed.title == "Is \\_\\_this\\_\\_ \\*safe\\*? @here"


def test_citation_has_outlet_date_and_link():
    p = _passage(4, "The bridge reopened on Wednesday after repairs.", title="Bridge reopens",
                 outlet="The Example Times", date="2024-05-01", url="https://example.com/b")
    embed = render_answer(Answer("q", True, [Hit(1, 1.0, p, p.text)]))
    sources = {f.name: f.value for f in embed.fields}["Sources"]
    assert sources == ("**[1]** [Bridge reopens](https://example.com/b) — The Example Times, "
                       "2024-05-01 — ¶4")


def _copy(n: int, outlet: str | None, title: str = "Same story") -> Copy:
    return Copy(f"c{n}", f"c{n}.txt", title, outlet, "2024-05-0{n}", None)


def test_sources_line_names_the_other_outlets_of_a_copied_passage():
    p = _passage(1, "Fourteen cars left the tracks.", title="Train derails",
                 outlet="Associated Press")
    hit = Hit(1, 1.0, p, p.text, also_in=(_copy(1, "The Courier"), _copy(2, None, "Derailed")))
    sources = {f.name: f.value for f in render_answer(Answer("q", True, [hit])).fields}
    assert sources["Sources"] == ("**[1]** Train derails — Associated Press — ¶1 · also in "
                                  "The Courier, Derailed")
    many = Hit(1, 1.0, p, p.text, also_in=tuple(_copy(n, f"Outlet {n}") for n in range(1, 8)))
    line = {f.name: f.value for f in render_answer(Answer("q", True, [many])).fields}["Sources"]
    assert line.endswith("· also in Outlet 1, Outlet 2, Outlet 3 and 4 more")


def test_long_also_in_lists_fit_and_keep_the_numbers():
    words = " ".join(f"word{i}" for i in range(300))
    copies = tuple(_copy(n % 9 + 1, "O" * 300 + f" [{n}](https://x) **b**") for n in range(40))
    hits = [Hit(rank=n, score=1 / n, quote=words[:200], also_in=copies,
                passage=_passage(n, words, title="T" * 300, outlet="Outlet",
                                 date="2024-01-01")) for n in range(1, 6)]
    embed = render_answer(Answer("q", True, hits))
    check_limits(embed)
    markers, listed = source_numbers(embed)
    assert markers == listed == [1, 2, 3, 4, 5]
    assert {f.name: f.value for f in embed.fields}["Sources"].count("and 39 more") == 5
    assert "](https://x)" not in {f.name: f.value for f in embed.fields}["Sources"]


def test_not_covered_points_to_sources():
    embed = render_not_covered("What is the capital of France?")
    check_limits(embed)
    assert embed.title == "Not covered" and "/sources" in embed.description


@pytest.mark.parametrize("count", [0, 1, 10, 11, 95])
def test_sources_pagination(count: int):
    articles = [ArticleInfo(f"a{i}", f"Article number {i} " + "x" * 150, f"a{i}.txt",
                            "Outlet", f"2024-01-{i % 28 + 1:02d}", None, i + 1)
                for i in range(count)]
    pages = [render_sources_page(articles, n) for n in range(sources_pages(articles))]
    assert len(pages) == max(1, -(-count // 10))
    for i, page in enumerate(pages, start=1):
        check_limits(page)
        assert page.footer.text.startswith(f"Page {i}/{len(pages)}")
    listed = sum(p.description.count("• ") for p in pages)
    assert listed == count


def test_a_sources_page_is_rendered_on_its_own_and_clamped():
    """What a page button shows: the same page as the whole list's, without rendering the
    others; past the end, the last page. Lines at their longest still fit a page."""
    articles = [ArticleInfo(f"a{i}", f"Headline {i} " + "y" * 400, f"a{i}.txt", "O" * 90,
                            "2024-01-01", f"https://example.com/{'z' * 200}/{i}", 7)
                for i in range(23)]
    pages = [render_sources_page(articles, n) for n in range(sources_pages(articles))]
    assert len(pages) == 3 and sum(p.description.count("• ") for p in pages) == 23
    for i, page in enumerate(pages):
        assert render_sources_page(articles, i).to_dict() == page.to_dict()
        check_limits(page)
        assert len(page.description) <= DESCRIPTION_MAX and "…" not in page.footer.text
    assert render_sources_page(articles, 99).to_dict() == pages[-1].to_dict()
    assert render_sources_page([], 5).description == "The coverage is empty."


def test_help_counts_articles_and_latest_date():
    articles = [ArticleInfo("a", "A", "a.txt", None, "2024-03-01", None, 4),
                ArticleInfo("b", "B", "b.txt", None, "2024-05-09", None, 6)]
    embed = render_help(articles)
    check_limits(embed)
    assert "**2** articles (10 paragraphs), the latest dated 2024-05-09" in embed.description


def test_help_compares_real_times_across_zones():
    """23:00 on 3 May in New York is 04:00 on 4 May UTC: later than a story dated 4 May."""
    articles = [ArticleInfo("a", "A", "a.txt", None, "2024-05-03T23:00:00-05:00", None, 1),
                ArticleInfo("b", "B", "b.txt", None, "2024-05-04", None, 1),
                ArticleInfo("c", "C", "c.txt", None, "2024-05-03T12:00:00+00:00", None, 1)]
    assert "the latest dated 2024-05-03" in render_help(articles).description
