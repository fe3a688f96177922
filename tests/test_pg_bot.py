"""The bot over the PostgreSQL store, end to end through the fake Discord: answers from the
database, and a re-index published into it (by `byline --store URL index`) picked up by
LISTEN/NOTIFY between questions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys

import discord

from bot.app import BylineBot
from retrieval import index_corpus
from retrieval.cli.main import main
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Retriever
from retrieval.store import open_store

from .support.bot_harness import embed_of, run_bot
from .support.fake_discord import FakeDiscord
from .support.library_article import LIBRARY, LIBRARY_Q, TRIP_Q, assert_the_library_article_answers
from .support.paths import ROOT, SEEDS


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
            if bot.shared.live.generation != first:
                break
            await asyncio.sleep(0.05)
        assert bot.shared.live.generation != first, "the new generation was never picked up"
        await assert_the_library_article_answers(fake)

    try:
        run_bot(live, tmp_path, scenario, reload_seconds=0.1)
    finally:
        live.close()
    assert live.reloads == 1


def test_two_bot_processes_answer_a_reindex_by_a_third(pg_url, seed_index_dir, tmp_path):
    """Two real `byline-bot` processes (each with its own fake Discord) on one database; a
    third process re-indexes into it with `byline --store URL index`; both answer from the
    new generation without a restart."""
    from .support.bot_harness import GUILD_ID, TOKEN
    from .support.bot_process import Process

    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    corpus = shutil.copytree(SEEDS, tmp_path / "corpus")
    (corpus / "library.txt").write_text(LIBRARY, "utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "BYLINE_"))}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])

    async def ask(fake: FakeDiscord, question: str) -> discord.Embed:
        handle = await fake.send_command("ask", {"question": question, "results": 1})
        return embed_of(await handle.followup(timeout=60))

    async def scenario() -> None:
        async with FakeDiscord(token=TOKEN) as one, FakeDiscord(token=TOKEN) as two:
            bots = []
            for n, fake in enumerate((one, two)):
                env = base | {
                    "FAKE_DISCORD_URL": f"http://127.0.0.1:{fake.port}",
                    "DISCORD_TOKEN": TOKEN, "DISCORD_GUILD_ID": str(GUILD_ID),
                    "BYLINE_STORE": pg_url, "BYLINE_COOLDOWN_SECONDS": "0",
                    "BYLINE_RELOAD_SECONDS": "0.2",
                    "BYLINE_FEEDBACK_DB": str(tmp_path / f"feedback{n}.sqlite")}
                bots.append(Process(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tests.support.bot_entry", cwd=tmp_path, env=env,
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE)))
            try:
                for bot in bots:
                    await bot.wait_for_line("has connected to Gateway", timeout=120)
                for fake in (one, two):
                    assert (await ask(fake, LIBRARY_Q)).title == "Not covered"
                    assert (await ask(fake, TRIP_Q)).fields[0].name == \
                        "[1] Trump Calls Off Pompeo's North Korea Trip"
                third = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "retrieval.cli", "--store", pg_url, "index",
                    str(corpus), cwd=tmp_path, env=base, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE)
                _, err = await third.communicate()
                assert third.returncode == 0, err.decode()
                for bot in bots:
                    await bot.wait_for_line("now answering from index generation", timeout=60)
                for fake in (one, two):
                    assert (await ask(fake, LIBRARY_Q)).fields[0].name == \
                        "[1] Riverside library reopens after the flood"
                for bot in bots:
                    bot.proc.send_signal(signal.SIGTERM)
                for bot in bots:
                    assert await bot.exit_status(timeout=60) == 0, "\n".join(bot.lines)
            finally:
                for bot in bots:
                    with contextlib.suppress(ProcessLookupError):
                        bot.proc.kill()
            for bot in bots:
                assert "Traceback" not in "\n".join(bot.lines), "\n".join(bot.lines)

    asyncio.run(scenario())
