"""Queueing a job from Slack: the one path commands, modals and reruns take.

The team's limits are checked under the engine's lock (`teams.check_admission`); then the
progress message is posted: in the channel, mentioning the requester, or for a private job in
the requester's DM with the app. Notices to the person go through `Notify` (a slash command's
`respond`, else an ephemeral message), because ephemeral messages cannot be edited.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine import Engine, Job, JobRequest, ProgressRef, Store
from bot.frontends.common import teams
from bot.frontends.common.job_buttons import Action
from bot.frontends.common.teams import LimitError
from bot.frontends.common.texts import apology
from bot.frontends.slack.blocks import job_blocks, job_text
from bot.frontends.slack.progress import SlackProgress

log = logging.getLogger(__name__)

Notify = Callable[[str], Awaitable[None]]  # tell the person who asked, privately
NOT_IN_CHANNEL = ("I am not in this channel, so I cannot post the video here. Invite me with "
                  "`/invite @wanbot` and try again.")


class SlackSubmitter:
    def __init__(self, client: AsyncWebClient, engine: Engine, store: Store,
                 progress: SlackProgress) -> None:
        self.client = client
        self.engine = engine
        self.store = store
        self.progress = progress

    async def submit(self, request: JobRequest, notify: Notify) -> Job | None:
        """Queue `request` and post its progress; None when it was refused (and said why)."""
        try:
            update = await self.engine.submit(request, check=self._within_limits)
        except LimitError as exc:
            await notify(f"{exc}\nNothing was submitted.")
            return None
        job = update.job
        try:
            channel = await self.where(job)
            posted = await self.client.chat_postMessage(
                channel=channel, text=job_text(update),
                blocks=job_blocks(update, [Action.CANCEL], picture=False))  # see progress
        except SlackApiError as exc:
            await self._stop(job, notify, exc.response.get("error"))
            return None
        ref = ProgressRef(platform="slack", channel_id=str(posted["channel"]),
                          message_id=str(posted["ts"]))
        await notify(f"Queued as job `{job.id}`.")
        saved = await self.engine.set_progress_ref(job.id, ref)
        if saved is not None:  # what changed while the message was being posted shows now
            self.progress.shown(job.id, update)
            await self.progress.on_update(await self.engine.update_for(saved))
        return job

    async def where(self, job: Job) -> str:
        """A private job's messages go to the requester's DM with the app."""
        if not job.private:
            return job.channel_id
        opened = await self.client.conversations_open(users=job.user_id)
        return str(opened["channel"]["id"])

    async def _within_limits(self, request: JobRequest, now: float) -> None:
        await teams.check_admission(self.store, request, now)

    async def _stop(self, job: Job, notify: Notify, error: object) -> None:
        """Without a place to show it, the job is stopped, not left to run unseen."""
        log.info("job %s: cannot post its progress (%s); stopping it", job.id, error)
        await self.engine.cancel(job.id)
        if error in ("not_in_channel", "channel_not_found"):
            await notify(NOT_IN_CHANNEL)
        else:
            await notify(apology(job.id, job=True))
