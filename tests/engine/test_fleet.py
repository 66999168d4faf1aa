"""Three bot processes on one PostgreSQL database and one simulator run 100 jobs while random
processes (the leader among them) are SIGKILLed and restarted: every job gets exactly one task
and one delivery, the model's slots are never exceeded at the provider, the query cap holds
across processes, a new leader takes over within seconds, and a job's updates (its progress
edits) come from one process at a time.

The simulator refuses (429) any create beyond the model's slots, so one over-admission anywhere
shows; its request log is timestamped, so the query rate is measured where the account's cap
applies. Each process is tests/fleet_bot.py: an engine with a file for a front end."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bot.engine import JobState
from bot.sim.server import SimConfig
from tests.fleet_bot import MODEL
from tests.fleet_support import Fleet, peak_overlap
from tests.frontends.discord.test_progress_budget import most_in_a_window

JOBS = 100
SLOTS = 5
QPS = 10  # each process's cap (counted as it sends)
ACCOUNT_QPS = 20  # the account's, counted where the provider sees them arrive
NAMES = ("p1", "p2", "p3")
# (deliveries so far, whom to kill): the leader three times, a random process three times.
KILLS = ((8, "leader"), (22, "any"), (38, "leader"), (52, "any"), (66, "leader"), (80, "any"))
FAILOVER_S = 5.0


@pytest.fixture
def sim_config() -> SimConfig:
    """Tasks 200x faster than the wall clock (62 s of work in 0.3 s); no line beyond slots."""
    return SimConfig(time_scale=200.0, over_limit="reject", concurrency={MODEL: SLOTS})


@pytest.mark.timeout(240)  # typically 25-50 s; a job killed mid-create waits ~40 s to be resent
async def test_three_processes_share_one_queue_through_kills(sim, pg_url, tmp_path):
    fleet = Fleet(pg_url, sim, tmp_path, slots=SLOTS, qps=QPS)
    await fleet.open()
    rng = random.Random(13)
    failovers: list[float] = []

    async def delivered(n: int) -> bool:
        return await fleet.count(JobState.DELIVERED) >= n

    try:
        share = JOBS // len(NAMES) + 1
        for i, name in enumerate(NAMES):
            fleet.start(name, submit=min(share, JOBS - i * share), first=i * share)
        for threshold, whom in KILLS:
            await fleet.until(lambda n=threshold: delivered(n), 60)
            leader = fleet.leaders()[-1]["name"]
            victim = leader if whom == "leader" else rng.choice(fleet.alive())
            seen = len(fleet.leaders())
            killed_at = fleet.kill(victim)
            fleet.start(victim)  # as a supervisor would
            if victim == leader:
                await fleet.until(_more_leaders(fleet, seen), FAILOVER_S * 2)
                failovers.append(fleet.leaders()[-1]["at"] - killed_at)
        await fleet.until(lambda: delivered(JOBS), 90)
        jobs = await fleet.store.jobs()  # type: ignore[union-attr]
    finally:
        await fleet.close()

    assert len(jobs) == JOBS and {j.state for j in jobs} == {JobState.DELIVERED}
    posts = Counter(p["job"] for p in fleet.deliveries())
    assert set(posts) == {j.id for j in jobs} and set(posts.values()) == {1}
    assert {j.task_id for j in jobs} == set(sim.tasks)  # one task per job, none spare
    assert fleet.speakers_overlapping() == []  # one process at a time edits a job's progress
    refused = [r for r in sim.requests if r.status == 429]
    assert refused == []  # neither a create beyond the slots nor a query beyond the cap
    peak = peak_overlap([(t.created, t.end_at) for t in sim.tasks.values()])
    queries = most_in_a_window([r.at for r in sim.requests if r.route in ("task", "list")], 1.0)
    span = max(j.delivered_at or 0 for j in jobs) - min(j.created_at for j in jobs)
    print(f"\nfleet: {JOBS} jobs in {span:.1f} s, {len(KILLS)} kills, peak slots {peak}/{SLOTS}, "
          f"peak queries {queries}/s at the provider (ours {QPS}, the account's "
          f"{ACCOUNT_QPS}), failovers "
          + ", ".join(f"{s:.2f} s" for s in failovers))
    assert peak <= SLOTS and queries <= ACCOUNT_QPS
    assert len(failovers) >= 3 and max(failovers) < FAILOVER_S


def _more_leaders(fleet: Fleet, seen: int):
    async def check() -> bool:
        return len(fleet.leaders()) > seen

    return check
