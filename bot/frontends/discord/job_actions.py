"""What the job buttons and the edit-and-rerun form do.

Each click reads its job from the store, checks who may (bot.frontends.discord.access), and
answers the interaction exactly once; a refusal is an ephemeral note and changes nothing. Reruns
take the same path as commands (roles, limits at admission, progress), as the person who
clicked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.engine.store import Job, JobRequest
from bot.errors import InputError
from bot.frontends.common.reruns import Edit, again, editable, inputs_expired, parse_seed
from bot.frontends.discord.access import generate_refusal, may_manage
from bot.frontends.discord.components import Action, actions_on, edit_form, form_values, view_of
from bot.frontends.discord.delivery import VideoGone
from bot.frontends.discord.gallery import jump_url
from bot.frontends.discord.job_messages import (
    INPUTS_GONE,
    NOT_YOURS,
    NOTHING_TO_EDIT,
    ONLY_REQUESTER,
    RESTARTING,
    UNKNOWN_JOB,
    VIDEO_GONE,
    apology,
    cancel_text,
    deleted_text,
    input_error_text,
    shared_text,
)

if TYPE_CHECKING:
    from bot.frontends.discord.client import WanBot

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]
Handler = Callable[[Interaction, Job], Awaitable[None]]


async def answer(interaction: Interaction, text: str) -> None:
    """A private answer: the response if none was sent yet, else a followup."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


class JobActions:
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        self._sharing: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def on_button(self, interaction: Interaction, action: Action, job_id: str) -> None:
        handlers: dict[Action, Handler] = {
            Action.CANCEL: self.cancel, Action.RERUN: self.rerun, Action.EDIT: self.edit,
            Action.SHARE: self.share, Action.DELETE: self.delete,
        }
        await self._run(interaction, job_id, handlers[action])

    async def on_form(self, interaction: Interaction, job_id: str) -> None:
        await self._run(interaction, job_id, self.edited)

    async def _run(self, interaction: Interaction, job_id: str, handler: Handler) -> None:
        """Find the job and run the handler; anything unexpected gets an apology."""
        try:
            job = await self.bot.store.get_job(job_id)
            if self.bot.closing:
                await answer(interaction, RESTARTING)
            elif job is None or job.platform != "discord":
                await answer(interaction, UNKNOWN_JOB)
            else:
                async with self.bot.command_running():
                    await handler(interaction, job)
        except Exception:
            log.exception("button on job %s failed (reference %s)", job_id, interaction.id)
            with contextlib.suppress(discord.HTTPException):
                await answer(interaction, apology(str(interaction.id), job=False))

    # --- the buttons ----------------------------------------------------------------------

    async def cancel(self, interaction: Interaction, job: Job) -> None:
        if not await may_manage(self.bot, interaction, job):
            await answer(interaction, NOT_YOURS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.bot.engine.cancel(job.id)
        await answer(interaction, cancel_text(job.id, outcome))
        current = await self.bot.store.get_job(job.id)
        if current is not None:  # a cancel of a running job changes no state: show it now
            await self.bot.progress.on_update(await self.bot.engine.update_for(current))

    async def rerun(self, interaction: Interaction, job: Job) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        request = await self._again(interaction, job, None)
        if request is not None:
            await self.bot.submitter.submit(interaction, request)

    async def edit(self, interaction: Interaction, job: Job) -> None:
        """Open the form, filled in from the job (checked first: a form cannot refuse)."""
        refusal = await self._refusal(interaction, job)
        if refusal is None and not editable(job):
            refusal = NOTHING_TO_EDIT
        if refusal is not None:
            await answer(interaction, refusal)
            return
        await interaction.response.send_modal(edit_form(job))

    async def edited(self, interaction: Interaction, job: Job) -> None:
        """The form came back: a new job with the typed prompt, negative prompt and seed."""
        values = form_values((interaction.data or {}).get("components"))
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            seed = parse_seed(values.get("seed"))
        except InputError as exc:
            await answer(interaction, input_error_text(exc.option, exc.message))
            return
        edit = Edit(values.get("prompt"), values.get("negative_prompt"), seed)
        request = await self._again(interaction, job, edit)
        if request is not None:
            await self.bot.submitter.submit(interaction, request)

    async def share(self, interaction: Interaction, job: Job) -> None:
        """Post a private video to its channel, once; the Share button goes at once."""
        if str(interaction.user.id) != job.user_id:
            await answer(interaction, ONLY_REQUESTER)
            return
        shown = actions_on(interaction.message)
        left = [a for a in shown if a is not Action.SHARE]
        await interaction.response.edit_message(view=view_of(job, left))
        try:
            async with self._sharing[job.id]:
                where = await self._shared(job)
        except Exception:
            await interaction.edit_original_response(view=view_of(job, shown))  # try again
            raise
        text = VIDEO_GONE if where is None else shared_text(jump_url(job, where) or "")
        await interaction.followup.send(text, ephemeral=True)

    async def delete(self, interaction: Interaction, job: Job) -> None:
        if not await may_manage(self.bot, interaction, job):
            await answer(interaction, NOT_YOURS)
            return
        message = interaction.message
        if message is not None:
            with contextlib.suppress(discord.NotFound):  # already gone: that is what was asked
                await message.delete()
            await self._note_deleted(job, str(message.id))
        await answer(interaction, deleted_text(job))

    # --- small shared steps -----------------------------------------------------------------

    async def _refusal(self, interaction: Interaction, job: Job) -> str | None:
        """Why this person may not make this job again; None when they may."""
        refusal = await generate_refusal(self.bot, self.bot.store, interaction, job.team_id)
        if refusal is None and inputs_expired(job, self.bot.engine.clock.now()):
            refusal = INPUTS_GONE
        return refusal

    async def _again(self, interaction: Interaction, job: Job,
                     edit: Edit | None) -> JobRequest | None:
        """The rerun's request, as the person who clicked, where they clicked; None once they
        were told why not."""
        refusal = await self._refusal(interaction, job)
        if refusal is not None:
            await answer(interaction, refusal)
            return None
        here = interaction.guild_id is not None  # a click in a DM reruns in the job's channel
        try:
            return again(job, user_id=str(interaction.user.id),
                         channel_id=str(interaction.channel_id) if here else job.channel_id,
                         display={"upload_limit": interaction.filesize_limit} if here else {},
                         edit=edit)
        except InputError as exc:
            await answer(interaction, input_error_text(exc.option, exc.message))
            return None

    async def _shared(self, job: Job) -> dict[str, Any] | None:
        """Where the share went: recorded, found (after a crash), or posted now."""
        job = await self.bot.store.get_job(job.id) or job
        delivery = job.delivery or {}
        where = delivery.get("shared") or await self.bot.deliverer.find_share(job)
        if where is None:
            try:
                where = await self.bot.deliverer.share(job)
            except VideoGone:
                return None
        await self.bot.store.update_job(job.id, delivery={**delivery, "shared": where})
        return dict(where)

    async def _note_deleted(self, job: Job, message_id: str) -> None:
        delivery = job.delivery or {}
        if delivery.get("message_id") == message_id:
            await self.bot.store.update_job(job.id, delivery={**delivery, "deleted": True})
