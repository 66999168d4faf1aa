"""The Discord bot: start-up, command sync, shutdown. `python -m bot` runs it."""

from __future__ import annotations

import hashlib
import json
import logging

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.engine import Engine, Job, Store
from bot.frontends.common.admission import AdmissionGate
from bot.frontends.common.chains import Chains
from bot.frontends.common.lifecycle import Lifecycle
from bot.frontends.common.texts import RESTARTING
from bot.frontends.discord.chain_posts import DiscordChainPoster
from bot.frontends.discord.delivery import DiscordDeliverer
from bot.frontends.discord.extend import Extender
from bot.frontends.discord.job_actions import JobActions
from bot.frontends.discord.progress import ProgressBoard
from bot.frontends.discord.shards import Shards
from bot.frontends.discord.submit import Submitter
from bot.media.fetch import guarded_session
from bot.media.prepare import MediaContext

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.generate", "cogs.extend", "cogs.controls", "cogs.jobs", "cogs.admin")
# A shutdown fits Docker's 10 s between SIGTERM and SIGKILL: it waits this long for commands
# that are checking or queueing a job, then this long for due progress edits (an edit it
# misses is made by the next start).
DRAIN_S = 5.0
SETTLE_S = 3.0


class WanBot(commands.AutoShardedBot):
    """Holds the engine and the parts every cog needs; needs no privileged intents. Runs the
    shards in DISCORD_SHARD_IDS (of DISCORD_SHARD_COUNT), or, unset, as many as Discord
    recommends, all in this process."""

    def __init__(self, settings: Settings, store: Store, engine: Engine,
                 session: aiohttp.ClientSession, *, owns_engine: bool = True) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # guild and channel cache: upload limits, channel names
        super().__init__(command_prefix=commands.when_mentioned, intents=intents,
                         help_command=None, tree_cls=WanTree,
                         shard_ids=list(settings.shard_ids) if settings.shard_ids else None,
                         shard_count=settings.shard_count)
        self.shards_here = Shards(settings.shard_ids, settings.shard_count)
        self.settings = settings
        self.store = store
        self.engine = engine
        self.owns_engine = owns_engine  # else the process starts and stops it (several fronts)
        self.session = session  # the provider's; user media go through `media_session`
        self.media_session: aiohttp.ClientSession | None = None
        self.lifecycle = Lifecycle()
        self.progress = ProgressBoard(self, engine, store, owns=self.owns,
                                      interval_s=settings.progress_interval_s)
        self.deliverer = DiscordDeliverer(self, store, engine.clock, owns=self.owns)
        # queues and shows jobs: commands and reruns
        self.submitter = Submitter(self, engine, store, self.progress)
        self.gate = AdmissionGate(store)  # limits held before inputs are fetched (all commands)
        self.extender = Extender(engine, self.submitter, self.gate, self.media_context,
                                 settings.region)
        self.actions = JobActions(self, engine, store, lifecycle=self.lifecycle,
                                  progress=self.progress, deliverer=self.deliverer,
                                  submitter=self.submitter, extender=self.extender,
                                  allow_dms=settings.allow_dms)  # what the job buttons do
        # an extension's whole chain as one video, after the clip
        self.chains = Chains(engine, store, settings, "discord",
                             DiscordChainPoster(self, self.deliverer))

    def owns(self, job: Job) -> bool:
        """This process delivers the job and edits its progress (its guild is on one of our
        shards); always True in a process that runs every shard."""
        return self.shards_here.owns(job)

    @property
    def closing(self) -> bool:
        return self.lifecycle.closing

    @closing.setter
    def closing(self, value: bool) -> None:
        self.lifecycle.closing = value

    async def setup_hook(self) -> None:
        self.media_session = guarded_session(self.settings.trusted_hosts)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.progress.start()  # before the engine: recovered jobs report at once
        self.engine.set_deliverer("discord", self.deliverer)
        self.chains.start()
        if self.owns_engine:
            await self.engine.start()
        await self.sync_commands()

    def media_context(self) -> MediaContext:
        assert self.media_session is not None, "setup_hook opens the media session"
        return MediaContext.from_settings(self.media_session, self.settings,
                                          uploader=self.engine.upload)

    async def sync_commands(self) -> None:
        """Sync the command tree only when it changed since the last sync (hash in the store)."""
        scopes = [discord.Object(g) for g in self.settings.guild_ids] or [None]
        for guild in scopes:
            if guild is not None:
                self.tree.copy_global_to(guild=guild)
            payload = [c.to_dict(self.tree) for c in self.tree.get_commands(guild=guild)]
            digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
            scope = str(guild.id) if guild else "global"
            key = f"commands:{self.application_id}:{scope}"
            if await self.store.get_meta(key) == digest:
                continue
            await self.tree.sync(guild=guild)
            await self.store.set_meta(key, digest)
            log.info("synced %d commands to %s", len(payload), scope)

    async def close(self) -> None:
        """Stop taking commands, let running ones finish their writes, stop the engine (its
        state is in the store), show the last progress, then disconnect. A second call while
        that goes on (a second Ctrl-C) disconnects at once."""
        if not self.closing:
            await self.lifecycle.drain(DRAIN_S)
            await self.finish()
        await super().close()

    async def finish(self) -> None:
        """After commands drained: stop the engine if it is ours, make the last progress
        edits, close the media session."""
        await self.chains.close()
        if self.owns_engine:
            await self.engine.stop()
        await self.progress.close(settle_s=SETTLE_S)
        if self.media_session is not None:
            await self.media_session.close()


class WanTree(app_commands.CommandTree["WanBot"]):
    async def interaction_check(self, interaction: discord.Interaction[WanBot]) -> bool:
        if interaction.client.closing:
            await interaction.response.send_message(RESTARTING, ephemeral=True)
            return False
        return True


class DiscordFront:
    """The Discord bot as one front end of a process that runs several over one engine."""

    name = "discord"

    def __init__(self, settings: Settings, engine: Engine, store: Store,
                 http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.bot = WanBot(settings, store, engine, http, owns_engine=False)

    async def run(self) -> None:
        async with self.bot:
            await self.bot.start(self.settings.discord_token)

    def owns(self, job: Job) -> bool:
        return self.bot.owns(job)

    async def connected(self) -> bool:
        return self.bot.is_ready() and not self.bot.is_closed()

    async def drain(self) -> None:
        await self.bot.lifecycle.drain(DRAIN_S)

    async def close(self) -> None:
        await self.bot.finish()
        await self.bot.close()
