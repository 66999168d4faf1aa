"""Extend on Discord: the one path of the Extend button's form and of /extend.

The person was checked like a rerun's (`access.action_refusal`: a private job is its requester's
alone; the team's roles) before this runs. Then the request is made like a command's: its most
video-seconds held against the team's limits (`AdmissionGate`, shared with the commands) before
anything is decoded or uploaded, the parent's last frame taken and prepared, and the job queued
through the `Submitter` (limits checked again at admission) with its progress shown.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import discord

from bot.engine import Display, Engine, Job, JobRequest, JobUpdate
from bot.errors import ApiError, InputError
from bot.frontends.common import extend
from bot.frontends.common.admission import AdmissionGate
from bot.frontends.common.declared import check_inputs
from bot.frontends.common.intake import Owner, build_request, most_seconds
from bot.frontends.common.teams import Claim, LimitError
from bot.frontends.discord.job_messages import input_error_text, limit_text
from bot.frontends.discord.submit import Submitter
from bot.media.prepare import MediaContext, MediaSource

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]


class Extender:
    def __init__(self, engine: Engine, submitter: Submitter, gate: AdmissionGate,
                 media: Callable[[], MediaContext], region: str) -> None:
        self.engine = engine
        self.submitter = submitter
        self.gate = gate
        self.media = media  # the bot's media context, opened in setup_hook
        self.region = region

    async def extend(self, interaction: Interaction, parent: Job, prompt: str | None,
                     last_frame: MediaSource | None = None) -> Job | None:
        """Queue the clip that continues `parent`, for an interaction already deferred
        ephemerally and a person already allowed; None once they were told why not."""
        try:
            queued = await self._queued(interaction, parent, prompt, last_frame)
        except InputError as exc:
            text = input_error_text(exc.option, exc.message)
        except LimitError as exc:
            text = limit_text(exc.reason, exc.resets_at)
        except ApiError as exc:
            log.warning("job %s: extension's input hand-over failed: %s", parent.id, exc)
            text = f"{exc.user_message()}\nNothing was submitted."
        else:
            if queued is not None:
                await self.submitter.publish(interaction, queued)
            return queued.job if queued is not None else None
        await interaction.followup.send(text, ephemeral=True)
        return None

    async def _queued(self, interaction: Interaction, parent: Job, prompt: str | None,
                      last_frame: MediaSource | None) -> JobUpdate | None:
        if why := extend.refusal(parent):
            raise InputError("job", why)
        here = interaction.guild_id is not None  # from a DM it continues in the job's channel
        owner = Owner("discord", parent.team_id,
                      str(interaction.channel_id) if here else parent.channel_id,
                      str(interaction.user.id))
        display = Display(upload_limit=interaction.filesize_limit if here else None)
        ctx = self.media()
        async with extend.last_frame(parent, ctx.media_pool) as frame:
            ask = extend.ask_for(parent, frame, prompt=prompt, last_frame=last_frame,
                                 display=display)
            check_inputs(ask)
            claim = Claim(owner.team_id, owner.user_id, most_seconds(ask))
            async with self.gate.hold(claim, self.engine.clock.now()):
                request = await build_request(ask, owner, ctx, self.region)
                return await self.submitter.enqueue(interaction, _child(request, parent))


def _child(request: JobRequest, parent: Job) -> JobRequest:
    return dataclasses.replace(request, parent_id=parent.id)
