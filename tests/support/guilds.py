"""The real bot in two guilds of the fake Discord, with per-server coverage, and the news
site on 127.0.0.1 its admins add articles and feeds from: the pages, the site fixture, the
run, and the /coverage and /ask calls as an admin or a member sends them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from bot.app import BylineBot
from retrieval.feeds.fetch import FetchSettings
from retrieval.model.embed import Embedder
from retrieval.search.live import LiveRetriever

from .bot_harness import GUILD_ID, TOKEN, USER_ID, Scenario, bot_settings, embed_of
from .fake_discord import ADMIN_PERMISSIONS, EPHEMERAL, FakeDiscord, Request, running
from .local_http import LOCAL, base_url, http_server

OTHER_GUILD = GUILD_ID + 1000
ADMIN_ID = USER_ID + 7
FAST = FetchSettings(policy=LOCAL, rate=1000.0, timeout=2.0)
FERRY_Q = "When did the Eastport ferry resume its crossings?"
LIBRARY_Q = "How late will the central library stay open on weekdays?"
TRIP_Q = "why was the trip cancelled"


def _page(title: str, *paragraphs: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
            f"{body}</article></body></html>").encode()


FERRY = ("Eastport ferry resumes crossings",
         "The Eastport ferry resumed its crossings on Monday after the harbour authority "
         "finished rebuilding the main pier, which storm waves wrecked in January.",
         "Commuters had driven around the bay for three months, adding an hour each way.")
LIBRARY = ("Central library to open late",
           "The central library will stay open until 10 pm on weekdays from March, the "
           "council said, after a petition signed by four thousand students.",
           "The longer hours will be paid for by closing the library on Sunday mornings.")
BRIDGE = ("Old Mill bridge reopens",
          "The Old Mill bridge reopened to traffic on Wednesday after eight months of "
          "repairs to its deck and railings, the county engineer said.")
PAGES = {"/news/ferry.html": _page(*FERRY), "/news/library.html": _page(*LIBRARY),
         "/news/bridge.html": _page(*BRIDGE),
         "/news/empty.html": b"<html><head><title>Menu</title></head><body></body></html>"}


def text_file(title: str, *paragraphs: str) -> str:
    return "\n\n".join([title, *paragraphs]) + "\n"


@dataclass
class Site:
    """A news site on 127.0.0.1: pages, a feed of two of them, a failing feed."""

    base: str = ""
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def feed(self) -> bytes:
        items = "".join(f"<item><title>{p}</title><link>{self.base}{p}</link></item>"
                        for p in ("/news/ferry.html", "/news/library.html"))
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Test News'
                f"</title><link>{self.base}/</link>{items}</channel></rss>").encode()


@contextmanager
def news_site() -> Iterator[Site]:
    """The site served on a free port of 127.0.0.1 until the block ends (conftest's `site`)."""
    s = Site()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            s.requests.append(self.path)
            if self.path == "/feed.xml":
                status, ctype, body = 200, "application/rss+xml", s.feed()
            elif self.path in PAGES:
                status, ctype, body = 200, "text/html; charset=utf-8", PAGES[self.path]
            elif self.path == "/flaky.xml":
                status, ctype, body = 503, "text/plain", b"try later"
            else:
                status, ctype, body = 404, "text/plain", b"not here"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_server(Handler) as server:
        s.base = base_url(server)
        yield s


def run_guilds(embedder: Embedder, tmp_path: Path, scenario: Scenario,
               retriever: LiveRetriever | None = None, **options: Any) -> None:
    """The real bot in two guilds of the fake Discord, commands synced globally; per-server
    coverage under tmp_path/data unless a shared `retriever` is given."""
    defaults: dict[str, Any] = {"guild_id": None, "fetch": FAST, "reload_seconds": 0.2,
                                "follow_check_seconds": 0.2}
    if retriever is None:
        defaults |= {"coverage": "per-server", "data_dir": tmp_path / "data"}
    settings = bot_settings(tmp_path, **(defaults | options))

    async def main() -> None:
        async with FakeDiscord(token=TOKEN, extra_guilds=(OTHER_GUILD,)) as fake:
            bot = BylineBot(settings, retriever, embedder=embedder, guild_ready_timeout=0.05)
            async with running(bot, token=TOKEN):
                await scenario(fake, bot)

    asyncio.run(main())


async def admin(fake: FakeDiscord, name: str, options: dict[str, Any] | None = None, *,
                guild: int = GUILD_ID, timeout: float = 30) -> str:
    """Run `/coverage ...` as a member with Manage Server; its private reply's text."""
    handle = await fake.send_command(name, options, guild_id=guild, user_id=ADMIN_ID,
                                     permissions=ADMIN_PERMISSIONS)
    callback = await handle.callback()
    if callback.json["type"] == 4:
        data = callback.json["data"]
    else:
        data = (await handle.followup(timeout=timeout)).json
    assert data["flags"] & EPHEMERAL, data
    return data.get("content") or ""


async def ask(fake: FakeDiscord, question: str, guild: int = GUILD_ID,
              user: int = USER_ID) -> Request:
    handle = await fake.send_command("ask", {"question": question, "results": 1},
                                     guild_id=guild, user_id=user)
    return await handle.followup(timeout=30)


def first_source(r: Request) -> str:
    """The title of the first passage of an answer, or "Not covered"."""
    embed = embed_of(r)
    return embed.title if embed.title == "Not covered" else embed.fields[0].name[4:]
