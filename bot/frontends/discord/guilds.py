"""A team id as Discord's guild: teams are stored as text, Discord wants ints (and a DM's team
is no guild at all)."""

from __future__ import annotations

import discord


def guild_id(team_id: str) -> int | None:
    return int(team_id) if team_id.isdigit() else None


def guild_of(client: discord.Client, team_id: str) -> discord.Guild | None:
    """The cached guild of a team, if the bot is in it."""
    found = guild_id(team_id)
    return client.get_guild(found) if found is not None else None
