"""/healthz and /metrics over real HTTP, watching a real engine that ran jobs on the
simulator: the numbers match what happened; a storage fault turns /healthz to 503."""

from __future__ import annotations

import dataclasses

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.engine import JobState
from bot.ops import HealthServer
from tests.engine_support import Rig, kf2v_request

MODEL = "wan2.2-kf2v-flash"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, its labels) -> value, from Prometheus's text format."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_what_the_engine_did(rig: Rig, session: aiohttp.ClientSession
                                                 ) -> None:
    """Three jobs delivered and one refused by moderation, then one queued behind a full
    slot: deliveries, durations, errors by code, status queries, queue length and slot use."""
    rig.sim.config.concurrency[MODEL] = 1
    rig.settings = dataclasses.replace(rig.settings, concurrency={MODEL: 1})
    async with rig.engine() as engine:
        server = HealthServer(engine, host="127.0.0.1", port=0)
        await server.start()
        try:
            jobs = [(await engine.submit(kf2v_request(rig.sim, user=f"u{n}"))).job
                    for n in range(3)]
            bad = (await engine.submit(kf2v_request(rig.sim, prompt="sim-blocked"))).job
            for job in jobs:
                await engine.watcher.state(job.id, JobState.DELIVERED, timeout_s=20)
            await engine.watcher.state(bad.id, JobState.FAILED, timeout_s=20)
            rig.sim.config.running_s = 3600.0  # the next two hold the one slot for a while
            running = (await engine.submit(kf2v_request(rig.sim, user="v1"))).job
            await engine.watcher.state(running.id, JobState.RUNNING, JobState.PENDING)
            await engine.submit(kf2v_request(rig.sim, user="v2"))
            async with session.get(server.url + "/metrics") as answer:
                assert answer.status == 200
                assert answer.headers["Content-Type"].startswith("text/plain")
                got = samples(await answer.text())
        finally:
            await server.close()
    key = engine.keys.first.id
    m = frozenset({("model", MODEL)})
    assert got[("wanbot_deliveries_total", frozenset({("platform", "test")}))] == 3
    assert got[("wanbot_job_duration_seconds_count", m)] == 3
    assert got[("wanbot_job_duration_seconds_sum", m)] >= 3 * 60  # each ran 60 clock seconds
    assert got[("wanbot_job_errors_total", frozenset({("code", "DataInspectionFailed")}))] == 1
    assert 0 < got[("wanbot_status_queries_total", frozenset({("key", key)}))] <= engine.queries
    assert got[("wanbot_queue_length", m)] == 1
    assert got[("wanbot_slots_used", m | {("key", key)})] == 1
    assert got[("wanbot_slots", m | {("key", key)})] == 1
    assert got[("wanbot_api_keys_usable", frozenset())] == 1


async def test_healthz_is_200_then_503_after_a_storage_fault(
        rig: Rig, session: aiohttp.ClientSession) -> None:
    """Running, the database answering, chat connected: 200. The database file removed under
    the bot: the probe notices, the engine stops, 503 saying why."""
    async def chat() -> dict[str, bool]:
        return {"discord": True}

    async with rig.engine() as engine:
        server = HealthServer(engine, host="127.0.0.1", port=0, chat=chat)
        await server.start()
        try:
            async with session.get(server.url + "/healthz") as answer:
                first = (answer.status, await answer.json())
            rig.db_path.unlink()
            async with session.get(server.url + "/healthz") as answer:
                second = (answer.status, await answer.json())
        finally:
            await server.close()
    assert first == (200, {"engine": "running", "storage": "ok", "chat": {"discord": True},
                           "leader": None})
    assert second[0] == 503 and "removed" in second[1]["storage"]
    assert engine.guard.failure is not None
