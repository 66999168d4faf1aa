"""The DashScope client against the simulator, over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from bot.errors import ApiError
from bot.provider import catalog
from bot.provider.client import (
    TERMINAL,
    DashScope,
    Task,
    TaskStatus,
    error_from_response,
    parse_time,
)
from bot.sim.media import make_mp4
from bot.sim.server import SimConfig, Simulator
from bot.sim.state import ManualClock
from tests.conftest import data_url, make_image

KF2V = catalog.get_model("wan2.2-kf2v-flash")
I2V = catalog.get_model("wan2.2-i2v-flash")
ANIMATE = catalog.get_model("wan2.2-animate-mix")
DAY = timedelta(days=1)


@pytest.fixture
def sim_config() -> SimConfig:
    """Time moves only when a test advances it: every state is exact."""
    return SimConfig(clock=ManualClock(), pending_s=10, running_s=60)


def kf2v_body(first: str | None = None, prompt: str = "a cat looks up") -> dict[str, Any]:
    url = first or data_url(make_image())
    media = {"first_frame_url": url, "last_frame_url": data_url(make_image())}
    return catalog.build_body(KF2V, "singapore", media, prompt)


async def create(client: DashScope, body: dict[str, Any] | None = None) -> Task:
    return await client.create_task(KF2V.endpoint, body or kf2v_body())


async def finish(sim: Simulator, client: DashScope, task_id: str) -> Task:
    """Let the simulated hour pass and ask again."""
    await sim.settle()
    sim.advance(3600)
    return await client.get_task(task_id)


def window() -> dict[str, datetime]:
    now = datetime.now(UTC)
    return {"start": now - 1000 * DAY, "end": now + 1000 * DAY}


def routes(sim: Simulator, route: str) -> int:
    return sum(1 for r in sim.requests if r.route == route)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the happy paths ------------------------------------------------------------------------


async def test_data_url_inputs_run_to_success(sim: Simulator, client: DashScope) -> None:
    """A task made from data: URLs goes PENDING -> RUNNING -> SUCCEEDED with every field."""
    created = await create(client)
    assert created.status is TaskStatus.PENDING and created.request_id
    await sim.settle()
    sim.advance(15)
    assert (await client.get_task(created.task_id)).status is TaskStatus.RUNNING
    done = await finish(sim, client, created.task_id)
    assert done.status is TaskStatus.SUCCEEDED and done.is_terminal
    assert done.video_url and done.video_url.endswith(f"{created.task_id}.mp4?Expires="
                                                      + done.video_url.split("=")[-1])
    assert done.submit_time and done.scheduled_time and done.end_time
    assert done.submit_time.tzinfo is UTC
    assert done.end_time - done.scheduled_time == timedelta(seconds=60)
    assert done.orig_prompt == "a cat looks up"
    assert done.actual_prompt and done.actual_prompt.startswith("a cat looks up")
    assert done.usage == {"video_duration": 5, "video_count": 1, "SR": 720}


async def test_animate_link_comes_from_results(sim: Simulator, client: DashScope) -> None:
    """Animate answers `output.results.video_url`; Task.video_url finds it."""
    media = {
        "image_url": sim.add_file("person.jpg", make_image((512, 768), "JPEG"), "image/jpeg"),
        "video_url": sim.add_file("move.mp4", make_mp4(256, 256, seconds=3.0), "video/mp4"),
    }
    body = catalog.build_body(ANIMATE, "singapore", media)
    task = await client.create_task(ANIMATE.endpoint, body)
    done = await finish(sim, client, task.task_id)
    assert done.status is TaskStatus.SUCCEEDED, done.message
    assert done.video_url and "/results/" in done.video_url
    assert done.usage["video_duration"] == 3


# --- errors the provider answers ------------------------------------------------------------


async def test_wrong_key_is_final(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """401 InvalidApiKey is raised at once: no retry can fix a key."""
    client = DashScope(session, sim.base_url, "sk-wrong-key")
    with pytest.raises(ApiError) as caught:
        await client.get_task("any")
    assert (caught.value.code, caught.value.status) == ("InvalidApiKey", 401)
    assert not caught.value.retryable and routes(sim, "task") == 1


async def test_client_sends_async_header(sim: Simulator, client: DashScope) -> None:
    """Every create carries `X-DashScope-Async: enable` and a JSON body."""
    await create(client)
    sent = sim.requests[-1]
    assert sent.headers["X-DashScope-Async"] == "enable"
    assert sent.headers["Content-Type"].startswith("application/json")


async def test_access_denied_is_final(sim: Simulator, client: DashScope) -> None:
    """403 AccessDenied is not retried and says no task exists."""
    sim.config.fail("create", status=403, code="AccessDenied", message="Access denied.")
    with pytest.raises(ApiError) as caught:
        await create(client)
    assert caught.value.code == "AccessDenied" and not caught.value.retryable
    assert caught.value.maybe_created is False and routes(sim, "create") == 1


async def test_invalid_parameter_names_the_option(sim: Simulator, client: DashScope) -> None:
    """A value the model does not support is refused with 400 InvalidParameter."""
    body = kf2v_body()
    body["parameters"]["resolution"] = "4K"
    with pytest.raises(ApiError) as caught:
        await create(client, body)
    assert (caught.value.code, caught.value.status) == ("InvalidParameter", 400)
    assert "resolution" in caught.value.message and not caught.value.retryable
    assert not sim.tasks


async def test_throttling_is_retried_with_jitter(
    sim: Simulator, client: DashScope, slept: list[float]
) -> None:
    """429 without Retry-After: waits are drawn from 0..base*2^n (full jitter)."""
    sim.config.fail("task", times=2, status=429)
    task = await client.get_task("nope")
    assert task.status is TaskStatus.UNKNOWN
    assert len(slept) == 2 and 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0
    assert routes(sim, "task") == 3


async def test_retry_after_is_honoured(
    sim: Simulator, client: DashScope, slept: list[float]
) -> None:
    """429 with Retry-After: 3 waits exactly 3 s."""
    sim.config.fail("task", status=429, code="Throttling.RateQuota", retry_after_s=3)
    await client.get_task("nope")
    assert slept == [3.0]


async def test_retry_after_is_capped(
    sim: Simulator, session: aiohttp.ClientSession, slept: list[float]
) -> None:
    """A huge Retry-After is cut to backoff_cap_s."""

    async def record(seconds: float) -> None:
        slept.append(seconds)

    client = DashScope(session, sim.base_url, sim.api_key, backoff_cap_s=7, sleep=record)
    sim.config.fail("task", status=429, retry_after_s=3600)
    await client.get_task("nope")
    assert slept == [7.0]


async def test_allocation_quota_is_final(sim: Simulator, client: DashScope) -> None:
    """429 Throttling.AllocationQuota means the quota is gone: no retry."""
    sim.config.fail("create", status=429, code="Throttling.AllocationQuota", message="Quota.")
    with pytest.raises(ApiError) as caught:
        await create(client)
    assert not caught.value.retryable and routes(sim, "create") == 1


async def test_5xx_is_retried_for_get(sim: Simulator, client: DashScope) -> None:
    """A 500 on a query is retried and the second answer is used."""
    task = await create(client)
    sim.config.fail("task", status=500)
    assert (await client.get_task(task.task_id)).status is TaskStatus.PENDING
    assert routes(sim, "task") == 2


async def test_attempts_are_bounded(sim: Simulator, client: DashScope) -> None:
    """A provider that keeps answering 503 is asked max_attempts times, then ApiError."""
    sim.config.fail("task", times=10, status=503)
    with pytest.raises(ApiError) as caught:
        await client.get_task("nope")
    assert caught.value.status == 503 and caught.value.retryable
    assert routes(sim, "task") == client.max_attempts


async def test_create_is_not_retried_after_500(sim: Simulator, client: DashScope) -> None:
    """A 500 after the task was made: one create, maybe_created, and the list finds it."""
    sim.config.fail("create", status=500, after=True)
    with pytest.raises(ApiError) as caught:
        await create(client)
    assert caught.value.maybe_created is True and caught.value.retryable
    assert routes(sim, "create") == 1
    listed = await client.list_tasks(model=KF2V.api_name("singapore"), **window())
    assert [t.task_id for t in listed] == list(sim.tasks)


async def test_create_is_retried_after_429(sim: Simulator, client: DashScope) -> None:
    """A 429 means no task was made, so the create is sent again."""
    sim.config.fail("create", status=429)
    task = await create(client)
    assert routes(sim, "create") == 2 and list(sim.tasks) == [task.task_id]


async def test_create_retried_when_connection_never_opened(
    session: aiohttp.ClientSession, slept: list[float]
) -> None:
    """Connection refused: nothing reached the provider, so retrying is safe."""

    async def record(seconds: float) -> None:
        slept.append(seconds)

    client = DashScope(session, f"http://127.0.0.1:{closed_port()}/api/v1", "sk-x",
                       sleep=record)
    with pytest.raises(ApiError) as caught:
        await create(client)
    assert caught.value.code == "ConnectionError" and caught.value.maybe_created is False
    assert len(slept) == client.max_attempts - 1


async def test_slow_query_times_out_and_retries(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """No answer within timeout_s: a retryable Timeout after every attempt."""
    client = DashScope(session, sim.base_url, sim.api_key, timeout_s=0.2, max_attempts=2,
                       backoff_base_s=0.01)
    sim.config.slow("task", delay_s=30, times=2)
    with pytest.raises(ApiError) as caught:
        await client.get_task("nope")
    assert caught.value.code == "Timeout" and caught.value.retryable
    assert routes(sim, "task") == 2


async def test_slow_create_times_out_once(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """A create that timed out may have made a task: not resent, maybe_created."""
    client = DashScope(session, sim.base_url, sim.api_key, timeout_s=0.2)
    sim.config.slow("create", delay_s=30)
    with pytest.raises(ApiError) as caught:
        await create(client)
    assert caught.value.code == "Timeout" and caught.value.maybe_created is True
    assert routes(sim, "create") == 1


async def test_dropped_connection_is_retried_for_get(
    sim: Simulator, client: DashScope, slept: list[float]
) -> None:
    """A connection closed without an answer is retried (after a back-off) for a query."""
    # aiohttp itself resends an idempotent request once after a disconnect; drop that too.
    sim.config.drop("task", times=2)
    assert (await client.get_task("nope")).status is TaskStatus.UNKNOWN
    assert [r.status for r in sim.requests if r.route == "task"] == [None, None, 200]
    assert len(slept) == 1


async def test_dropped_create_may_have_created(sim: Simulator, client: DashScope) -> None:
    """The task was made, then the connection dropped: ConnectionError, maybe_created."""
    sim.config.drop("create", after=True)
    with pytest.raises(ApiError) as caught:
        await create(client)
    assert caught.value.code == "ConnectionError" and caught.value.maybe_created is True
    assert routes(sim, "create") == 1 and len(sim.tasks) == 1


# --- task outcomes ---------------------------------------------------------------------------


async def test_trigger_word_fails_moderation(sim: Simulator, client: DashScope) -> None:
    """A prompt the content check refuses ends FAILED with DataInspectionFailed."""
    task = await create(client, kf2v_body(prompt="show sim-blocked things"))
    done = await finish(sim, client, task.task_id)
    assert (done.status, done.code) == (TaskStatus.FAILED, "DataInspectionFailed")
    assert done.video_url is None and done.usage == {}


async def test_moderation_knob_fails_next_task(sim: Simulator, client: DashScope) -> None:
    """`moderate_next` fails the next task only."""
    sim.config.moderate_next()
    first, second = await create(client), await create(client)
    assert (await finish(sim, client, first.task_id)).code == "DataInspectionFailed"
    assert (await client.get_task(second.task_id)).status is TaskStatus.SUCCEEDED


async def test_unreachable_input_fails_the_task(sim: Simulator, client: DashScope) -> None:
    """The create is accepted; the task then fails with InvalidParameter naming the input."""
    task = await create(client, kf2v_body(first=f"http://127.0.0.1:{closed_port()}/a.png"))
    done = await finish(sim, client, task.task_id)
    assert (done.status, done.code) == (TaskStatus.FAILED, "InvalidParameter")
    assert done.message and done.message.startswith("first_frame_url: downloading")


async def test_task_is_unknown_after_a_day(
    sim: Simulator, client: DashScope, tmp_path: Path
) -> None:
    """After 24 h the task answers UNKNOWN and its link is dead (Expired, not retried)."""
    task = await create(client)
    done = await finish(sim, client, task.task_id)
    sim.advance(25 * 3600)
    assert (await client.get_task(task.task_id)).status is TaskStatus.UNKNOWN
    with pytest.raises(ApiError) as caught:
        await client.download(done.video_url or "", tmp_path / "v.mp4", max_bytes=10**6)
    assert (caught.value.code, caught.value.status) == ("Expired", 403)
    assert not caught.value.retryable and not files_in(tmp_path)


async def test_cancel_pending(sim: Simulator, client: DashScope) -> None:
    """A PENDING task can be canceled; it then answers CANCELED."""
    task = await create(client)
    await client.cancel_task(task.task_id)
    canceled = await client.get_task(task.task_id)
    assert canceled.status is TaskStatus.CANCELED and canceled.end_time


async def test_cancel_running_is_refused(sim: Simulator, client: DashScope) -> None:
    """Only PENDING tasks can be canceled: a RUNNING one gives a final ApiError."""
    task = await create(client)
    await sim.settle()
    sim.advance(15)
    with pytest.raises(ApiError) as caught:
        await client.cancel_task(task.task_id)
    assert caught.value.code == "UnsupportedOperation" and not caught.value.retryable
    assert (await client.get_task(task.task_id)).status is TaskStatus.RUNNING


# --- list --------------------------------------------------------------------------------------


async def test_list_reads_every_page(sim: Simulator, client: DashScope) -> None:
    """Seven tasks at two per page come back once each, with their model and times."""
    for _ in range(7):
        await create(client)
    listed = await client.list_tasks(page_size=2, **window())
    assert sorted(t.task_id for t in listed) == sorted(sim.tasks)
    assert routes(sim, "list") == 4
    assert all(t.model == "wan2.2-kf2v-flash" and t.submit_time for t in listed)


async def test_list_filters(sim: Simulator, client: DashScope) -> None:
    """Model, status and time window narrow the list."""
    kept = await create(client)
    i2v = catalog.build_body(I2V, "singapore", {"img_url": data_url(make_image())}, "waves")
    await client.create_task(I2V.endpoint, i2v)
    await client.cancel_task(kept.task_id)
    by_model = await client.list_tasks(model="wan2.2-i2v-flash", **window())
    assert [t.model for t in by_model] == ["wan2.2-i2v-flash"]
    by_status = await client.list_tasks(status=TaskStatus.CANCELED, **window())
    assert [t.task_id for t in by_status] == [kept.task_id]
    future = datetime.now(UTC) + 2000 * DAY
    assert await client.list_tasks(start=future, end=future + DAY) == []


async def test_list_needs_aware_times(client: DashScope) -> None:
    """Naive datetimes are refused before anything is sent."""
    with pytest.raises(ValueError):
        await client.list_tasks(start=datetime(2025, 1, 1), end=datetime(2025, 1, 2))


# --- uploads and downloads ---------------------------------------------------------------------


async def test_upload_then_task_with_oss_url(
    sim: Simulator, client: DashScope, tmp_path: Path
) -> None:
    """Uploaded files (bytes or a path) work as oss:// inputs, with the resolve header."""
    first = await client.upload("wan2.2-kf2v-flash", "first.png", make_image(), "image/png")
    path = tmp_path / "last.jpg"
    path.write_bytes(make_image(fmt="JPEG"))
    last = await client.upload("wan2.2-kf2v-flash", "last.jpg", path, "image/jpeg")
    assert first.startswith("oss://dashscope-instant/") and last.endswith("/last.jpg")
    body = catalog.build_body(KF2V, "singapore", {"first_frame_url": first,
                                                  "last_frame_url": last}, "x")
    task = await client.create_task(KF2V.endpoint, body, oss_resolve=True)
    assert sim.requests[-1].headers["X-DashScope-OssResourceResolve"] == "enable"
    assert (await finish(sim, client, task.task_id)).status is TaskStatus.SUCCEEDED


async def test_upload_retry_after_lost_answer(sim: Simulator, client: DashScope) -> None:
    """The file was stored but the answer was a 500: the retry's 409 counts as success."""
    sim.config.fail("upload", status=500, after=True)
    url = await client.upload("wan2.2-kf2v-flash", "a.png", make_image(), "image/png")
    assert url.removeprefix("oss://") in sim.uploads.objects
    assert routes(sim, "upload") == 2


async def test_download_streams_to_dest(
    sim: Simulator, client: DashScope, tmp_path: Path
) -> None:
    """The padded result arrives whole, still a playable H.264 MP4, no temp file left."""
    sim.config.result_bytes = 300_000
    done = await finish(sim, client, (await create(client)).task_id)
    dest = tmp_path / "out" / "video.mp4"
    size = await client.download(done.video_url or "", dest, max_bytes=10**6)
    assert size == dest.stat().st_size == 300_000
    assert files_in(dest.parent) == ["video.mp4"]
    with av.open(str(dest)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


async def test_download_refuses_more_than_the_cap(
    sim: Simulator, client: DashScope, tmp_path: Path
) -> None:
    """A video over max_bytes raises TooLarge and leaves nothing behind."""
    sim.config.result_bytes = 300_000
    done = await finish(sim, client, (await create(client)).task_id)
    with pytest.raises(ApiError) as caught:
        await client.download(done.video_url or "", tmp_path / "v.mp4", max_bytes=100_000)
    assert caught.value.code == "TooLarge" and not caught.value.retryable
    assert not files_in(tmp_path)


# --- limits ------------------------------------------------------------------------------------


async def test_concurrency_reject(sim: Simulator, client: DashScope, slept: list[float]) -> None:
    """In reject mode a create beyond the model's slots is a (retried) 429 Throttling."""
    sim.config.over_limit, sim.config.concurrency = "reject", {KF2V.name: 1}
    await create(client)
    with pytest.raises(ApiError) as caught:
        await create(client)
    assert (caught.value.code, caught.value.status) == ("Throttling", 429)
    assert "concurrent" in caught.value.message and caught.value.maybe_created is False
    assert len(sim.tasks) == 1 and len(slept) == client.max_attempts - 1


async def test_concurrency_queue(sim: Simulator, client: DashScope) -> None:
    """In queue mode the second task waits PENDING until the first frees the slot."""
    sim.config.concurrency = {KF2V.name: 1}
    first, second = await create(client), await create(client)
    await sim.settle()
    sim.advance(15)
    assert (await client.get_task(first.task_id)).status is TaskStatus.RUNNING
    assert (await client.get_task(second.task_id)).status is TaskStatus.PENDING
    sim.advance(70)  # the first ends at 70 s; the second then queues 10 s more
    done = await client.get_task(first.task_id)
    later = await client.get_task(second.task_id)
    assert (done.status, later.status) == (TaskStatus.SUCCEEDED, TaskStatus.RUNNING)
    assert done.end_time and later.scheduled_time == done.end_time + timedelta(seconds=10)


async def test_query_rate_limit(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """More than 20 queries in one second: the extra ones get Throttling.RateQuota."""
    client = DashScope(session, sim.base_url, sim.api_key, max_attempts=1)
    results = await asyncio.gather(*(client.get_task("x") for _ in range(25)),
                                   return_exceptions=True)
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(refused) == 5
    assert all(r.code == "Throttling.RateQuota" and r.retryable for r in refused)
    sim.advance(1.0)
    assert (await client.get_task("x")).status is TaskStatus.UNKNOWN


# --- secrets and logs --------------------------------------------------------------------------


async def test_key_never_leaks(
    sim: Simulator, client: DashScope, caplog: pytest.LogCaptureFixture
) -> None:
    """The API key is in no log line, exception text or repr."""
    caplog.set_level(logging.DEBUG, logger="bot.provider.client")
    sim.config.fail("task", status=500)
    await client.get_task("nope")
    with pytest.raises(ApiError) as caught:
        await client.create_task(KF2V.endpoint, {"model": "nope", "input": {}})
    texts = [caplog.text, repr(client), str(caught.value), repr(caught.value)]
    assert all(sim.api_key not in text for text in texts)
    assert all("authorization" not in name.lower() for r in sim.requests for name in r.headers)


async def test_each_request_is_logged(
    sim: Simulator, client: DashScope, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG lines carry method, path, status and elapsed time."""
    caplog.set_level(logging.DEBUG, logger="bot.provider.client")
    await client.get_task("abc")
    assert any(
        r.name == "bot.provider.client" and "GET /api/v1/tasks/abc -> 200 in" in r.getMessage()
        for r in caplog.records)


# --- parsing -----------------------------------------------------------------------------------


def test_task_from_api_parses_times_and_results() -> None:
    """UTC+8 strings become aware UTC datetimes; animate's nested link is found."""
    task = Task.from_api({
        "request_id": "r1",
        "output": {"task_id": "t1", "task_status": "SUCCEEDED",
                   "submit_time": "2025-04-18 10:36:58.394", "end_time": "2025-04-18 10:45:23",
                   "results": {"video_url": "https://x/v.mp4"}},
        "usage": {"video_duration": 5},
    })
    assert task.submit_time == datetime(2025, 4, 18, 2, 36, 58, 394000, tzinfo=UTC)
    assert task.end_time == datetime(2025, 4, 18, 2, 45, 23, tzinfo=UTC)
    assert task.video_url == "https://x/v.mp4" and task.request_id == "r1"


def test_unknown_status_is_unknown() -> None:
    """A status this code does not know is treated as UNKNOWN, which is terminal."""
    task = Task.from_api({"output": {"task_id": "t", "task_status": "SUSPENDED"}})
    assert task.status is TaskStatus.UNKNOWN and TaskStatus.UNKNOWN in TERMINAL
    assert not TaskStatus.RUNNING.is_terminal and parse_time("") is None


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, "Throttling", True),
        (429, "Throttling.RateQuota", True),
        (429, "Throttling.AllocationQuota", False),
        (500, "InternalError", True),
        (503, "ServiceUnavailable", True),
        (400, "InvalidParameter", False),
        (400, "DataInspectionFailed", False),
        (400, "IPInfringementSuspect", False),
        (400, "Arrearage", False),
        (401, "InvalidApiKey", False),
        (403, "AccessDenied.Unpurchased", False),
    ],
)
def test_error_classes(status: int, code: str, retryable: bool) -> None:
    """Which provider answers are worth retrying."""
    err = error_from_response(status, {"code": code, "message": "m"}, "", {})
    assert (err.code, err.retryable) == (code, retryable)


def test_retry_after_date_and_non_json_bodies() -> None:
    """An HTTP-date Retry-After and an HTML 502 are still understood."""
    soon = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    err = error_from_response(502, None, "<html>bad gateway</html>", {"Retry-After": soon})
    assert err.code == "InternalError" and err.retryable
    assert err.retry_after_s is not None and 25 < err.retry_after_s <= 30


def test_client_repr_hides_key() -> None:
    """The repr names the URL, never the key."""
    client = DashScope(None, "https://example/api/v1", "sk-secret-123", rng=random.Random(1))  # type: ignore[arg-type]
    assert "sk-secret-123" not in repr(client) and "example" in repr(client)
