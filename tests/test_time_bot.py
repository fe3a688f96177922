"""/ask's date and outlet options (with outlet autocomplete) and /timeline, end to end
through the fake Discord, and the timeline embed within Discord's limits."""

from __future__ import annotations

import pytest

from bot.app import BylineBot
from bot.render import DESCRIPTION_MAX, TOTAL_MAX, render_timeline, timeline_line
from retrieval import index_corpus
from retrieval.model.embed import Embedder
from retrieval.search.retriever import Retriever
from retrieval.search.timeline import Story, Timeline
from retrieval.store import Copy

from .support.bot_harness import embed_of, requests, run_bot
from .support.fake_discord import EPHEMERAL, FakeDiscord
from .support.news_by_date import write_corpus


@pytest.fixture(scope="module")
def dated(tmp_path_factory, embedder: Embedder) -> Retriever:
    root = tmp_path_factory.mktemp("dated-bot")
    index = index_corpus(write_corpus(root / "corpus"), root / "index", embedder, progress=False)
    return Retriever(index, embedder)


def test_ask_options_are_synced_with_outlet_autocomplete(dated, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        [put] = requests(fake, "PUT")
        commands = {c["name"]: c for c in put.json}
        opts = {o["name"]: o for o in commands["ask"]["options"]}
        for name in ("since", "until", "outlet", "as_of"):
            assert opts[name]["type"] == 3 and not opts[name]["required"]
            assert 1 <= len(opts[name]["description"]) <= 100
        assert opts["outlet"]["autocomplete"] and not opts["since"].get("autocomplete")
        topic = {o["name"]: o for o in commands["timeline"]["options"]}
        assert topic["topic"]["required"] and topic["outlet"]["autocomplete"]

        typing = await fake.send_autocomplete("ask", {"question": "who", "outlet": "c"},
                                              focused="outlet")
        reply = await typing.callback()
        assert reply.json["type"] == 8  # APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
        assert [c["value"] for c in reply.json["data"]["choices"]] == [
            "CNN", "Associated Press", "BBC", "Plains Public Radio", "The Riverside Courier"]
        typing = await fake.send_autocomplete("timeline", {"topic": "x", "outlet": "riv"},
                                              focused="outlet")
        assert [c["name"] for c in (await typing.callback()).json["data"]["choices"]] == [
            "The Riverside Courier"]

    run_bot(dated, tmp_path, scenario)


def test_ask_this_week_and_as_of_show_the_dates(dated, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        q = "Which official has Covid this week?"
        now = await fake.send_command("ask", {"question": q, "results": 1})
        embed = embed_of(await now.followup(timeout=30))
        assert embed.fields[0].name == "[1] President Biden tests positive for Covid"
        assert "CNN, 2022-07-21 — ¶1" in embed.fields[-1].value  # the article's date
        then = await fake.send_command("ask", {"question": q, "results": 1,
                                               "as_of": "2022-05-01", "outlet": "cnn"},
                                       user_id=fake.user_id + 1)
        embed = embed_of(await then.followup(timeout=30))
        assert embed.fields[0].name == "[1] Kamala Harris tests positive for Covid"
        assert "CNN, 2022-04-26" in embed.fields[-1].value

    run_bot(dated, tmp_path, scenario)


@pytest.mark.parametrize(("options", "message"), [
    ({"since": "someday"}, "The since date “someday” is not a date I can read"),
    ({"outlet": "Nowhere Gazette"}, "No coverage from outlet “Nowhere Gazette”"),
])
def test_bad_filters_answer_privately(dated, tmp_path, options, message):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        for command, first in (("ask", {"question": "who is prime minister"}),
                               ("timeline", {"topic": "prime minister"})):
            handle = await fake.send_command(command, first | options)
            reply = await handle.callback()
            if reply.json["type"] == 4:  # refused before deferring
                assert reply.json["data"]["flags"] == EPHEMERAL
                assert message in reply.json["data"]["content"]
                continue
            followup = await handle.followup(timeout=30)  # refused by retrieval
            assert followup.json["flags"] & EPHEMERAL and message in followup.json["content"]
            assert requests(fake, "DELETE", handle.token)  # the public "thinking…" is gone

    run_bot(dated, tmp_path, scenario)


def test_timeline_end_to_end(dated, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        handle = await fake.send_command("timeline", {"topic": "prime minister"})
        assert (await handle.callback()).json["type"] == 5
        embed = embed_of(await handle.followup(timeout=30))
        assert embed.title == "Timeline: prime minister"
        lines = embed.description.split("\n")
        assert [line[:12] for line in lines] == ["`2022-02-01`", "`2022-07-07`", "`2022-09-06`"]
        assert "**Liz Truss becomes prime minister** — “Liz Truss became" in lines[2]
        assert embed.footer.text.startswith("3 stories, oldest first")
        wire = await fake.send_command("timeline", {"topic": "freight train derailment",
                                                    "since": "2024-01-01"})
        embed = embed_of(await wire.followup(timeout=30))
        [line] = embed.description.split("\n")
        assert line.startswith("`2024-05-01`") and " · also in " in line
        missing = await fake.send_command("timeline", {"topic": "the capital of France"})
        assert embed_of(await missing.followup(timeout=30)).title == "Not covered"

    run_bot(dated, tmp_path, scenario)


def _story(n: int, text: str) -> Story:
    copies = tuple(Copy(f"c{i}", f"c{i}.txt", "T", f"Outlet {i} " + "x" * 80, None, None)
                   for i in range(5))
    return Story(f"2022-01-{n % 28 + 1:02d}", "Outlet *bold*", f"Headline {n} " + text, text,
                 f"s{n}.txt", f"https://example.com/{n})", f"s{n}#1", 1.0, copies)


def test_render_timeline_stays_within_limits():
    stories = [_story(n, "word " * 400) for n in range(40)]
    embed = render_timeline(Timeline("t" * 400, True, stories))
    assert len(embed.title) <= 256 and len(embed.description) <= DESCRIPTION_MAX
    assert len(embed) <= TOTAL_MAX
    shown = embed.description.count("\n") + 1
    assert 1 <= shown < 40 and embed.footer.text.startswith(f"40 stories, oldest first; "
                                                           f"wire copies shown once · showing "
                                                           f"{shown}")
    line = timeline_line(stories[0])
    assert len(line) <= 480 and "Outlet \\*bold\\*" in line  # Markdown escaped
    assert "(https://example.com/0%29)" in line and "and 3 more" in line
