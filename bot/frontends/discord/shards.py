"""Which process speaks for a job on Discord when its guilds are split over shards.

Discord gives each shard the guilds with `(guild_id >> 22) % shard_count == shard_id`, and DMs
to shard 0. A process running some of the shards (DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT)
delivers and edits progress only for the jobs of its own guilds, so two processes never post
the same video; a process that runs every shard (the default) owns every job. A job's guild is
its team (a DM job counts in its home server, so it goes with that server's shard; a job with
no server at all goes to shard 0).
"""

from __future__ import annotations

from collections.abc import Collection

from bot.engine import Job
from bot.frontends.discord.guilds import guild_id


def shard_of(guild: int | None, shard_count: int) -> int:
    """Discord's rule: the shard that hears a guild's events (DMs: shard 0)."""
    return 0 if guild is None else (guild >> 22) % shard_count


class Shards:
    """The shards this process runs; None: all of them."""

    def __init__(self, ids: Collection[int] | None, count: int | None) -> None:
        self.ids = None if ids is None else frozenset(ids)
        self.count = count

    def owns(self, job: Job) -> bool:
        """This process delivers and shows progress for the job (else another one does)."""
        if job.platform != "discord" or self.ids is None or not self.count:
            return True
        return shard_of(guild_id(job.team_id), self.count) in self.ids
