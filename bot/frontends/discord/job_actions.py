"""What the job buttons and the edit-and-rerun form do.

Each click reads its job from the store, checks who may (`access`), and answers the
interaction exactly once; a refusal is an ephemeral note and changes nothing. Reruns take the
same path as commands (roles, limits at admission, progress), as the person who clicked. A
private job is made again only by its requester, and a submitted form is checked like a click.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import discord

from bot.engine import Engine, Job, JobRequest, Post, Store
from bot.errors import InputError
from bot.frontends.common import extend
from bot.frontends.common.job_buttons import Action
from bot.frontends.common.lifecycle import Lifecycle
from bot.frontends.common.reruns import Edit, again, editable, inputs_expired, parse_seed
from bot.frontends.common.sharing import share_once
from bot.frontends.common.texts import (
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
)
from bot.frontends.discord.access import action_refusal, generate_refusal, may_manage
from bot.frontends.discord.components import (
    actions_on,
    edit_form,
    extend_form,
    form_values,
    view_of,
)
from bot.frontends.discord.delivery import DiscordDeliverer
from bot.frontends.discord.extend import Extender
from bot.frontends.discord.gallery import jump_url
from bot.frontends.discord.job_messages import input_error_text, shared_text
from bot.frontends.discord.progress import ProgressBoard
from bot.frontends.discord.submit import Submitter

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
    def __init__(self, client: discord.Client, engine: Engine, store: Store, *,
                 lifecycle: Lifecycle, progress: ProgressBoard, deliverer: DiscordDeliverer,
                 submitter: Submitter, extender: Extender, allow_dms: bool = False) -> None:
        self.client = client
        self.engine = engine
        self.store = store
        self.lifecycle = lifecycle
        self.progress = progress
        self.deliverer = deliverer
        self.submitter = submitter
        self.extender = extender
        self.allow_dms = allow_dms
        self._sharing: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def on_button(self, interaction: Interaction, action: Action, job_id: str) -> None:
        handlers: dict[Action, Handler] = {
            Action.CANCEL: self.cancel, Action.RERUN: self.rerun, Action.EDIT: self.edit,
            Action.SHARE: self.share, Action.DELETE: self.delete, Action.EXTEND: self.extend,
        }
        await self._run(interaction, job_id, handlers[action])

    async def on_form(self, interaction: Interaction, job_id: str) -> None:
        await self._run(interaction, job_id, self.edited)

    async def on_extend_form(self, interaction: Interaction, job_id: str) -> None:
        await self._run(interaction, job_id, self.extended)

    async def _run(self, interaction: Interaction, job_id: str, handler: Handler) -> None:
        """Find the job and run the handler; anything unexpected gets an apology."""
        try:
            job = await self.store.get_job(job_id)
            if self.lifecycle.closing:
                await answer(interaction, RESTARTING)
            elif job is None or job.platform != "discord":
                await answer(interaction, UNKNOWN_JOB)
            else:
                async with self.lifecycle.command_running():
                    await handler(interaction, job)
        except Exception:
            log.exception("button on job %s failed (reference %s)", job_id, interaction.id)
            with contextlib.suppress(discord.HTTPException):
                await answer(interaction, apology(str(interaction.id), job=False))

    # --- the buttons ----------------------------------------------------------------------

    async def cancel(self, interaction: Interaction, job: Job) -> None:
        if not await may_manage(self.client, interaction, job):
            await answer(interaction, NOT_YOURS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.engine.cancel(job.id)
        await answer(interaction, cancel_text(job.id, outcome))
        current = await self.store.get_job(job.id)
        if current is not None:  # a cancel of a running job changes no state: show it now
            await self.progress.on_update(await self.engine.update_for(current))

    async def rerun(self, interaction: Interaction, job: Job) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        request = await self._again(interaction, job, None)
        if request is not None:
            await self.submitter.submit(interaction, request)

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
            await self.submitter.submit(interaction, request)

    async def extend(self, interaction: Interaction, job: Job) -> None:
        """Open the Extend form (checked first: a form cannot refuse)."""
        refusal = await self.extend_refusal(interaction, job)
        if refusal is not None:
            await answer(interaction, refusal)
            return
        await interaction.response.send_modal(extend_form(job))

    async def extended(self, interaction: Interaction, job: Job) -> None:
        """The Extend form came back: checked again (its custom_id may be forged), then the
        clip that continues this one."""
        values = form_values((interaction.data or {}).get("components"))
        await interaction.response.defer(ephemeral=True, thinking=True)
        refusal = await self.extend_refusal(interaction, job)
        if refusal is not None:
            await answer(interaction, refusal)
            return
        await self.extender.extend(interaction, job, values.get("prompt"))

    async def extend_refusal(self, interaction: Interaction, job: Job) -> str | None:
        """Why this person may not extend this job (the rules of a rerun, and a video to
        continue); None when they may."""
        refusal = action_refusal(interaction, job, allow_dms=self.allow_dms)
        if refusal is None:
            refusal = await generate_refusal(self.client, self.store, interaction, job.team_id)
        return refusal or extend.refusal(job)

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
        if not await may_manage(self.client, interaction, job):
            await answer(interaction, NOT_YOURS)
            return
        message = interaction.message
        if message is not None:
            with contextlib.suppress(discord.NotFound):  # already gone: that is what was asked
                await message.delete()
            await self._note_deleted(job, str(message.id))
        await answer(interaction, deleted_text(job.id))

    # --- small shared steps -----------------------------------------------------------------

    async def _refusal(self, interaction: Interaction, job: Job) -> str | None:
        """Why this person may not make this job again; None when they may. Asked again when
        a form comes back: its custom_id names any job, and may be forged."""
        refusal = action_refusal(interaction, job, allow_dms=self.allow_dms)
        if refusal is None:
            refusal = await generate_refusal(self.client, self.store, interaction, job.team_id)
        if refusal is None and inputs_expired(job, self.engine.clock.now()):
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
                         upload_limit=interaction.filesize_limit if here else None,
                         edit=edit)
        except InputError as exc:
            await answer(interaction, input_error_text(exc.option, exc.message))
            return None

    async def _shared(self, job: Job) -> Post | None:
        return await share_once(self.store, job, self.deliverer)

    async def _note_deleted(self, job: Job, message_id: str) -> None:
        delivery = job.delivery
        if delivery is not None and delivery.message_id == message_id:
            await self.store.update_job(job.id, delivery=replace(delivery, deleted=True))
