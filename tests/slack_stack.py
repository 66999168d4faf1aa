"""The pieces of the Slack tests: the DashScope simulator, the fake Slack (Web API and Socket
Mode), a media server, a real SQLite file and the real Slack front end with its own engine, all
on 127.0.0.1, as one `SlackStack`.

Engine and simulator share one `ScaledClock`, so a 62 s provider job takes a fraction of a
second; progress edits use real time, at a short interval.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.clock import ScaledClock
from bot.config import Settings, load_settings
from bot.engine import Engine, Job, JobState, JobUpdate, Store
from bot.frontends.common import teams
from bot.frontends.common.teams import TeamSettings
from bot.frontends.slack.app import SlackFront
from bot.frontends.slack.generate import team_of
from bot.provider.client import DashScope
from bot.sim.server import SimConfig, SimRequest, Simulator, run_simulator
from tests.discord_stack import MediaServer, png, run_media_server
from tests.fakeslack import FakeSlack, FakeWorkspace, run_fake_slack

SCALE = 400.0
MANIFEST = Path(__file__).resolve().parents[1] / "slack-manifest.yml"
NO_LIMITS = TeamSettings(user_max_concurrent=0, user_daily_seconds=0, team_daily_seconds=0)


def manifest_scopes() -> frozenset[str]:
    """The bot scopes slack-manifest.yml asks for: the fake grants exactly these."""
    text = MANIFEST.read_text()
    block = text.split("bot:", 1)[1].split("settings:", 1)[0]
    return frozenset(re.findall(r"^\s+- ([a-z:.]+)\s*$", block, re.M))


@dataclass
class SlackStack:
    fake: FakeSlack
    sim: Simulator
    media: MediaServer
    clock: ScaledClock
    settings: Settings
    session: aiohttp.ClientSession
    front: SlackFront | None = None
    updates: list[JobUpdate] = field(default_factory=list)

    @property
    def running(self) -> SlackFront:
        assert self.front is not None, "no Slack front end is running"
        return self.front

    @property
    def team_id(self) -> str:
        return team_of(self.fake.team_id)

    @contextlib.asynccontextmanager
    async def start(self, **changes: Any) -> AsyncIterator[SlackFront]:
        """The Slack front end with its own store and engine on this stack, connected."""
        settings = Settings(**{**self.settings.__dict__, **changes})
        store = await Store.open(settings.database_path)
        client = DashScope(self.session, settings.base_url, settings.dashscope_api_key,
                           timeout_s=5)
        engine = Engine(store, client, settings, clock=self.clock)
        engine.subscribe(self._record)
        front = SlackFront(settings, engine, store, self.session)
        front.progress.interval_s, front.progress.pace_s = 0.2, 0.01
        seen = len(self.fake.live_sockets())
        try:
            await engine.start()
            await front.start()
            await self.fake.wait_connected(seen + 1)
            self.front = front
            yield front
        finally:
            self.front = None
            await front.drain()
            await engine.stop()
            await front.close()
            await store.close()

    async def set_team(self, settings: TeamSettings = NO_LIMITS) -> None:
        """Write the workspace's settings as /wan settings does; no restart needed."""
        store = await Store.open(self.settings.database_path)
        try:
            await teams.save(store, self.team_id, settings)
        finally:
            await store.close()

    async def _record(self, update: JobUpdate) -> None:
        self.updates.append(update)
        self.fake.notify()

    async def wait_job(self, predicate: Callable[[Job], bool], *, what: str = "a job",
                       timeout_s: float = 10.0) -> Job:
        def probe() -> Job | None:
            return next((u.job for u in reversed(self.updates) if predicate(u.job)), None)

        return await self.fake.wait_for(probe, timeout_s=timeout_s, what=what)

    async def wait_state(self, state: JobState, *, timeout_s: float = 10.0) -> Job:
        return await self.wait_job(lambda j: j.state is state, what=f"a job {state}",
                                   timeout_s=timeout_s)

    def creates(self) -> list[SimRequest]:
        return [r for r in self.sim.requests if r.route == "create"]

    def frames(self) -> tuple[str, str]:
        """Two links a person might type, served by the media server."""
        return self.media.add("a.png", png()), self.media.add("b.png", png((640, 480), "RGB"))


def _settings(fake: FakeSlack, sim: Simulator, tmp_path: Path) -> Settings:
    return load_settings({
        "DASHSCOPE_API_KEY": sim.api_key,
        "DASHSCOPE_BASE_URL": sim.base_url,
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_API_URL": fake.api_url,
        "DATABASE_PATH": str(tmp_path / "wanbot.sqlite3"),
        "TRUSTED_MEDIA_HOSTS": "127.0.0.1",
        "MAX_QPS": "20",
        "ON_DECK": "0",  # slots exactly (tests/engine/test_on_deck.py covers the deck)
    })


@contextlib.asynccontextmanager
async def open_slack_stack(tmp_path: Path, workspace: FakeWorkspace) -> AsyncIterator[SlackStack]:
    clock = ScaledClock(SCALE)
    config = SimConfig(clock=clock.now, time_scale=1.0, pending_s=2.0, running_s=60.0)
    async with (
        run_simulator(config) as sim,
        run_fake_slack(workspace) as fake,
        run_media_server() as media,
        aiohttp.ClientSession() as session,
    ):
        yield SlackStack(fake, sim, media, clock, _settings(fake, sim, tmp_path), session)
