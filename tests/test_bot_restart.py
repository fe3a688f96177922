"""Buttons that outlive the bot: a message answered by one bot process is clicked after a
restart, through the fake Discord, and a new BylineBot (same feedback store, fresh memory)
handles the click. 👍/👎 store the vote; /sources turns to the page the button names,
rendered from the coverage the new bot answers from."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import discord

from bot.app import BylineBot
from bot.pages import NOT_YOURS, SourcesPageButton
from retrieval.search.feedback import FeedbackStore
from retrieval.search.retriever import Retriever

from .support.bot_harness import TOKEN, USER_ID, bot_settings, custom_ids
from .support.fake_discord import EPHEMERAL, FakeDiscord, Request, running

Start = Callable[[Retriever], contextlib.AbstractAsyncContextManager[BylineBot]]


def with_restarts(tmp_path: Path, scenario: Callable[[FakeDiscord, Start], Awaitable[None]],
                  **options: Any) -> None:
    """One fake Discord for the whole scenario, which starts bots with `start(retriever)`:
    each a new BylineBot on the same settings (so the same feedback database), running
    until its block ends, as a process does until it is restarted."""
    settings = bot_settings(tmp_path, **options)

    async def main() -> None:
        async with FakeDiscord(token=TOKEN) as fake:
            @contextlib.asynccontextmanager
            async def start(retriever: Retriever) -> AsyncIterator[BylineBot]:
                bot = BylineBot(settings, retriever, guild_ready_timeout=0.05)
                async with running(bot, token=TOKEN):
                    yield bot
                assert bot.is_closed()

            await scenario(fake, start)

    asyncio.run(main())


def page_of(r: Request) -> tuple[discord.Embed, list[dict]]:
    """The embed and the buttons of a /sources reply or page turn (a callback)."""
    data = r.json["data"]
    buttons = [c for row in data.get("components") or [] for c in row["components"]]
    return discord.Embed.from_dict(data["embeds"][0]), buttons


def test_feedback_buttons_work_after_a_restart(retriever, tmp_path):
    question = "Where did Pompeo go after Hanoi?"
    voter = USER_ID + 7

    async def scenario(fake: FakeDiscord, start: Start) -> None:
        async with start(retriever):
            handle = await fake.send_command("ask", {"question": question})
            up = next(c for c in custom_ids(await handle.followup(timeout=30))
                      if c.startswith("byline:fb:up:"))
        async with start(retriever) as restarted:  # knows nothing of the message
            click = await fake.click(up, user_id=voter)
            ack = await click.callback()
            assert ack.json["type"] == 4 and ack.json["data"]["flags"] == EPHEMERAL
            assert ack.json["data"]["content"] == "Thanks, noted."
            assert restarted.metrics.feedback.labels("up")._value.get() == 1

    with_restarts(tmp_path, scenario)
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    [row] = store.export()
    assert row.question == question and row.verdict == "up"
    assert row.user_hash == store.hash_user(voter)


def test_sources_pages_turn_after_a_restart(many_retriever, retriever, tmp_path):
    """Page 2 shown by the first bot; after a restart its Next shows page 3 and a stranger
    is told to run their own /sources; after another restart on a smaller coverage (one
    page), its Previous shows that one page, without buttons."""
    async def scenario(fake: FakeDiscord, start: Start) -> None:
        async with start(many_retriever):
            handle = await fake.send_command("sources")
            first, buttons = page_of(await handle.callback())
            assert first.footer.text.startswith("Page 1/3 · 25 articles")
            assert [b["custom_id"] for b in buttons] == [f"byline:src:prev:0:{USER_ID}",
                                                         f"byline:src:next:1:{USER_ID}"]
            assert [b.get("disabled", False) for b in buttons] == [True, False]
            turned = await (await fake.click(buttons[1]["custom_id"])).callback()
            second, buttons = page_of(turned)
            assert turned.json["type"] == 7 and second.footer.text.startswith("Page 2/3")
            message_id = int(turned.response["resource"]["message"]["id"])

        async with start(many_retriever):
            stranger = await fake.click(buttons[1]["custom_id"], user_id=USER_ID + 1)
            refused = await stranger.callback()
            assert refused.json["type"] == 4 and refused.json["data"]["flags"] == EPHEMERAL
            assert refused.json["data"]["content"] == NOT_YOURS
            assert "Page 2/3" in fake.messages[message_id]["embeds"][0]["footer"]["text"]

            turned = await (await fake.click(buttons[1]["custom_id"])).callback()
            third, buttons = page_of(turned)
            assert turned.json["type"] == 7 and third.footer.text.startswith("Page 3/3")
            assert "Council story number 20" in third.description
            assert [b.get("disabled", False) for b in buttons] == [False, True]

        async with start(retriever):  # re-indexed meanwhile: two articles, one page
            prev = next(b["custom_id"] for b in buttons if ":prev:" in b["custom_id"])
            assert prev == f"byline:src:prev:1:{USER_ID}"  # page 2, which no longer exists
            turned = await (await fake.click(prev)).callback()
            only, buttons = page_of(turned)
            assert only.footer.text.startswith("Page 1/1 · 2 articles")
            assert "Trump Calls Off Pompeo's North Korea Trip" in only.description
            assert buttons == [] and fake.messages[message_id]["components"] == []

    with_restarts(tmp_path, scenario)


def test_page_button_ids_fit_discord_and_match_their_template():
    biggest = SourcesPageButton("next", 999_999_999, 2**64 - 1)  # a snowflake is 64 bits
    custom_id = biggest.custom_id
    assert len(custom_id) <= 100  # Discord's limit
    template = SourcesPageButton.__discord_ui_compiled_template__
    match = template.fullmatch(custom_id)
    assert match and match["page"] == "999999999" and int(match["owner"]) == 2**64 - 1
    assert not template.fullmatch("byline:src:next:-1:5")

