"""The gallery on Slack: every finished public video is also posted to the team's gallery
channel, with who asked and where, exactly once (found again after a crash). The channel is
read from the team's settings at delivery, so a change applies to the next video."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine import Job, Post, Store
from bot.frontends.common import teams
from bot.frontends.slack.blocks import gallery_comment

log = logging.getLogger(__name__)

# (job, video, channel, thread or None, comment) -> "file" or "link"
PostVideo = Callable[[Job, Path, str, str | None, str], Awaitable[str]]


class SlackGallery:
    def __init__(self, client: AsyncWebClient, store: Store, post: PostVideo) -> None:
        self.client = client
        self.store = store
        self.post = post

    async def ensure(self, job: Job, video: Path, *, look_first: bool) -> Post | None:
        """Post the job to the gallery unless it is there (looked for with `look_first`);
        where it is, None when there is no gallery or it refused the post."""
        channel = await self.channel_id(job)
        if channel is None:
            return None
        try:
            found = await self._find(job, channel) if look_first else None
            if found is not None:
                return found
            mode = await self.post(job, video, channel, None, gallery_comment(job))
        except SlackApiError as exc:
            log.warning("job %s: cannot post to gallery %s (%s); skipped", job.id, channel,
                        exc.response.get("error"))
            return None
        return Post(platform="slack", channel_id=channel, mode=mode)

    async def channel_id(self, job: Job) -> str | None:
        if job.private:
            return None
        wanted = (await teams.load(self.store, job.team_id)).gallery_channel_id
        return wanted if wanted and wanted != job.channel_id else None

    async def _find(self, job: Job, channel: str) -> Post | None:
        answer = await self.client.conversations_history(channel=channel, limit=200)
        for message in answer.get("messages") or []:
            if gallery_comment(job) in str(message.get("text") or ""):
                return Post(platform="slack", channel_id=channel,
                            message_id=str(message.get("ts") or ""),
                            mode="file" if message.get("files") else "link")
        return None
