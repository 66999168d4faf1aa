"""Posts a finished video to the channel it was asked in, as a reply to its progress message.

An attachment when it fits the channel's upload limit (as Discord told us with the command),
otherwise the provider's link, which lives 24 hours. A 413 from Discord falls back to the
link. Every post names the job id, so after a crash mid-post the post can be found, not
repeated.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import discord

from bot.discord_render import allowed_mentions, delivery_text
from bot.results import Undeliverable
from bot.store import Job

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's limit for a guild without boosts
TOO_LARGE = 413
FIND_LIMIT = 200  # messages searched for a post made just before a crash


class DiscordDeliverer:
    def __init__(self, client: discord.Client) -> None:
        self.client = client

    async def deliver(self, job: Job, video: Path) -> dict[str, Any]:
        try:
            return await self._deliver(job, video)
        except (discord.Forbidden, discord.NotFound) as exc:
            # The channel is gone or closed to the bot: retrying cannot help.
            raise Undeliverable(f"Discord answered {exc.status}: {exc.text}") from exc

    async def _deliver(self, job: Job, video: Path) -> dict[str, Any]:
        channel = await self.destination(job)
        size = await asyncio.to_thread(_size, video)
        if size is not None and size <= self.upload_limit(job):
            try:
                return await self._send(job, channel, file=video)
            except discord.HTTPException as exc:
                if exc.status != TOO_LARGE:
                    raise
                log.info("job %s: Discord refused %d bytes; posting the link", job.id, size)
        return await self._send(job, channel, file=None)

    async def destination(self, job: Job) -> discord.abc.Messageable:
        """Where the result goes: the channel the command was used in."""
        return self.client.get_partial_messageable(int(job.channel_id))

    def upload_limit(self, job: Job) -> int:
        limit = job.display.get("upload_limit")
        if limit:
            return int(limit)
        guild = self.client.get_guild(int(job.team_id)) if job.team_id.isdigit() else None
        return guild.filesize_limit if guild else DEFAULT_UPLOAD_LIMIT

    async def _send(self, job: Job, channel: Any, *, file: Path | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"allowed_mentions": allowed_mentions(job)}
        if ref := self._reference(job, channel):
            kwargs["reference"] = ref
        if file is not None:
            # A new File for every attempt: discord.py rewinds one only on its own retries.
            kwargs["file"] = discord.File(file, filename=f"wan-{job.id}.mp4")
        link = None if file is not None else job.result_url
        message = await channel.send(delivery_text(job, link), **kwargs)
        mode = "file" if file is not None else "link"
        return {"channel_id": str(message.channel.id), "message_id": str(message.id),
                "mode": mode}

    def _reference(self, job: Job, channel: Any) -> discord.MessageReference | None:
        ref = job.progress_ref or {}
        if str(ref.get("channel_id")) != str(getattr(channel, "id", "")):
            return None
        message = channel.get_partial_message(int(ref["message_id"]))
        return message.to_reference(fail_if_not_exists=False)

    async def find_delivery(self, job: Job) -> dict[str, Any] | None:
        """The post a crashed delivery may have made: ours, naming this job, newer than the
        progress message. Looked for newest first: a restart comes soon after a crash."""
        channel = await self.destination(job)
        since = int((job.progress_ref or {}).get("message_id") or 0)
        marker, me = f"`{job.id}`", self.client.user
        async for message in channel.history(limit=FIND_LIMIT):
            if message.id <= since:
                break
            if me and message.author.id == me.id and marker in message.content:
                mode = "file" if message.attachments else "link"
                return {"channel_id": str(message.channel.id), "message_id": str(message.id),
                        "mode": mode}
        return None


def _size(path: Path) -> int | None:
    """The file's size; None when it is gone (the link still works for 24 hours)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return None
