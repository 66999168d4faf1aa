"""The engine against the simulator over real HTTP, on a real SQLite file, time compressed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.engine import CancelOutcome, JobState, Store
from bot.provider import catalog
from tests.engine_support import Recorder, kf2v_request, settings_for

DONE = (JobState.DELIVERED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED)


def creates(sim) -> int:
    return sum(1 for r in sim.requests if r.route == "create" and r.status == 200)


async def test_a_job_walks_every_state_to_delivery(rig):
    """queued -> submitting -> pending -> running -> succeeded -> delivering -> delivered."""
    recorder = Recorder()
    async with rig.engine(recorder) as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        assert update.position == 1
        job = await engine.watcher.state(update.job.id, *DONE)
    assert job.state is JobState.DELIVERED
    assert engine.watcher.states(job.id) == [
        JobState.QUEUED, JobState.SUBMITTING, JobState.PENDING, JobState.RUNNING,
        JobState.SUCCEEDED, JobState.DELIVERING, JobState.DELIVERED]
    assert recorder.posts == [(job.id, rig.sim._mp4)]
    assert job.usage["video_duration"] == 5 and job.provider_seconds == pytest.approx(62, abs=2)
    assert job.task_id in rig.sim.tasks and creates(rig.sim) == 1


async def test_moderation_failure_is_final_and_nothing_is_posted(rig):
    recorder = Recorder()
    async with rig.engine(recorder) as engine:
        update = await engine.submit(kf2v_request(rig.sim, prompt="a sim-blocked scene"))
        job = await engine.watcher.state(update.job.id, *DONE)
    assert (job.state, job.error_code) == (JobState.FAILED, "DataInspectionFailed")
    assert recorder.posts == []


async def test_an_unreachable_input_fails_the_task(rig):
    request = kf2v_request(rig.sim)
    request.media["last_frame_url"] = rig.sim.root_url + "/files/missing.png"
    async with rig.engine() as engine:
        job = await engine.watcher.state((await engine.submit(request)).job.id, *DONE)
    assert (job.state, job.error_code) == (JobState.FAILED, "InvalidParameter")


async def test_a_request_the_provider_refuses_fails_without_a_task(rig):
    """An invalid parameter answered at create time: failed, never retried."""
    request = kf2v_request(rig.sim)
    request.options["resolution"] = "4K"
    async with rig.engine() as engine:
        job = await engine.watcher.state((await engine.submit(request)).job.id, *DONE)
    assert (job.state, job.error_code) == (JobState.FAILED, "InvalidParameter")
    assert creates(rig.sim) == 0


async def test_fairness_one_users_many_jobs_do_not_hold_back_another(rig):
    """With one slot, bob's single job is admitted right after alice's first."""
    rig.settings = settings_for(rig.sim, rig.db_path.parent,
                                concurrency={"wan2.2-kf2v-flash": 1})
    async with rig.engine(start=False) as engine:
        alice = [await engine.submit(kf2v_request(rig.sim, "alice")) for _ in range(4)]
        bob = await engine.submit(kf2v_request(rig.sim, "bob"))
        assert bob.position == 2  # the queue shows the fair order at once
        await engine.start()
        await engine.watcher.state(bob.job.id, *DONE, timeout_s=20)
        store = engine.store
        sent = [j for j in await store.jobs() if j.submitted_at is not None]
        order = sorted(sent, key=lambda j: j.submitted_at or 0)
    assert [j.user_id for j in order[:2]] == ["alice", "bob"]
    assert len(alice) == 4


async def test_queue_positions_follow_the_fair_order(rig):
    rig.settings = settings_for(rig.sim, rig.db_path.parent,
                                concurrency={"wan2.2-kf2v-flash": 1})
    async with rig.engine(start=False) as engine:
        for _ in range(3):
            await engine.submit(kf2v_request(rig.sim, "alice"))
        bob = await engine.submit(kf2v_request(rig.sim, "bob"))
        queue = await engine.queue()
    users = [u.job.user_id for u in queue["wan2.2-kf2v-flash"]]
    assert users == ["alice", "bob", "alice", "alice"]
    assert [u.position for u in queue["wan2.2-kf2v-flash"]] == [1, 2, 3, 4]
    assert bob.job.state is JobState.QUEUED


async def test_concurrency_429_means_wait_for_a_slot_not_failure(rig):
    """The provider has one slot, we think two: the second create gets 429 and waits."""
    rig.sim.config.over_limit = "reject"
    rig.sim.config.concurrency = {"wan2.2-kf2v-flash": 1}
    async with rig.engine() as engine:
        ids = [(await engine.submit(kf2v_request(rig.sim, u))).job.id for u in ("a", "b")]
        jobs = [await engine.watcher.state(i, *DONE, timeout_s=20) for i in ids]
    assert [j.state for j in jobs] == [JobState.DELIVERED] * 2
    rejected = [r for r in rig.sim.requests if r.route == "create" and r.status == 429]
    assert rejected and creates(rig.sim) == 2
    assert max(j.attempts for j in jobs) >= 2


async def test_cancel_a_queued_job_spends_nothing(rig):
    async with rig.engine(start=False) as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        assert await engine.cancel(update.job.id) is CancelOutcome.DROPPED
        assert (await engine.store.get_job(update.job.id)).state is JobState.CANCELED
    assert creates(rig.sim) == 0


async def test_cancel_a_pending_task_at_the_provider(rig):
    rig.sim.config.pending_s = 10_000.0
    async with rig.engine() as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        job = await engine.watcher.state(update.job.id, JobState.PENDING)
        assert await engine.cancel(job.id) is CancelOutcome.CANCELED
        job = await engine.store.get_job(job.id)
    assert job.state is JobState.CANCELED
    assert rig.sim.tasks[job.task_id].canceled_at is not None


async def test_cancel_a_running_task_withholds_its_result(rig):
    recorder = Recorder()
    async with rig.engine(recorder) as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        job = await engine.watcher.state(update.job.id, JobState.RUNNING)
        assert await engine.cancel(job.id) is CancelOutcome.WILL_NOT_DELIVER
        job = await engine.watcher.state(job.id, *DONE)
    assert job.state is JobState.CANCELED and recorder.posts == []
    assert job.usage is not None  # it was paid for: usage is kept for budgets


async def test_cancel_after_delivery_is_too_late(rig):
    async with rig.engine() as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        await engine.watcher.state(update.job.id, JobState.DELIVERED)
        assert await engine.cancel(update.job.id) is CancelOutcome.TOO_LATE
        assert await engine.cancel("nope") is CancelOutcome.UNKNOWN


async def test_a_task_the_provider_forgot_is_expired(rig):
    rig.sim.config.running_s = 10_000.0
    async with rig.engine() as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        await engine.watcher.state(update.job.id, JobState.RUNNING)
        rig.sim.advance(rig.sim.config.ttl_s)
        job = await engine.watcher.state(update.job.id, *DONE)
    assert (job.state, job.error_code) == (JobState.EXPIRED, "UNKNOWN")


async def test_a_dead_result_link_is_expired_not_retried_forever(rig):
    rig.sim.config.fail("result", times=1, status=403, code="AccessDenied")
    async with rig.engine() as engine:
        job = await engine.watcher.state((await engine.submit(kf2v_request(rig.sim))).job.id,
                                         *DONE)
    assert (job.state, job.error_code) == (JobState.EXPIRED, "Expired")


async def test_a_passing_download_error_is_retried(rig):
    rig.sim.config.fail("result", times=2, status=503)
    async with rig.engine() as engine:
        job = await engine.watcher.state((await engine.submit(kf2v_request(rig.sim))).job.id,
                                         *DONE)
    assert job.state is JobState.DELIVERED


async def test_a_result_that_can_never_be_posted_fails_instead_of_retrying(rig):
    recorder = Recorder()
    recorder.refuse = True
    async with rig.engine(recorder) as engine:
        job = await engine.watcher.state((await engine.submit(kf2v_request(rig.sim))).job.id,
                                         *DONE)
    assert (job.state, job.error_code) == (JobState.FAILED, "Undeliverable")
    assert job.usage is not None  # it was made (and paid for); the usage still counts


async def test_query_rate_never_exceeds_the_cap(rig):
    rig.settings = settings_for(rig.sim, rig.db_path.parent, max_qps=3,
                                concurrency={"wan2.2-kf2v-flash": 4})
    async with rig.engine() as engine:
        ids = [(await engine.submit(kf2v_request(rig.sim, f"u{i}"))).job.id for i in range(4)]
        for job_id in ids:
            await engine.watcher.state(job_id, *DONE, timeout_s=20)
    assert 0 < engine.limiter.peak <= 3
    assert not [r for r in rig.sim.requests if r.status == 429]


# --- crash and restart at each state: exactly one task and one delivery per job --------------


async def test_restart_with_a_queued_job(rig):
    recorder = Recorder()
    async with rig.engine(recorder, start=False) as engine:
        job_id = (await engine.submit(kf2v_request(rig.sim))).job.id
    async with rig.engine(recorder) as engine:
        await engine.watcher.state(job_id, JobState.DELIVERED)
    assert creates(rig.sim) == 1 and len(recorder.posts) == 1


@pytest.mark.parametrize("at", [JobState.PENDING, JobState.RUNNING])
async def test_restart_while_at_the_provider(rig, at):
    recorder = Recorder()
    async with rig.engine(recorder) as engine:
        job_id = (await engine.submit(kf2v_request(rig.sim))).job.id
        await engine.watcher.state(job_id, at)
    async with rig.engine(recorder) as engine:
        await engine.watcher.state(job_id, JobState.DELIVERED)
    assert creates(rig.sim) == 1 and len(recorder.posts) == 1


async def test_restart_while_fetching_the_result(rig):
    rig.sim.config.slow("result", delay_s=30)
    recorder = Recorder()
    async with rig.engine(recorder) as engine:
        job_id = (await engine.submit(kf2v_request(rig.sim))).job.id
        await engine.watcher.state(job_id, JobState.SUCCEEDED)
    rig.sim.config.faults.clear()
    async with rig.engine(recorder) as engine:
        await engine.watcher.state(job_id, JobState.DELIVERED)
    assert creates(rig.sim) == 1 and len(recorder.posts) == 1


@pytest.mark.parametrize("posted", [False, True])
async def test_restart_mid_delivery_posts_exactly_once(rig, posted):
    """Crash before the post, or after it but before it was recorded: one post either way."""
    first = Recorder()
    first.hang_after_post, first.hang_before_post = posted, not posted
    async with rig.engine(first) as engine:
        job_id = (await engine.submit(kf2v_request(rig.sim))).job.id
        await engine.watcher.state(job_id, JobState.DELIVERING)
        await asyncio.sleep(0)  # let the deliverer reach its hang
    second = Recorder()
    second.posts = list(first.posts)  # what the channel shows after the crash
    async with rig.engine(second) as engine:
        await engine.watcher.state(job_id, JobState.DELIVERED)
    assert [p[0] for p in second.posts] == [job_id]


async def submitting_row(rig, engine, *, sent: bool) -> str:
    """A job as a crash leaves it: `submitting` written; the POST sent or not."""
    request = kf2v_request(rig.sim)
    job_id = (await engine.submit(request)).job.id
    now = rig.clock.now()
    await engine.store.update_job(job_id, state=JobState.SUBMITTING, submitted_at=now,
                                  attempts=1)
    if sent:
        model = catalog.get_model(request.model)
        body = catalog.build_body(model, "singapore", request.media, request.prompt, None,
                                  request.options)
        await engine.keys.first.client.create_task(model.endpoint, body)
    return job_id


@pytest.mark.parametrize("sent", [False, True])
async def test_restart_in_submitting_reconciles_before_resubmitting(rig, sent):
    """Never pay twice (the POST landed: adopt its task), never drop (it did not: send it)."""
    recorder = Recorder()
    async with rig.engine(recorder, start=False) as engine:
        job_id = await submitting_row(rig, engine, sent=sent)
    async with rig.engine(recorder) as engine:
        job = await engine.watcher.state(job_id, JobState.DELIVERED)
    assert creates(rig.sim) == 1 and len(recorder.posts) == 1
    assert job.task_id in rig.sim.tasks


async def test_reconcile_ignores_someone_elses_task(rig):
    """A task of the same model with another prompt is not taken for ours."""
    recorder = Recorder()
    async with rig.engine(recorder, start=False) as engine:
        other = kf2v_request(rig.sim, prompt="someone else's prompt")
        model = catalog.get_model(other.model)
        body = catalog.build_body(model, "singapore", other.media, other.prompt, None,
                                  other.options)
        foreign = await engine.keys.first.client.create_task(model.endpoint, body)
        rig.clock.advance(30)  # the crash came well after that task was made
        job_id = await submitting_row(rig, engine, sent=False)
    async with rig.engine(recorder) as engine:
        job = await engine.watcher.state(job_id, JobState.DELIVERED)
    assert job.task_id != foreign.task_id and creates(rig.sim) == 2


async def test_a_create_whose_answer_was_lost_is_not_paid_twice(rig):
    """The connection drops after the provider made the task: reconciled, not resubmitted."""
    rig.sim.config.drop("create", after=True)
    async with rig.engine() as engine:
        job = await engine.watcher.state((await engine.submit(kf2v_request(rig.sim))).job.id,
                                         *DONE, timeout_s=20)
    assert job.state is JobState.DELIVERED and creates(rig.sim) == 0
    assert len(rig.sim.tasks) == 1 and job.task_id in rig.sim.tasks


async def test_history_makes_an_eta(rig, tmp_path):
    """After a few finished jobs, running and queued jobs get an ETA."""
    store = await Store.open(rig.db_path)
    from tests.engine.test_store import make_job

    for i in range(6):
        await store.insert_job(make_job(f"h{i}", state=JobState.DELIVERED, finished_at=float(i),
                                        provider_seconds=60.0 + i))
    await store.close()
    async with rig.engine(start=False) as engine:
        await engine.start()
        update = await engine.submit(kf2v_request(rig.sim))
    assert update.eta_s is not None and 60 < update.eta_s < 200


def test_time_helpers_are_utc():
    from bot.engine.poller import as_datetime

    assert as_datetime(0) == datetime(1970, 1, 1, tzinfo=UTC)


async def test_old_videos_are_deleted_and_new_ones_kept(rig):
    rig.settings = settings_for(rig.sim, rig.db_path.parent, video_keep_s=3600)
    async with rig.engine() as engine:
        job = await engine.watcher.state((await engine.submit(kf2v_request(rig.sim))).job.id,
                                         JobState.DELIVERED)
        assert await engine.results.sweep() == 0
        rig.clock.advance(3601)
        assert await engine.results.sweep() == 1
        gone = await engine.store.get_job(job.id)
    assert gone.video_path is None
    assert not (rig.db_path.parent / "videos" / f"{job.id}.mp4").exists()


async def test_polling_survives_a_broken_task_list(rig):
    """Listing is an optimisation: when it fails, tasks are asked about one by one."""
    rig.sim.config.fail("list", times=1000, status=500)
    async with rig.engine() as engine:
        ids = [(await engine.submit(kf2v_request(rig.sim, u))).job.id for u in ("a", "b")]
        jobs = [await engine.watcher.state(i, *DONE, timeout_s=20) for i in ids]
    assert [j.state for j in jobs] == [JobState.DELIVERED] * 2


async def test_reconcile_waits_when_the_provider_cannot_list(rig):
    """A job stuck in submitting is never resent blind: it waits for a list that works."""
    recorder = Recorder()
    async with rig.engine(recorder, start=False) as engine:
        job_id = await submitting_row(rig, engine, sent=True)
    fault = rig.sim.config.fail("list", times=1000, status=503)
    async with rig.engine(recorder) as engine:
        assert (await engine.store.get_job(job_id)).state is JobState.SUBMITTING
        rig.sim.config.faults.remove(fault)  # the retry, RECONCILE_RETRY_S later, succeeds
        await engine.watcher.state(job_id, JobState.DELIVERED)
    assert creates(rig.sim) == 1 and len(recorder.posts) == 1
