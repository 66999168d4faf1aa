"""The Discord bot: start-up, command sync, shutdown. `python -m bot` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
from collections.abc import AsyncIterator

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings, settings_or_exit
from bot.engine import Engine, Store
from bot.errors import StorageError
from bot.frontends.discord.delivery import DiscordDeliverer
from bot.frontends.discord.job_actions import JobActions
from bot.frontends.discord.progress import ProgressBoard
from bot.frontends.discord.submit import Submitter
from bot.logs import setup_logging
from bot.media.fetch import guarded_session
from bot.media.prepare import MediaContext
from bot.provider import catalog
from bot.provider.client import DashScope

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.generate", "cogs.controls", "cogs.jobs", "cogs.admin")
# A shutdown fits Docker's 10 s between SIGTERM and SIGKILL: it waits this long for commands
# that are checking or queueing a job, then this long for due progress edits (an edit it
# misses is made by the next start).
DRAIN_S = 5.0
SETTLE_S = 3.0


class WanBot(commands.Bot):
    """Holds the engine and the parts every cog needs; needs no privileged intents."""

    def __init__(self, settings: Settings, store: Store, engine: Engine,
                 session: aiohttp.ClientSession) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # guild and channel cache: upload limits, channel names
        super().__init__(command_prefix=commands.when_mentioned, intents=intents,
                         help_command=None, tree_cls=WanTree)
        self.settings = settings
        self.store = store
        self.engine = engine
        self.session = session  # the provider's; user media go through `media_session`
        self.media_session: aiohttp.ClientSession | None = None
        self.progress = ProgressBoard(self, engine, interval_s=settings.progress_interval_s)
        self.deliverer = DiscordDeliverer(self, store, engine.clock)
        self.submitter = Submitter(self)  # queues and shows jobs: commands and reruns
        self.actions = JobActions(self)  # what the job buttons do
        self.closing = False
        self._commands: set[asyncio.Task[object]] = set()

    async def setup_hook(self) -> None:
        self.media_session = guarded_session(self.settings.trusted_hosts)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.progress.start()  # before the engine: recovered jobs report at once
        self.engine.set_deliverer("discord", self.deliverer)
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

    @contextlib.asynccontextmanager
    async def command_running(self) -> AsyncIterator[None]:
        """Marks a command that is checking or queueing a job: a shutdown lets it finish."""
        task = asyncio.current_task()
        assert task is not None, "commands run in tasks"
        self._commands.add(task)
        try:
            yield
        finally:
            self._commands.discard(task)

    async def close(self) -> None:
        """Stop taking commands, let running ones finish their writes, stop the engine (its
        state is in the store), show the last progress, then disconnect. A second call while
        that goes on (a second Ctrl-C) disconnects at once."""
        if not self.closing:
            self.closing = True
            if self._commands:
                _, late = await asyncio.wait(set(self._commands), timeout=DRAIN_S)
                for task in late:
                    task.cancel()  # stuck (a slow download, most likely): asked again later
            await self.engine.stop()
            await self.progress.close(settle_s=SETTLE_S)
            if self.media_session is not None:
                await self.media_session.close()
        await super().close()


class WanTree(app_commands.CommandTree["WanBot"]):
    async def interaction_check(self, interaction: discord.Interaction[WanBot]) -> bool:
        if interaction.client.closing:
            await interaction.response.send_message(
                "The bot is restarting; please try again in a minute.", ephemeral=True)
            return False
        return True


async def run(settings: Settings) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.http_timeout_s,
                                    sock_read=settings.http_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        store = await Store.open(settings.database_path)
        try:
            client = DashScope(session, settings.base_url, settings.dashscope_api_key,
                               timeout_s=settings.http_timeout_s)
            engine = Engine(store, client, settings)
            bot = WanBot(settings, store, engine, session)
            stopping: list[asyncio.Task[None]] = []  # keeps the close task referenced
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, lambda: stopping.append(
                    asyncio.create_task(bot.close())))
            engine.guard.on_failure(lambda: stopping.append(asyncio.create_task(bot.close())))
            async with bot:
                await bot.start(settings.discord_token)
            if engine.guard.failure is not None:
                raise engine.guard.failure
        finally:
            await store.close()


def main(argv: list[str]) -> int:
    settings = settings_or_exit(known_models=catalog.MODELS)
    setup_logging(settings.log_level, [settings.dashscope_api_key, settings.discord_token])
    try:
        asyncio.run(run(settings))
    except discord.LoginFailure:
        log.error("Discord refused DISCORD_TOKEN: copy a fresh token from the developer portal.")
        return 2
    except discord.PrivilegedIntentsRequired:
        log.error("Discord asked for privileged intents; wanbot needs none. Check the token.")
        return 2
    except (aiohttp.ClientError, OSError) as exc:
        log.error("Could not reach Discord (%s). Check the network and try again.", exc)
        return 1
    except StorageError as exc:
        log.error("wanbot cannot use its database %s", exc)
        return 1
    return 0
