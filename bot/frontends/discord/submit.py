"""Queueing a job from Discord: the one path every command, rerun and edited rerun takes.

The team's limits are checked at admission (`teams.check_admission`, under the engine's lock,
so requests made at the same moment cannot pass a limit together): a request over a limit is
refused before it is queued, with what is left and when it resets. Then the progress: a public
message in the channel that mentions the requester, or for a private job the interaction's own
ephemeral answer, edited while its token lives.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.engine import Engine, Job, JobRequest, JobUpdate, ProgressRef, Store
from bot.frontends.common import teams
from bot.frontends.common.teams import LimitError
from bot.frontends.common.texts import apology
from bot.frontends.discord.guilds import guild_id
from bot.frontends.discord.job_messages import (
    allowed_mentions,
    confirm_text,
    limit_text,
    private_text,
    queued_text,
)
from bot.frontends.discord.progress import Face, ProgressBoard
from bot.frontends.discord.video_posts import interaction_ref

log = logging.getLogger(__name__)


class Submitter:
    def __init__(self, client: discord.Client, engine: Engine, store: Store,
                 progress: ProgressBoard) -> None:
        self.client = client
        self.engine = engine
        self.store = store
        self.progress = progress

    async def submit(self, interaction: discord.Interaction[Any],
                     request: JobRequest) -> Job | None:
        """Queue `request` for an interaction deferred ephemerally, and show its progress;
        None when a limit refused it (the person was told)."""
        update = await self.enqueue(interaction, request)
        if update is not None:
            await self.publish(interaction, update)
        return update.job if update is not None else None

    async def enqueue(self, interaction: discord.Interaction[Any],
                      request: JobRequest) -> JobUpdate | None:
        """Queue `request` within the team's limits; None when one refused it (the person
        was told). `publish` shows it."""
        try:
            return await self.engine.submit(request, check=self._within_limits)
        except LimitError as exc:
            await interaction.followup.send(limit_text(exc.reason, exc.resets_at),
                                            ephemeral=True)
            return None

    async def _within_limits(self, request: JobRequest, now: float) -> None:
        await teams.check_admission(self.store, request, now)

    async def publish(self, interaction: discord.Interaction[Any], update: JobUpdate) -> None:
        """Show the progress; without a place to show it the job is stopped, not orphaned."""
        job = update.job
        try:
            if job.private:
                await self._show_private(interaction, update)
                return
            message = await self._show_public(interaction, update)
        except Exception:
            log.exception("job %s: could not show its progress", job.id)
            log.info("job %s: stopped: %s", job.id, await self.engine.cancel(job.id))
            await interaction.followup.send(apology(job.id, job=True), ephemeral=True)
            return
        try:
            await interaction.followup.send(confirm_text(job, message.jump_url), ephemeral=True)
        except discord.HTTPException as exc:  # the job runs on; only the "thinking" stays
            log.warning("job %s: could not answer the command (%s)", job.id, exc.status)

    async def _show_public(self, interaction: discord.Interaction[Any],
                           update: JobUpdate) -> discord.Message:
        """The progress message in the channel, mentioning the requester."""
        job = update.job
        channel = self.client.get_partial_messageable(int(job.channel_id),
                                                      guild_id=guild_id(job.team_id))
        face = Face.of(update)
        message = await channel.send(queued_text(job), allowed_mentions=allowed_mentions(job),
                                     **face.send_kwargs())
        ref = ProgressRef(channel_id=str(message.channel.id), message_id=str(message.id))
        await self._track(job, ref, face)
        return message

    async def _show_private(self, interaction: discord.Interaction[Any],
                            update: JobUpdate) -> None:
        """The progress as the interaction's ephemeral answer: only the requester sees it."""
        face = Face.of(update)
        message = await interaction.followup.send(private_text(update.job), ephemeral=True,
                                                  wait=True, **face.send_kwargs())
        await self._track(update.job, interaction_ref(interaction, message.id), face)

    async def _track(self, job: Job, ref: ProgressRef, face: Face) -> None:
        saved = await self.engine.set_progress_ref(job.id, ref)
        if saved is not None:
            await self.progress.track(await self.engine.update_for(saved), face)
