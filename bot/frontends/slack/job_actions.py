"""What the job buttons and the Edit and rerun and Extend modals do on Slack, with Discord's
rules: Cancel and Delete for the requester or a workspace admin, Share for the requester, Rerun,
Edit and Extend for anyone who may make videos (a private job: its requester alone). Each click
reads its job from the store, so buttons on messages posted by an earlier process work the same.
Answers are ephemeral notes (`Notify`)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import replace

from bot.engine import Engine, Job, JobRequest, Post, Store
from bot.errors import InputError
from bot.frontends.common import extend
from bot.frontends.common.job_buttons import Action
from bot.frontends.common.lifecycle import Lifecycle
from bot.frontends.common.reruns import Edit, again, editable, inputs_expired, parse_seed
from bot.frontends.common.sharing import share_once
from bot.frontends.common.texts import (
    INPUTS_GONE,
    NOTHING_TO_EDIT,
    ONLY_REQUESTER,
    RESTARTING,
    UNKNOWN_JOB,
    VIDEO_GONE,
    cancel_text,
    deleted_text,
)
from bot.frontends.slack.access import SlackAccess
from bot.frontends.slack.delivery import SlackDeliverer
from bot.frontends.slack.generate import SlackGenerate
from bot.frontends.slack.progress import SlackProgress
from bot.frontends.slack.submit import Notify, SlackSubmitter
from bot.media.prepare import MediaSource

log = logging.getLogger(__name__)

NOT_YOURS = "Only the person who started this job, or a workspace admin, can do that."


class SlackJobActions:
    def __init__(self, engine: Engine, store: Store, *, access: SlackAccess,
                 lifecycle: Lifecycle, progress: SlackProgress, deliverer: SlackDeliverer,
                 submitter: SlackSubmitter, generate: SlackGenerate) -> None:
        self.engine = engine
        self.store = store
        self.access = access
        self.lifecycle = lifecycle
        self.progress = progress
        self.deliverer = deliverer
        self.submitter = submitter
        self.generate = generate  # Extend's path: limits held, the last frame prepared
        self._sharing: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def job(self, job_id: str, notify: Notify) -> Job | None:
        """The Slack job a click is about; None once the person was told why not."""
        if self.lifecycle.closing:
            await notify(RESTARTING)
            return None
        job = await self.store.get_job(job_id)
        if job is None or job.platform != "slack":
            await notify(UNKNOWN_JOB)
            return None
        return job

    async def on_click(self, action: Action, job: Job, user_id: str, notify: Notify) -> None:
        handlers = {Action.CANCEL: self.cancel, Action.RERUN: self.rerun,
                    Action.SHARE: self.share, Action.DELETE: self.delete}
        async with self.lifecycle.command_running():
            await handlers[action](job, user_id, notify)

    async def cancel(self, job: Job, user_id: str, notify: Notify) -> None:
        if not await self.access.may_manage(job, user_id):
            await notify(NOT_YOURS)
            return
        await notify(cancel_text(job.id, await self.engine.cancel(job.id)))
        await self._show(job.id)

    async def rerun(self, job: Job, user_id: str, notify: Notify) -> None:
        request = await self.again(job, user_id, None, notify)
        if request is not None:
            await self.submitter.submit(request, notify)

    async def edit_refusal(self, job: Job, user_id: str) -> str | None:
        """Why this person may not open the edit modal; None when they may."""
        refusal = await self._refusal(job, user_id)
        if refusal is None and not editable(job):
            refusal = NOTHING_TO_EDIT
        return refusal

    async def edited(self, job: Job, user_id: str, typed: tuple[str, str, str],
                     notify: Notify) -> None:
        """The edit modal came back: a new job with the typed prompt, negative prompt, seed."""
        prompt, negative, seed_text = typed
        try:
            seed = parse_seed(seed_text)
        except InputError as exc:
            await notify(f"*{exc.option}*: {exc.message}\nNothing was submitted.")
            return
        request = await self.again(job, user_id, Edit(prompt, negative, seed), notify)
        if request is not None:
            async with self.lifecycle.command_running():
                await self.submitter.submit(request, notify)

    async def extend_refusal(self, job: Job, user_id: str) -> str | None:
        """Why this person may not extend this job (a rerun's rules, and a video to continue);
        None when they may."""
        if job.private and user_id != job.user_id:
            return ONLY_REQUESTER
        refusal = await self.access.generate_refusal(job.team_id, user_id)
        return refusal or extend.refusal(job)

    async def extended(self, job: Job, user_id: str, typed: tuple[str, MediaSource | None],
                       notify: Notify) -> None:
        """The Extend modal came back: checked again (it may be forged), then the new clip."""
        refusal = await self.extend_refusal(job, user_id)
        if refusal is not None:
            await notify(refusal)
            return
        prompt, last = typed
        await self.generate.extend(job, user_id, prompt, last, notify)

    async def share(self, job: Job, user_id: str, notify: Notify) -> None:
        if user_id != job.user_id:
            await notify(ONLY_REQUESTER)
            return
        async with self._sharing[job.id]:
            where = await self._shared(job)
        await notify(VIDEO_GONE if where is None else "Shared in the job's channel.")
        await self._show(job.id)

    async def delete(self, job: Job, user_id: str, notify: Notify) -> None:
        if not await self.access.may_manage(job, user_id):
            await notify(NOT_YOURS)
            return
        await self.deliverer.delete(job)
        if job.delivery is not None:
            await self.store.update_job(job.id, delivery=replace(job.delivery, deleted=True))
        await notify(deleted_text(job.id))
        await self._show(job.id)

    async def again(self, job: Job, user_id: str, edit: Edit | None,
                    notify: Notify) -> JobRequest | None:
        """The rerun's request, as the person who clicked; None once they were told why not."""
        refusal = await self._refusal(job, user_id)
        if refusal is not None:
            await notify(refusal)
            return None
        try:
            return again(job, user_id=user_id, channel_id=job.channel_id, edit=edit)
        except InputError as exc:
            await notify(f"*{exc.option}*: {exc.message}\nNothing was submitted.")
            return None

    async def _refusal(self, job: Job, user_id: str) -> str | None:
        """Why this person may not make `job` again (a click, or a form as submitted, which
        may be forged). A private job is its requester's alone: a rerun would show its prompt."""
        if job.private and user_id != job.user_id:
            return ONLY_REQUESTER
        refusal = await self.access.generate_refusal(job.team_id, user_id)
        if refusal is None and inputs_expired(job, self.engine.clock.now()):
            refusal = INPUTS_GONE
        return refusal

    async def _shared(self, job: Job) -> Post | None:
        return await share_once(self.store, job, self.deliverer)

    async def _show(self, job_id: str) -> None:
        """The message shows the change at once (a cancel of a running job changes no state)."""
        current = await self.store.get_job(job_id)
        if current is not None:
            await self.progress.on_update(await self.engine.update_for(current))
