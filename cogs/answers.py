"""Answers shared by the cogs that read and show: each interaction is answered exactly once."""

from __future__ import annotations

import logging

import discord

from bot.frontends.common.texts import oops_text

log = logging.getLogger(__name__)


async def answer(interaction: discord.Interaction, text: str) -> None:
    """A private answer: the response if none was sent yet, else a followup."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


async def apologise(interaction: discord.Interaction, error: BaseException) -> None:
    """Anything unexpected: a short apology with a reference; the traceback to the log."""
    name = interaction.command.name if interaction.command else "a button"
    log.error("%s failed (reference %s)", name, interaction.id, exc_info=error)
    await answer(interaction, oops_text(str(interaction.id)))
