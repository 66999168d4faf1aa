"""Leadership on a shared store, with real connection faults (a TCP relay the test cuts): the
leader whose lock connection drops stops with StorageError (it can no longer know it leads),
and a follower whose connection dropped too asks again and takes over within seconds."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from bot.clock import Clock
from bot.engine import Engine, Store
from bot.engine.shared import SharedCoordination
from bot.errors import StorageError
from bot.provider.client import DashScope
from tests.engine_support import settings_for
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
