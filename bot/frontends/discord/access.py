"""Who may do what, read at each use so a settings change applies at once: the team's roles
that may make videos (admins always may), the requester-or-admin rule of job buttons, and
that a private job is its requester's alone.

An admin is a member with Manage Server. Interactions in a direct message carry no member, so
the member is fetched from the job's server (for a command, the home server DMs count in,
when DMs are allowed at all); someone who is not a member there may make nothing.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.config import Settings
from bot.engine import Job, Store
from bot.frontends.common import teams
from bot.frontends.common.texts import ONLY_REQUESTER, UNKNOWN_JOB
from bot.frontends.discord.guilds import guild_of
from bot.frontends.discord.job_messages import DMS_OFF, NOT_A_MEMBER, roles_text


def team_of(settings: Settings, interaction: discord.Interaction[Any]) -> str | None:
    """The team a command counts in: its server's, or in a DM the home server's when DMs are
    allowed; None when they are not."""
    if interaction.guild_id is not None:
        return str(interaction.guild_id)
    if settings.allow_dms and settings.dm_home_guild is not None:
        return str(settings.dm_home_guild)
    return None


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
    in_dm = interaction.guild_id is None  # nothing vouches for the person but the member list
    if not team.generate_role_ids and not in_dm:
        return None
    allowed = {str(r) for r in team.generate_role_ids}
    member = await member_of(client, interaction, team_id)
    if member is None and in_dm:
        return NOT_A_MEMBER
    if not allowed or is_admin(member) or (member is not None and any(
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


def action_refusal(interaction: discord.Interaction[Any], job: Job, *,
                   allow_dms: bool) -> str | None:
    """Why this person may not make `job` again (a button, or a form as submitted, which may
    be forged); None when they may. A private job is its requester's alone: whoever reruns it
    would see its prompt; and a DM holds only its requester's jobs. A job of another server is
    not acted on from this one, nor a job made in a DM from there once DMs are off."""
    mine = str(interaction.user.id) == job.user_id
    if interaction.guild_id is None:
        if not mine:
            return ONLY_REQUESTER
        if str(interaction.channel_id) == job.channel_id and not allow_dms:
            return DMS_OFF
    elif str(interaction.guild_id) != job.team_id:
        return UNKNOWN_JOB
    return ONLY_REQUESTER if job.private and not mine else None
