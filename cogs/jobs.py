"""/jobs, /job and /queue: what a person asked for, one job in full, and what waits where.

All answers are private (ephemeral) and read the store at the moment they are asked.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine import AT_PROVIDER, Job
from bot.frontends.discord.command_pages import (
    MAX_LISTED,
    job_embed,
    jobs_page,
    page_count,
    queue_embed,
    unknown_job_text,
)
from cogs.answers import answer, apologise

if TYPE_CHECKING:
    from bot.frontends.discord.client import WanBot

# Paging lives as long as the ephemeral message is worth keeping; under the 15 minutes the
# interaction token lives, so the buttons can still be removed when it ends.
PAGES_TIMEOUT_S = 600.0
JobId = app_commands.Range[str, 1, 32]


class Jobs(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(description="Your recent jobs in this server.")
    @app_commands.guild_only()
    async def jobs(self, interaction: discord.Interaction) -> None:
        listed = await self.recent(interaction)
        kwargs: dict[str, Any] = {}
        if page_count(len(listed)) > 1:
            kwargs["view"] = JobPages(self, interaction, len(listed))
        await interaction.response.send_message(
            embed=jobs_page(listed, 0, interaction.guild_id or 0), ephemeral=True, **kwargs)

    @app_commands.command(description="Everything about one job in this server.")
    @app_commands.guild_only()
    @app_commands.rename(job_id="id")
    @app_commands.describe(job_id="The job's id, like 1a2b3c4d (/jobs lists yours)")
    async def job(self, interaction: discord.Interaction, job_id: JobId) -> None:
        wanted = job_id.strip().lower()
        found = await self.visible_job(interaction, wanted)
        if found is None:
            await answer(interaction, unknown_job_text(wanted))
            return
        update = await self.bot.engine.update_for(found)
        chain = await self.bot.store.chain_of(found.id) if found.parent_id else [found]
        await interaction.response.send_message(
            embed=job_embed(update, interaction.guild_id or 0, chain), ephemeral=True)

    @app_commands.command(description="What is waiting and running, by model, with estimates.")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction) -> None:
        engine = self.bot.engine
        waiting = await engine.queue()
        running = [await engine.update_for(j) for j in await self.bot.store.jobs_in(AT_PROVIDER)]
        models = {*waiting, *(u.job.model for u in running)}
        slots = {m: engine.slots(m) for m in models}
        viewer = (str(interaction.guild_id), str(interaction.user.id))
        embed = queue_embed(waiting, running, slots, viewer, engine.clock.now())
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def recent(self, interaction: discord.Interaction) -> list[Job]:
        """The caller's newest jobs in this server."""
        return await self.bot.store.user_jobs(
            "discord", str(interaction.guild_id), str(interaction.user.id), MAX_LISTED)

    async def visible_job(self, interaction: discord.Interaction, job_id: str) -> Job | None:
        """The job if this server's and not someone else's private one; else None, so other
        servers' ids cannot be probed."""
        job = await self.bot.store.get_job(job_id)
        if job is None or job.platform != "discord" or job.team_id != str(interaction.guild_id):
            return None
        if job.private and job.user_id != str(interaction.user.id):
            return None
        return job

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await apologise(interaction, error)


class JobPages(discord.ui.View):
    """Previous/Next over the caller's jobs. Each click reads the store again, so states are
    current. No owner check: only the caller sees an ephemeral message and its buttons."""

    def __init__(self, cog: Jobs, origin: discord.Interaction, total: int) -> None:
        super().__init__(timeout=PAGES_TIMEOUT_S)
        self.cog = cog
        self.origin = origin
        self.page = 0
        self.pages = page_count(total)
        self._enable()

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous_page(self, interaction: discord.Interaction,
                            button: discord.ui.Button[JobPages]) -> None:
        await self.turn(interaction, -1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction,
                        button: discord.ui.Button[JobPages]) -> None:
        await self.turn(interaction, +1)

    async def turn(self, interaction: discord.Interaction, step: int) -> None:
        listed = await self.cog.recent(interaction)
        self.pages = page_count(len(listed))
        self.page = min(max(0, self.page + step), self.pages - 1)
        self._enable()
        embed = jobs_page(listed, self.page, interaction.guild_id or 0)
        await interaction.response.edit_message(embed=embed, view=self)

    def _enable(self) -> None:
        self.previous_page.disabled = self.page <= 0
        self.next_page.disabled = self.page >= self.pages - 1

    async def on_timeout(self) -> None:
        """Take the buttons away rather than leave ones that no longer answer."""
        with contextlib.suppress(discord.HTTPException):
            await self.origin.edit_original_response(view=None)

    async def on_error(self, interaction: discord.Interaction, error: Exception,
                       item: discord.ui.Item[Any]) -> None:
        await apologise(interaction, error)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Jobs(bot))
