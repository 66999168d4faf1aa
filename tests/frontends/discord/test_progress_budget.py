"""The progress board within Discord's request budget: a long queue costs a bounded number of
edits, the fake Discord (enforcing Discord's limits, time compressed) refuses none of them,
and deliveries are not held up by them."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.engine import Job, JobRequest, JobState, ProgressRef, Store
from bot.frontends.discord.client import WanBot
from bot.frontends.discord.edit_budget import CHANNEL_EDITS
from bot.frontends.discord.progress import Face
from tests.discord_stack import EDITS, PROGRESS_INTERVAL_S, SCALE, Stack, open_stack
from tests.engine_support import kf2v_request
from tests.fakediscord import RateLimits, RecordedRequest

MODEL = "wan2.2-kf2v-flash"
COMPRESSION = PROGRESS_INTERVAL_S / 5.0  # Discord's 5 s windows pass in one interval
DISCORD_LIMITS = RateLimits(route_window_s=5.0 * COMPRESSION, global_window_s=COMPRESSION)
LONG_S = 3600.0


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack whose fake Discord enforces Discord's rate limits, time compressed."""
    async with open_stack(tmp_path, rate_limits=DISCORD_LIMITS) as built:
        yield built


def channels(stack: Stack, count: int) -> list[str]:
    return [str(stack.channel_id), *(stack.add_channel(f"room{n}") for n in range(count - 1))]


async def queue_jobs(stack: Stack, bot: WanBot, count: int, rooms: list[str]) -> list[str]:
    """`count` jobs from 50 people across `rooms`, each with a progress message, as /kf2v
    leaves them (the messages are made directly: posting them is not what is measured)."""
    template = replace(kf2v_request(stack.sim), platform="discord", team_id=stack.team_id)
    ids = []
    for n in range(count):
        request: JobRequest = replace(template, user_id=str(1000 + n % 50),
                                      channel_id=rooms[n % len(rooms)])
        update = await bot.engine.submit(request)
        face = Face.of(update)
        message = stack.fake.bot_message(int(request.channel_id), embeds=[face.embed.to_dict()])
        ref = ProgressRef(channel_id=request.channel_id, message_id=str(message.id))
        saved = await bot.engine.set_progress_ref(update.job.id, ref)
        assert saved is not None
        await bot.progress.track(await bot.engine.update_for(saved), face)
        ids.append(update.job.id)
    return ids


async def busy_queue(stack: Stack, count: int, rooms: int, run_s: float) -> list[Job]:
    """Queue `count` jobs on two slots, let the queue move for `run_s`; the delivered jobs."""
    async with stack.start(concurrency={MODEL: 2}) as bot:
        await queue_jobs(stack, bot, count, channels(stack, rooms))
        await asyncio.sleep(run_s)
        delivered = await bot.store.jobs_in([JobState.DELIVERED])
    return delivered


def most_in_a_window(times: list[float], window_s: float) -> int:
    """The most of `times` that fall within any `window_s`."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def edits_by(requests: list[RecordedRequest], part: int) -> dict[str, list[float]]:
    """Edit times per channel (part 2) or per message (part 4) of the edit path."""
    grouped: dict[str, list[float]] = defaultdict(list)
    for request in requests:
        grouped[request.path.split("/")[part]].append(request.at)
    return grouped


async def test_a_thousand_queued_jobs_in_five_channels_draw_no_429(limited: Stack) -> None:
    """With Discord's limits enforced, a moving queue of 1,000 jobs gets no request refused."""
    delivered = await busy_queue(limited, 1000, rooms=5, run_s=3.0)
    assert len(delivered) >= 4  # the queue moved
    assert [r.path for r in limited.fake.requests if r.status == 429] == []
    assert limited.fake.requests_to("PATCH", EDITS)  # places were shown


async def test_deliveries_are_not_held_up_by_edits(limited: Stack) -> None:
    """Each video is posted within a second (real) of the provider finishing it."""
    delivered = await busy_queue(limited, 1000, rooms=5, run_s=3.0)
    lags = [((job.delivered_at or 0) - (job.finished_at or 0)) / SCALE for job in delivered]
    assert len(lags) >= 4 and max(lags) < 1.0


async def test_edits_per_channel_and_per_message_stay_bounded(stack: Stack) -> None:
    """300 queued jobs in one channel: within Discord's 5 edits per interval there (the
    board sends 4; the fifth place is for requests delayed on the way), and no message edited
    twice within an interval, however often the places move."""
    await busy_queue(stack, 300, rooms=1, run_s=2.0)
    edits = stack.fake.requests_to("PATCH", EDITS)
    [per_channel] = edits_by(edits, 2).values()
    assert len(per_channel) >= CHANNEL_EDITS
    assert most_in_a_window(per_channel, PROGRESS_INTERVAL_S * 0.8) <= CHANNEL_EDITS + 1
    gaps = [b - a for times in edits_by(edits, 4).values()
            for a, b in itertools.pairwise(sorted(times))]
    assert min(gaps, default=PROGRESS_INTERVAL_S) >= PROGRESS_INTERVAL_S * 0.9


async def test_a_waiting_jobs_expected_time_holds_still(stack: Stack) -> None:
    """One slot busy, three waiting with an estimate: shown again later, unmoved, they cost no
    edit, though now + ETA has moved on (minutes of engine time)."""
    store = await Store.open(stack.settings.database_path)
    for n in range(6):  # a history, so waiting jobs show an "Expected" time
        await store.insert_job(Job(
            id=f"old{n}", platform="discord", team_id="0", channel_id="0", user_id="0",
            command="kf2v", model=MODEL, state=JobState.DELIVERED, created_at=1.0,
            finished_at=100.0 + n, provider_seconds=LONG_S + n))
    await store.close()
    stack.sim.config.running_s = LONG_S
    async with stack.start(concurrency={MODEL: 1}) as bot:
        ids = await queue_jobs(stack, bot, 4, [str(stack.channel_id)])
        await stack.wait_state(JobState.RUNNING)
        await asyncio.sleep(PROGRESS_INTERVAL_S * 2)
        await bot.progress.settle()
        before = len(stack.fake.requests_to("PATCH", EDITS))
        await asyncio.sleep(PROGRESS_INTERVAL_S * 2)
        for job_id in ids[1:]:
            await bot.progress.on_update(await bot.engine.update_for(await stack.job(job_id)))
        await bot.progress.settle()
        assert len(stack.fake.requests_to("PATCH", EDITS)) == before


def test_places_are_exact_near_the_front_and_coarse_further_back() -> None:
    """The first ten places are exact; behind them the jobs ahead, rounded down coarsely."""
    from bot.frontends.common.job_facts import place_text

    shown = [place_text(p) for p in (1, 10, 11, 26, 1234)]
    assert shown == ["1st in line", "10th in line", "10+ jobs ahead", "20+ jobs ahead",
                     "1000+ jobs ahead"]


async def test_a_restart_brings_waiting_jobs_places_up_to_date(stack: Stack) -> None:
    """A job ahead was canceled while the bot was down: after the restart the message of the
    job behind it moves up a place."""
    stack.sim.config.running_s = LONG_S
    async with stack.start(concurrency={MODEL: 1}) as bot:
        ids = await queue_jobs(stack, bot, 3, [str(stack.channel_id)])
        await stack.wait_state(JobState.RUNNING)
        await bot.progress.settle()
        await stack.crash()
    store = await Store.open(stack.settings.database_path)
    await store.update_job(ids[1], state=JobState.CANCELED, finished_at=1.0)
    last = await store.get_job(ids[2])
    await store.close()
    assert last is not None and last.progress_ref is not None
    async with stack.start(concurrency={MODEL: 1}):
        await stack.fake.wait_for_edit(
            stack.channel_id, lambda m: "Queued: 1st in line" in str(m.embeds),
            message_id=int(last.progress_ref.message_id))
