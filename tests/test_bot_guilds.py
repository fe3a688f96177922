"""Coverage per server and the /coverage admin commands, end to end: the real bot (discord.py)
against the fake Discord, articles and feeds served by a real HTTP server on 127.0.0.1,
real fetching, real indexes built by the bot's worker, the real model."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.app import BylineBot
from bot.coverage import GUILDS
from bot.replies import NOT_ADMIN
from retrieval.cli.config import Settings
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex

from .support.bot_harness import GUILD_ID, USER_ID, embed_of
from .support.fake_discord import ADMIN_PERMISSIONS, EPHEMERAL, FakeDiscord
from .support.guilds import (
    ADMIN_ID,
    FERRY,
    FERRY_Q,
    LIBRARY,
    LIBRARY_Q,
    OTHER_GUILD,
    TRIP_Q,
    admin,
    ask,
    first_source,
    run_guilds,
    text_file,
)
from .support.local_http import (
    only_localhost,  # noqa: F401 (autouse: nothing but 127.0.0.1)
)
from .support.paths import SEEDS
from .support.polling import until


async def choices(fake: FakeDiscord, name: str, options: dict[str, Any], focused: str, *,
                  guild: int = GUILD_ID, permissions: int = ADMIN_PERMISSIONS
                  ) -> list[dict[str, str]]:
    handle = await fake.send_autocomplete(name, options, focused, guild_id=guild,
                                          user_id=ADMIN_ID, permissions=permissions)
    reply = await handle.callback(timeout=30)
    assert reply.json["type"] == 8
    return reply.json["data"]["choices"]


def samples(bot: BylineBot, name: str) -> float:
    return bot.metrics.registry.get_sample_value(name) or 0.0


# -- tests ------------------------------------------------------------------------------

def test_coverage_add_fetches_an_article_that_then_answers(seed_index_dir, embedder, site,
                                                           tmp_path, caplog):
    """Shared coverage (a writable copy of the seeds): /coverage add fetches the page into
    the corpus folder and indexes it; the reply comes once it answers, and it does. Bad
    URLs, fetch failures and pages with nothing to index are one private line each."""
    corpus = shutil.copytree(SEEDS, tmp_path / "corpus")
    index_dir = shutil.copytree(seed_index_dir, tmp_path / "index")
    live = LiveRetriever(Retriever(FolderIndex.load(index_dir), embedder))

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        assert first_source(await ask(fake, FERRY_Q)) == "Not covered"
        url = site.url("/news/ferry.html")
        reply = await admin(fake, "coverage add", {"url": url})
        assert reply == ("Added “Eastport ferry resumes crossings”: it answers questions "
                         "now (3 articles in the coverage).")
        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]
        assert first_source(await ask(fake, TRIP_Q)).startswith("Trump Calls Off")
        assert (await admin(fake, "coverage add", {"url": url})).endswith(
            "is already in the coverage.")

        assert await admin(fake, "coverage add", {"url": "ftp://example.com/x"}) == (
            "Could not add <ftp://example.com/x>: 'ftp://example.com/x' is not an http(s) "
            "URL; give one like https://example.com/a.")
        missing = site.url("/news/missing.html")
        assert await admin(fake, "coverage add", {"url": missing}) == (
            f"Could not add <{missing}>: could not fetch it.")
        empty = site.url("/news/empty.html")
        reply = await admin(fake, "coverage add", {"url": empty})
        assert reply.startswith(f"Could not add <{empty}>: nothing to index on that page (")
        assert bot.shared.live.generation != live_first and bot.shared.live.reloads == 1

    live_first = live.generation
    with caplog.at_level(logging.INFO, logger="byline.bot"):
        run_guilds(embedder, tmp_path, scenario, retriever=live,
                   core=Settings(index_dir=index_dir, corpus_dir=corpus))
    host = site.base.removeprefix("http://").replace(":", "_")
    assert sorted(p.name for p in (corpus / host).rglob("*.html")) == ["news-ferry.html"]
    lines = [r.getMessage() for r in caplog.records if "coverage admin" in r.getMessage()]
    assert f"coverage admin: user{ADMIN_ID % 10_000} ({ADMIN_ID}) in guild {GUILD_ID}: add " \
           f"'{site.url('/news/ferry.html')}': added" in lines
    assert len(lines) == 5


def test_each_server_answers_from_its_own_coverage(embedder, site, tmp_path):
    """Per server: an article added in one guild answers there and nowhere else; a guild
    with no coverage is told how to get some."""
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        reply = await ask(fake, FERRY_Q)
        assert reply.json["flags"] & EPHEMERAL and not reply.json.get("embeds")
        assert reply.json["content"].startswith("This server has no coverage yet. A member "
                                                "with Manage Server can add an article with "
                                                "`/coverage add url:`")
        assert f"`guilds/{GUILD_ID}/corpus/`" in reply.json["content"]
        helped = await fake.send_command("help", guild_id=OTHER_GUILD)
        await helped.callback()
        help_embed = embed_of(await helped.followup())
        assert help_embed.description.startswith("This server has no coverage yet.")

        assert (await admin(fake, "coverage add", {"url": site.url("/news/ferry.html")}
                            )).startswith("Added “Eastport ferry")
        assert (await admin(fake, "coverage add", {"url": site.url("/news/library.html")},
                            guild=OTHER_GUILD)).startswith("Added “Central library")

        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]
        assert first_source(await ask(fake, LIBRARY_Q)) == "Not covered"
        assert first_source(await ask(fake, LIBRARY_Q, OTHER_GUILD)) == LIBRARY[0]
        assert first_source(await ask(fake, FERRY_Q, OTHER_GUILD)) == "Not covered"
        sources = await fake.send_command("sources", guild_id=OTHER_GUILD)
        listed = discord.Embed.from_dict((await sources.callback()).json["data"]["embeds"][0])
        assert "Central library" in listed.description and "ferry" not in listed.description
        assert {c.key for c in bot.coverages.loaded()} == {str(GUILD_ID), str(OTHER_GUILD)}

    run_guilds(embedder, tmp_path, scenario)
    guilds = tmp_path / "data" / GUILDS
    assert [p.name for p in (guilds / str(GUILD_ID) / "corpus").rglob("*.html")] == \
        ["news-ferry.html"]
    assert [p.name for p in (guilds / str(OTHER_GUILD) / "corpus").rglob("*.html")] == \
        ["news-library.html"]
    assert (guilds / str(OTHER_GUILD) / "index" / "manifest.json").is_file()


def test_coverage_commands_are_for_manage_server_only(embedder, site, tmp_path, caplog):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        [command] = [c for c in fake.commands[None] if c["name"] == "coverage"]
        assert int(command["default_member_permissions"]) == \
            discord.Permissions(manage_guild=True).value
        assert command["dm_permission"] is False
        subcommands = {o["name"]: o for o in command["options"]}
        assert set(subcommands) == {"add", "remove", "status", "feed"}
        assert {o["name"] for o in subcommands["feed"]["options"]} == {"add", "remove", "list"}

        for name, options in (("coverage add", {"url": site.url("/news/ferry.html")}),
                              ("coverage feed add", {"url": site.url("/feed.xml")}),
                              ("coverage status", None)):
            handle = await fake.send_command(name, options, guild_id=GUILD_ID)
            reply = await handle.callback()
            assert reply.json["type"] == 4, name  # answered at once, never deferred
            assert reply.json["data"]["flags"] == EPHEMERAL
            assert reply.json["data"]["content"] == NOT_ADMIN
        assert await choices(fake, "coverage remove", {"article": ""}, "article",
                             permissions=fake_permissions()) == []
        assert site.requests == []
        assert not (tmp_path / "data").exists()

    with caplog.at_level(logging.INFO, logger="byline.bot"):
        run_guilds(embedder, tmp_path, scenario)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 3
    assert refused[0] == (f"coverage admin: user{USER_ID % 10_000} ({USER_ID}) in guild "
                          f"{GUILD_ID}: coverage add '{site.url('/news/ferry.html')}': "
                          "refused (no Manage Server)")


def fake_permissions() -> int:
    """What an ordinary member may do (no Manage Server)."""
    from .support.fake_discord import CHANNEL_PERMISSIONS

    return CHANNEL_PERMISSIONS


def test_feeds_status_and_removing_an_article(embedder, site, tmp_path):
    """/coverage feed add: the bot's feed task polls it at once (a /coverage add meanwhile
    waits its turn), the articles answer; feed list and status show each feed's state, the
    failing one's error; feed remove (autocompleted); /coverage remove (autocompleted on
    titles) and the article no longer answers."""
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        feed, flaky = site.url("/feed.xml"), site.url("/flaky.xml")
        assert (await admin(fake, "coverage feed add", {"url": feed})).startswith(
            f"Following <{feed}>: its articles are fetched now, then every 15 minutes")
        assert (await admin(fake, "coverage feed add", {"url": flaky})).startswith(
            "Following")
        assert await admin(fake, "coverage feed add", {"url": feed}) == \
            f"Already following <{feed}>."
        assert (await admin(fake, "coverage add", {"url": site.url("/news/bridge.html")}
                            )).startswith("Added “Old Mill bridge reopens”")
        cov = bot.coverages.get(GUILD_ID)
        await until(lambda: len(cov.articles) == 3 and "/flaky.xml" in site.requests)
        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]

        listing = await admin(fake, "coverage feed list")
        assert f"<{feed}>\n  last poll " in listing and "(fetched, 2 new); next " in listing
        assert f"<{flaky}>\n  last poll " in listing
        assert "(failed 1 time in a row: 503 Service Unavailable); next " in listing

        handle = await fake.send_command("coverage status", guild_id=GUILD_ID,
                                         user_id=ADMIN_ID, permissions=ADMIN_PERMISSIONS)
        await handle.callback()
        status = embed_of(await handle.followup(timeout=30))
        assert status.title == "This server's coverage"
        assert "**Articles** 3 (" in status.description
        assert "**Last update** " in status.description
        assert " MB on disk" in status.description
        fields = {f.name: f.value for f in status.fields}
        assert fields["Feeds"] == "2 listed, 1 failing; polled every 15 minutes"
        assert fields[flaky].startswith("failed 1 time(s) in a row: 503 Service Unavailable")
        assert samples(bot, "byline_feed_polls_total") >= 2
        assert samples(bot, "byline_feed_errors_total") >= 1

        offered = await choices(fake, "coverage feed remove", {"url": "flaky"}, "url")
        assert [c["value"] for c in offered] == [flaky]
        assert (await admin(fake, "coverage feed remove", {"url": flaky})).startswith(
            f"Stopped following <{flaky}>")
        assert flaky not in await admin(fake, "coverage feed list")

        offered = await choices(fake, "coverage remove", {"article": "ferry"}, "article")
        assert [c["name"] for c in offered] == ["Eastport ferry resumes crossings"]
        reply = await admin(fake, "coverage remove", {"article": offered[0]["value"]})
        assert reply == ("Removed “Eastport ferry resumes crossings”: it no longer answers "
                         "questions (2 articles in the coverage).")
        # (with two reopenings left, the question may still find the bridge's paragraph)
        assert "main pier" not in json.dumps((await ask(fake, FERRY_Q)).json)
        assert first_source(await ask(fake, LIBRARY_Q)) == LIBRARY[0]

    run_guilds(embedder, tmp_path, scenario)


def test_remove_takes_whole_files_only_and_can_empty_a_coverage(embedder, tmp_path):
    """Files dropped into a guild's folder are indexed on its first question. An article of
    a multi-article file (an export) cannot be removed alone; the last article can, and the
    guild then has no coverage."""
    guilds = tmp_path / "data" / GUILDS
    first = guilds / str(GUILD_ID) / "corpus"
    first.mkdir(parents=True)
    (first / "ferry.txt").write_text(text_file(*FERRY), "utf-8")
    rows = [{"id": "a", "title": "Harbour channel to be dredged", "text": "The harbour "
             "authority approved a plan on Monday to dredge the channel for larger ships."},
            {"id": "b", "title": "Bus lane opens on Quay Street", "text": "A bus lane opened "
             "on Quay Street on Tuesday, cutting the trip to the station by ten minutes."}]
    (first / "wire.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    second = guilds / str(OTHER_GUILD) / "corpus"
    second.mkdir(parents=True)
    (second / "library.txt").write_text(text_file(*LIBRARY), "utf-8")

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]
        reply = await admin(fake, "coverage remove", {"article": "Bus lane opens on Quay "
                                                                 "Street"})
        assert reply == ("“Bus lane opens on Quay Street” comes from `wire.jsonl`, a file "
                         "that holds 1 other article (a feed or an export); `/coverage "
                         "remove` removes whole files only. The bot's operator can edit "
                         "that file in the coverage's folder.")
        assert (await admin(fake, "coverage remove", {"article": "nothing like it"})
                ).startswith("No article of this coverage is “nothing like it”")

        reply = await admin(fake, "coverage remove", {"article": LIBRARY[0]},
                            guild=OTHER_GUILD)
        assert reply == ("Removed “Central library to open late”. The coverage has no "
                         "article left.")
        refused = await ask(fake, LIBRARY_Q, OTHER_GUILD)
        assert refused.json["content"].startswith("This server has no coverage yet.")
        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]  # the other guild's stays

    run_guilds(embedder, tmp_path, scenario)
    assert (first / "wire.jsonl").is_file() and not (second / "library.txt").exists()
    assert not (guilds / str(OTHER_GUILD) / "index" / "manifest.json").exists()


@pytest.mark.parametrize("cap", [{"max_loaded": 1}, {"max_loaded_mb": 0.01}],
                         ids=["count", "bytes"])
def test_least_recently_used_coverage_is_unloaded_never_one_answering(embedder, tmp_path,
                                                                      cap):
    """BYLINE_MAX_LOADED=1 (or a BYLINE_MAX_LOADED_MB under two indexes' size) across two
    guilds: each question loads its guild's coverage and unloads the other, answers stay
    each guild's own; two questions held in flight keep both loaded until answered."""
    guilds = tmp_path / "data" / GUILDS
    for guild, article in ((GUILD_ID, FERRY), (OTHER_GUILD, LIBRARY)):
        corpus = guilds / str(guild) / "corpus"
        corpus.mkdir(parents=True)
        (corpus / "story.txt").write_text(text_file(*article), "utf-8")

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        def loaded() -> list[str]:
            return sorted(c.key for c in bot.coverages.loaded())

        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]
        assert loaded() == [str(GUILD_ID)]
        assert first_source(await ask(fake, LIBRARY_Q, OTHER_GUILD)) == LIBRARY[0]
        assert loaded() == [str(OTHER_GUILD)]
        assert first_source(await ask(fake, FERRY_Q, OTHER_GUILD)) == "Not covered"
        assert first_source(await ask(fake, LIBRARY_Q)) == "Not covered"
        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]
        assert loaded() == [str(GUILD_ID)]
        assert bot.coverages.evictions == 2

        bot.coverages.lock.acquire()  # retrieval held up: both questions stay in flight
        try:
            handles = [await fake.send_command("ask", {"question": q}, guild_id=g,
                                               user_id=USER_ID + i)
                       for i, (q, g) in enumerate(((FERRY_Q, GUILD_ID),
                                                   (LIBRARY_Q, OTHER_GUILD)))]
            # (a question counts as a user before its coverage is loaded: wait for both)
            await until(lambda: all(c.users and c.loaded for c in bot.coverages.all()))
            assert loaded() == [str(GUILD_ID), str(OTHER_GUILD)]  # over the cap, in use
            assert samples(bot, "byline_coverages_loaded") == 2
        finally:
            bot.coverages.lock.release()
        answers = [first_source(await h.followup(timeout=30)) for h in handles]
        assert answers == [FERRY[0], LIBRARY[0]]
        await until(lambda: len(bot.coverages.loaded()) == 1)
        assert samples(bot, "byline_coverage_evictions_total") == 3
        assert samples(bot, "byline_coverages_loaded") == 1

    run_guilds(embedder, tmp_path, scenario, **cap)


def test_settings_for_coverage_per_server():
    from bot.settings import BotConfigError, BotSettings

    env = {"DISCORD_TOKEN": "t", "BYLINE_COVERAGE": "Per-Server", "BYLINE_DATA_DIR": "/srv/b",
           "BYLINE_MAX_LOADED": "3", "BYLINE_MAX_LOADED_MB": "512", "BYLINE_FOLLOW": "0",
           "BYLINE_FOLLOW_MINUTES": "30", "BYLINE_WORKER": "process"}
    s = BotSettings.from_env(env)
    assert (s.coverage, s.data_dir, s.max_loaded, s.max_loaded_mb, s.follow,
            s.follow_minutes, s.worker) == ("per-server", Path("/srv/b"), 3, 512.0, False,
                                            30.0, "process")
    d = BotSettings.from_env({"DISCORD_TOKEN": "t"})
    assert (d.coverage, d.data_dir, d.max_loaded, d.max_loaded_mb, d.follow, d.worker) == \
        ("shared", Path(".byline"), 20, 1024.0, True, "thread")
    for name, value, message in (
            ("BYLINE_COVERAGE", "guild", "BYLINE_COVERAGE must be shared or per-server"),
            ("BYLINE_MAX_LOADED", "0", "BYLINE_MAX_LOADED must be at least 1"),
            ("BYLINE_FOLLOW", "maybe", "BYLINE_FOLLOW must be 1 or 0"),
            ("BYLINE_FOLLOW_MINUTES", "0", "BYLINE_FOLLOW_MINUTES must be a number of "
                                           "minutes > 0"),
            ("BYLINE_WORKER", "gpu", "BYLINE_WORKER must be thread or process")):
        with pytest.raises(BotConfigError, match=message):
            BotSettings.from_env({"DISCORD_TOKEN": "t", name: value})


def test_article_choice_values_fit_discord(tmp_path):
    from bot.cogs.admin import article_value, find_article
    from retrieval.store import ArticleInfo

    long_id = "example.com/" + "a-very-long-slug-" * 10
    articles = [ArticleInfo(long_id, "Long one", f"{long_id}.html", None, None, None, 3),
                ArticleInfo("short", "Short one", "short.txt", None, None, None, 1)]
    value = article_value(articles[0])
    assert len(value) <= 100 and value == "sha1:" + hashlib.sha1(long_id.encode()).hexdigest()
    assert find_article(articles, value) is articles[0]
    assert find_article(articles, "short one") is articles[1]
    assert find_article(articles, "nope") is None


def test_a_worker_process_fetches_and_indexes(embedder, site, tmp_path):
    """BYLINE_WORKER=process: /coverage add runs in a spawned worker process (with its own
    copy of the model); the bot loads what it published and answers from it."""
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        assert bot.worker.kind == "process"
        reply = await admin(fake, "coverage add", {"url": site.url("/news/ferry.html")},
                            timeout=120)
        assert reply.startswith("Added “Eastport ferry resumes crossings”")
        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]
        assert bot.worker._pool is not None  # the job really went to a worker process

    run_guilds(embedder, tmp_path, scenario, worker="process")
