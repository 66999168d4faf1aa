"""Pooled API keys on the simulator, where each key is its own account (its own slots, query
rate and tasks): two keys run twice the jobs in the same time; each task stays with the key
that created it; a key the provider refuses is set aside while the other goes on."""

from __future__ import annotations

import dataclasses
import logging
from itertools import pairwise

import pytest

from bot.config import ApiKey
from bot.engine import Job, JobState
from bot.provider import catalog
from bot.sim.state import key_id
from tests.engine_support import Rig, kf2v_request

MODEL = "wan2.2-kf2v-flash"
SECOND = "sk-sim-second-account-0000000"
WRONG = "sk-sim-never-issued-000000000"


@pytest.fixture
def running_s() -> float:
    """Long tasks (in clock seconds): the test machine's own delays, scaled up by the clock,
    stay small beside them, so throughput reflects the slots."""
    return 240.0


def pool(rig: Rig, *secrets: str) -> None:
    """The engine uses these keys, every model one slot on each, nothing on deck."""
    keys = tuple(ApiKey(s, "singapore", rig.sim.base_url) for s in secrets)
    rig.settings = dataclasses.replace(rig.settings, api_keys=keys, dashscope_api_key=secrets[0],
                                       concurrency={MODEL: 1})
    rig.sim.config.concurrency[MODEL] = 1


async def run(rig: Rig, count: int) -> tuple[float, list[Job]]:
    """Queue `count` jobs at once; clock seconds until all were delivered, and the jobs."""
    async with rig.engine() as engine:
        start = rig.clock.now()
        jobs = [(await engine.submit(kf2v_request(rig.sim, user=f"u{n}"))).job
                for n in range(count)]
        for job in jobs:
            await engine.watcher.state(job.id, JobState.DELIVERED, timeout_s=30)
        took = rig.clock.now() - start
        return took, [await engine.store.get_job(j.id) for j in jobs]  # type: ignore[misc]


def by_account(rig: Rig, jobs: list[Job]) -> dict[str, list]:
    tasks = [rig.sim.tasks[j.task_id or ""] for j in jobs]
    found: dict[str, list] = {}
    for task in sorted(tasks, key=lambda t: t.created):
        found.setdefault(task.account, []).append(task)
    return found


async def test_two_keys_double_the_throughput(rig: Rig) -> None:
    """The same six one-slot jobs: with a second account they finish in about half the time;
    each account gets three, never more than its one slot at once, and every job's stored key
    is the one whose account made its task."""
    rig.sim.config.api_keys = (SECOND,)
    pool(rig, rig.sim.api_key)
    one_took, _ = await run(rig, 6)
    pool(rig, rig.sim.api_key, SECOND)
    two_took, jobs = await run(rig, 6)
    print(f"one key {one_took:.0f} s, two keys {two_took:.0f} s (clock) for 6 jobs")
    assert one_took / two_took > 1.7
    accounts = by_account(rig, jobs)
    assert sorted(len(t) for t in accounts.values()) == [3, 3]
    for tasks in accounts.values():
        for before, after in pairwise(tasks):
            assert after.created >= before.end_at  # one slot per account, never two
    ours = {key_id(s): ApiKey(s).id for s in (rig.sim.api_key, SECOND)}
    for job in jobs:
        assert ours[rig.sim.tasks[job.task_id or ""].account] == job.api_key_id


async def test_a_refused_key_is_set_aside_and_the_other_takes_its_jobs(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A key the provider never issued: its first create is refused, the key is set aside
    with one loud line naming its id (never the key), and every job is made by the other."""
    pool(rig, WRONG, rig.sim.api_key)
    with caplog.at_level(logging.ERROR):
        _, jobs = await run(rig, 3)
    assert {j.api_key_id for j in jobs} == {ApiKey(rig.sim.api_key).id}
    assert len(rig.sim.tasks) == 3
    loud = [r.getMessage() for r in caplog.records if "SET ASIDE" in r.getMessage()]
    assert len(loud) == 1 and ApiKey(WRONG).id in loud[0]
    assert WRONG not in caplog.text


async def test_a_revoked_key_fails_only_the_tasks_it_alone_can_reach(rig: Rig) -> None:
    """Two jobs run, one on each key; the second key is revoked mid-run: its job fails saying
    which key was refused, the other job is delivered, and a later job goes to the good key."""
    rig.sim.config.api_keys = (SECOND,)
    pool(rig, rig.sim.api_key, SECOND)
    async with rig.engine() as engine:
        jobs = [(await engine.submit(kf2v_request(rig.sim, user=f"u{n}"))).job for n in range(2)]
        for job in jobs:
            await engine.watcher.state(job.id, JobState.PENDING, JobState.RUNNING)
        rig.sim.config.api_keys = ()  # revoked
        placed = {(await engine.store.get_job(j.id)).api_key_id: j for j in jobs}  # type: ignore[union-attr]
        lost = await engine.watcher.state(placed[ApiKey(SECOND).id].id, JobState.FAILED)
        kept = placed[ApiKey(rig.sim.api_key).id]
        await engine.watcher.state(kept.id, JobState.DELIVERED, timeout_s=20)
        later = (await engine.submit(kf2v_request(rig.sim, user="u9"))).job
        done = await engine.watcher.state(later.id, JobState.DELIVERED, timeout_s=20)
    assert lost.error_code == "InvalidApiKey" and ApiKey(SECOND).id in (lost.error_message or "")
    assert done.api_key_id == ApiKey(rig.sim.api_key).id


async def test_a_create_with_a_revoked_key_is_failed_not_sent_again(rig: Rig) -> None:
    """A restart finds a job in `submitting` whose create went out with a key since revoked
    (its answer lost): that account cannot be asked whether the task exists, so the job fails
    saying why, and is never sent again with the other key (it might then be paid twice)."""
    rig.sim.config.api_keys = (SECOND,)
    pool(rig, rig.sim.api_key, SECOND)
    async with rig.engine(start=False) as engine:
        request = dataclasses.replace(kf2v_request(rig.sim), api_key_id=ApiKey(SECOND).id)
        job_id = (await engine.submit(request)).job.id
        now = rig.clock.now()
        await engine.store.update_job(job_id, state=JobState.SUBMITTING, submitted_at=now,
                                      attempts=1, sends=[now])
        model = catalog.get_model(request.model)
        body = catalog.build_body(model, "singapore", request.media, request.prompt, None,
                                  request.options)
        await engine.keys.get(ApiKey(SECOND).id).client.create_task(model.endpoint, body)
    rig.sim.config.api_keys = ()  # revoked while the bot was down
    async with rig.engine() as engine:
        job = await engine.watcher.state(job_id, JobState.FAILED, timeout_s=20)
    assert job.error_code == "InvalidApiKey" and ApiKey(SECOND).id in (job.error_message or "")
    assert len(rig.sim.tasks) == 1  # the one create, never a second


async def test_a_job_bound_to_its_key_waits_for_it_and_others_pass_it(rig: Rig) -> None:
    """Jobs whose inputs were uploaded with a key (bound to it) go only to that key; the first
    one waiting for its busy key does not keep the other key idle: a job behind it bound to
    the other key starts while the first key's task still runs."""
    rig.sim.config.api_keys = (SECOND,)
    pool(rig, rig.sim.api_key, SECOND)
    first, second = ApiKey(rig.sim.api_key).id, ApiKey(SECOND).id

    def bound(user: str, key: str):  # as if its inputs had been uploaded with `key`
        return dataclasses.replace(kf2v_request(rig.sim, user=user), oss=True, api_key_id=key)

    async with rig.engine() as engine:
        jobs = [(await engine.submit(bound(user, key))).job
                for user, key in (("u1", first), ("u2", first), ("u3", second))]
        done = [await engine.watcher.state(j.id, JobState.DELIVERED, timeout_s=30) for j in jobs]
    assert [j.api_key_id for j in done] == [first, first, second]
    one, two, three = (rig.sim.tasks[j.task_id or ""] for j in done)
    assert {one.account, two.account} == {key_id(rig.sim.api_key)}
    assert three.account == key_id(SECOND)
    assert two.created >= one.end_at  # it waited for its own key
    assert three.created < one.end_at  # it did not wait behind the job that did


async def test_uploads_take_turns_by_slots_and_bind_the_job_that_uses_them(rig: Rig) -> None:
    """Inputs are uploaded with each key in turn, in proportion to its slots (2:1 here); a job
    whose inputs the second key uploaded is queued bound to that key, and made there (the
    simulator, like the provider, reads an upload only for the account that made it)."""
    from tests.conftest import make_image

    rig.sim.config.api_keys = (SECOND,)
    pool(rig, rig.sim.api_key, SECOND)
    keys = (ApiKey(rig.sim.api_key, "singapore", rig.sim.base_url, {MODEL: 2}),
            ApiKey(SECOND, "singapore", rig.sim.base_url))
    rig.settings = dataclasses.replace(rig.settings, api_keys=keys)
    png = make_image((640, 480))
    async with rig.engine() as engine:
        urls = [await engine.upload(MODEL, f"f{n}.png", png, "image/png") for n in range(6)]
        owners = [engine.keys.uploader_of({"x": url}) for url in urls]
        theirs = urls[owners.index(keys[1].id)]
        request = dataclasses.replace(kf2v_request(rig.sim), oss=True, media={
            "first_frame_url": theirs, "last_frame_url": theirs})
        queued = (await engine.submit(request)).job
        done = await engine.watcher.state(queued.id, JobState.DELIVERED, timeout_s=30)
    assert owners.count(keys[0].id) == 4 and owners.count(keys[1].id) == 2
    assert queued.api_key_id == keys[1].id == done.api_key_id
    assert rig.sim.tasks[done.task_id or ""].account == key_id(SECOND)
