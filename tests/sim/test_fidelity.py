"""Where the simulator must match the real provider and its official SDK exactly: the fields the
SDK adds, its path forms, the task list's documented shape, and a calendar that is the wall
clock at any time scale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot.provider import catalog
from bot.provider.client import DashScope
from bot.sim.media import fmt_time, make_mp4
from bot.sim.server import SimConfig, Simulator, run_simulator
from bot.sim.state import ManualClock
from tests.conftest import make_image
from tests.sim.wire import headers, kf2v, list_time, outcome, post, query

T0 = 1_760_000_000.0  # ManualClock's start


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def sim_config(clock: ManualClock) -> SimConfig:
    return SimConfig(clock=clock, pending_s=10, running_s=60)


def window(start_s: float, end_s: float) -> str:
    return f"/tasks?start_time={list_time(start_s)}&end_time={list_time(end_s)}"


async def created_id(session: aiohttp.ClientSession, sim: Simulator,
                     body: dict[str, Any] | None = None) -> str:
    status, answer = await post(session, sim, body or kf2v())
    assert status == 200, answer
    return str(answer["output"]["task_id"])


def animate_body(sim: Simulator, *, where: str) -> dict[str, Any]:
    media = {"image_url": sim.add_file("p.png", make_image((400, 600))),
             "video_url": sim.add_file("v.mp4", make_mp4(256, 256, seconds=2.5))}
    body: dict[str, Any] = {"model": "wan2.2-animate-mix", "input": media,
                            "parameters": {"mode": "wan-std"}}
    body[where]["watermark"] = True
    return body


# --- what the official SDK sends ---------------------------------------------------------------


async def test_sdk_inputs_are_accepted(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """The SDK's extend_prompt, function=video-synthesis and a null prompt are a valid create."""
    body = kf2v()
    body["input"].update(extend_prompt=True, function="video-synthesis", prompt=None)
    answer = await outcome(session, sim, body)
    assert answer["output"]["task_status"] == "SUCCEEDED", answer


@pytest.mark.parametrize(("field", "value"), [("extend_prompt", "yes"),
                                              ("function", "image_reference"),
                                              ("first_frame", "http://x/a.png")])
async def test_wrong_inputs_are_still_refused(sim: Simulator, session: aiohttp.ClientSession,
                                              field: str, value: str) -> None:
    """A bad extend_prompt, another function, or an input the model lacks is a 400 naming it."""
    body = kf2v()
    body["input"][field] = value
    status, answer = await post(session, sim, body)
    assert (status, answer["code"]) == (400, "InvalidParameter") and field in answer["message"]


async def test_query_path_with_trailing_slash(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """`GET tasks/{id}/`, as the SDK's async classes send it, answers the task."""
    task_id = await created_id(session, sim)
    status, answer = await query(session, sim, f"/tasks/{task_id}/")
    assert (status, answer["output"]["task_status"]) == (200, "PENDING")


async def test_cancel_path_with_trailing_slash(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """`POST tasks/{id}/cancel/` cancels a PENDING task."""
    task_id = await created_id(session, sim)
    url = f"{sim.base_url}/tasks/{task_id}/cancel/"
    async with session.post(url, headers=headers(sim)) as resp:
        assert resp.status == 200
    assert sim.tasks[task_id].status(sim.now(), sim.config.ttl_s) == "CANCELED"


# --- the task list, as documented --------------------------------------------------------------


async def test_list_items_as_documented(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """Items carry `status`, epoch-ms gmt_create/start_time/end_time, api_key_id and region."""
    task_id = await created_id(session, sim)
    await sim.settle()
    sim.advance(3600)
    status, body = await query(session, sim, window(T0 - 60, T0 + 3600))
    assert status == 200 and (body["total"], body["total_page"]) == (1, 1)
    [item] = body["data"]
    assert item["task_id"] == task_id and item["status"] == "SUCCEEDED"
    assert "task_status" not in item
    assert (item["gmt_create"], item["start_time"], item["end_time"]) == (
        T0 * 1000, (T0 + 10) * 1000, (T0 + 70) * 1000)
    assert item["region"] == "ap-southeast-1" and item["api_key_id"] == sim.config.api_key_id
    assert sim.api_key not in str(body)


async def test_list_window_over_a_day_is_refused(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """A window one second over 24 h is a 400 InvalidParameter; exactly 24 h is fine."""
    status, body = await query(session, sim, window(T0 - 86_401, T0))
    assert (status, body["code"]) == (400, "InvalidParameter") and "24 hours" in body["message"]
    assert (await query(session, sim, window(T0 - 86_400, T0)))[0] == 200


async def test_list_start_alone_reaches_to_now(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """start_time without end_time means up to now, so a start over a day ago is refused."""
    status, _ = await query(session, sim, f"/tasks?start_time={list_time(T0 - 25 * 3600)}")
    assert status == 400


async def test_list_without_times_is_the_last_day(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """No start_time or end_time: the tasks of the last 24 hours, not older ones."""
    sim.config.ttl_s = 7 * 86_400  # so the older task is still known, just out of the window
    await created_id(session, sim)
    sim.advance(25 * 3600)
    task_id = await created_id(session, sim)
    _, body = await query(session, sim, "/tasks")
    assert [item["task_id"] for item in body["data"]] == [task_id]


async def test_list_end_before_start_is_refused(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """end_time earlier than start_time is a 400."""
    assert (await query(session, sim, window(T0, T0 - 60)))[0] == 400


@pytest.mark.parametrize(("name", "kept"), [("region", "ap-southeast-1"), ("api_key_id", None)])
async def test_list_filters_by_key_and_region(sim: Simulator, session: aiohttp.ClientSession,
                                              name: str, kept: str | None) -> None:
    """api_key_id and region narrow the list like model_name does."""
    await created_id(session, sim)
    own = kept or sim.config.api_key_id
    _, mine = await query(session, sim, f"/tasks?{name}={own}")
    _, other = await query(session, sim, f"/tasks?{name}=other")
    assert (mine["total"], other["total"]) == (1, 0)


# --- the calendar is the wall clock ------------------------------------------------------------


def test_clock_is_the_wall_clock_at_any_scale() -> None:
    """At time_scale 60 the simulator's now still moves one second per clock second."""
    clock = ManualClock(T0)
    sim = Simulator(SimConfig(clock=clock, time_scale=60.0))
    clock.advance(10)
    assert sim.now() == T0 + 10
    sim.advance(5)
    assert sim.now() == T0 + 15


async def test_time_scale_shortens_tasks_not_the_calendar(
    sim: Simulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """At x60 a 600 s queue and a 60 s run take 11 clock seconds; times are the clock's."""
    sim.config.time_scale, sim.config.pending_s, sim.config.running_s = 60.0, 600, 60
    clock.advance(100)  # the simulator has been up a while when the task comes
    task_id = await created_id(session, sim)
    await sim.settle()
    clock.advance(11)
    out = (await query(session, sim, f"/tasks/{task_id}"))[1]["output"]
    _, listed = await query(session, sim, "/tasks")
    assert out["task_status"] == "SUCCEEDED"
    assert (out["submit_time"], out["scheduled_time"], out["end_time"]) == (
        fmt_time(T0 + 100), fmt_time(T0 + 110), fmt_time(T0 + 111))
    assert listed["data"][0]["gmt_create"] == (T0 + 100) * 1000


async def test_new_time_scale_applies_to_new_tasks(
    sim: Simulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """Changing time_scale while running leaves tasks already made as they were."""
    first = await created_id(session, sim)  # x1: queued 10 s, then 60 s
    sim.config.time_scale = 60.0
    second = await created_id(session, sim)  # x60: done in 70/60 s
    await sim.settle()
    clock.advance(2)
    states = [sim.tasks[t].status(sim.now(), sim.config.ttl_s) for t in (first, second)]
    assert states == ["PENDING", "SUCCEEDED"]


async def test_client_on_wall_time_lists_a_fast_sims_tasks(
    session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """A bot on the wall clock, listing the last hour after a restart, finds a x20 sim's task."""
    async with run_simulator(SimConfig(clock=clock, time_scale=20.0)) as sim:
        clock.advance(600)  # the simulator ran ten minutes before the bot came
        task_id = await created_id(session, sim)
        clock.advance(60)  # the bot restarts a minute later
        client = DashScope(session, sim.base_url, sim.api_key, timeout_s=5)
        now = datetime.fromtimestamp(clock(), UTC)
        listed = await client.list_tasks(start=now - timedelta(hours=1), end=now)
    assert [t.task_id for t in listed] == [task_id]
    assert listed[0].submit_time == datetime.fromtimestamp(T0 + 600, UTC)


# --- animate's watermark -----------------------------------------------------------------------


async def test_animate_watermark_in_input(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """/animate takes watermark in `input`, where its reference puts it."""
    answer = await outcome(session, sim, animate_body(sim, where="input"))
    assert answer["output"]["task_status"] == "SUCCEEDED", answer
    assert next(iter(sim.tasks.values())).params["watermark"] is True


async def test_animate_watermark_in_parameters_is_refused(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """In `parameters` an animate watermark is a 400 that says where it belongs."""
    status, answer = await post(session, sim, animate_body(sim, where="parameters"))
    assert status == 400 and "watermark" in answer["message"] and "input" in answer["message"]


def test_catalog_sends_animate_watermark_in_input() -> None:
    """The bot's animate body carries watermark in `input`, every other model's in parameters."""
    media = {"image_url": "http://x/p.png", "video_url": "http://x/v.mp4"}
    for name in ("wan2.2-animate-mix", "wan2.2-animate-move"):
        body = catalog.build_body(catalog.get_model(name), "singapore", media,
                                  options={"watermark": True})
        assert body["input"]["watermark"] is True and "watermark" not in body["parameters"]
    kf2v_body = catalog.build_body(catalog.get_model("wan2.2-kf2v-flash"), "singapore",
                                   {"first_frame_url": "a", "last_frame_url": "b"})
    assert "watermark" in kf2v_body["parameters"] and "watermark" not in kf2v_body["input"]

