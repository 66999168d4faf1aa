"""The buttons on job messages (Cancel, Rerun, Edit and rerun, Extend, Share, Delete) and the
edit-and-rerun and Extend forms. All are matched by custom_id, so messages posted before a
restart keep working; what they do is `bot.frontends.discord.job_actions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.frontends.common.job_buttons import EXTEND_FORM, FORM
from bot.frontends.discord.components import JobButton

if TYPE_CHECKING:
    from bot.frontends.discord.client import WanBot


class Controls(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A submitted edit-and-rerun or Extend form (discord.py keeps no copy of them: see
        edit_form)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if match := FORM.fullmatch(custom_id):
            await self.bot.actions.on_form(interaction, match["id"])
        elif match := EXTEND_FORM.fullmatch(custom_id):
            await self.bot.actions.on_extend_form(interaction, match["id"])


async def setup(bot: WanBot) -> None:
    bot.add_dynamic_items(JobButton)
    await bot.add_cog(Controls(bot))


async def teardown(bot: WanBot) -> None:
    bot.remove_dynamic_items(JobButton)
