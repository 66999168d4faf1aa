"""The official `dashscope` SDK, unmodified, as a client of the simulator: if the simulator drifts
from what the real client sends and expects, these fail.

`VideoSynthesis` is blocking (requests), so its calls run in a thread while the simulator serves
on this test's event loop; `AioVideoSynthesis` (aiohttp) is awaited directly and sends the
trailing-slash task paths. Only `dashscope.base_http_api_url` and `api_key=` point it here.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import dashscope
import pytest
from dashscope import VideoSynthesis
from dashscope.aigc.video_synthesis import AioVideoSynthesis
from dashscope.api_entities.http_request import close_shared_sync_session

from bot.sim.server import SimConfig, Simulator
from tests.conftest import make_image
from tests.net_support import install_tripwire
from tests.sim.wire import list_time

KF2V = "wan2.2-kf2v-flash"
I2V = "wan2.2-i2v-flash"
WAIT_S = 30  # the SDK's own wait has no timeout unless given one
T = TypeVar("T")


@pytest.fixture
def sim_config() -> SimConfig:
    """Real clock, tasks 1000x faster: a 60 s task is done in 0.06 s."""
    return SimConfig(time_scale=1000.0, pending_s=2.0, running_s=60.0)


@pytest.fixture
async def sdk(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Simulator]:
    """The SDK aimed at `sim`; its pooled connections are closed afterwards."""
    monkeypatch.setattr(dashscope, "base_http_api_url", sim.base_url)
    yield sim
    await dashscope.close_shared_aio_session()
    close_shared_sync_session()


async def blocking(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking SDK call off the loop, so the in-process simulator keeps serving."""
    return await asyncio.wait_for(asyncio.to_thread(call, *args, **kwargs), WAIT_S)


def frames(sim: Simulator) -> dict[str, str]:
    return {"first_frame_url": sim.add_file("first.png", make_image(), "image/png"),
            "last_frame_url": sim.add_file("last.png", make_image(), "image/png")}


async def kf2v_task(sim: Simulator, **media: str) -> Any:
    answer = await blocking(VideoSynthesis.async_call, model=KF2V, prompt="a cat looks up",
                            resolution="480P", api_key=sim.api_key, **(media or frames(sim)))
    assert answer.status_code == 200, answer
    return answer


async def test_async_call_sends_the_sdk_fields(sdk: Simulator) -> None:
    """kf2v via async_call is accepted with the SDK's extend_prompt and function inputs."""
    answer = await kf2v_task(sdk)
    assert answer.output.task_status == "PENDING"
    [create] = [r for r in sdk.requests if r.route == "create"]
    assert create.body["input"]["extend_prompt"] is True
    assert create.body["input"]["function"] == "video-synthesis"


async def test_wait_then_fetch(sdk: Simulator) -> None:
    """wait() returns SUCCEEDED with a video link; fetch() then answers the same."""
    task = await kf2v_task(sdk)
    done = await blocking(VideoSynthesis.wait, task, api_key=sdk.api_key, wait_timeout=WAIT_S)
    assert done.output.task_status == "SUCCEEDED", done
    assert done.output.video_url.startswith(sdk.root_url) and done.usage.video_duration == 5
    again = await blocking(VideoSynthesis.fetch, task.output.task_id, api_key=sdk.api_key)
    assert (again.output.task_status, again.output.video_url) == ("SUCCEEDED",
                                                                  done.output.video_url)


async def test_i2v_runs_to_the_end(sdk: Simulator) -> None:
    """i2v with img_url goes to the video-generation endpoint and succeeds."""
    link = sdk.add_file("frame.png", make_image(), "image/png")
    task = await blocking(VideoSynthesis.async_call, model=I2V, prompt="waves", img_url=link,
                          resolution="480P", api_key=sdk.api_key)
    done = await blocking(VideoSynthesis.wait, task, api_key=sdk.api_key, wait_timeout=WAIT_S)
    assert done.output.task_status == "SUCCEEDED", done


async def test_cancel_pending(sdk: Simulator) -> None:
    """cancel() of a task still queued succeeds, and fetch() then says CANCELED."""
    sdk.config.pending_s = 10**9  # it stays PENDING for the whole test
    task = await kf2v_task(sdk)
    canceled = await blocking(VideoSynthesis.cancel, task, api_key=sdk.api_key)
    assert canceled.status_code == 200, canceled
    fetched = await blocking(VideoSynthesis.fetch, task, api_key=sdk.api_key)
    assert fetched.output.task_status == "CANCELED"


async def test_list_finds_the_task(sdk: Simulator) -> None:
    """list() over the last hour returns the task with its documented fields."""
    sdk.config.pending_s = 10**9
    task = await kf2v_task(sdk)
    now = time.time()
    listed = await blocking(VideoSynthesis.list, start_time=list_time(now - 3600),
                            end_time=list_time(now + 60),
                            model_name=KF2V, api_key=sdk.api_key)
    assert listed.status_code == 200, listed
    [item] = listed.output["data"]
    assert (item["task_id"], item["status"]) == (task.output.task_id, "PENDING")
    assert abs(item["gmt_create"] / 1000 - time.time()) < 60  # epoch ms, on the wall clock


async def test_list_longer_than_a_day_is_refused(sdk: Simulator) -> None:
    """list() over 25 hours gets the provider's 400 InvalidParameter."""
    now = time.time()
    listed = await blocking(VideoSynthesis.list, start_time=list_time(now - 25 * 3600),
                            end_time=list_time(now), api_key=sdk.api_key)
    assert (listed.status_code, listed.code) == (400, "InvalidParameter")


async def test_local_files_are_uploaded(sdk: Simulator, tmp_path: Path) -> None:
    """file:// inputs go getPolicy -> OSS form post -> oss:// with the resolve header."""
    paths = {}
    for name in ("first_frame_url", "last_frame_url"):
        path = tmp_path / f"{name}.png"
        path.write_bytes(make_image())
        paths[name] = path.as_uri()
    task = await kf2v_task(sdk, **paths)
    done = await blocking(VideoSynthesis.wait, task, api_key=sdk.api_key, wait_timeout=WAIT_S)
    assert done.output.task_status == "SUCCEEDED", done
    [create] = [r for r in sdk.requests if r.route == "create"]
    assert all(create.body["input"][k].startswith("oss://") for k in paths)
    assert [r.status for r in sdk.requests if r.route == "upload"] == [200, 200]
    assert len(sdk.uploads.objects) == 2


async def test_aio_fetch_and_cancel_use_trailing_slashes(sdk: Simulator) -> None:
    """AioVideoSynthesis fetches `tasks/{id}/` and cancels `tasks/{id}/cancel/`."""
    sdk.config.pending_s = 10**9
    task = await AioVideoSynthesis.async_call(model=KF2V, prompt="a cat", resolution="480P",
                                              api_key=sdk.api_key, **frames(sdk))
    task_id = task.output.task_id
    fetched = await AioVideoSynthesis.fetch(task_id, api_key=sdk.api_key)
    canceled = await AioVideoSynthesis.cancel(task_id, api_key=sdk.api_key)
    assert fetched.output.task_status == "PENDING" and canceled.status_code == 200, canceled
    paths = [r.path for r in sdk.requests if r.route in ("task", "cancel")]
    assert paths == [f"/api/v1/tasks/{task_id}/", f"/api/v1/tasks/{task_id}/cancel/"]


async def test_aio_wait(sdk: Simulator) -> None:
    """AioVideoSynthesis.wait polls the trailing-slash path until SUCCEEDED."""
    task = await AioVideoSynthesis.async_call(model=KF2V, prompt="a cat", resolution="480P",
                                              api_key=sdk.api_key, **frames(sdk))
    done = await asyncio.wait_for(AioVideoSynthesis.wait(task, api_key=sdk.api_key), WAIT_S)
    assert done.output.task_status == "SUCCEEDED", done


def test_tripwire_stops_blocking_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain socket (as requests uses) cannot leave the loopback network in a test."""
    outside = install_tripwire(monkeypatch)  # a second layer, so this test's list is its own
    with socket.socket() as sock, pytest.raises(OSError, match="tripwire"):
        sock.connect(("192.0.2.1", 80))
    assert outside == ["192.0.2.1"]
