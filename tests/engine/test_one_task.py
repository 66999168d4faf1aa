"""Never a second task for one job: throttled, lost, slow and crashed creates against the
simulator over real HTTP, on a real SQLite file, time compressed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from bot.clock import ScaledClock
from bot.engine import Engine, Job, JobState
from bot.provider import catalog
from bot.sim.server import Simulator
from bot.sim.state import Fault
from tests.engine_support import Recorder, Rig, kf2v_request, settings_for
from tests.net_support import SlowLink

DONE = (JobState.DELIVERED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED)
SCALE = 50.0  # clock seconds per real second: slow enough that real HTTP fits in a timeout
TIMEOUT_S = 50.0  # clock seconds (1 s real): the engine's HTTP timeout
STORM_S = 30.0  # Retry-After of each 429: three of them outlast TIMEOUT_S and any skew
PROMPTS = ("a cat looks up", "a dog looks down")


@pytest.fixture
def clock_scale() -> float:
    return SCALE


@pytest.fixture
def running_s() -> float:
    return 10.0


def make_rig(sim: Simulator, session, tmp_path, clock: ScaledClock, base_url: str) -> Rig:
    settings = settings_for(sim, tmp_path, http_timeout_s=TIMEOUT_S, base_url=base_url)
    return Rig(sim, tmp_path / "jobs.sqlite3", clock, settings, session,
               client_timeout_s=TIMEOUT_S / SCALE)


@pytest.fixture
async def rig(sim, session, tmp_path, clock) -> Rig:
    return make_rig(sim, session, tmp_path, clock, sim.base_url)


@pytest.fixture
def cannot_list() -> Iterator[asyncio.Event]:
    """Set when the engine has tried to reconcile and could not list the provider's tasks."""
    seen = asyncio.Event()

    class Flag(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("cannot list"):
                seen.set()

    handler = Flag(logging.WARNING)
    logger = logging.getLogger("bot.engine")
    logger.addHandler(handler)
    yield seen
    logger.removeHandler(handler)


def create_statuses(sim: Simulator) -> list[int | None]:
    return [r.status for r in sim.requests if r.route == "create"]


def prompt_of(sim: Simulator, job: Job) -> str | None:
    return sim.tasks[job.task_id].prompt


def lose_answer(sim: Simulator, how: str) -> None:
    """The next create makes its task, then its answer is lost (dropped, or too slow)."""
    if how == "dropped":
        sim.config.drop("create", after=True)
    else:
        sim.config.slow("create", delay_s=3 * TIMEOUT_S / SCALE, after=True)


async def finish(engine: Engine, job_id: str) -> Job:
    return await engine.watcher.state(job_id, *DONE, timeout_s=30)


async def two_jobs_each_with_its_own_task(rig: Rig) -> None:
    """Two people's jobs of one model, sent together, end delivered, each with one task of
    its own (its own prompt), whatever the faults set up before."""
    async with rig.engine() as engine:
        ids = [(await engine.submit(kf2v_request(rig.sim, u, prompt=p))).job.id
               for u, p in zip(("alice", "bob"), PROMPTS, strict=True)]
        jobs = [await finish(engine, i) for i in ids]
    assert [j.state for j in jobs] == [JobState.DELIVERED] * 2
    assert len(rig.sim.tasks) == 2
    assert [prompt_of(rig.sim, j) for j in jobs] == list(PROMPTS)


@pytest.mark.parametrize("how", ["dropped", "slow"])
async def test_a_429_storm_then_a_lost_answer_makes_one_task(rig, how):
    """Three 429s with Retry-After, then the create lands and its answer is lost: one task."""
    rig.sim.config.fail("create", times=3, status=429, retry_after_s=STORM_S)
    lose_answer(rig.sim, how)
    async with rig.engine() as engine:
        job = await finish(engine, (await engine.submit(kf2v_request(rig.sim))).job.id)
    assert job.state is JobState.DELIVERED and list(rig.sim.tasks) == [job.task_id]
    assert create_statuses(rig.sim) == [429, 429, 429, None]
    assert len(job.sends) == 4


async def test_a_crash_after_a_storm_and_a_lost_answer_finds_the_task(rig, cannot_list):
    """The engine dies before it could reconcile; the next one on the same file adopts the
    task made by the last of the attempts."""
    rig.sim.config.fail("create", times=3, status=429, retry_after_s=STORM_S)
    lose_answer(rig.sim, "dropped")
    listing = rig.sim.config.fail("list", times=1000, status=503)
    recorder = Recorder()
    async with rig.engine(recorder) as engine:
        job_id = (await engine.submit(kf2v_request(rig.sim))).job.id
        await asyncio.wait_for(cannot_list.wait(), 30)
    rig.sim.config.faults.remove(listing)
    async with rig.engine(recorder) as engine:
        job = await finish(engine, job_id)
    assert job.state is JobState.DELIVERED and list(rig.sim.tasks) == [job.task_id]
    assert [p[0] for p in recorder.posts] == [job_id]


async def test_a_create_that_lands_after_its_timeout_is_found(sim, session, tmp_path, clock):
    """The first create crawls to the provider and lands after the client gave up: the job
    waits for it instead of sending another (the second would be paid too)."""
    link = await SlowLink(sim.port, delay_s=1.3 * TIMEOUT_S / SCALE).start()
    try:
        rig = make_rig(sim, session, tmp_path, clock,
                       sim.base_url.replace(f":{sim.port}/", f":{link.port}/"))
        async with rig.engine() as engine:
            job = await finish(engine, (await engine.submit(kf2v_request(sim))).job.id)
    finally:
        await link.close()
    assert job.state is JobState.DELIVERED and list(sim.tasks) == [job.task_id]
    assert create_statuses(sim) == [200] and len(job.sends) == 1


async def test_a_create_on_its_way_is_never_taken_for_unsent(rig):
    """One job's answer is lost while another's create is still on its way: each ends with
    its own single task (the one on its way is not declared unsent and sent again)."""
    rig.sim.config.slow("create", delay_s=1.0)  # the first create to arrive waits first
    rig.sim.config.drop("create", after=True)  # the other one's answer is lost
    await two_jobs_each_with_its_own_task(rig)


async def test_a_task_whose_answer_is_on_its_way_is_not_taken_by_another_job(rig):
    """One job's create is lost before it made anything, while another's task exists and its
    answer is still coming: the first job waits instead of adopting that task."""
    # The first create to arrive is closed, with no task made, once the other's task exists;
    # the other is answered late (but within the timeout).
    rig.sim.config.faults.append(Fault("create", status=None, drop=True, delay_s=0.3))
    rig.sim.config.slow("create", delay_s=0.8, after=True)
    rig.sim.config.running_s = 60.0  # still running (its prompt not shown) when looked at
    await two_jobs_each_with_its_own_task(rig)


async def test_lost_answers_of_two_jobs_are_told_apart_by_prompt(rig):
    """Two jobs crashed in `submitting`, their tasks made in the other order: each job gets
    the task with its own prompt, not the one nearest in time."""
    recorder = Recorder()
    async with rig.engine(recorder, start=False) as engine:
        requests = [kf2v_request(rig.sim, u, prompt=p)
                    for u, p in zip(("alice", "bob"), PROMPTS, strict=True)]
        ids = [(await engine.submit(r)).job.id for r in requests]
        now = rig.clock.now()
        for offset, job_id in enumerate(ids):
            await engine.store.update_job(job_id, state=JobState.SUBMITTING,
                                          submitted_at=now + offset, attempts=1)
        for request in reversed(requests):  # bob's task first, then alice's
            model = catalog.get_model(request.model)
            body = catalog.build_body(model, "singapore", request.media, request.prompt,
                                      None, request.options)
            await engine.keys.first.client.create_task(model.endpoint, body)
    async with rig.engine(recorder) as engine:
        jobs = [await finish(engine, i) for i in ids]
    assert [j.state for j in jobs] == [JobState.DELIVERED] * 2
    assert len(rig.sim.tasks) == 2
    assert [prompt_of(rig.sim, j) for j in jobs] == list(PROMPTS)
