"""Buttons that outlive the bot: a message answered by one bot process is clicked after a
restart, through the fake Discord, and a new BylineBot (same feedback store, fresh memory)
handles the click."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.app import BylineBot
from retrieval.feedback import FeedbackStore
from retrieval.search import Retriever

from .fake_discord import EPHEMERAL, FakeDiscord, running
from .test_bot_e2e import TOKEN, USER_ID, bot_settings, custom_ids

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

