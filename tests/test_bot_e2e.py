"""The real Byline bot (discord.py) end to end against the fake Discord (tests/support)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import discord
import faiss
import pytest

from bot.app import APOLOGY, BylineBot, serve
from bot.render import FIELD_VALUE_MAX, TITLE_MAX, TOTAL_MAX, render_answer
from bot.settings import BotConfigError
from retrieval import index_corpus
from retrieval.model.embed import Embedder
from retrieval.search.feedback import FeedbackStore
from retrieval.search.retriever import Retriever

from .support.bot_harness import (
    APP_ID,
    GUILD_ID,
    TOKEN,
    USER_ID,
    bot_settings,
    custom_ids,
    embed_of,
    requests,
    run_bot,
)
from .support.fake_discord import EPHEMERAL, FakeDiscord
from .support.seed_questions import ON_TOPIC

PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content

def identify(fake: FakeDiscord) -> dict:
    return next(f["d"] for f in fake.gateway_frames if f.get("op") == 2)


def fields(embed: discord.Embed) -> dict[str, str]:
    return {f.name: f.value for f in embed.fields}


def assert_numbering_matches(embed: discord.Embed) -> list[int]:
    markers = [int(re.match(r"\[(\d+)\]", f.name)[1]) for f in embed.fields
               if f.name != "Sources"]
    listed = [int(n) for n in re.findall(r"\*\*\[(\d+)\]\*\*", fields(embed)["Sources"])]
    assert markers == listed == list(range(1, len(markers) + 1))
    return markers


def assert_within_limits(embed: discord.Embed) -> None:
    assert len(embed.title or "") <= TITLE_MAX and len(embed) <= TOTAL_MAX
    assert all(len(f.value) <= FIELD_VALUE_MAX for f in embed.fields)


# -- fixtures: other coverages ----------------------------------------------------------

@pytest.fixture(scope="module")
def long_retriever(tmp_path_factory, embedder: Embedder) -> Retriever:
    """A coverage whose one article has a paragraph far longer than an embed field."""
    corpus = tmp_path_factory.mktemp("long")
    sentence = ("The harbour authority said the new sea wall would protect the old town "
                "from winter storms for the next fifty years. ")
    (corpus / "wall.txt").write_text(
        "Outlet: Coast Herald\nDate: 2024-02-02\nURL: https://example.com/wall\n\n"
        "Harbour builds a sea wall\n\n" + sentence * 40 + "\n\n"
        "Work on the sea wall starts in March and costs twelve million euros.\n", "utf-8")
    index_dir = tmp_path_factory.mktemp("long-index")
    return Retriever(index_corpus(corpus, index_dir, embedder, progress=False), embedder)


# -- tests ------------------------------------------------------------------------------

def test_commands_are_synced_to_the_guild(retriever, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # even discord.py's debug logging must not leak the token

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        puts = requests(fake, "PUT")
        assert [r.path for r in puts] == [f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"]
        commands = {c["name"]: c for c in puts[0].json if c["type"] == 1}
        assert set(commands) == {"ask", "timeline", "sources", "help", "coverage"}
        assert [c["name"] for c in puts[0].json if c["type"] != 1] == ["Ask Byline"]
        for c in commands.values():
            assert 1 <= len(c["description"]) <= 100 and c["type"] == 1
            if c["name"] != "coverage":  # everyone's; /coverage: Manage Server (test_bot_guilds)
                assert c["default_member_permissions"] is None
        opts = {o["name"]: o for o in commands["ask"]["options"]}
        assert opts["question"] == {**opts["question"], "type": 3, "required": True,
                                    "min_length": 1, "max_length": 1000}
        assert opts["results"] == {**opts["results"], "type": 4, "required": False,
                                   "min_value": 1, "max_value": 5}
        assert opts["private"]["type"] == 5 and not opts["private"]["required"]
        assert all(1 <= len(o["description"]) <= 100 for o in opts.values())
        assert identify(fake)["intents"] & PRIVILEGED_INTENTS == 0
        assert identify(fake)["token"] == TOKEN

    run_bot(retriever, tmp_path, scenario)
    assert any("synced 6 commands" in r.getMessage() for r in caplog.records)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_global_sync_without_guild_id(retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        puts = requests(fake, "PUT")
        assert [r.path for r in puts] == [f"/applications/{APP_ID}/commands"]
        handle = await fake.send_command("help")
        reply = await handle.callback()
        assert reply.json["data"]["flags"] == EPHEMERAL

    run_bot(retriever, tmp_path, scenario, guild_id=None)


def test_ask_about_the_seeds(retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        handle = await fake.send_command("ask", {"question": "why was the trip cancelled"})
        callback = await handle.callback()
        assert callback.json["type"] == 5  # deferred: "Byline is thinking…"
        assert callback.received_at - handle.dispatched_at < 1.5  # well within Discord's 3 s
        followup = await handle.followup(timeout=30)
        assert followup.query.get("wait") in ("1", "true")
        assert followup.json["allowed_mentions"] == {"parse": []}
        embed = embed_of(followup)
        assert embed.fields[0].name == "[1] Trump Calls Off Pompeo's North Korea Trip"
        assert assert_numbering_matches(embed) == [1, 2, 3]  # results defaults to 3
        assert "canceled" in embed.description and "**[1]**" in embed.description
        assert_within_limits(embed)
        ids = custom_ids(followup)
        assert len(ids) == 2 and ids[0].startswith("byline:fb:up:")
        assert not (followup.json.get("flags") or 0) & EPHEMERAL

    run_bot(retriever, tmp_path, scenario)


def test_off_topic_is_not_covered_and_private_is_ephemeral(retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        handle = await fake.send_command("ask", {"question": "What is the capital of France?",
                                                "private": True, "results": 5})
        callback = await handle.callback()
        assert callback.json["data"]["flags"] == EPHEMERAL
        followup = await handle.followup(timeout=30)
        embed = embed_of(followup)
        assert embed.title == "Not covered" and "/sources" in embed.description
        assert followup.json["flags"] & EPHEMERAL
        assert custom_ids(followup) == []  # nothing to rate
        assert followup.json["allowed_mentions"] == {"parse": []}

    run_bot(retriever, tmp_path, scenario)


def test_mentions_and_long_questions_stay_inert(retriever, tmp_path):
    question = "@everyone <@123> <@&456> why did " + "Trump cancel Pompeo's trip and " * 9
    question = question[:300]

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        handle = await fake.send_command("ask", {"question": question})
        followup = await handle.followup(timeout=30)
        assert followup.json["allowed_mentions"] == {"parse": []}
        assert "content" not in followup.json or not followup.json["content"]
        embed = embed_of(followup)
        assert len(question) == 300 and len(embed.title) <= TITLE_MAX
        assert embed.title.startswith("@everyone <@123>")
        assert_within_limits(embed)
        assert_numbering_matches(embed)

    run_bot(retriever, tmp_path, scenario)


def test_long_paragraph_fits_an_embed_field(long_retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        handle = await fake.send_command("ask", {
            "question": "How long will the sea wall protect the old town from storms?",
            "results": 2})
        followup = await handle.followup(timeout=30)
        embed = embed_of(followup)
        assert_within_limits(embed)
        # The 4,000-character paragraph is indexed as pieces of up to 1,200 characters
        # (retrieval.corpus.clean.split_long), each still longer than the field's share.
        long = next(f.value for f in embed.fields if "harbour authority" in f.value)
        assert len(long) <= FIELD_VALUE_MAX and long.endswith("…")
        assert "**The harbour authority said" in long
        sources = fields(embed)["Sources"]
        assert "[Harbour builds a sea wall](https://example.com/wall)" in sources
        assert "Coast Herald, 2024-02-02" in sources

    run_bot(long_retriever, tmp_path, scenario)


def test_cooldown_is_per_user(retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        first = await fake.send_command("ask", {"question": "why was the trip cancelled"})
        await first.followup(timeout=30)
        second = await fake.send_command("ask", {"question": "who did Trump phone"})
        reply = await second.callback()
        assert reply.json["type"] == 4 and reply.json["data"]["flags"] == EPHEMERAL
        assert re.fullmatch(r"Slow down a little: try again in \d+ s\.",
                            reply.json["data"]["content"])
        other = await fake.send_command("ask", {"question": "who did Trump phone"},
                                       user_id=USER_ID + 1)
        assert (await other.callback()).json["type"] == 5

    run_bot(retriever, tmp_path, scenario, cooldown_seconds=60)


def test_failure_in_retrieval_apologises_and_recovers(retriever, tmp_path, monkeypatch):
    index_type = type(retriever.index.vectors)
    real_search = index_type.search

    def broken_once(self, *args, **kwargs):
        monkeypatch.setattr(index_type, "search", real_search)
        raise RuntimeError("simulated FAISS failure")

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        monkeypatch.setattr(index_type, "search", broken_once)
        handle = await fake.send_command("ask", {"question": "why was the trip cancelled"})
        apology = await handle.followup(timeout=30)
        assert apology.json["content"] == APOLOGY
        assert apology.json["flags"] & EPHEMERAL
        # The public "thinking…" placeholder was removed rather than turned into the apology.
        assert requests(fake, "DELETE", handle.token)
        again = await fake.send_command("ask", {"question": "why was the trip cancelled"})
        answer = await again.followup(timeout=30)
        assert embed_of(answer).fields[0].name.startswith("[1] Trump Calls Off")

    assert isinstance(retriever.index.vectors, faiss.Index)
    run_bot(retriever, tmp_path, scenario)


def test_feedback_click_is_stored(retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        handle = await fake.send_command("ask", {"question": "Where did Pompeo go after Hanoi?"})
        followup = await handle.followup(timeout=30)
        down = next(c for c in custom_ids(followup) if c.startswith("byline:fb:down:"))
        click = await fake.click(down, user_id=USER_ID)
        ack = await click.callback()
        assert ack.json["type"] == 4 and ack.json["data"]["flags"] == EPHEMERAL
        assert ack.json["data"]["content"] == "Thanks, noted."

    run_bot(retriever, tmp_path, scenario)
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    [row] = store.export()
    assert row.question == "Where did Pompeo go after Hanoi?" and row.verdict == "down"
    assert row.passage_ids[0] == "003_0c19cdefe2f9ba84#4" and len(row.passage_ids) == 3
    assert row.user_hash == store.hash_user(USER_ID) and str(USER_ID) not in row.user_hash


def test_sources_paginate(many_retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        handle = await fake.send_command("sources")
        first = await handle.callback()
        assert first.json["type"] == 4
        page = discord.Embed.from_dict(first.json["data"]["embeds"][0])
        assert page.footer.text.startswith("Page 1/3 · 25 articles")
        buttons = first.json["data"]["components"][0]["components"]
        assert [b.get("disabled", False) for b in buttons] == [True, False]
        click = await fake.click(buttons[1]["custom_id"])
        update = await click.callback()
        assert update.json["type"] == 7  # the message is edited in place
        page = discord.Embed.from_dict(update.json["data"]["embeds"][0])
        assert page.footer.text.startswith("Page 2/3")
        assert "Council story number 10" in page.description

    run_bot(many_retriever, tmp_path, scenario)


def test_help(retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        handle = await fake.send_command("help")
        reply = await handle.callback()
        embed = discord.Embed.from_dict(reply.json["data"]["embeds"][0])
        assert "**2** articles (20 paragraphs)" in embed.description
        assert reply.json["data"]["flags"] == EPHEMERAL

    run_bot(retriever, tmp_path, scenario)


def test_heartbeat_stays_fast_while_twenty_asks_run(retriever, tmp_path):
    questions = ["why was the trip cancelled", "Where did Pompeo go after Hanoi?",
                 "What did Bolton say?", "What is the capital of France?"] * 5

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        # Not faster: discord.py, like Discord, allows ~120 gateway sends a minute.
        fake.start_probing(every=0.2)
        handles = [await fake.send_command("ask", {"question": q}, user_id=USER_ID + i)
                   for i, q in enumerate(questions)]
        for h in handles:
            await h.followup(timeout=60)
        # Retrieval may finish the burst before two probes came back: wait for them.
        for _ in range(30):
            if len(fake.heartbeat_rtts) >= 2:
                break
            await asyncio.sleep(0.1)
        await fake.stop_probing()
        rtts = fake.heartbeat_rtts
        assert len(rtts) >= 2
        assert max(rtts) < 1.0, f"heartbeat round trips up to {max(rtts):.2f} s"

    run_bot(retriever, tmp_path, scenario)


def test_rejected_token_is_one_clear_error(retriever, tmp_path, caplog):
    settings = bot_settings(tmp_path)

    async def main() -> None:
        async with FakeDiscord(token="another-token"):
            await serve(settings, retriever, guild_ready_timeout=0.05)

    with pytest.raises(BotConfigError, match="Discord rejected DISCORD_TOKEN") as err:
        asyncio.run(main())
    assert TOKEN not in str(err.value)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_gateway_is_answered_while_retrieval_is_stuck(retriever, tmp_path):
    """Retrieval held up for 1.5 s (its lock taken, released by a timer thread): the gateway
    keeps answering, because /ask waits in a worker thread. Were retrieval run on the event
    loop, the loop itself would wait on the lock and the probes would show it."""
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        bot.shared.batcher._lock.acquire()
        threading.Timer(1.5, bot.shared.batcher._lock.release).start()
        fake.start_probing(every=0.1)  # on the fake's own thread and clock
        handle = await fake.send_command("ask", {"question": "why was the trip cancelled"})
        assert (await handle.callback()).json["type"] == 5
        followup = await handle.followup(timeout=30)
        await fake.stop_probing()
        assert followup.received_at - handle.dispatched_at >= 1.4  # it really was stuck
        assert len(fake.heartbeat_rtts) >= 8
        assert max(fake.heartbeat_rtts) < 0.5, fake.heartbeat_rtts
        assert embed_of(followup).fields[0].name.startswith("[1] Trump Calls Off")

    run_bot(retriever, tmp_path, scenario)


def test_concurrent_asks_are_batched_and_each_gets_its_own_answer(retriever, tmp_path):
    """Eight /ask at once, retrieval held up 0.5 s (its lock taken, released by a timer thread)
    so that the asks pile up behind the first batch, as they do behind a busy one: they are
    answered in at most two retrieval calls, each with its own question's passages and its own
    number of sources, and the gateway answers heartbeats meanwhile."""
    gold = dict(ON_TOPIC)
    cases = [("why was the trip cancelled", 1),
             ("Which country did Trump say had stopped helping because of the trade dispute?", 5),
             ("When did the two leaders first meet in Singapore?", 2),
             ("Where did Pompeo go after leaving Vietnam?", 4),
             ("Who did Trump phone while leaving Vietnam?", None),  # the default, 3
             ("Why was no agreement signed in Hanoi?", 5),
             ("What is the capital of France?", 2),
             ("   ", 5)]  # Discord allows it (min_length 1); check_question does not
    expected = {q: retriever.ask(q, k or 3) for q, k in cases if q.strip()}  # one at a time
    for q, answer in expected.items():
        assert answer.answered == (q in gold)
        assert q not in gold or answer.hits[0].passage.id in gold[q]

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        fake.start_probing(every=0.05)
        bot.shared.batcher._lock.acquire()
        threading.Timer(0.5, bot.shared.batcher._lock.release).start()
        handles = await asyncio.gather(*(
            fake.send_command("ask", {"question": q} | ({"results": k} if k else {}),
                              user_id=USER_ID + i)
            for i, (q, k) in enumerate(cases)))
        followups = await asyncio.gather(*(h.followup(timeout=30) for h in handles))
        await fake.stop_probing()

        for (q, k), followup, handle in zip(cases, followups, handles, strict=True):
            if not q.strip():
                assert followup.json["content"] == ("The question is empty; ask something "
                                                    "about the coverage.")
                assert followup.json["flags"] & EPHEMERAL
                # The public "thinking…" placeholder is removed, so the error stays private.
                assert requests(fake, "DELETE", handle.token)
                continue
            embed = embed_of(followup)
            if q not in gold:
                assert embed.title == "Not covered" and q in embed.description
                continue
            assert embed.title == q
            assert assert_numbering_matches(embed) == list(range(1, (k or 3) + 1))
            paragraphs = [int(p) for p in re.findall(r"¶(\d+)", fields(embed)["Sources"])]
            assert paragraphs == [h.passage.paragraph for h in expected[q].hits]
            want = render_answer(expected[q])
            assert embed.description == want.description
            assert [(f.name, f.value) for f in embed.fields] == \
                [(f.name, f.value) for f in want.fields]

        sizes = bot.shared.batcher.batch_sizes
        assert sum(sizes) == 7  # the blank question never reached retrieval
        assert 1 <= len(sizes) <= 2, sizes  # 7 asks, at most 2 retrieval calls
        rtts = fake.heartbeat_rtts
        assert len(rtts) >= 5
        assert max(rtts) < 0.5, rtts

    run_bot(retriever, tmp_path, scenario)


def test_vectors_damaged_while_running_give_an_apology_not_a_wrong_answer(
        seed_index_dir, embedder, tmp_path, caplog):
    import shutil

    import numpy as np

    from retrieval.store import FolderIndex

    index_dir = shutil.copytree(seed_index_dir, tmp_path / "damaged")
    retriever = Retriever(FolderIndex.load(index_dir), embedder)
    vectors = index_dir / retriever.index.manifest.folder / "vectors" / "passages.npy"
    data = np.load(vectors)
    data[:] = np.nan  # the disk returns garbage after the bot loaded the index
    with vectors.open("r+b") as fh:
        fh.seek(vectors.stat().st_size - data.nbytes)
        fh.write(data.tobytes())

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        handle = await fake.send_command("ask", {"question": "why was the trip cancelled"})
        reply = await handle.followup(timeout=30)
        assert reply.json["content"] == APOLOGY and not reply.json.get("embeds")

    with caplog.at_level(logging.ERROR, logger="byline.bot"):
        run_bot(retriever, tmp_path, scenario)
    failed = [r for r in caplog.records if r.name == "byline.bot" and "failed" in r.message]
    assert failed and "passages.npy holds values that are not numbers" in failed[0].getMessage()
    assert failed[0].exc_info is None  # one line, no traceback
