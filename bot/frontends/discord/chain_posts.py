"""An extension's whole chain posted on Discord, right after its clip and where it went: a reply
to the clip's post in the channel, or the requester's DM for a private job. The text names the
job, so after a crash `find_chain` finds the post instead of posting again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import discord

from bot.engine import ChainVideo, Job, Post
from bot.errors import Undeliverable
from bot.frontends.common.chains import chain_marker, chain_text
from bot.frontends.discord.delivery import DiscordDeliverer
from bot.frontends.discord.video_posts import find_post


class DiscordChainPoster:
    def __init__(self, client: discord.Client, deliverer: DiscordDeliverer) -> None:
        self.client = client
        self.deliverer = deliverer

    def upload_limit(self, job: Job) -> int:
        return self.deliverer.upload_limit(job)

    async def post_chain(self, job: Job, chain: ChainVideo) -> Post:
        channel = await self._channel(job)
        kwargs: dict[str, Any] = {"allowed_mentions": discord.AllowedMentions.none()}
        delivery = job.delivery
        if delivery is not None and delivery.message_id and delivery.channel_id == str(channel.id):
            message = channel.get_partial_message(int(delivery.message_id))
            kwargs["reference"] = message.to_reference(fail_if_not_exists=False)
        if chain.path is not None:
            kwargs["file"] = discord.File(Path(chain.path), filename=f"wan-{job.id}-chain.mp4")
        try:
            sent = await channel.send(chain_text(job, chain), **kwargs)
        except (discord.Forbidden, discord.NotFound) as exc:
            raise Undeliverable(f"Discord answered {exc.status}: {exc.text}") from exc
        mode = "file" if chain.path is not None else None
        return Post(channel_id=str(sent.channel.id), message_id=str(sent.id), mode=mode)

    async def find_chain(self, job: Job) -> Post | None:
        channel = await self._channel(job)
        after = int(job.delivery.message_id) if job.delivery and job.delivery.message_id else 0
        found = await find_post(self.client, channel,
                                lambda m: chain_marker(job) in m.content, after=after)
        if found is None:
            return None
        return Post(channel_id=str(found.channel.id), message_id=str(found.id),
                    mode="file" if found.attachments else None)

    async def _channel(self, job: Job) -> Any:
        """Where the clip went: the channel, or the requester's DM (a private job's answer
        on an expired interaction cannot take a second message)."""
        delivery = job.delivery
        if delivery is not None and delivery.place == "ephemeral":
            raise Undeliverable("the clip went on a private answer, which takes no second post")
        if delivery is not None and delivery.place == "dm":
            return await self.client.create_dm(discord.Object(int(job.user_id)))
        return self.client.get_partial_messageable(int(job.channel_id))
