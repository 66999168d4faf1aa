"""Slots never idle: with a provider that holds tasks beyond its slots PENDING, one task waits on
deck per model, so a freed slot starts the next task at once; a provider that refuses them
turns it off; a job on deck is canceled for free."""

from __future__ import annotations

import dataclasses
from itertools import pairwise

import pytest

from bot.engine import CancelOutcome, JobState
from tests.engine_support import Rig, kf2v_request

MODEL = "wan2.2-kf2v-flash"
DONE = (JobState.DELIVERED,)


@pytest.fixture
def running_s() -> float:
    return 30.0


def one_slot(rig: Rig, over_limit: str, on_deck: int = 1) -> None:
    rig.sim.config.concurrency[MODEL] = 1
    rig.sim.config.over_limit = over_limit
    rig.sim.config.pending_s = 0.0
    rig.settings = dataclasses.replace(rig.settings, concurrency={MODEL: 1}, on_deck=on_deck)


async def run_three(rig: Rig) -> list:
    async with rig.engine() as engine:
        jobs = [(await engine.submit(kf2v_request(rig.sim, user=f"u{n}"))).job for n in range(3)]
        for job in jobs:
            await engine.watcher.state(job.id, *DONE, timeout_s=20)
    return sorted(rig.sim.tasks.values(), key=lambda t: t.created)


async def test_a_freed_slot_starts_the_task_on_deck_at_once(rig: Rig) -> None:
    """The provider queues: each next task was already there, so it starts the moment the
    one before it ends (no detection delay between them) and three tasks were created."""
    one_slot(rig, "queue")
    tasks = await run_three(rig)
    assert len(tasks) == 3
    for before, after in pairwise(tasks):
        assert after.created < before.end_at  # sent while the one before still ran
        assert after.scheduled == pytest.approx(before.end_at, abs=0.5)


async def test_without_a_deck_the_next_task_waits_for_the_poll(rig: Rig) -> None:
    """ON_DECK=0: the next task is created only after the engine sees the slot free."""
    one_slot(rig, "queue", on_deck=0)
    tasks = await run_three(rig)
    for before, after in pairwise(tasks):
        assert after.created >= before.end_at


async def test_a_provider_that_refuses_turns_the_deck_off(rig: Rig) -> None:
    """The provider answers 429 to a task beyond the slot: the job waits its turn, every job is
    delivered, and one task per job is created."""
    one_slot(rig, "reject")
    tasks = await run_three(rig)
    assert len(tasks) == 3


async def test_a_job_on_deck_is_canceled_for_free(rig: Rig) -> None:
    """The job waiting on deck is PENDING at the provider: canceling it costs nothing."""
    one_slot(rig, "queue")
    rig.sim.config.running_s = 600.0
    async with rig.engine() as engine:
        first = (await engine.submit(kf2v_request(rig.sim, user="a"))).job
        second = (await engine.submit(kf2v_request(rig.sim, user="b"))).job
        await engine.watcher.state(first.id, JobState.RUNNING)
        await engine.watcher.state(second.id, JobState.PENDING)
        assert await engine.cancel(second.id) is CancelOutcome.CANCELED
