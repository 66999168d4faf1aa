"""/settings (Manage Server only) and /usage: a server's rules for making videos, and what it
has made. Settings live in the store and are read at each use, so a change needs no restart.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import InputError
from bot.frontends.common import teams
from bot.frontends.common.team_admin import SettingsChange, apply_change, usage_report
from bot.frontends.common.teams import TeamSettings
from bot.frontends.discord.command_pages import (
    NOT_ALLOWED,
    refusal_text,
    settings_embed,
    usage_embed,
)
from bot.provider import catalog
from bot.provider.catalog import Command
from cogs.answers import answer, apologise

if TYPE_CHECKING:
    from bot.frontends.discord.client import WanBot

JobCount = app_commands.Range[int, 0, 100]
Seconds = app_commands.Range[int, 0, 1_000_000]


def _choices(values: list[str]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=v, value=v) for v in values]


COMMANDS = _choices([c.value for c in Command])
MODELS = _choices(list(catalog.MODELS))
SIZES = _choices(list(dict.fromkeys(
    str(v) for c in Command for o in ("resolution", "size") for v in catalog.option_values(c, o))))


class Admin(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        self._saving = asyncio.Lock()  # two admins at once: neither change is lost

    @app_commands.command(description="See or change this server's video settings.")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(
        gallery="Also post every finished video here", clear_gallery="Stop the gallery posts",
        role1="Only members with one of these roles may make videos", role2="Another role",
        role3="Another role", clear_roles="Let everyone make videos",
        user_jobs="Unfinished jobs one person may have (0: no limit)",
        user_daily_seconds="Seconds of video one person may make per day (0: no limit)",
        server_daily_seconds="Seconds of video the server may make per day (0: no limit)",
        default_command="The command the defaults below are for",
        default_model="Model used when a person names none",
        default_resolution="Resolution (or size) used when a person names none",
        clear_defaults="Forget the defaults of default_command (or of every command)",
    )
    @app_commands.choices(default_command=COMMANDS, default_model=MODELS,
                          default_resolution=SIZES)
    async def settings(
        self, interaction: discord.Interaction, gallery: discord.TextChannel | None = None,
        clear_gallery: bool = False, role1: discord.Role | None = None,
        role2: discord.Role | None = None, role3: discord.Role | None = None,
        clear_roles: bool = False, user_jobs: JobCount | None = None,
        user_daily_seconds: Seconds | None = None, server_daily_seconds: Seconds | None = None,
        default_command: str | None = None, default_model: str | None = None,
        default_resolution: str | None = None, clear_defaults: bool = False,
    ) -> None:
        # Discord hides the command from others by default, but admins can change who sees it.
        if not (interaction.permissions.manage_guild or interaction.permissions.administrator):
            await answer(interaction, NOT_ALLOWED)
            return
        change = SettingsChange(
            gallery_channel_id=str(gallery.id) if gallery else None, clear_gallery=clear_gallery,
            role_ids=tuple(str(r.id) for r in (role1, role2, role3) if r is not None),
            clear_roles=clear_roles, user_max_concurrent=user_jobs,
            user_daily_seconds=user_daily_seconds, team_daily_seconds=server_daily_seconds,
            command=default_command, model=default_model, resolution=default_resolution,
            clear_defaults=clear_defaults,
        )
        await self.change(interaction, change)

    async def change(self, interaction: discord.Interaction, change: SettingsChange) -> None:
        team_id = str(interaction.guild_id)
        try:
            saved = await self.save(team_id, change)
        except InputError as exc:
            await answer(interaction, refusal_text(exc.option, exc.message))
            return
        text = None if change.empty else "Saved. The new settings apply from the next request."
        await interaction.response.send_message(text, embed=settings_embed(saved), ephemeral=True)

    async def save(self, team_id: str, change: SettingsChange) -> TeamSettings:
        async with self._saving:
            current = await teams.load(self.bot.store, team_id)
            if change.empty:
                return current
            updated = apply_change(current, change)
            await teams.save(self.bot.store, team_id, updated)
            return updated

    @app_commands.command(description="Video made today and over 30 days, and the limits.")
    @app_commands.guild_only()
    async def usage(self, interaction: discord.Interaction) -> None:
        team_id, now = str(interaction.guild_id), self.bot.engine.clock.now()
        report = await usage_report(self.bot.store, team_id, str(interaction.user.id), now)
        settings = await teams.load(self.bot.store, team_id)
        await interaction.response.send_message(embed=usage_embed(report, settings),
                                                ephemeral=True)

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await apologise(interaction, error)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Admin(bot))
