"""An extension's whole chain posted on Slack, right after its clip: uploaded into the same
thread (titled `wan-<job id>-chain.mp4`, so a restart finds it instead of uploading twice), or,
when there is no chain video or Slack refuses the upload, a note in the thread saying why.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine import ChainVideo, Job, Post
from bot.errors import Undeliverable
from bot.frontends.common.chains import chain_marker, chain_text
from bot.frontends.slack.blocks import chain_title
from bot.frontends.slack.delivery import NO_CHANNEL, NO_UPLOAD, SlackDeliverer

log = logging.getLogger(__name__)


class SlackChainPoster:
    def __init__(self, client: AsyncWebClient, deliverer: SlackDeliverer) -> None:
        self.client = client
        self.deliverer = deliverer

    def upload_limit(self, job: Job) -> int:
        return self.deliverer.upload_limit(job)

    async def post_chain(self, job: Job, chain: ChainVideo) -> Post:
        channel, thread = _thread(job)
        try:
            if chain.path is not None and await self._uploaded(job, chain, channel, thread):
                return Post(platform="slack", channel_id=channel, message_id=thread, mode="file")
            if chain.path is None:
                await self.client.chat_postMessage(channel=channel, thread_ts=thread,
                                                   text=chain_text(job, chain))
        except SlackApiError as exc:
            if exc.response.get("error") in NO_CHANNEL:
                raise Undeliverable(f"Slack answered {exc.response.get('error')}") from exc
            raise
        return Post(platform="slack", channel_id=channel, message_id=thread)

    async def _uploaded(self, job: Job, chain: ChainVideo, channel: str, thread: str) -> bool:
        """Upload the chain video; False (and a note posted instead) when Slack refuses it."""
        video = Path(chain.path or "")
        try:
            await self.deliverer.upload(job, video, channel, thread, chain_text(job, chain),
                                        chain_title(job))
            return True
        except SlackApiError as exc:
            error = str(exc.response.get("error"))
            if error not in NO_UPLOAD:
                raise
            log.info("job %s: chain upload refused (%s)", job.id, error)
            note = dataclasses.replace(chain, path=None, note=NO_UPLOAD[error].lower())
            await self.client.chat_postMessage(channel=channel, thread_ts=thread,
                                               text=chain_text(job, note))
            return False

    async def find_chain(self, job: Job) -> Post | None:
        channel, thread = _thread(job)
        answer = await self.client.conversations_replies(channel=channel, ts=thread, limit=200)
        for message in answer.get("messages") or []:
            files = message.get("files") or []
            if any(f.get("title") == chain_title(job) for f in files):
                return Post(platform="slack", channel_id=channel, message_id=thread, mode="file")
            if chain_marker(job) in str(message.get("text") or ""):
                return Post(platform="slack", channel_id=channel, message_id=thread)
        return None


def _thread(job: Job) -> tuple[str, str]:
    """The clip's thread: its progress message (in the channel, or the DM of a private job)."""
    ref = job.progress_ref
    if ref is None:
        raise Undeliverable("the job has no Slack message to reply to")
    return ref.channel_id, ref.message_id
