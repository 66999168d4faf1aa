"""Posting a video and finding a post again: the pieces delivery, the gallery and sharing share.

A video goes as an attachment when it fits the destination's upload limit, otherwise as the
provider's link (24 hours); a 413 from Discord falls back to the link. A private job's progress
lives on its command's ephemeral answer, reachable only through the interaction's token, which
Discord honours for 15 minutes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import discord
from discord.utils import MISSING

from bot.engine import Delivery, Job, ProgressRef
from bot.units import MiB

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * MiB  # a guild without boosts, and direct messages
TOO_LARGE = 413
FIND_LIMIT = 200  # messages searched for a post made just before a crash
TOKEN_MARGIN_S = 10.0  # an interaction token this close to its end is not used any more

Send = Callable[[str, discord.File | None], Awaitable[discord.Message]]
Text = Callable[[Job, str | None], str]  # the message text, given the link when not attached


async def post_video(send: Send, job: Job, video: Path, text: Text, limit: int) -> Delivery:
    """Post with the file if it fits, else (or on a 413) with the link; where it went."""
    size = await asyncio.to_thread(file_size, video)
    if size is not None and size <= limit:
        try:
            # A new File for every attempt: discord.py rewinds one only on its own retries.
            file = discord.File(video, filename=f"wan-{job.id}.mp4")
            return where(await send(text(job, None), file), "file")
        except discord.HTTPException as exc:
            if exc.status != TOO_LARGE:
                raise
            log.info("job %s: Discord refused %d bytes; posting the link", job.id, size)
    return where(await send(text(job, job.result_url), await _poster(job)), "link")


async def _poster(job: Job) -> discord.File | None:
    """The still shown with a link (made when no re-encode fitted), if it is still on disk."""
    poster = Path(job.fit.poster) if job.fit is not None and job.fit.poster else None
    if poster is None or await asyncio.to_thread(file_size, poster) is None:
        return None
    return discord.File(poster, filename=f"wan-{job.id}.jpg")


def video_mode(message: discord.Message) -> str:
    """How a found post carried its video: "file" if the mp4 is attached, else "link" (a
    poster frame may be attached to a link)."""
    attached = any(a.filename.endswith(".mp4") for a in message.attachments)
    return "file" if attached else "link"


def channel_sender(channel: Any, **kwargs: Any) -> Send:
    """`post_video`'s way to send a new message to a channel (or a DM)."""
    async def send(content: str, file: discord.File | None) -> discord.Message:
        extra = {"file": file} if file is not None else {}
        return await channel.send(content, **extra, **kwargs)  # type: ignore[no-any-return]

    return send


def webhook_editor(webhook: discord.Webhook, message_id: int, **kwargs: Any) -> Send:
    """`post_video`'s way to put the video on an interaction's existing message."""
    async def send(content: str, file: discord.File | None) -> discord.Message:
        files = [file] if file is not None else MISSING
        return await webhook.edit_message(message_id, content=content, attachments=files,
                                          **kwargs)

    return send


def where(message: discord.Message, mode: str, place: str | None = None) -> Delivery:
    return Delivery(channel_id=str(message.channel.id), message_id=str(message.id), mode=mode,
                    place=place)


async def find_post(client: discord.Client, channel: Any, matches: Callable[[discord.Message],
                    bool], *, after: int = 0) -> discord.Message | None:
    """Our newest message in `channel` (newer than `after`) that `matches`, if any."""
    me = client.user
    async for message in channel.history(limit=FIND_LIMIT):
        if message.id <= after:
            break
        if me and message.author.id == me.id and matches(message):
            return message
    return None


def file_size(path: Path) -> int | None:
    """The file's size; None when it is gone (the link still works for 24 hours)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return None


# --- a private job's ephemeral answer -------------------------------------------------------


def interaction_ref(interaction: discord.Interaction[Any], message_id: int) -> ProgressRef:
    """How to reach an interaction's message later, even from a new process."""
    return ProgressRef(kind="interaction", application_id=str(interaction.application_id),
                       token=interaction.token, message_id=str(message_id),
                       channel_id=str(interaction.channel_id),
                       expires_at=interaction.expires_at.timestamp())


def token_alive(ref: ProgressRef | None) -> bool:
    """The reference is an interaction's whose token Discord still honours."""
    if ref is None or not ref.is_interaction or ref.expires_at is None:
        return False
    return time.time() < ref.expires_at - TOKEN_MARGIN_S


def interaction_webhook(client: discord.Client, ref: ProgressRef) -> discord.Webhook:
    return discord.Webhook.partial(int(ref.application_id or 0), str(ref.token), client=client)
