"""Posts a finished video where it belongs, exactly once.

A public job's video is a reply to its progress message in the channel; a private job's goes to
the requester by direct message, or, when their DMs are closed, onto the command's ephemeral
answer while its token lives (else the job is undeliverable). Then the gallery post, if the
team has one. Every post names the job id, so after a crash mid-post `find_delivery` finds it
instead of posting again. Sharing a private video into its channel lives here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import discord

from bot.clock import Clock
from bot.engine import RESULT_TTL_S, Delivery, Job, Post, Store
from bot.errors import Undeliverable
from bot.frontends.common.sharing import VideoGone
from bot.frontends.discord.components import result_view, shared_view
from bot.frontends.discord.gallery import Gallery
from bot.frontends.discord.guilds import guild_of
from bot.frontends.discord.job_messages import (
    allowed_mentions,
    delivery_text,
    fallback_text,
    is_delivery,
    is_share,
    no_mentions,
    share_text,
)
from bot.frontends.discord.video_posts import (
    DEFAULT_UPLOAD_LIMIT,
    channel_sender,
    file_size,
    find_post,
    interaction_webhook,
    post_video,
    token_alive,
    video_mode,
    webhook_editor,
    where,
)

log = logging.getLogger(__name__)

DM_UPLOAD_LIMIT = DEFAULT_UPLOAD_LIMIT


class DiscordDeliverer:
    def __init__(self, client: discord.Client, store: Store, clock: Clock, *,
                 owns: Callable[[Job], bool] = lambda job: True) -> None:
        self.client = client
        self.clock = clock
        self.gallery = Gallery(client, store)
        self.owns = owns  # the engine leaves a job another process's shard owns to it

    async def deliver(self, job: Job, video: Path) -> Delivery:
        try:
            where = await (self._private(job, video) if job.private else self._public(job, video))
        except (discord.Forbidden, discord.NotFound) as exc:
            # The channel is gone or closed to the bot: retrying cannot help.
            raise Undeliverable(f"Discord answered {exc.status}: {exc.text}") from exc
        return replace(where, gallery=await self.gallery.ensure(job, where, look_first=False))

    async def find_delivery(self, job: Job) -> Delivery | None:
        """The post a crashed delivery may have made (and then the gallery post, once)."""
        where = await (self._find_private(job) if job.private else self._find_public(job))
        if where is None:
            return None
        return replace(where, gallery=await self.gallery.ensure(job, where, look_first=True))

    def upload_limit(self, job: Job) -> int:
        """The largest file where the job's video goes: a DM's for a private job, else the
        limit its command saw (the interaction's `attachment_size_limit`), else the guild's."""
        return DM_UPLOAD_LIMIT if job.private else self.channel_limit(job)

    def channel_limit(self, job: Job) -> int:
        if limit := job.display.upload_limit:
            return limit
        guild = guild_of(self.client, job.team_id)
        return guild.filesize_limit if guild else DEFAULT_UPLOAD_LIMIT

    # --- public: a reply to the progress message ---------------------------------------------

    async def _public(self, job: Job, video: Path) -> Delivery:
        channel = self.client.get_partial_messageable(int(job.channel_id))
        kwargs: dict[str, Any] = {"allowed_mentions": allowed_mentions(job),
                                  "view": result_view(job)}
        if ref := _reply_to(job, channel):
            kwargs["reference"] = ref
        return await post_video(channel_sender(channel, **kwargs), job, video, delivery_text,
                                self.channel_limit(job))

    async def _find_public(self, job: Job) -> Delivery | None:
        channel = self.client.get_partial_messageable(int(job.channel_id))
        since = int(job.progress_ref.message_id) if job.progress_ref else 0
        found = await find_post(self.client, channel, lambda m: is_delivery(m.content, job),
                                after=since)
        return _where_found(found, place=None)

    # --- private: a direct message, else the ephemeral answer -------------------------------

    async def _private(self, job: Job, video: Path) -> Delivery:
        try:
            dm = await self.client.create_dm(discord.Object(int(job.user_id)))
            made_here = str(dm.id) == job.channel_id  # a DM job: no channel to share it to
            send = channel_sender(dm, view=result_view(job, share=not made_here))
            where = await post_video(send, job, video, delivery_text, DM_UPLOAD_LIMIT)
        except discord.Forbidden as exc:
            log.info("job %s: cannot DM the requester (%s)", job.id, exc.code)
            return await self._fallback(job, video)
        return replace(where, place="dm")

    async def _fallback(self, job: Job, video: Path) -> Delivery:
        ref = job.progress_ref
        if ref is None or not token_alive(ref):
            raise Undeliverable("the requester's DMs are closed and the private answer expired")
        send = webhook_editor(interaction_webhook(self.client, ref), int(ref.message_id))
        where = await post_video(send, job, video, fallback_text, self.channel_limit(job))
        return replace(where, channel_id=ref.channel_id, place="ephemeral")

    async def _find_private(self, job: Job) -> Delivery | None:
        dm = await self.client.create_dm(discord.Object(int(job.user_id)))
        found = await find_post(self.client, dm, lambda m: is_delivery(m.content, job))
        if found is not None:
            return _where_found(found, place="dm")
        ref = job.progress_ref
        if ref is None or not token_alive(ref):
            return None
        message = await interaction_webhook(self.client, ref).fetch_message(int(ref.message_id))
        if fallback_text(job) not in message.content:
            return None
        return replace(where(message, video_mode(message), place="ephemeral"),
                       channel_id=ref.channel_id)

    # --- sharing a private video into its channel -------------------------------------------

    async def find_share(self, job: Job) -> Post | None:
        channel = self.client.get_partial_messageable(int(job.channel_id))
        found = await find_post(self.client, channel, lambda m: is_share(m.content, job))
        return _where_found(found, place=None)

    async def share(self, job: Job) -> Post:
        """Post a private job's video to its channel (VideoGone when nothing is left)."""
        video = Path(job.post_path or "")
        link_dead = self.clock.now() - (job.finished_at or 0) > RESULT_TTL_S
        if link_dead and file_size(video) is None:
            raise VideoGone(job.id)
        channel = self.client.get_partial_messageable(int(job.channel_id))
        send = channel_sender(channel, view=shared_view(job), allowed_mentions=no_mentions())
        return await post_video(send, job, video, share_text, self.channel_limit(job))


def _reply_to(job: Job, channel: Any) -> discord.MessageReference | None:
    ref = job.progress_ref
    if ref is None or ref.is_interaction or ref.channel_id != str(channel.id):
        return None
    message = channel.get_partial_message(int(ref.message_id))
    return message.to_reference(fail_if_not_exists=False)  # type: ignore[no-any-return]


def _where_found(message: discord.Message | None, *, place: str | None) -> Delivery | None:
    return None if message is None else where(message, video_mode(message), place)

