"""The buttons on job messages (Cancel, Rerun, Edit and rerun, Share, Delete) and the
edit-and-rerun form. Both are matched by custom_id, so messages posted before a restart keep
working; what they do is `bot.frontends.discord.job_actions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.frontends.common.job_buttons import FORM
from bot.frontends.discord.components import JobButton

if TYPE_CHECKING:
    from bot.frontends.discord.client import WanBot


class Controls(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A submitted edit-and-rerun form (discord.py keeps no copy of it: see edit_form)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        match = FORM.fullmatch(str((interaction.data or {}).get("custom_id", "")))
        if match is not None:
            await self.bot.actions.on_form(interaction, match["id"])


async def setup(bot: WanBot) -> None:
    bot.add_dynamic_items(JobButton)
    await bot.add_cog(Controls(bot))


async def teardown(bot: WanBot) -> None:
    bot.remove_dynamic_items(JobButton)
