"""The pieces of the Discord tests: the DashScope simulator, the fake Discord, a media server,
a real SQLite file and the real `WanBot`, all on 127.0.0.1, as one `Stack`; and small helpers.

The fixtures that build a `Stack` live in `tests.discord_support` (a pytest plugin). Engine and
simulator share one `ScaledClock`, so a 62 s provider job takes about 0.15 s; progress edits
use real time, at a short interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import discord
from aiohttp import web
from PIL import Image

from bot.clock import ScaledClock
from bot.config import Settings, load_settings
from bot.engine import Engine, Job, JobState, JobUpdate, Post, ProgressRef, Store
from bot.frontends.common import teams
from bot.frontends.common.teams import TeamSettings
from bot.frontends.discord.client import WanBot
from bot.provider.client import DashScope
from bot.sim.server import SimConfig, SimRequest, Simulator, run_simulator
from tests.fakediscord import (
    FakeChannel,
    FakeDiscord,
    FakeMessage,
    FakeRole,
    FakeUpload,
    InteractionRecord,
    RateLimits,
    connected_bot,
    run_fake_discord,
)

SCALE = 400.0  # engine and simulator seconds per real second
PROGRESS_INTERVAL_S = 0.25  # real seconds between edits of one progress message (5 in use)
MESSAGES = r"^/channels/\d+/messages$"
EDITS = r"^/channels/\d+/messages/\d+$"


def png(size: tuple[int, int] = (640, 480), mode: str = "RGB") -> bytes:
    """A small solid PNG."""
    buffer = io.BytesIO()
    Image.new(mode, size, "teal").save(buffer, "PNG")
    return buffer.getvalue()


def image(name: str = "frame.png", size: tuple[int, int] = (640, 480), *,
          content_type: str | None = "image/png", declared_size: int | None = None) -> FakeUpload:
    """A PNG attachment as Discord declares it (content type and size may be made up)."""
    return FakeUpload(name, png(size), content_type, size[0], size[1], declared_size)


async def reply(record: InteractionRecord) -> FakeMessage:
    """The command's own (ephemeral) answer: the first followup after its defer."""
    [message] = await record.wait_followups(1)
    return message


def labels(message: FakeMessage) -> dict[str, str]:
    """A message's buttons: label -> custom_id, in order."""
    return {b["label"]: b["custom_id"] for row in message.components
            for b in row.get("components", []) if "custom_id" in b}


def expired_id_time() -> datetime:
    """An interaction id time whose 15-minute token has already died."""
    return discord.utils.utcnow() - timedelta(minutes=16)


@dataclass
class MediaServer:
    """Serves files at ``http://127.0.0.1:PORT/NAME`` (links users would type)."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    base_url: str = ""
    served: list[str] = field(default_factory=list)  # names asked for, in order
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: answers wait
    asked: asyncio.Event = field(default_factory=asyncio.Event)  # set by every request

    def __post_init__(self) -> None:
        self.gate.set()

    def add(self, name: str, data: bytes, content_type: str = "image/png") -> str:
        self.files[name] = (data, content_type)
        return f"{self.base_url}/{name}"

    async def _serve(self, request: web.Request) -> web.Response:
        self.served.append(request.match_info["name"])
        self.asked.set()
        await self.gate.wait()
        found = self.files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])


@contextlib.asynccontextmanager
async def run_media_server() -> AsyncIterator[MediaServer]:
    server = MediaServer()
    app = web.Application()
    app.router.add_get("/{name}", server._serve)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    server.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield server
    finally:
        server.gate.set()
        await runner.cleanup()


@dataclass
class Stack:
    """Everything a Discord test talks to; ``start()`` runs a bot on it."""

    fake: FakeDiscord
    sim: Simulator
    media: MediaServer
    clock: ScaledClock
    settings: Settings
    session: aiohttp.ClientSession
    bot: WanBot | None = None
    updates: list[JobUpdate] = field(default_factory=list)

    @property
    def channel_id(self) -> int:
        return self.fake.channel("general").id

    @property
    def running(self) -> WanBot:
        assert self.bot is not None, "no bot is running"
        return self.bot

    @contextlib.asynccontextmanager
    async def start(self, **changes: Any) -> AsyncIterator[WanBot]:
        """A WanBot with its own store, client and engine on this stack, connected and ready."""
        settings = Settings(**{**self.settings.__dict__, **changes})
        store = await Store.open(settings.database_path)
        try:
            client = DashScope(self.session, settings.base_url, settings.dashscope_api_key,
                               timeout_s=5)
            engine = Engine(store, client, settings, clock=self.clock)
            engine.subscribe(self._record)
            bot_factory: Callable[[], WanBot] = lambda: WanBot(  # noqa: E731
                settings, store, engine, self.session)
            async with connected_bot(self.fake, bot_factory) as bot:
                self.bot = bot
                yield bot
        finally:
            self.bot = None
            await store.close()

    async def crash(self) -> None:
        """Stop the running bot's engine and progress board mid-flight, as a kill would."""
        bot = self.running
        bot.closing = True  # close() now only disconnects: nothing graceful happens
        await bot.chains.close()
        await bot.engine.stop()
        await bot.progress.close()
        if bot.media_session is not None:
            await bot.media_session.close()  # a dead process leaks nothing either

    async def _record(self, update: JobUpdate) -> None:
        self.updates.append(update)
        self.fake.notify()  # tests wait for job states through the fake's waiters

    async def wait_job(self, predicate: Callable[[Job], bool], *, what: str = "a job",
                       timeout_s: float = 10.0) -> Job:
        """The newest state of the first job whose update matches ``predicate``."""
        def probe() -> Job | None:
            return next((u.job for u in self.updates if predicate(u.job)), None)

        return await self.fake.wait_for(probe, timeout_s=timeout_s, what=what)

    async def wait_state(self, state: JobState, *, timeout_s: float = 10.0) -> Job:
        return await self.wait_job(lambda j: j.state is state, what=f"a job {state}",
                                   timeout_s=timeout_s)

    async def wait_delivered(self, count: int, *, timeout_s: float = 10.0) -> set[str]:
        """The ids of delivered jobs, once there are `count`."""
        def probe() -> set[str] | None:
            done = {u.job.id for u in self.updates if u.job.state is JobState.DELIVERED}
            return done if len(done) >= count else None

        return await self.fake.wait_for(probe, timeout_s=timeout_s, what=f"{count} deliveries")

    def creates(self) -> list[SimRequest]:
        """Create-task requests the provider received."""
        return [r for r in self.sim.requests if r.route == "create"]

    def deliveries(self) -> list[FakeMessage]:
        """Messages in #general that carry a finished video (file or link)."""
        return [m for m in self.fake.messages[self.channel_id]
                if "your video is ready" in m.content]

    async def job(self, job_id: str) -> Job:
        found = await self.running.store.get_job(job_id)
        assert found is not None
        return found

    # --- team settings, roles, messages (added for buttons, private jobs and settings) -----

    @property
    def team_id(self) -> str:
        return str(self.fake.guild.id)

    async def set_team(self, **values: Any) -> TeamSettings:
        """Write the guild's settings as /settings does (`teams.save`); no restart."""
        settings = TeamSettings(**values)
        await teams.save(self.running.store, self.team_id, settings)
        return settings

    def add_role(self, name: str, *members: str) -> str:
        """A new guild role held by `members` (before `start()`: the bot sees it); its id."""
        role = FakeRole(name)
        self.fake.guild.roles.append(role)
        for member in members:
            user = self.fake.user(member)
            user.roles = (*user.roles, name)
        return str(role.id)

    def add_channel(self, name: str) -> str:
        """A new text channel of the guild (before `start()`: the bot sees it); its id."""
        guild = self.fake.guild
        channel = FakeChannel(name, guild_id=guild.id, position=len(guild.channels))
        guild.channels.append(channel)
        self.fake.channels[channel.id] = channel
        return str(channel.id)

    def dms(self, user: str) -> list[FakeMessage]:
        """What the bot sent `user` by direct message."""
        return list(self.fake.messages[self.fake.dm_channel(user).id])

    def message(self, ref: Post | ProgressRef | None) -> FakeMessage:
        """The stored message a job's `progress_ref` or `delivery` points at."""
        assert ref is not None
        found = self.fake.message_by_id(ref.message_id)
        assert found is not None, ref
        return found

    async def wait_id(self, job_id: str, predicate: Callable[[Job], bool], *,
                      what: str = "a change", timeout_s: float = 10.0) -> Job:
        """Job `job_id` once an update of it matches ``predicate``."""
        return await self.wait_job(lambda j: j.id == job_id and predicate(j),
                                   what=f"job {job_id}: {what}", timeout_s=timeout_s)


def _settings(fake: FakeDiscord, sim: Simulator, tmp_path: Path) -> Settings:
    return load_settings({
        "DASHSCOPE_API_KEY": sim.api_key,
        "DASHSCOPE_BASE_URL": sim.base_url,
        "DISCORD_TOKEN": fake.token,
        "DISCORD_GUILD_IDS": str(fake.guild.id),
        "DATABASE_PATH": str(tmp_path / "wanbot.sqlite3"),
        "TRUSTED_MEDIA_HOSTS": "127.0.0.1",
        "PROGRESS_INTERVAL_S": str(PROGRESS_INTERVAL_S),
        "MAX_QPS": "20",
        "ON_DECK": "0",  # slots exactly (tests/engine/test_on_deck.py covers the deck)
    })


@contextlib.asynccontextmanager
async def open_stack(tmp_path: Path,
                     rate_limits: RateLimits | None = None) -> AsyncIterator[Stack]:
    """The simulator, the fake Discord (enforcing `rate_limits` if given) and a media server;
    no bot yet (``stack.start()``)."""
    clock = ScaledClock(SCALE)
    config = SimConfig(clock=clock.now, time_scale=1.0, pending_s=2.0, running_s=60.0)
    async with (
        run_simulator(config) as sim,
        run_fake_discord(rate_limits=rate_limits) as fake,
        run_media_server() as media,
        aiohttp.ClientSession() as session,
    ):
        yield Stack(fake, sim, media, clock, _settings(fake, sim, tmp_path), session)


def die_after_posting(bot: Any) -> asyncio.Event:
    """Make the front end's (`WanBot`, `SlackFront`) next delivery post for real, then hang as
    if the process were killed before it could record the post. The event is set once the post
    went out."""
    posted = asyncio.Event()
    post = bot.deliverer.deliver

    async def post_then_die(job: Job, video: Path) -> object:
        await post(job, video)
        posted.set()
        await asyncio.Event().wait()  # the kill comes before the result is written
        raise AssertionError("unreachable")

    bot.deliverer.deliver = post_then_die  # type: ignore[method-assign]
    return posted
