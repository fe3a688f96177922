"""The reply vocabulary every cog shares: no pings, private replies, the restart notice, the
refusals, and the feedback buttons under an answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

if TYPE_CHECKING:
    from bot.app import BylineBot

log = logging.getLogger("byline.bot")
NO_PINGS = discord.AllowedMentions.none()
RESTARTING = "Byline is restarting; please ask again in a minute."
RETRIEVING = ("ask", "timeline")  # the commands a shutdown waits for (and turns away)


NOT_ADMIN = ("Only members with the Manage Server permission can change this server's "
             "coverage.")


class ShuttingDown(app_commands.CheckFailure):
    """A question that arrived after the bot began shutting down: it is told to come back."""


async def tell_restarting(interaction: discord.Interaction) -> None:
    """A cancelled answer's last word (RESTARTING, privately), within two seconds."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await send_ephemeral(interaction, RESTARTING)


async def send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Reply privately whether or not the interaction was already deferred in public."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True,
                                                    allowed_mentions=NO_PINGS)
            return
        # Remove the "thinking…" placeholder: a followup would otherwise replace it, in public.
        if interaction.response.type == discord.InteractionResponseType.deferred_channel_message:
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
    except discord.HTTPException:
        log.warning("could not tell the user about an error", exc_info=True)


class FeedbackButton(discord.ui.DynamicItem[discord.ui.Button],
                     template=r"byline:fb:(?P<verdict>up|down):(?P<key>[0-9a-f]{12})"):
    """👍 / 👎 under an answer. The answer's key lives in the custom_id, so clicks still
    count after a restart."""

    def __init__(self, verdict: str, key: str) -> None:
        super().__init__(discord.ui.Button(
            style=discord.ButtonStyle.secondary,
            emoji="👍" if verdict == "up" else "👎",
            label="Helpful" if verdict == "up" else "Not helpful",
            custom_id=f"byline:fb:{verdict}:{key}",
        ))
        self.verdict = verdict
        self.key = key

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item,
                             match: object, /) -> FeedbackButton:
        return cls(match["verdict"], match["key"])  # type: ignore[index]

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: BylineBot = interaction.client  # type: ignore[assignment]
        saved = await asyncio.to_thread(bot.feedback.record, self.key, self.verdict,
                                        interaction.user.id)
        if saved:
            bot.metrics.feedback.labels(self.verdict).inc()
        text = ("Thanks, noted." if saved else
                "Sorry, I no longer know that answer, so I can't record a rating for it.")
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


def feedback_view(key: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton("up", key))
    view.add_item(FeedbackButton("down", key))
    return view


class NotAdmin(app_commands.CheckFailure):
    """A /coverage command from a member without Manage Server: refused, privately."""
