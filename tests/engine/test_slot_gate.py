"""Each model's slots as the engine counts them (pauses, the deck, whether a slot is wanted),
and the policy's refit kept out of the way of the create that takes a freed slot."""

from __future__ import annotations

import dataclasses

import pytest

from bot.clock import ScaledClock
from bot.engine import Job, JobState, KeyPool, Store
from bot.engine.learning import Learning
from bot.engine.poll_policy import HistoryPolicy
from bot.engine.poller import Poller
from bot.engine.slot_gate import SlotGate
from bot.errors import ApiError
from bot.provider.client import DashScope
from bot.provider.tasks import Task
from tests.engine.test_store import make_job

MODEL = "wan2.2-kf2v-flash"
FULL = ApiError("Throttling", "Too many concurrent tasks", status=429, retryable=True)


PAUSE = f"{MODEL}@key-a"  # pauses are kept per model and API key (each key an account)


def gate(on_deck: int, settings) -> SlotGate:
    return SlotGate(dataclasses.replace(settings, concurrency={MODEL: 2}, on_deck=on_deck),
                    ScaledClock(1.0))


def test_a_refusal_pauses_the_key_turns_the_deck_off_and_a_freed_slot_resumes(rig) -> None:
    """A 429: nothing is sent with that key for the pause (another key is not paused), the
    deck is off for good; a task's end lifts the pause at once."""
    slots = gate(1, rig.settings)
    assert slots.deck(MODEL) == 1 and not slots.blocked(PAUSE)
    assert slots.refused(PAUSE, MODEL, FULL) == 10.0
    assert slots.blocked(PAUSE) and not slots.blocked(f"{MODEL}@key-b")
    assert slots.next_unblock() is not None
    slots.freed(PAUSE)
    assert not slots.blocked(PAUSE) and slots.deck(MODEL) == 0  # the provider refuses a deck


def test_pauses_grow_with_refusals_in_a_row_and_start_afresh_after_a_create(rig) -> None:
    """10, 20, 40 s...; once a create is accepted, the next refusal pauses 10 s again."""
    slots = gate(0, rig.settings)
    assert [slots.refused(PAUSE, MODEL, FULL) for _ in range(3)] == [10.0, 20.0, 40.0]
    slots.created(PAUSE)
    assert slots.refused(PAUSE, MODEL, FULL) == 10.0


def test_a_slot_is_wanted_only_with_a_queue_and_no_deck(rig) -> None:
    """With a task on deck the provider fills a freed slot itself; without one, a queued job
    waits for us to see the slot free."""
    with_deck, without = gate(1, rig.settings), gate(0, rig.settings)
    assert not with_deck.wanted(MODEL, queued=True)
    assert without.wanted(MODEL, queued=True)
    assert not without.wanted(MODEL, queued=False)
    with_deck.refused(PAUSE, MODEL, FULL)
    assert with_deck.wanted(MODEL, queued=True)


async def finished_jobs(store: Store, count: int, seconds: float) -> None:
    """`count` jobs that took `seconds`, finished after every job before them."""
    done = await store.durations(MODEL, limit=10_000)
    for i in range(count):
        await store.insert_job(make_job(f"done{seconds}-{i}", state=JobState.DELIVERED,
                                        finished_at=float(len(done) + i),
                                        provider_seconds=seconds))


async def test_the_refit_waits_for_the_create_that_takes_the_slot(tmp_path) -> None:
    """A task ends while a job waits for its slot: the fit changes only once that job's create
    was answered; with nobody waiting it changes at once."""
    store = await Store.open(tmp_path / "jobs.sqlite3")
    policy = HistoryPolicy()
    learning = Learning(store, policy)
    await finished_jobs(store, 10, 60.0)
    await learning.learn(MODEL)
    await finished_jobs(store, 30, 120.0)
    await learning.finished(MODEL, create_follows=True)
    assert policy.typical(MODEL) == pytest.approx(60.0, rel=0.02)
    await learning.created(MODEL)
    assert policy.typical(MODEL) > 90
    await finished_jobs(store, 100, 30.0)
    await learning.finished(MODEL, create_follows=False)
    assert policy.typical(MODEL) == pytest.approx(30.0, rel=0.02)
    await store.close()



async def test_a_job_that_starts_waiting_hurries_its_models_tasks(rig, tmp_path) -> None:
    """Tasks planned while nobody waited are asked about sooner once a job queues for their
    model; another model's are left as planned."""
    waiting = {MODEL: False}
    policy = HistoryPolicy()
    policy.learn(MODEL, [60.0 + i / 2 for i in range(21)])  # 60-70 s
    policy.learn("wan2.2-i2v-flash", [60.0 + i / 2 for i in range(21)])
    store = await Store.open(tmp_path / "poll.sqlite3")
    client = DashScope(rig.session, rig.sim.base_url, rig.sim.api_key)
    keys = KeyPool.single(client, rig.settings, rig.clock)
    poller = Poller(store, keys, policy, rig.clock, on_task=ignore,
                    slot_wanted=lambda model: waiting.get(model, False))
    now = rig.clock.now()
    mine = make_job("mine", state=JobState.RUNNING, task_id="t1", submitted_at=now - 62)
    other = make_job("other", model="wan2.2-i2v-flash", state=JobState.RUNNING,
                     task_id="t2", submitted_at=now - 62)
    for job in (mine, other):
        poller.schedule(job)
    planned = {j.id: poller.next_query(j.id) or 0 for j in (mine, other)}
    waiting[MODEL] = True
    poller.hurry(MODEL)
    assert (poller.next_query("mine") or 0) < planned["mine"] - 0.2
    assert poller.next_query("other") == planned["other"]
    await store.close()


async def ignore(job: Job, task: Task) -> None:
    """The poller is not run here: nothing is ever told."""
