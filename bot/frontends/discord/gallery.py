"""The gallery: every finished public video is also posted to the team's gallery channel, with
its prompt, options, requester and a link to the job's message, exactly once.

The channel is read from the team's settings at delivery, so a change applies to the next video.
The post is part of delivering the job: after a crash, the engine asks `find_delivery`, which
looks for the gallery post (by its footer) before posting it. Private jobs stay out of it, and
so do jobs made in the gallery channel itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import discord

from bot.engine import Job, Post, Store
from bot.frontends.common import teams
from bot.frontends.discord.components import result_view
from bot.frontends.discord.guilds import guild_id, guild_of
from bot.frontends.discord.job_messages import gallery_embed, gallery_footer, link_text, no_mentions
from bot.frontends.discord.video_posts import (
    DEFAULT_UPLOAD_LIMIT,
    channel_sender,
    find_post,
    post_video,
)

log = logging.getLogger(__name__)


class Gallery:
    def __init__(self, client: discord.Client, store: Store) -> None:
        self.client = client
        self.store = store

    async def ensure(self, job: Job, delivered: Post, *, look_first: bool) -> Post | None:
        """Post the job to the gallery unless it is there (looked for with `look_first`);
        where it is, None when there is no gallery."""
        channel_id = await self.channel_id(job)
        if channel_id is None:
            return None
        channel = self.client.get_partial_messageable(int(channel_id),
                                                      guild_id=guild_id(job.team_id))
        try:
            found = await find_post(self.client, channel, _is_ours(job)) if look_first else None
            if found is not None:
                return Post(channel_id=channel_id, message_id=str(found.id))
            return await self._post(job, channel, delivered)
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("job %s: cannot post to gallery %s (%s); skipped", job.id, channel_id,
                        exc.status)
            return None

    async def channel_id(self, job: Job) -> str | None:
        if job.private:
            return None
        wanted = (await teams.load(self.store, job.team_id)).gallery_channel_id
        return wanted if wanted and wanted != job.channel_id else None

    async def _post(self, job: Job, channel: Any, delivered: Post) -> Post:
        embed = gallery_embed(job, jump_url(job, delivered))
        send = channel_sender(channel, embed=embed, view=result_view(job),
                              allowed_mentions=no_mentions())
        return await post_video(send, job, Path(job.post_path or ""), _text, self._limit(job))

    def _limit(self, job: Job) -> int:
        guild = guild_of(self.client, job.team_id)
        return guild.filesize_limit if guild else DEFAULT_UPLOAD_LIMIT


def jump_url(job: Job, delivered: Post) -> str | None:
    """A link to the message that carries the job's video."""
    if not delivered.message_id:
        return None
    return (f"https://discord.com/channels/{job.team_id}/{delivered.channel_id}/"
            f"{delivered.message_id}")


def _text(job: Job, link: str | None) -> str:
    return link_text(link).strip()


def _is_ours(job: Job) -> Any:
    footer = gallery_footer(job)
    return lambda m: any(e.footer.text == footer for e in m.embeds)
