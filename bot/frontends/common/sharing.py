"""Sharing a private job's video into its channel, once, for any front end: the share is
recorded in the job's delivery, found again after a crash, or posted now."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from bot.engine import Delivery, Job, Post, Store


class VideoGone(Exception):
    """Neither the local file nor the provider's link (24 h) is left to share."""


class Sharer(Protocol):
    async def find_share(self, job: Job) -> Post | None: ...  # a share made before a crash

    async def share(self, job: Job) -> Post: ...  # post it now (VideoGone: nothing left)


async def share_once(store: Store, job: Job, sharer: Sharer) -> Post | None:
    """Where the share went: recorded, found, or posted now; None when the video is gone."""
    job = await store.get_job(job.id) or job
    delivery = job.delivery or Delivery(platform=job.platform)
    where = delivery.shared or await sharer.find_share(job)
    if where is None:
        try:
            where = await sharer.share(job)
        except VideoGone:
            return None
    await store.update_job(job.id, delivery=replace(delivery, shared=where))
    return where
