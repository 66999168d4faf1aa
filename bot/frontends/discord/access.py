"""Who may do what, read at each use so a settings change applies at once: the team's roles
that may make videos (admins always may), and the requester-or-admin rule of job buttons.

An admin is a member with Manage Server. Clicks in a direct message carry no member, so the
member is fetched from the job's server.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.engine import Job, Store
from bot.frontends.common import teams
from bot.frontends.discord.guilds import guild_of
from bot.frontends.discord.job_messages import roles_text


async def member_of(client: discord.Client, interaction: discord.Interaction[Any],
                    team_id: str) -> discord.Member | None:
    """The person as a member of the team's server; None if they are not (any more)."""
    user = interaction.user
    if isinstance(user, discord.Member) and str(user.guild.id) == team_id:
        return user
    guild = guild_of(client, team_id)
    if guild is None:
        return None
    try:
        return await guild.fetch_member(user.id)
    except discord.NotFound:
        return None


def is_admin(member: discord.Member | None) -> bool:
    return member is not None and member.guild_permissions.manage_guild


async def generate_refusal(client: discord.Client, store: Store,
                           interaction: discord.Interaction[Any], team_id: str) -> str | None:
    """Why this person may not make videos in this team; None when they may."""
    team = await teams.load(store, team_id)
    if not team.generate_role_ids:
        return None
    allowed = {str(r) for r in team.generate_role_ids}
    member = await member_of(client, interaction, team_id)
    if is_admin(member) or (member is not None and any(
            str(role.id) in allowed for role in member.roles)):
        return None
    guild = guild_of(client, team_id)
    roles = [guild.get_role(int(r)) if guild and r.isdigit() else None for r in allowed]
    return roles_text(sorted(role.name for role in roles if role is not None))


async def may_manage(client: discord.Client, interaction: discord.Interaction[Any],
                     job: Job) -> bool:
    """The requester, or an admin of the job's server."""
    if str(interaction.user.id) == job.user_id:
        return True
    return is_admin(await member_of(client, interaction, job.team_id))
