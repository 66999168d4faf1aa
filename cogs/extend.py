"""/extend: continue a finished clip from its last frame, optionally towards a last frame the
person attaches (the Extend button's form cannot take a file). Who may is a rerun's rule; the
work is `bot.frontends.discord.extend`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import InputError
from bot.frontends.common.intake import pick
from bot.frontends.common.texts import UNKNOWN_JOB
from bot.frontends.discord.inputs import accepts, attachment, link
from bot.frontends.discord.job_messages import input_error_text
from bot.provider.catalog import Command
from cogs.answers import answer, apologise

if TYPE_CHECKING:
    from bot.frontends.discord.client import WanBot

JobId = app_commands.Range[str, 1, 32]


class Extend(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(description="Continue a finished video from its last frame.")
    @app_commands.guild_only()
    @app_commands.rename(job_id="job")
    @app_commands.describe(
        job_id="The id of the video's job, like 1a2b3c4d (/jobs lists yours)",
        prompt="What happens next (default: the video's own prompt)",
        last_frame=accepts(Command.KF2V, "last_frame_url", "Where the new clip ends"),
        last_frame_url="Or a link to it",
    )
    async def extend(self, interaction: discord.Interaction, job_id: JobId,
                     prompt: str | None = None, last_frame: discord.Attachment | None = None,
                     last_frame_url: str | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.bot.lifecycle.command_running():
            job = await self.bot.store.get_job(job_id.strip().lower())
            if job is None or job.platform != "discord":
                await answer(interaction, UNKNOWN_JOB)
                return
            refusal = await self.bot.actions.extend_refusal(interaction, job)
            if refusal is not None:
                await answer(interaction, refusal)
                return
            try:
                [end] = pick("last_frame", attachment(last_frame), link(last_frame_url),
                             required=False) or [None]
            except InputError as exc:
                await answer(interaction, input_error_text(exc.option, exc.message))
                return
            await self.bot.extender.extend(interaction, job, prompt or job.prompt, end)

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await apologise(interaction, error)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Extend(bot))
