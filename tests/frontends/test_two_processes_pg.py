"""README's "Running more than one process", followed as an operator would: `python -m bot
migrate` once, then two real `python -m bot` processes (the launcher with its Slack front end)
on one PostgreSQL database, set up by their environment alone. Jobs are asked for through the
fake Slack on both processes' connections; the one that leads, and holds the leases of its own
jobs, is SIGKILLed while the provider runs them. The other leads within seconds, takes its jobs
over once their leases lapse, and every video is posted in Slack exactly once, from exactly one
task per job, never beyond the model's slots.

The simulator (its tasks 12x faster than the wall clock, refusing any create beyond the slots)
and the fake Slack run in the test process on 127.0.0.1; the processes find them through
DASHSCOPE_BASE_URL and SLACK_API_URL, as README says."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest

from bot.engine import Job, JobState, Store
from bot.frontends.common import teams
from bot.frontends.slack.generate import team_of
from bot.sim.server import SimConfig, Simulator
from tests.bot_process import BotProcess, Health, bot_command
from tests.discord_stack import MediaServer, png, run_media_server
from tests.fakeslack import FakeSlack, FakeWorkspace, run_fake_slack
from tests.fleet_support import peak_overlap
from tests.slack_stack import NO_LIMITS, manifest_scopes
from tests.slack_steps import answer

MODEL = "wan2.2-kf2v-flash"
SLOTS = 2
JOBS = 6  # three through each process, asked for alternately
SCALE = 12.0  # a task's 2 s queue and 60 s run take about 5 s
LEFT_S = 1.5  # killed only while each running task has this long to go: no create in flight
FAILOVER_S = 5.0  # README: "another leads within about a second"
TAKEOVER_S = 20.0  # a lapsed lease (10 s) found by a re-scan (4 s), with room to spare

T = TypeVar("T")


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(time_scale=SCALE, over_limit="reject", concurrency={MODEL: SLOTS})


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with run_fake_slack(FakeWorkspace(scopes=manifest_scopes())) as fake:
        yield fake


@pytest.fixture
async def media() -> AsyncIterator[MediaServer]:
    async with run_media_server() as server:
        yield server


@pytest.fixture
def env(pg_url: str, sim: Simulator, fake_slack: FakeSlack, tmp_path: Path) -> dict[str, str]:
    """The settings both processes share, as an operator would put them in `.env`."""
    return {
        "DATABASE_URL": pg_url,
        "DASHSCOPE_API_KEY": sim.api_key,
        "DASHSCOPE_BASE_URL": sim.base_url,
        "SLACK_BOT_TOKEN": fake_slack.bot_token,
        "SLACK_APP_TOKEN": fake_slack.app_token,
        "SLACK_API_URL": fake_slack.api_url,
        "MODEL_CONCURRENCY": f"{MODEL}={SLOTS}",
        "ON_DECK": "0",  # exactly the slots: the simulator refuses any create beyond them
        "TRUSTED_MEDIA_HOSTS": "127.0.0.1",  # the frames are links to the local media server
        "PROGRESS_INTERVAL_S": "1",
    }


@pytest.fixture
def bots(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[BotProcess, BotProcess]]:
    """Two processes, each with its own videos folder (as compose.yaml's two volumes)."""
    made = tuple(BotProcess(name, {**env, "VIDEO_DIR": str(tmp_path / name / "videos")},
                            tmp_path) for name in ("bot-1", "bot-2"))
    try:
        yield made  # type: ignore[misc]
    finally:
        for bot in made:
            bot.close()


@pytest.mark.timeout(150)  # typically 25-35 s; each wait below has its own, shorter limit
async def test_two_processes_deliver_every_video_once_through_a_kill(
        sim: Simulator, fake_slack: FakeSlack, media: MediaServer, env: dict[str, str],
        bots: tuple[BotProcess, BotProcess], tmp_path: Path) -> None:
    first, second = bots
    migrated = await asyncio.to_thread(bot_command, "migrate", env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("ok: the postgresql database is at schema version")
    async with open_store(env["DATABASE_URL"]) as store, aiohttp.ClientSession() as http:
        await teams.save(store, team_of(fake_slack.team_id), NO_LIMITS)
        await start_both(first, second, fake_slack, http)
        via = await ask(fake_slack, media)
        running = await mid_job(sim, store, via)
        killed_at = first.kill()
        await second.until(http, lambda h: h["leader"] is True, "leadership", FAILOVER_S)
        failover = time.time() - killed_at
        first.start()  # as its supervisor would (compose: `docker compose start bot-1`)
        await first.until(http, lambda h: _ready(h) and h["leader"] is False, "following")
        await delivered(fake_slack, store, via)
        assert [await bot.stop() for bot in bots] == [0, 0], first.tail() + second.tail()
        jobs = {j.id: j for j in await store.jobs()}
    left = [j for j in jobs.values() if via[j.id] == 0 and (j.delivered_at or 0) > killed_at]
    takeover = min(j.delivered_at or 0 for j in left) - killed_at
    print(f"\ntwo processes: {JOBS} jobs; bot-1 (leading, {len(left)} of its jobs leased) "
          f"SIGKILLed with {len(running)} tasks running; bot-2 led after {failover:.2f} s; "
          f"bot-1's first job left delivered {takeover:.1f} s after the kill")
    check_once(sim, fake_slack, jobs)
    assert failover < FAILOVER_S and takeover < TAKEOVER_S


async def start_both(first: BotProcess, second: BotProcess, fake: FakeSlack,
                     http: aiohttp.ClientSession) -> None:
    """bot-1 first, until it leads with Slack connected; then bot-2, which follows."""
    first.start()
    await first.until(http, lambda h: _ready(h) and h["leader"] is True, "Slack and leadership")
    await fake.wait_connected(1)
    second.start()
    await second.until(http, lambda h: _ready(h) and h["leader"] is False, "Slack, following")
    await fake.wait_connected(2)


def _ready(report: Health) -> bool:
    return report["status"] == 200 and report["chat"] == {"slack": True}


async def ask(fake: FakeSlack, media: MediaServer) -> dict[str, int]:
    """/kf2v JOBS times, alternately through bot-1's and bot-2's connection (Slack hands each
    command to one of an app's connections); job id -> the connection that queued it."""
    a, b = media.add("a.png", png()), media.add("b.png", png((640, 480), "RGB"))
    via: dict[str, int] = {}
    for n in range(JOBS):
        record = await fake.slash("/kf2v", f"<{a}> <{b}> model={MODEL} a cat, take {n}",
                                  via=n % 2)
        await record.acked()
        text = await answer(fake, record)
        assert text.startswith("Queued as job"), text
        via[text.split("`")[1]] = n % 2
    return via


async def mid_job(sim: Simulator, store: Store, via: dict[str, int]) -> list[Job]:
    """Once bot-1 has delivered a video and runs another job: every slot runs a task with
    LEFT_S to go, one of them bot-1's, and every task is in the store (no create is then in
    flight). The jobs running."""
    async def running() -> list[Job] | None:
        now = time.time()
        active = {t.task_id for t in sim.tasks.values()
                  if t.admitted is not None and t.end_at > now + LEFT_S}
        jobs = await store.jobs()
        found = [j for j in jobs if j.task_id in active]
        ready = (len(active) == SLOTS and set(sim.tasks) <= {j.task_id for j in jobs}
                 and any(via[j.id] == 0 for j in found)
                 and any(via[j.id] == 0 and j.state is JobState.DELIVERED for j in jobs))
        return found if ready else None

    return await until(running, 30, "bot-1 running a job after delivering one")


async def delivered(fake: FakeSlack, store: Store, via: dict[str, int]) -> None:
    """Once every job's video is posted in Slack and its job recorded as delivered."""
    await fake.wait_for(lambda: all(fake.uploads_titled(f"wan-{job}.mp4") for job in via)
                        or None, timeout_s=60, what=f"{JOBS} videos in Slack")

    async def recorded() -> bool | None:
        return len(await store.jobs_in([JobState.DELIVERED])) == JOBS or None

    await until(recorded, 10, f"{JOBS} jobs delivered in the store")


def check_once(sim: Simulator, fake: FakeSlack, jobs: dict[str, Job]) -> None:
    """One delivery and one task per job; the slots held at the provider; nothing refused."""
    assert len(jobs) == JOBS and {j.state for j in jobs.values()} == {JobState.DELIVERED}
    for job in jobs.values():
        assert len(fake.uploads_titled(f"wan-{job.id}.mp4")) == 1, job.id
    assert len([u for u in fake.uploads.values() if u.completed]) == JOBS
    assert {j.task_id for j in jobs.values()} == set(sim.tasks)
    assert [r for r in sim.requests if r.status == 429] == []
    assert peak_overlap([(t.created, t.end_at) for t in sim.tasks.values()]) <= SLOTS
    assert fake.ack_failures() == []


@contextlib.asynccontextmanager
async def open_store(url: str) -> AsyncIterator[Store]:
    store = await Store.open(url)
    try:
        yield store
    finally:
        await store.close()


async def until(check: Callable[[], Awaitable[T | None]], timeout_s: float, what: str) -> T:
    """`check()` once it is not None, asked every tenth of a second (the simulator tells
    nobody when a task starts; the store would, but a tenth of a second is close enough)."""
    deadline = time.monotonic() + timeout_s
    while (found := await check()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in {timeout_s} s")
        await asyncio.sleep(0.1)
    return found
