"""The one citation formatter (retrieval.search.citations) and its use by the CLI and the bot."""

from __future__ import annotations

from bot.render import cite as bot_cite
from bot.render import discord_style, markdown_link, safe
from retrieval.cli.ask import also_in as cli_also_in
from retrieval.cli.ask import citation as cli_citation
from retrieval.corpus import Passage
from retrieval.search.citations import PLAIN, Citation, Style, cite, copy_names, day
from retrieval.search.retriever import Hit
from retrieval.search.timeline import Story
from retrieval.store import ArticleInfo, Copy


def _passage(title: str = "Bridge reopens", outlet: str | None = "The Example Times",
             date: str | None = "2022-09-30T14:05:00+00:00",
             url: str | None = "https://example.com/b?(x)") -> Passage:
    return Passage("b#4", "b", title, "b.txt", 4, "The bridge reopened.", outlet, date, url)


def _copies(n: int) -> tuple[Copy, ...]:
    return tuple(Copy(f"c{i}", f"c{i}.txt", f"Copy {i}", f"Outlet {i}" if i % 2 else None,
                      f"2022-10-0{i}T08:00:00+00:00" if i < 3 else None, None)
                 for i in range(1, n + 1))


def test_day_is_the_date_without_the_time():
    assert day("2022-09-30T14:05:00+00:00") == "2022-09-30"
    assert day("2022-09-30") == "2022-09-30"
    assert day(None) is None and day("") is None


def test_passage_with_outlet_date_and_url():
    c = cite(_passage())
    assert c == Citation("Bridge reopens", "The Example Times", "2022-09-30", 4)
    assert c.where == "The Example Times, 2022-09-30"
    assert c.line() == "Bridge reopens — The Example Times, 2022-09-30 — ¶4"
    linked = cite(_passage(), Style(link=markdown_link, source=True))
    assert linked.line() == ("[Bridge reopens](https://example.com/b?(x%29) — "
                             "The Example Times, 2022-09-30 — ¶4 (b.txt)")


def test_passage_without_outlet_date_or_url():
    p = _passage(outlet=None, date=None, url=None)
    c = cite(p, Style(link=markdown_link, source=True))
    assert (c.title, c.outlet, c.date, c.where) == ("Bridge reopens", "", "", "")
    assert c.line() == "Bridge reopens — ¶4 (b.txt)"
    assert cite(p).line() == "Bridge reopens — ¶4"


def test_only_web_addresses_are_linked():
    c = cite(_passage(url="file:///etc/passwd"), Style(link=markdown_link))
    assert c.title == "Bridge reopens"


def test_long_title_truncated_at_a_word_before_linking():
    title = "Council approves the new harbour bridge after a decade of argument"
    c = cite(_passage(title=title), Style(link=markdown_link, title_max=30, part_max=12))
    assert c.title == "[Council approves the new…](https://example.com/b?(x%29)"
    assert c.where == "The Example…, 2022-09-30"
    assert cite(_passage(title=title)).title == title  # plain: nothing cut


def test_copies_listed():
    copies = _copies(4)
    assert copy_names(copies) == "Outlet 1, Copy 2, Outlet 3, Copy 4"
    assert copy_names(copies, Style(names=2)) == "Outlet 1, Copy 2 and 2 more"
    assert copy_names(copies, Style(names=0)) == ""
    assert copy_names((), PLAIN) == ""
    dated = Style(copy_dates=True, names=3)
    assert copy_names(copies, dated) == ("Outlet 1 (2022-10-01), Copy 2 (2022-10-02), "
                                         "Outlet 3 and 1 more")
    assert cite(_passage(), dated, copies).also_in == copy_names(copies, dated)
    assert copy_names(copies, Style(names=1, name_max=7)) == "Outlet… and 3 more"


def test_escape_hook_applies_to_article_text():
    p = _passage(title="*Bold* _claim_", outlet="A|B")
    c = cite(p, Style(escape=lambda s: s.replace("*", "\\*").replace("|", "\\|")))
    assert c.line() == "\\*Bold\\* _claim_ — A\\|B, 2022-09-30 — ¶4"


def test_articles_and_stories_are_cited_without_a_paragraph():
    a = ArticleInfo("b", "Bridge reopens", "b.txt", "Times", "2022-09-30T14:05:00Z", None, 9)
    assert cite(a).line() == "Bridge reopens — Times, 2022-09-30"
    s = Story(None, None, "Bridge reopens", "It reopened.", "b.txt", None, "b#1", 1.0)
    assert cite(s).line() == "Bridge reopens" and cite(s).date == ""


def test_cli_and_bot_cite_the_same_way():
    p = _passage(title="Bridge *reopens*")
    assert cli_citation(p, 2) == ("[2] Bridge *reopens* — The Example Times, 2022-09-30 — ¶4 "
                                  "(b.txt)")
    assert bot_cite(p) == ("[Bridge \\*reopens\\*](https://example.com/b?(x%29) — "
                           "The Example Times, 2022-09-30 — ¶4")
    assert bot_cite(p, link=False) == cite(p, discord_style(200, link=False)).line()
    assert safe("a  *b*") == "a \\*b\\*"


def test_cli_names_each_copy_with_its_day():
    hit = Hit(1, 1.0, _passage(), "The bridge reopened.", also_in=_copies(4))
    assert cli_also_in(hit) == ("also in: Outlet 1 (2022-10-01), Copy 2 (2022-10-02), Outlet 3, "
                            "Copy 4")
