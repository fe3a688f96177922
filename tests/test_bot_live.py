"""A bot that runs for months, end to end through the fake Discord: hot reload of a
re-indexed index, /healthz and /metrics, graceful shutdown, and a clear error for a sync
refused with 403."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import APOLOGY, BylineBot, serve
from bot.replies import RESTARTING
from bot.settings import BotConfigError
from retrieval import index_corpus
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex

from .support.bot_harness import (
    GUILD_ID,
    TOKEN,
    USER_ID,
    bot_settings,
    custom_ids,
    embed_of,
    get,
    run_bot,
)
from .support.fake_discord import EPHEMERAL, FakeDiscord, Reply
from .support.library_article import (
    LIBRARY,
    LIBRARY_Q,
    TRIP_Q,
    assert_the_library_article_answers,
)
from .support.paths import SEEDS
from .support.polling import until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from Prometheus text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_reindexed_index_is_picked_up_between_questions(seed_index_dir, embedder, tmp_path):
    """The bot runs; an article is indexed into its index folder (as `byline index` would,
    from another thread); the next /ask answers from it, /sources lists it, and asks sent
    while it was indexed and swapped in are all answered. No restart, no error."""
    index_dir = shutil.copytree(seed_index_dir, tmp_path / "index")
    corpus = shutil.copytree(SEEDS, tmp_path / "corpus")
    live = LiveRetriever(Retriever(FolderIndex.load(index_dir), embedder))
    first = live.generation

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        before = await fake.send_command("ask", {"question": LIBRARY_Q})
        assert embed_of(await before.followup(timeout=30)).title == "Not covered"

        (corpus / "library.txt").write_text(LIBRARY, "utf-8")
        indexing = asyncio.create_task(asyncio.to_thread(
            index_corpus, corpus, index_dir, embedder, progress=False))
        during = []
        while not indexing.done() or bot.shared.live.generation == first:
            if len(during) < 6:  # questions keep coming meanwhile, each answered
                during.append(await fake.send_command("ask", {"question": TRIP_Q},
                                                      user_id=USER_ID + len(during) + 1))
            await asyncio.sleep(0.05)
            assert len(during) < 400, "the new generation was never picked up"
        await indexing
        for handle in during:
            embed = embed_of(await handle.followup(timeout=30))
            assert embed.fields[0].name == "[1] Trump Calls Off Pompeo's North Korea Trip"

        await assert_the_library_article_answers(fake)
        assert "Riverside Courier" in bot.shared.outlets

        status, body = await get(bot, "/healthz")
        assert status == 200 and f'"generation": "{bot.shared.live.generation}"' in body
        _, text = await get(bot, "/metrics")
        values = samples(text)
        assert values[("byline_index_reloads_total", (("result", "ok"),))] == 1
        assert values[("byline_index_reloads_total", (("result", "failed"),))] == 0
        assert values[("byline_index_articles", ())] == 3

    run_bot(live, tmp_path, scenario, reload_seconds=0.1, metrics_port=0)
    assert live.generation != first and live.reloads == 1


def test_health_and_metrics_over_http(retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        status, body = await get(bot, "/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok"
        manifest = retriever.index.manifest
        assert health == {**health, "gateway_connected": True, "index_loaded": True,
                          "generation": manifest.generation, "passages": 20, "articles": 2,
                          "shutting_down": False, "answers_in_flight": 0}
        _, text = await get(bot, "/metrics")
        zero = samples(text)
        assert zero[("byline_questions_total", (("command", "ask"),))] == 0
        assert zero[("byline_feed_polls_total", ())] == 0  # ready for the feed follower
        assert zero[("byline_feed_errors_total", ())] == 0

        answered = await fake.send_command("ask", {"question": TRIP_Q})
        followup = await answered.followup(timeout=30)
        refused = await fake.send_command("ask", {"question": "What is the capital of France?"},
                                          user_id=USER_ID + 1)
        await refused.followup(timeout=30)
        up = next(c for c in custom_ids(followup) if c.startswith("byline:fb:up:"))
        await (await fake.click(up)).callback()

        response = await get(bot, "/metrics")
        values = samples(response[1])
        assert values[("byline_questions_total", (("command", "ask"),))] == 2
        assert values[("byline_not_covered_total", (("command", "ask"),))] == 1
        assert values[("byline_answer_seconds_count", (("command", "ask"),))] == 2
        assert 0 < values[("byline_answer_seconds_sum", (("command", "ask"),))] < 30
        assert values[("byline_feedback_total", (("verdict", "up"),))] == 1
        assert values[("byline_feedback_total", (("verdict", "down"),))] == 0
        assert values[("byline_batch_size_count", ())] == 2
        assert values[("byline_batch_size_sum", ())] == 2
        assert values[("byline_index_passages", ())] == 20
        assert values[("byline_gateway_connected", ())] == 1
        info = [labels for (name, labels) in values if name == "byline_index_info"]
        assert info == [tuple(sorted({"generation": manifest.generation, "model": manifest.model,
                                      "encoder": manifest.encoder,
                                      "created": manifest.created}.items()))]

    run_bot(retriever, tmp_path, scenario, metrics_port=0)


def test_shutdown_finishes_answers_in_flight_and_turns_new_questions_away(retriever, tmp_path):
    """Retrieval held up (its lock taken): an /ask is in flight when the shutdown begins.
    A new /ask is told to come back, /healthz says 503, the first /ask still gets its
    answer, and only then does the bot close (its feedback store with it)."""
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        bot.shared.batcher._lock.acquire()
        try:
            first = await fake.send_command("ask", {"question": TRIP_Q})
            assert (await first.callback()).json["type"] == 5  # deferred: in flight
            stopping = asyncio.create_task(bot.shutdown())
            await until(lambda: bot.drain.closing)
            status, body = await get(bot, "/healthz")
            assert status == 503 and '"shutting_down": true' in body
            assert '"answers_in_flight": 1' in body

            late = await fake.send_command("ask", {"question": TRIP_Q}, user_id=USER_ID + 1)
            reply = await late.callback()
            assert reply.json["type"] == 4 and reply.json["data"]["flags"] == EPHEMERAL
            assert reply.json["data"]["content"] == RESTARTING
            await asyncio.sleep(0.2)
            assert not stopping.done()  # still waiting for the first answer
        finally:
            bot.shared.batcher._lock.release()
        followup = await first.followup(timeout=30)
        assert embed_of(followup).fields[0].name.startswith("[1] Trump Calls Off")
        await asyncio.wait_for(stopping, 10)
        assert bot.is_closed()
        values = bot.metrics.registry
        assert values.get_sample_value("byline_turned_away_total",
                                       {"reason": "shutting_down"}) == 1
        with pytest.raises(Exception, match="closed"):
            bot.feedback.remember("q", ["x#1"])

    run_bot(retriever, tmp_path, scenario, metrics_port=0)


def test_shutdown_waits_no_longer_than_its_grace(retriever, tmp_path, caplog):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        bot.shared.batcher._lock.acquire()
        threading.Timer(1.2, bot.shared.batcher._lock.release).start()  # stuck well past the grace
        stuck = await fake.send_command("ask", {"question": TRIP_Q})
        await stuck.callback()
        started = time.monotonic()
        await bot.shutdown()
        assert 0.3 <= time.monotonic() - started < 2.0 and bot.is_closed()

    with caplog.at_level(logging.WARNING, logger="byline.bot"):
        run_bot(retriever, tmp_path, scenario, shutdown_seconds=0.3)
    assert any("1 answer(s) still unfinished after 0.3 s; closing anyway" in r.getMessage()
               for r in caplog.records)


def test_sync_refused_for_a_server_without_the_bot_is_one_sentence(retriever, tmp_path,
                                                                   caplog):
    settings = bot_settings(tmp_path)

    async def main() -> None:
        async with FakeDiscord(token=TOKEN) as fake:
            fake.queue_reply("PUT", rf"/applications/\d+/guilds/{GUILD_ID}/commands",
                             Reply(403, {"code": 50001, "message": "Missing Access"}))
            await serve(settings, retriever, guild_ready_timeout=0.05)

    with pytest.raises(BotConfigError) as err:
        asyncio.run(main())
    message = str(err.value)
    assert message == (
        f"Discord refused to register the commands in server {GUILD_ID} (403 Missing "
        "Access): the bot is not in that server; invite it there with the bot and "
        "applications.commands scopes (README, Run the bot, step 2), or fix "
        "DISCORD_GUILD_ID.")
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert not [r for r in caplog.records if r.exc_info], "no traceback logged"
    assert APOLOGY not in message
