"""Posts a finished video into its progress message's thread on Slack, exactly once.

Upload is Slack's three steps (`files.getUploadURLExternal`, the bytes streamed from disk to the
upload URL, `files.completeUploadExternal` into the thread), titled `wan-<job id>.mp4` so a
restart finds an upload made just before a crash instead of making a second one. When the
workspace forbids uploads, the file is too big, or the bot may post in a public channel but is
not in it (files need membership), the provider's link goes there instead, saying why.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock
from bot.engine import RESULT_TTL_S, Delivery, Job, Post, Store
from bot.errors import Undeliverable
from bot.frontends.common.sharing import VideoGone
from bot.frontends.common.texts import fit_note
from bot.frontends.slack.blocks import (
    LINK_NOTE,
    link_comment,
    share_comment,
    video_comment,
    video_title,
)
from bot.frontends.slack.gallery import SlackGallery
from bot.units import MiB

log = logging.getLogger(__name__)

MAX_UPLOAD = 1024 * MiB  # Slack's own limit per file
NO_CHANNEL = frozenset({"channel_not_found", "not_in_channel", "is_archived", "user_not_found"})
UPLOAD_TIMEOUT_S = 600.0
# why a link comes instead of the file
TOO_LARGE = "It is too large to upload here"
UPLOADS_OFF = "This workspace does not allow uploads"
NOT_KEPT = "The file is no longer kept here"
NOT_MEMBER = "I can upload files only in channels I am in (invite me with `/invite @wanbot`)"
# uploads Slack refused, and why (chat:write.public lets the bot post in a public channel it
# is not in, but files need membership)
NO_UPLOAD = {"file_uploads_disabled": UPLOADS_OFF, "file_uploads_except_images_disabled":
             UPLOADS_OFF, "file_upload_size_restricted": TOO_LARGE,
             "invalid_file_size": TOO_LARGE, "not_in_channel": NOT_MEMBER}


class SlackDeliverer:
    def __init__(self, client: AsyncWebClient, http: aiohttp.ClientSession, clock: Clock,
                 store: Store, *, max_upload: int = MAX_UPLOAD) -> None:
        self.client = client
        self.http = http
        self.clock = clock
        self.max_upload = max_upload
        self.gallery = SlackGallery(client, store, self._post)

    def upload_limit(self, job: Job) -> int:
        """Slack's own limit per file: a workspace's own stricter one cannot be read (an upload
        over it is refused, and the link goes instead)."""
        return self.max_upload

    async def deliver(self, job: Job, video: Path) -> Delivery:
        ref = job.progress_ref
        if ref is None:
            raise Undeliverable("the job has no Slack message to reply to")
        try:
            mode = await self._post(job, video, ref.channel_id, ref.message_id,
                                    video_comment(job) + _fit_line(job))
        except SlackApiError as exc:
            if exc.response.get("error") in NO_CHANNEL:
                raise Undeliverable(f"Slack answered {exc.response.get('error')}") from exc
            raise
        gallery = await self.gallery.ensure(job, video, look_first=False)
        return Delivery(platform="slack", channel_id=ref.channel_id, message_id=ref.message_id,
                        mode=mode, place="dm" if job.private else None, gallery=gallery)

    async def find_delivery(self, job: Job) -> Delivery | None:
        """The upload (or link) a delivery made before a crash, if any."""
        ref = job.progress_ref
        if ref is None:
            return None
        answer = await self.client.conversations_replies(channel=ref.channel_id,
                                                         ts=ref.message_id, limit=200)
        for message in answer.get("messages") or []:
            mode = _mode_of(message, job)
            if mode is not None:
                video = Path(job.post_path or "")
                gallery = await self.gallery.ensure(job, video, look_first=True)
                return Delivery(platform="slack", channel_id=ref.channel_id,
                                message_id=ref.message_id, mode=mode,
                                place="dm" if job.private else None, gallery=gallery)
        return None

    async def share(self, job: Job) -> Post:
        """A private job's video, posted to the channel it was asked in."""
        video = Path(job.post_path or "")
        link_dead = self.clock.now() - (job.finished_at or 0) > RESULT_TTL_S
        if link_dead and await _size(video) is None:
            raise VideoGone(job.id)
        mode = await self._post(job, video, job.channel_id, None, share_comment(job))
        return Post(platform="slack", channel_id=job.channel_id, mode=mode)

    async def find_share(self, job: Job) -> Post | None:
        answer = await self.client.conversations_history(channel=job.channel_id, limit=200)
        for message in answer.get("messages") or []:
            if share_comment(job) in str(message.get("text") or ""):
                return Post(platform="slack", channel_id=job.channel_id,
                            message_id=str(message.get("ts") or ""),
                            mode="file" if message.get("files") else "link")
        return None

    async def delete(self, job: Job) -> None:
        """Remove the video (or its link) from the thread."""
        ref = job.progress_ref
        if ref is None:
            return
        answer = await self.client.conversations_replies(channel=ref.channel_id,
                                                         ts=ref.message_id, limit=200)
        for message in answer.get("messages") or []:
            for file in message.get("files") or []:
                if file.get("title") == video_title(job):
                    await self.client.files_delete(file=file["id"])
            if message.get("ts") != ref.message_id and _mode_of(message, job) == "link":
                await self.client.chat_delete(channel=ref.channel_id, ts=message["ts"])

    async def _post(self, job: Job, video: Path, channel: str, thread: str | None,
                    comment: str) -> str:
        """Upload if allowed and it fits, else the link; which one it was."""
        size = await _size(video)
        why = TOO_LARGE if size is not None else NOT_KEPT
        if size is not None and size <= self.max_upload:
            try:
                await self._upload(job, video, size, channel, thread, comment)
                return "file"
            except SlackApiError as exc:
                error = str(exc.response.get("error"))
                if error not in NO_UPLOAD:
                    raise
                log.info("job %s: upload refused (%s); posting the link", job.id, error)
                why = NO_UPLOAD[error]
        await self.client.chat_postMessage(channel=channel, thread_ts=thread,
                                           text=link_comment(comment, job.result_url or "", why))
        return "link"

    async def _upload(self, job: Job, video: Path, size: int, channel: str,
                      thread: str | None, comment: str, title: str | None = None) -> None:
        title = title or video_title(job)
        got = await self.client.files_getUploadURLExternal(filename=title, length=size)
        await self._send(str(got["upload_url"]), video)
        kwargs: dict[str, Any] = {"thread_ts": thread} if thread else {}
        await self.client.files_completeUploadExternal(
            files=[{"id": got["file_id"], "title": title}], channel_id=channel,
            initial_comment=comment, **kwargs)

    async def upload(self, job: Job, video: Path, channel: str, thread: str, comment: str,
                     title: str) -> None:
        """Another file of the job's into a thread (its chain video), titled to be found."""
        size = await _size(video)
        if size is None:
            raise OSError(f"{video.name} is gone")
        await self._upload(job, video, size, channel, thread, comment, title)

    async def _send(self, url: str, video: Path) -> None:
        """The bytes from disk to the upload URL: streamed, read off the event loop."""
        file = await asyncio.to_thread(video.open, "rb")
        try:
            timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_S)
            async with self.http.post(url, data=file, timeout=timeout) as resp:
                if resp.status != 200:
                    raise OSError(f"Slack's upload URL answered {resp.status}")
        finally:
            await asyncio.to_thread(file.close)


def _fit_line(job: Job) -> str:
    note = fit_note(job, f"<{job.result_url}|original video>")
    return f"\n{note}" if note else ""


def _mode_of(message: dict[str, Any], job: Job) -> str | None:
    if any(f.get("title") == video_title(job) for f in message.get("files") or []):
        return "file"
    text = str(message.get("text") or "")
    if f"Job `{job.id}`" in text and LINK_NOTE in text:
        return "link"
    return None


async def _size(path: Path) -> int | None:
    try:
        return (await asyncio.to_thread(path.stat)).st_size
    except OSError:
        return None
