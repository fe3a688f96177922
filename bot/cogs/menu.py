"""*Ask Byline*: a message context menu (right-click a message → Apps → Ask Byline) that asks
the coverage about the message's text, as `/ask` would, and answers privately.

A claim checked against the coverage is the reader's own business: a public reply under
someone's message would read as Byline calling the author out, and a channel where several
readers check the same claim would fill with copies of one answer. So the answer is
ephemeral (only the reader who asked sees it); `/ask` is there to share one.

Discord allows context menus only as commands of the tree, not as Cog methods, so the cog
builds an `app_commands.ContextMenu` and adds it to the tree when it is loaded.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.render import render_answer, render_not_covered
from bot.replies import NO_PINGS, ShuttingDown, feedback_view, send_ephemeral, tell_restarting
from retrieval.errors import BadQuestion
from retrieval.search.answer import MAX_QUESTION_CHARS
from retrieval.text import split_sentences, truncate

if TYPE_CHECKING:
    from bot.app import BylineBot

MENU_NAME = "Ask Byline"
METRIC = "ask_message"  # its label in byline_questions_total and the other series
RESULTS = 3  # passages per answer, /ask's default
NO_TEXT = ("That message has no text to ask about (only links, attachments or embeds). "
           "Put the claim into `/ask question:` instead.")
_LINK = re.compile(r"<?https?://\S+")  # links say nothing to the coverage search
_CUSTOM_EMOJI = re.compile(r"<a?:(\w+):\d+>")  # <:name:id> → :name:


@dataclass(frozen=True)
class MessageQuestion:
    """What Ask Byline asks for a message: its text, or when that is longer than a question
    may be, its first sentences that fit (or its first characters, for one long sentence)."""

    text: str
    message_chars: int  # the length of the message's text (links removed)
    sentences: int | None = None  # when shortened: how many whole sentences were kept

    @property
    def shortened(self) -> bool:
        return len(self.text) < self.message_chars

    @classmethod
    def of(cls, content: str, limit: int = MAX_QUESTION_CHARS) -> MessageQuestion | None:
        """The question for a message's `content`; None when it has no text to ask about."""
        text = " ".join(_CUSTOM_EMOJI.sub(r":\1:", _LINK.sub(" ", content)).split())
        if not any(c.isalnum() for c in text):
            return None
        if len(text) <= limit:
            return cls(text, len(text))
        kept: list[str] = []
        for sentence in split_sentences(text):
            if len(" ".join([*kept, sentence])) > limit:
                break
            kept.append(sentence)
        if kept:
            return cls(" ".join(kept), len(text), len(kept))
        return cls(truncate(text, limit), len(text))

    def note(self) -> str:
        """How much of a long message was asked about ("" when all of it was)."""
        if not self.shortened:
            return ""
        kept = (f"first {self.sentences} sentence{'s' if self.sentences != 1 else ''}"
                if self.sentences else "beginning")
        return (f"The message is {self.message_chars:,} characters long, more than a question "
                f"may be ({MAX_QUESTION_CHARS:,}): I asked with its {kept} "
                f"({len(self.text):,} characters).")


class AskByline(commands.Cog):
    """The *Ask Byline* message command."""

    def __init__(self, bot: BylineBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name=MENU_NAME, callback=self.ask_message,
                                             extras={"metric": METRIC})
        self.cooldowns = UserCooldowns(bot.settings.cooldown_seconds)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def ask_message(self, interaction: discord.Interaction,
                          message: discord.Message) -> None:
        """Answer the message's text (privately) with the coverage that speaks to it."""
        asked = MessageQuestion.of(message.clean_content)
        if asked is None:  # before the cooldown: a message with nothing to ask costs nothing
            await send_ephemeral(interaction, NO_TEXT)
            return
        self.cooldowns.hit(interaction.user.id)
        bot = self.bot
        try:
            with bot.drain.answering():  # a shutdown waits for this answer
                if bot.drain.closing:
                    raise ShuttingDown("Byline is shutting down")
                bot.metrics.questions.labels(METRIC).inc()
                started = time.perf_counter()
                await interaction.response.defer(ephemeral=True, thinking=True)
                try:
                    answer = await bot.ask(asked.text, RESULTS, guild_id=interaction.guild_id)
                except BadQuestion as exc:
                    await send_ephemeral(interaction, str(exc))
                    return
                content = " ".join(x for x in (f"About [this message]({message.jump_url}).",
                                               asked.note()) if x)
                if not answer.answered:
                    bot.metrics.not_covered.labels(METRIC).inc()
                    await interaction.followup.send(
                        content, embed=render_not_covered(answer.question), ephemeral=True,
                        allowed_mentions=NO_PINGS)
                else:
                    key = await asyncio.to_thread(bot.feedback.remember, answer.question,
                                                  [h.passage.id for h in answer.hits])
                    await interaction.followup.send(content, embed=render_answer(answer),
                                                    view=feedback_view(key), ephemeral=True,
                                                    allowed_mentions=NO_PINGS)
                bot.metrics.answer_seconds.labels(METRIC).observe(time.perf_counter() - started)
        except asyncio.CancelledError:  # cut off by the shutdown
            await tell_restarting(interaction)
            raise


class UserCooldowns:
    """One question per `per` seconds per user (0: no limit). Users whose cooldown has passed
    are forgotten once more than `keep` are remembered, so months of readers cost no memory."""

    def __init__(self, per: float, keep: int = 10_000) -> None:
        self.per, self.keep = per, keep
        self._buckets: dict[int, app_commands.Cooldown] = {}  # user id -> bucket

    def __len__(self) -> int:
        return len(self._buckets)

    def hit(self, user_id: int) -> None:
        """Count a question by `user_id`; CommandOnCooldown if it came too soon."""
        if self.per <= 0:
            return
        if len(self._buckets) > self.keep:  # keep only those still cooling down
            self._buckets = {u: b for u, b in self._buckets.items() if not b.get_tokens()}
        bucket = self._buckets.setdefault(user_id, app_commands.Cooldown(1, self.per))
        if retry_after := bucket.update_rate_limit():
            raise app_commands.CommandOnCooldown(bucket, retry_after)


async def setup(bot: BylineBot) -> None:
    """discord.py's extension entry point (`load_extension("bot.cogs.menu")`)."""
    await bot.add_cog(AskByline(bot))
