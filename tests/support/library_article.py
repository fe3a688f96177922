"""The article added to a served coverage (the seeds) while the bot or a LiveRetriever runs,
its question, and a seed question that must keep answering meanwhile."""

from __future__ import annotations

import discord

from .bot_harness import embed_of
from .fake_discord import FakeDiscord

LIBRARY = ("Date: 2024-05-06\nOutlet: Riverside Courier\n\nRiverside library reopens after "
           "the flood\n\nThe Riverside public library reopened on Monday, two months after a "
           "flood filled its basement archive with river water and mud.\n\nVolunteers dried "
           "and scanned more than four thousand old newspapers before the doors opened.\n")
LIBRARY_Q = "When did the Riverside library reopen after the flood?"
TRIP_Q = "why was the trip cancelled"


async def assert_the_library_article_answers(fake: FakeDiscord) -> None:
    """/ask answers from the article indexed while the bot ran, and /sources lists it."""
    after = await fake.send_command("ask", {"question": LIBRARY_Q, "results": 1})
    embed = embed_of(await after.followup(timeout=30))
    assert embed.fields[0].name == "[1] Riverside library reopens after the flood"
    sources = await fake.send_command("sources")
    listed = discord.Embed.from_dict((await sources.callback()).json["data"]["embeds"][0])
    assert "Riverside library reopens after the flood" in listed.description
