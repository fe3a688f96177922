"""/sources pages whose ◀️/▶️ buttons outlive the process.

Each button is a DynamicItem: its custom_id carries everything a click needs, the page it
leads to and who may turn it (`byline:src:next:3:<user id>`, at most 46 characters of
Discord's 100). A click renders that page from the coverage current at the moment of the
click, so buttons keep working after a restart or a hot reload, and a page that no longer
exists (the coverage shrank) shows the last one. Nothing is kept per message: no view
waits in memory for a timeout, however many /sources a bot answers in months.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from bot.coverage import NoCoverage
from bot.render import render_sources_page, sources_pages
from retrieval.store import ArticleInfo

if TYPE_CHECKING:
    from bot.app import BylineBot

NOT_YOURS = "Run `/sources` to page through your own list."
_NO_PINGS = discord.AllowedMentions.none()


class SourcesPageButton(discord.ui.DynamicItem[discord.ui.Button],
                        template=r"byline:src:(?P<step>prev|next):(?P<page>\d{1,9})"
                                 r":(?P<owner>\d{1,20})"):
    """◀️ Previous or ▶️ Next under a /sources page: shows page `page` (from 0) to the user
    who ran /sources (`owner_id`); anyone else is told to run their own."""

    def __init__(self, step: str, page: int, owner_id: int, *, disabled: bool = False) -> None:
        super().__init__(discord.ui.Button(
            style=discord.ButtonStyle.secondary,
            label="Previous" if step == "prev" else "Next",
            emoji="◀️" if step == "prev" else "▶️",
            custom_id=f"byline:src:{step}:{page}:{owner_id}",
            disabled=disabled,
        ))
        self.step, self.page, self.owner_id = step, page, owner_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item,
                             match: object, /) -> SourcesPageButton:
        m = match  # a re.Match of the template
        return cls(m["step"], int(m["page"]), int(m["owner"]))  # type: ignore[index]

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True,
                                                allowed_mentions=_NO_PINGS)
        return False

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: BylineBot = interaction.client  # type: ignore[assignment]
        try:  # this server's coverage now (it may have been unloaded, or emptied)
            if not bot.coverages.get(interaction.guild_id).loaded:
                await interaction.response.defer()  # loading may take longer than 3 s
            articles = await bot.articles_in(interaction.guild_id)
        except NoCoverage as exc:
            from bot.replies import send_ephemeral

            await send_ephemeral(interaction, str(exc))
            return
        embed, view = sources_page(articles, self.page, self.owner_id)
        if interaction.response.is_done():
            await interaction.edit_original_response(embed=embed, view=view,
                                                     allowed_mentions=_NO_PINGS)
            return
        await interaction.response.edit_message(embed=embed, view=view,
                                                allowed_mentions=_NO_PINGS)


def sources_page(articles: Sequence[ArticleInfo], page: int, owner_id: int
                 ) -> tuple[discord.Embed, discord.ui.View | None]:
    """Page `page` of /sources (clamped to the last) and its buttons for `owner_id`; no
    buttons when the list fits one page."""
    count = sources_pages(articles)
    page = max(0, min(page, count - 1))
    embed = render_sources_page(articles, page)
    if count == 1:
        return embed, None
    view = discord.ui.View(timeout=None)
    view.add_item(SourcesPageButton("prev", max(0, page - 1), owner_id, disabled=page == 0))
    view.add_item(SourcesPageButton("next", min(count - 1, page + 1), owner_id,
                                    disabled=page == count - 1))
    return embed, view
