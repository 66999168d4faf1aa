"""What the provider really does, handled: task lists asked in windows of at most a day, a send
older than the list reaches never sent again, the two kinds of AllocationQuota told apart, and
statuses the bot does not know waited on instead of ending the job."""

from __future__ import annotations

from itertools import pairwise

import pytest

from bot.engine import Job, JobState
from bot.engine.poller import LIST_WINDOW_S, list_windows
from bot.errors import ApiError
from bot.provider.tasks import Task, TaskStatus
from tests.engine_support import Rig, kf2v_request

DAY = 24 * 3600.0


def test_list_windows_are_at_most_a_day() -> None:
    """Fifty hours are asked as three windows, none over a day, together covering them all."""
    windows = list_windows(0.0, 50 * 3600.0)
    assert len(windows) == 3 and all(end - start <= DAY for start, end in windows)
    assert windows[0][0] == 0.0 and windows[-1][1] == 50 * 3600.0
    assert all(a[1] == b[0] for a, b in pairwise(windows))
    assert LIST_WINDOW_S < DAY


async def test_a_two_day_listing_is_asked_day_by_day(rig: Rig) -> None:
    """The simulator, like the provider, refuses windows over a day: the engine's listing of
    two days is three queries, and none is refused."""
    async with rig.engine() as engine:
        now = rig.clock.now()
        before = len([r for r in rig.sim.requests if r.route == "list"])
        await engine.poller.list_tasks(now - 2 * DAY, now)
        asked = [r for r in rig.sim.requests if r.route == "list"][before:]
    assert len(asked) == 3 and all(r.status == 200 for r in asked)


async def test_a_send_older_than_the_list_reaches_is_not_sent_again(rig: Rig) -> None:
    """A job left in `submitting` for thirty hours (the bot was down): its task cannot be
    looked for any more, so it fails with a reason; it is never sent a second time."""
    async with rig.engine(start=False) as engine:
        sent = rig.clock.now() - 30 * 3600.0
        request = kf2v_request(rig.sim)
        job = Job(id="old0001", state=JobState.SUBMITTING, created_at=sent - 5,
                  submitted_at=sent, sends=[sent], attempts=1, **request.__dict__)
        await engine.store.insert_job(job)
        await engine.start()
        done = await engine.watcher.state(job.id, JobState.FAILED)
    assert done.error_code == "Unreconciled"
    assert [r for r in rig.sim.requests if r.route == "create"] == []


@pytest.mark.parametrize(("message", "retryable"), [
    ("Requests rate limit exceeded, please try again later.", True),
    ("Allocated quota exceeded, please increase your quota limit.", True),
    ("The free tier of the model has been exhausted.", False),
])
async def test_allocation_quota_is_told_apart_by_its_message(client, sim, message: str,
                                                             retryable: bool) -> None:
    """A per-minute quota is waited out (a minute at least); an exhausted free quota is final."""
    sim.config.fail("create", status=429, code="Throttling.AllocationQuota", message=message)
    body = {"model": "wan2.2-kf2v-flash", "input": {}, "parameters": {}}
    with pytest.raises(ApiError) as caught:
        await client.create_task("services/aigc/image2video/video-synthesis", body)
    assert caught.value.retryable is retryable
    if retryable:
        assert (caught.value.retry_after_s or 0) >= 60


@pytest.mark.parametrize(("status", "expected", "ends"), [
    ("SUSPENDED", TaskStatus.SUSPENDED, False),
    ("REVIEWING", TaskStatus.OTHER, False),
    ("UNKNOWN", TaskStatus.UNKNOWN, True),
    (None, TaskStatus.UNKNOWN, True),
])
def test_statuses_the_bot_does_not_know_do_not_end_a_job(status: str | None,
                                                         expected: TaskStatus,
                                                         ends: bool) -> None:
    """SUSPENDED (known to the SDK) and any new status are waited on; only UNKNOWN ends."""
    task = Task.from_api({"output": {"task_id": "t", "task_status": status}})
    assert task.status is expected and task.is_terminal is ends
