"""The bot's write paths over the PostgreSQL store, end to end: the real bot (discord.py)
against the fake Discord, pages and a feed served on 127.0.0.1, a real PostgreSQL with
pgvector (tests/support/pg_server.py). /coverage add, remove and status and the feed task publish
into the database and answer at once; per server, each guild's coverage is a database of its
own, created on its first write, and what one guild adds never answers another."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil

import psycopg
import pytest

from bot.app import BylineBot
from bot.coverage import GUILDS
from bot.settings import BotConfigError, BotSettings
from retrieval.cli.config import Settings
from retrieval.cli.main import main
from retrieval.errors import StoreError
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Retriever
from retrieval.store import backend, open_store
from retrieval.store.postgres.connect import close_pools, redact

from .support.bot_harness import GUILD_ID
from .support.fake_discord import ADMIN_PERMISSIONS, FakeDiscord
from .support.guilds import (
    BRIDGE,
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
from .support.local_http import only_localhost  # noqa: F401 (autouse: nothing but 127.0.0.1)
from .support.paths import SEEDS

BRIDGE_Q = "When did the Old Mill bridge reopen to traffic?"
DREDGING = ("Harbour channel to be dredged",
            "The harbour authority approved a plan on Monday to dredge the shipping channel "
            "so that larger container ships can reach the eastern quays.")
DREDGING_Q = "Why will the harbour channel be dredged?"


async def status(fake: FakeDiscord, guild: int = GUILD_ID) -> dict:
    """/coverage status's embed, as sent."""
    from .support.guilds import ADMIN_ID

    handle = await fake.send_command("coverage status", guild_id=guild, user_id=ADMIN_ID,
                                     permissions=ADMIN_PERMISSIONS)
    await handle.callback()
    return (await handle.followup(timeout=30)).json["embeds"][0]


def test_the_store_seam_gives_a_writer_what_it_needs(pg_url, seed_index_dir):
    """A backend's published, sources, size and withdraw on a database as on a folder."""
    assert backend(pg_url).published() is None and backend(pg_url).sources() == set()
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    for location in (pg_url, seed_index_dir):
        manifest = backend(location).published()
        assert manifest is not None and manifest.articles == 2
        assert len(backend(location).sources()) == 2
        assert backend(location).size(manifest) > 100_000
    assert backend(pg_url).sources() == backend(seed_index_dir).sources()
    store = backend(pg_url)
    assert store.withdraw() and store.published() is None and not store.withdraw()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM byline_generations").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE "
                            "'byline_g_%'").fetchone()[0] == 0


def test_coverage_add_remove_and_status_publish_into_the_store(
        pg_url, seed_index_dir, embedder, site, tmp_path):
    """Shared coverage on a database: /coverage add fetches into the corpus folder and
    publishes into the database, the reply comes once it answers; status shows the store
    (no password); remove publishes again; no index folder is ever written."""
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    corpus = shutil.copytree(SEEDS, tmp_path / "corpus")
    live = LiveRetriever(Retriever(open_store(pg_url, model=embedder.name), embedder))
    first = live.generation
    password = psycopg.conninfo.conninfo_to_dict(pg_url)["password"]

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        assert first_source(await ask(fake, FERRY_Q)) == "Not covered"
        url = site.url("/news/ferry.html")
        assert await admin(fake, "coverage add", {"url": url}) == (
            "Added “Eastport ferry resumes crossings”: it answers questions now (3 articles "
            "in the coverage).")
        assert bot.shared.live.generation != first  # swapped in before the reply, no waiting
        assert first_source(await ask(fake, FERRY_Q)) == FERRY[0]
        assert first_source(await ask(fake, TRIP_Q)).startswith("Trump Calls Off")
        assert (await admin(fake, "coverage add", {"url": url})).endswith(
            "is already in the coverage.")

        shown = await status(fake)
        assert "**Articles** 3 (" in shown["description"]
        assert " MB in the database" in shown["description"]
        assert {"name": "Store", "value": f"`{redact(pg_url)}`", "inline": False} in shown["fields"]
        assert password not in json.dumps(shown)

        reply = await admin(fake, "coverage remove", {"article": FERRY[0]})
        assert reply == ("Removed “Eastport ferry resumes crossings”: it no longer answers "
                         "questions (2 articles in the coverage).")
        assert "main pier" not in json.dumps((await ask(fake, FERRY_Q)).json)

    try:
        run_guilds(embedder, tmp_path, scenario, retriever=live,
                   core=Settings(index_dir=tmp_path / "index", corpus_dir=corpus,
                                 store=pg_url))
    finally:
        live.close()
    assert not (tmp_path / "index").exists()
    assert backend(pg_url).published().articles == 2  # type: ignore[union-attr]


@pytest.fixture
def guild_store(pg_server):
    """A per-server store template on the test server; its guilds' databases are dropped."""
    prefix = f"t{secrets.token_hex(3)}_"
    base = pg_server.url.rsplit("/", 1)[0]
    yield f"{base}/{prefix}{{guild}}"
    close_pools()
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        for guild in (GUILD_ID, OTHER_GUILD):
            conn.execute(f"DROP DATABASE IF EXISTS {prefix}{guild} WITH (FORCE)")


def test_each_server_has_a_database_of_its_own(guild_store, embedder, site, tmp_path):
    """Per server on PostgreSQL: a question creates nothing; a guild's first /coverage add
    creates its database; the other guild's first question indexes the file dropped into its
    folder into a database of its own, and its feed task publishes there; neither
    answers from the other's articles (one coverage loaded at a time: each question in the
    other guild unloads one, its pool closed, and loads the other again)."""
    one = guild_store.replace("{guild}", str(GUILD_ID))
    other = guild_store.replace("{guild}", str(OTHER_GUILD))
    dropped = tmp_path / "data" / GUILDS / str(OTHER_GUILD) / "corpus"
    dropped.mkdir(parents=True)
    (dropped / "dredging.txt").write_text(text_file(*DREDGING), "utf-8")

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        refused = await ask(fake, BRIDGE_Q)
        assert refused.json["content"].startswith("This server has no coverage yet.")
        assert backend(one).published() is None
        assert (await admin(fake, "coverage add", {"url": site.url("/news/bridge.html")})
                ).startswith("Added “Old Mill bridge reopens”: it answers questions now "
                             "(1 article in the coverage)")
        assert first_source(await ask(fake, DREDGING_Q, OTHER_GUILD)) == DREDGING[0]
        assert backend(other).published().articles == 1  # type: ignore[union-attr]
        assert (await admin(fake, "coverage feed add", {"url": site.url("/feed.xml")},
                            guild=OTHER_GUILD)).startswith("Following")

        for _ in range(600):  # the feed task's first poll, fetched and indexed
            found = await asyncio.to_thread(backend(other).published)
            if found is not None and found.articles == 3:
                break
            await asyncio.sleep(0.1)
        assert found is not None and found.articles == 3, "the feed task never published"
        for _ in range(600):  # and the bot's reload after it (not loaded: loads it anew)
            live = bot.coverages.get(OTHER_GUILD).live
            if live is None or live.generation == found.generation:
                break
            await asyncio.sleep(0.05)
        assert first_source(await ask(fake, LIBRARY_Q, OTHER_GUILD)) == LIBRARY[0]
        assert first_source(await ask(fake, FERRY_Q, OTHER_GUILD)) == FERRY[0]
        assert first_source(await ask(fake, BRIDGE_Q, OTHER_GUILD)) != BRIDGE[0]
        assert first_source(await ask(fake, BRIDGE_Q)) == BRIDGE[0]
        for q in (LIBRARY_Q, FERRY_Q, DREDGING_Q):  # (its one article may come closest)
            assert first_source(await ask(fake, q)) not in (LIBRARY[0], FERRY[0], DREDGING[0])
        shown = await status(fake, OTHER_GUILD)
        assert {"name": "Store", "value": f"`{redact(other)}`", "inline": False} in shown["fields"]

        assert bot.coverages.evictions >= 3  # one loaded at a time: pools closed, reopened

    run_guilds(embedder, tmp_path, scenario, max_loaded=1,
               core=Settings(index_dir=tmp_path / "index", store=guild_store))
    assert [a.title for a in open_store(one).articles()] == [BRIDGE[0]]
    assert sorted(a.title for a in open_store(other).articles()) == sorted(
        [FERRY[0], LIBRARY[0], DREDGING[0]])
    assert not (tmp_path / "index").exists()
    assert not list((tmp_path / "data").rglob("manifest.json"))  # no index folders


def test_a_per_server_store_must_name_each_guilds_database():
    """Refused at start-up, in one line: a per-server URL without {guild} (two guilds would
    share one index), or {guild} in a shared coverage's URL."""
    env = {"DISCORD_TOKEN": "t", "BYLINE_COVERAGE": "per-server",
           "BYLINE_STORE": "postgresql://byline:secret@db/news"}
    with pytest.raises(BotConfigError) as refused:
        BotSettings.from_env(env)
    assert str(refused.value) == (
        "BYLINE_COVERAGE=per-server needs {guild} in the database name of BYLINE_STORE "
        "(like postgresql://host/byline_{guild}), so that no two servers share one index.")
    for url in ("postgresql://db/news?application_name=byline_{guild}",):
        with pytest.raises(BotConfigError):
            BotSettings.from_env(env | {"BYLINE_STORE": url})
    with pytest.raises(BotConfigError, match="only BYLINE_COVERAGE=per-server fills in"):
        BotSettings.from_env(env | {"BYLINE_COVERAGE": "shared",
                                    "BYLINE_STORE": "postgresql://db/byline_{guild}"})
    settings = BotSettings.from_env(env | {"BYLINE_STORE": "postgresql://db/byline_{guild}"})
    assert settings.guild_store(42) == "postgresql://db/byline_42"
    assert BotSettings.from_env(env | {"BYLINE_STORE": "/srv/index"}).guild_store(42) is None


def test_a_role_that_may_not_create_databases_is_told_what_to_do(pg_server):
    """CREATE DATABASE refused: one line saying to create it or grant CREATEDB."""
    role, password = f"r{secrets.token_hex(3)}", secrets.token_hex(8)
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    host = pg_server.url.rsplit("@", 1)[1].rsplit("/", 1)[0]
    url = f"postgresql://{role}:{password}@{host}/byline_{role}"
    try:
        with pytest.raises(StoreError) as refused:
            backend(url).prepare()
        assert str(refused.value) == (
            f"Cannot create the database 'byline_{role}' at {redact(url)}: permission denied; "
            f'create it (CREATE DATABASE "byline_{role}") or grant Byline\'s role CREATEDB.')
        assert password not in str(refused.value)
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
