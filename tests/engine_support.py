"""A running engine on a real SQLite file, against the simulator, with time compressed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.clock import ScaledClock
from bot.config import Settings
from bot.engine import Engine, Job, JobRequest, JobState, JobUpdate, Store
from bot.engine.keys import KeyPool
from bot.engine.poll_policy import PollPolicy
from bot.errors import Undeliverable
from bot.provider import catalog
from bot.provider.client import DashScope
from bot.sim.server import Simulator

SCALE = 200.0  # simulated seconds per real second: a 62 s task takes 0.31 s


class Recorder:
    """A deliverer for tests: records every post; can be made to hang mid-post."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.hang_after_post = False
        self.hang_before_post = False
        self.refuse = False
        self.limit: int | None = None  # the upload limit it reports (None: any size)
        self.videos: list[Path] = []  # the file of every post

    def upload_limit(self, job: Job) -> int | None:
        return self.limit

    async def deliver(self, job: Job, video: Path) -> dict[str, Any]:
        if self.refuse:
            raise Undeliverable("the channel is gone")
        if self.hang_before_post:
            await asyncio.Event().wait()
        self.posts.append((job.id, await asyncio.to_thread(video.read_bytes)))
        self.videos.append(video)
        if self.hang_after_post:
            await asyncio.Event().wait()
        return {"post": len(self.posts)}

    async def find_delivery(self, job: Job) -> dict[str, Any] | None:
        for number, (job_id, _) in enumerate(self.posts, start=1):
            if job_id == job.id:
                return {"post": number}
        return None


class Watcher:
    """A listener that lets a test await a job reaching a state (no sleeping)."""

    def __init__(self) -> None:
        self.updates: list[JobUpdate] = []
        self._changed = asyncio.Condition()

    async def __call__(self, update: JobUpdate) -> None:
        async with self._changed:
            self.updates.append(update)
            self._changed.notify_all()

    def states(self, job_id: str) -> list[JobState]:
        seen: list[JobState] = []
        for u in self.updates:
            if u.job.id == job_id and (not seen or seen[-1] is not u.job.state):
                seen.append(u.job.state)
        return seen

    async def until(self, predicate: Callable[[JobUpdate], bool], timeout_s: float = 10) -> Job:
        async def wait() -> Job:
            async with self._changed:
                while True:
                    for u in self.updates:
                        if predicate(u):
                            return u.job
                    await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout_s)

    async def state(self, job_id: str, *states: JobState, timeout_s: float = 10) -> Job:
        return await self.until(lambda u: u.job.id == job_id and u.job.state in states,
                                timeout_s)


@dataclass
class Rig:
    sim: Simulator
    db_path: Path
    clock: ScaledClock
    settings: Settings
    session: aiohttp.ClientSession
    engines: list[Engine] = field(default_factory=list)
    client_timeout_s: float = 5.0  # real seconds, as aiohttp counts them
    db_url: str | None = None  # a PostgreSQL database to use instead of the file at db_path

    @asynccontextmanager
    async def engine(self, deliverer: Recorder | None = None, policy: PollPolicy | None = None,
                     start: bool = True):
        """An engine on the rig's database; leaving the block stops it abruptly, like a crash."""
        store = await Store.open(self.db_url or self.db_path)
        # Back-off waits in clock seconds, like the engine's own.
        client: DashScope | KeyPool = DashScope(
            self.session, self.settings.base_url, self.sim.api_key,
            timeout_s=self.client_timeout_s, sleep=self.clock.sleep, backoff_cap_s=300)
        if self.settings.api_keys:  # a pool of keys (DASHSCOPE_API_KEYS): a client for each
            client = KeyPool.build(self.settings, self.session, self.clock)
        engine = Engine(store, client, self.settings, clock=self.clock, policy=policy)
        watcher = Watcher()
        engine.subscribe(watcher)
        engine.watcher = watcher  # type: ignore[attr-defined]
        engine.set_deliverer("test", deliverer or Recorder())
        if start:
            await engine.start()
        try:
            yield engine
        finally:
            await engine.stop()
            await store.close()


def settings_for(sim: Simulator, tmp: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = dict(
        dashscope_api_key=sim.api_key, base_url=sim.base_url,
        database_path=tmp / "jobs.sqlite3", video_dir=tmp / "videos",
        trusted_hosts=frozenset({"127.0.0.1"}), media_handoff="url",
        on_deck=0,  # admission exactly within the slots; tests/engine/test_on_deck.py sets it
    )
    values.update(changes)
    return Settings(**values)


def kf2v_request(sim: Simulator, user: str = "alice", team: str = "t1",
                 prompt: str = "a cat looks up", **options: Any) -> JobRequest:
    """A request whose inputs the simulator serves itself (checked as real links)."""
    from tests.conftest import make_image

    first = sim.add_file("first.png", make_image((640, 480)), "image/png")
    last = sim.add_file("last.png", make_image((640, 480)), "image/png")
    model = catalog.get_model("wan2.2-kf2v-flash")
    params = catalog.resolve_options(model, {"resolution": "480P", **options})
    return JobRequest(
        platform="test", team_id=team, channel_id="c1", user_id=user, command="kf2v",
        model=model.name, media={"first_frame_url": first, "last_frame_url": last},
        options=params, prompt=prompt, expected_seconds=5,
    )
