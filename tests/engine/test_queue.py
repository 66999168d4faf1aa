"""The in-memory queue: the fair order kept event by event, places, and a restart's rebuild."""

from __future__ import annotations

import random

import pytest

from bot.clock import ScaledClock
from bot.engine import AT_PROVIDER, Engine, Store
from bot.engine.fairness import fair_order
from bot.engine.jobs import QueuedJob
from bot.engine.queue import Entry, ModelQueue
from bot.provider.client import DashScope
from tests.engine_support import SCALE, Rig, kf2v_request, settings_for

MODEL = "wan2.2-kf2v-flash"


class Reference:
    """The same jobs and turns kept the slow way, for `fair_order` to order."""

    def __init__(self, team_last: dict[str, float], user_last: dict[str, float]) -> None:
        self.jobs: dict[str, Entry] = {}
        self.team_last, self.user_last = dict(team_last), dict(user_last)

    def order(self) -> list[str]:
        queued = [QueuedJob(e.id, e.team_id, e.user_id, e.created_at)
                  for e in sorted(self.jobs.values())]
        return [j.id for j in fair_order(queued, self.team_last, self.user_last)]

    def admit(self, job_id: str) -> None:
        """As `fair_order` counts a turn: the user's team is that of its oldest job."""
        entry = self.jobs[job_id]
        team = min(e for e in self.jobs.values() if e.user_id == entry.user_id).team_id
        del self.jobs[job_id]
        tick = max([0.0, *self.team_last.values(), *self.user_last.values()]) + 1
        self.team_last[team] = self.user_last[entry.user_id] = tick


def random_run(seed: int, steps: int = 80):
    """A queue and its reference after random adds, admissions and cancels; yields each step."""
    rnd = random.Random(seed)
    teams = [f"t{i}" for i in range(rnd.randint(1, 4))]
    users = [f"u{i}" for i in range(rnd.randint(1, 7))]
    team_last = {t: float(rnd.randint(1, 5)) for t in teams if rnd.random() < 0.5}
    user_last = {u: float(rnd.randint(1, 5)) for u in users if rnd.random() < 0.5}
    queue, reference = ModelQueue(team_last, user_last), Reference(team_last, user_last)
    for step in range(1, steps + 1):
        roll = rnd.random()
        if roll < 0.5 or not reference.jobs:
            entry = Entry(100.0 + step, step, f"j{step}", rnd.choice(teams), rnd.choice(users))
            queue.add(entry)
            reference.jobs[entry.id] = entry
        elif roll < 0.8:
            first = queue.peek()
            assert first is not None
            reference.admit(first)
            queue.admit(first)
        else:
            gone = rnd.choice(sorted(reference.jobs))
            del reference.jobs[gone]
            queue.remove(gone)
        yield queue, reference


@pytest.mark.parametrize("seed", range(40))
def test_the_order_stays_the_fair_order_through_any_events(seed):
    """After every add, admission and cancel the queue's order is `fair_order`'s."""
    for queue, reference in random_run(seed):
        assert queue.front() == reference.order()


@pytest.mark.parametrize("seed", range(40))
def test_each_place_is_the_jobs_index_in_the_fair_order(seed):
    """A job's place, counted without walking the queue, is its 1-based index in the order."""
    for queue, reference in random_run(seed):
        order = reference.order()
        assert [queue.position(job_id) for job_id in order] == list(range(1, len(order) + 1))


def test_the_next_job_is_the_first_of_the_order():
    """`peek` names the job `fair_order` puts first."""
    for queue, reference in random_run(7):
        assert queue.peek() == (reference.order() or [None])[0]


def test_a_job_not_queued_has_no_place():
    """Removed or never added: no place, and removing it again changes nothing."""
    queue = ModelQueue({}, {})
    queue.add(Entry(1.0, 1, "a", "t", "u"))
    assert queue.remove("a") is not None and queue.remove("a") is None
    assert queue.position("a") is None and queue.peek() is None


@pytest.fixture
async def rig(sim, session, tmp_path) -> Rig:
    """An engine rig with one slot; its engines are not started (no polling)."""
    settings = settings_for(sim, tmp_path, concurrency={MODEL: 1})
    return Rig(sim, tmp_path / "jobs.sqlite3", ScaledClock(SCALE), settings, session)


async def places(engine: Engine, ids: list[str]) -> list[int | None]:
    return [(await engine.update_for(await engine.store.get_job(i))).position for i in ids]


async def test_places_move_up_after_an_admission_and_a_cancel(rig):
    """One admitted and one canceled ahead: everyone behind moves up by two."""
    async with rig.engine(start=False) as engine:
        ids = [(await engine.submit(kf2v_request(rig.sim, f"u{i}"))).job.id for i in range(5)]
        assert await places(engine, ids) == [1, 2, 3, 4, 5]
        await engine.admission.admit_all()
        await engine.cancel(ids[2])
        assert await places(engine, ids) == [None, 1, None, 2, 3]
        assert (await engine.store.get_job(ids[0])).state in AT_PROVIDER


async def test_submit_returns_the_new_jobs_place_in_the_fair_order(rig):
    """Bob's first job goes ahead of Alice's second, and submit says so."""
    async with rig.engine(start=False) as engine:
        for _ in range(3):
            await engine.submit(kf2v_request(rig.sim, "alice"))
        bob = await engine.submit(kf2v_request(rig.sim, "bob"))
    assert bob.position == 2


async def test_a_restart_rebuilds_the_same_queue_from_the_store(rig):
    """A new engine on the same file, with admissions in its history, orders the queue the same."""
    async with rig.engine(start=False) as engine:
        for user, team in [("a", "t1"), ("a", "t1"), ("b", "t1"), ("c", "t2"), ("c", "t2"),
                           ("d", "t3"), ("a", "t1"), ("b", "t1")]:
            await engine.submit(kf2v_request(rig.sim, user, team))
        await engine.admission.admit_all()
        before = [u.job.id for u in (await engine.queue())[MODEL]]
    store = await Store.open(rig.db_path)
    try:
        client = DashScope(rig.session, rig.sim.base_url, rig.sim.api_key, timeout_s=5)
        restarted = Engine(store, client, rig.settings, clock=rig.clock)
        after = [u.job.id for u in (await restarted.queue())[MODEL]]
        assert after == before and len(after) == 7
        assert [u.position for u in (await restarted.queue())[MODEL]] == list(range(1, 8))
    finally:
        await store.close()
