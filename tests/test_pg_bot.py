"""The bot over the PostgreSQL store, end to end through the fake Discord: answers from the
database, and a re-index published into it (by `byline index --store`) picked up by
LISTEN/NOTIFY between questions."""

from __future__ import annotations

import asyncio
import shutil

import discord

from bot.app import BylineBot
from retrieval.cli import main
from retrieval.indexer import index_corpus
from retrieval.live import LiveRetriever
from retrieval.search import Retriever
from retrieval.store.base import open_store

from .conftest import SEEDS
from .fake_discord import FakeDiscord
from .test_bot_e2e import embed_of, run_bot
from .test_live import LIBRARY, LIBRARY_Q, TRIP_Q


def test_the_bot_answers_from_the_store_and_picks_up_a_reindex(
        pg_url, seed_index_dir, embedder, tmp_path):
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    live = LiveRetriever(Retriever(open_store(pg_url, model=embedder.name), embedder))
    first = live.generation
    corpus = shutil.copytree(SEEDS, tmp_path / "corpus")

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        trip = await fake.send_command("ask", {"question": TRIP_Q, "results": 1})
        embed = embed_of(await trip.followup(timeout=30))
        assert embed.fields[0].name == "[1] Trump Calls Off Pompeo's North Korea Trip"
        before = await fake.send_command("ask", {"question": LIBRARY_Q})
        assert embed_of(await before.followup(timeout=30)).title == "Not covered"

        (corpus / "library.txt").write_text(LIBRARY, "utf-8")
        await asyncio.to_thread(index_corpus, corpus, pg_url, embedder, progress=False)
        for _ in range(400):
            if bot.live.generation != first:
                break
            await asyncio.sleep(0.05)
        assert bot.live.generation != first, "the new generation was never picked up"
        after = await fake.send_command("ask", {"question": LIBRARY_Q, "results": 1})
        embed = embed_of(await after.followup(timeout=30))
        assert embed.fields[0].name == "[1] Riverside library reopens after the flood"
        sources = await fake.send_command("sources")
        listed = discord.Embed.from_dict((await sources.callback()).json["data"]["embeds"][0])
        assert "Riverside library reopens after the flood" in listed.description

    try:
        run_bot(live, tmp_path, scenario, reload_seconds=0.1)
    finally:
        live.close()
    assert live.reloads == 1
