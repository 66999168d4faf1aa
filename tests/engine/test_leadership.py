"""Two engines on one PostgreSQL database (two processes' worth, in one for the test): a job a
follower queues reaches the leader by its wake-up at once; and, with real connection faults (a
TCP relay the test cuts), the leader whose lock connection drops stops with StorageError (it
can no longer know it leads) while a follower whose connection dropped too asks again and
takes over within seconds."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from bot.clock import Clock
from bot.engine import Engine, JobState, Store
from bot.engine.poll_policy import FixedInterval
from bot.engine.shared import SharedCoordination
from bot.errors import StorageError
from bot.provider.client import DashScope
from tests.engine_support import Recorder, Watcher, kf2v_request, settings_for
from tests.pg_support import Relay


async def test_a_leader_cut_off_stops_and_a_follower_takes_over(sim, session, tmp_path, pg_url):
    parts = urlsplit(pg_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    url = parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{relay.port}"))
    engines: list[Engine] = []
    for _ in range(2):
        store = await Store.open(url.geturl())
        coord = SharedCoordination(store, lease_s=1.0, heartbeat_s=0.2,  # type: ignore[arg-type]
                                   rescan_s=0.5)
        client = DashScope(session, sim.base_url, sim.api_key, timeout_s=5)
        engines.append(Engine(store, client, settings_for(sim, tmp_path), clock=Clock(),
                              coordination=coord))
    leader, follower = engines
    stopped = asyncio.Event()
    leader.guard.on_failure(stopped.set)
    try:
        await leader.start()
        await asyncio.wait_for(leader.coord.leading.wait(), 5)  # type: ignore[attr-defined]
        await follower.start()
        cut = time.time()
        relay.drop()  # every connection of both: the follower leads only on a new one
        await asyncio.wait_for(stopped.wait(), 5)
        await asyncio.wait_for(follower.coord.leading.wait(), 5)  # type: ignore[attr-defined]
        took = follower.coord.led_at - cut  # type: ignore[attr-defined]
    finally:
        for engine in engines:
            await engine.stop()
            await engine.store.close()
        relay.drop()
    assert isinstance(leader.guard.failure, StorageError)
    assert "leadership" in str(leader.guard.failure)
    assert follower.guard.failure is None and took < 3.0


async def test_a_job_queued_by_a_follower_is_admitted_by_the_leader_at_once(
        sim, session, tmp_path, pg_url):
    """A follower queues a job: the leader hears it (NOTIFY), not at its next re-scan, and
    sends it; the follower, which holds the job's lease, gets its updates and delivers it."""
    engines: list[Engine] = []
    for _ in range(2):
        store = await Store.open(pg_url)
        coord = SharedCoordination(store, rescan_s=3600.0)  # type: ignore[arg-type]
        client = DashScope(session, sim.base_url, sim.api_key, timeout_s=5)
        engine = Engine(store, client, settings_for(sim, tmp_path), clock=Clock(),
                        policy=FixedInterval(0.05), coordination=coord)
        engine.set_deliverer("test", Recorder())
        engines.append(engine)
    leader, follower = engines
    watcher = Watcher()
    follower.subscribe(watcher)
    try:
        await leader.start()
        await asyncio.wait_for(leader.coord.leading.wait(), 5)  # type: ignore[attr-defined]
        await follower.start()
        queued = time.monotonic()
        update = await follower.submit(kf2v_request(sim))
        await watcher.state(update.job.id, JobState.SUBMITTING, timeout_s=5)
        admitted_s = time.monotonic() - queued
        await watcher.state(update.job.id, JobState.DELIVERED, timeout_s=10)
    finally:
        for engine in engines:
            await engine.stop()
            await engine.store.close()
    print(f"\nwake-up: a follower's job admitted by the leader {admitted_s * 1e3:.0f} ms after")
    assert admitted_s < 1.0  # the re-scan is an hour away: this was the wake-up
    assert [r.route for r in sim.requests].count("create") == 1


async def test_a_lease_lives_with_its_process_and_passes_only_when_that_lapses(pg_url):
    """A heartbeat is one row however many leases a process holds: while it is alive nobody
    takes its jobs (and its heartbeat says nothing changed); once it lapses another process
    takes them, and the lapsed one, on its next heartbeat, learns which it no longer holds."""
    from tests.engine.test_store import make_job

    store = await Store.open(pg_url)
    try:
        for job_id in ("a", "b"):
            await store.insert_job(make_job(job_id))
        assert await store.claim_lease("a", "p1", 30.0)  # type: ignore[attr-defined]
        assert await store.claim_lease("b", "p1", 30.0)  # type: ignore[attr-defined]
        assert not await store.claim_lease("a", "p2", 30.0)  # type: ignore[attr-defined]
        assert await store.renew_leases("p1", 30.0) is None  # type: ignore[attr-defined]
        assert await store.unleased([JobState.QUEUED]) == []  # type: ignore[attr-defined]
        await store.renew_leases("p1", -1.0)  # type: ignore[attr-defined]  # p1 lapses
        assert {j.id for j in await store.unleased([JobState.QUEUED])} == {"a", "b"}  # type: ignore[attr-defined]
        assert await store.claim_lease("a", "p2", 30.0)  # type: ignore[attr-defined]
        assert await store.renew_leases("p1", 30.0) == {"b"}  # type: ignore[attr-defined]
        assert await store.renew_leases("p1", 30.0) is None  # type: ignore[attr-defined]
        assert not await store.claim_lease("a", "p1", 30.0)  # type: ignore[attr-defined]
        await store.update_job("b", state=JobState.CANCELED)
        assert await store.drop_ended_leases("p1") == {"b"}  # type: ignore[attr-defined]
    finally:
        await store.close()
