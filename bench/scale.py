"""Scale benchmark. Run by hand: `python bench/scale.py` (a few minutes; needs the PostgreSQL
server that .ci/postgres starts, or BENCH_DATABASE_URL). Ratios against a baseline measured in
the same run: one process on SQLite (the default setup).

1. Throughput: the same simulator work (JOBS jobs of one model with SLOTS slots, each task
   RUNNING_S simulated seconds at TIME_SCALE) run by one process on SQLite, one process on
   PostgreSQL and three processes on PostgreSQL (tests/fleet_bot.py, each queueing its share).
   Jobs a minute (first queued to last delivered) and slot utilisation at the provider (the
   time tasks held a slot over SLOTS x that span).
2. Admission with 50,000 jobs queued (written in bulk; the provider answers at once): reading
   the queue at start (a new leader does this), and one admission round after SLOTS slots came
   free (the median of ROUNDS), on each backend. On PostgreSQL a round includes the per-model
   admission lock (two round trips).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ holds the processes

from bench.admission import InstantProvider
from bot.clock import Clock
from bot.config import Settings
from bot.engine import AT_PROVIDER, Engine, Job, JobState, Store
from bot.sim.server import SimConfig, run_simulator
from tests.fleet_bot import MODEL, request
from tests.fleet_support import Fleet, peak_overlap

URL = os.environ.get("BENCH_DATABASE_URL",
                     "postgresql://wanbot:wanbot@127.0.0.1:5432/wanbot_test")
JOBS, SLOTS, TIME_SCALE, RUNNING_S = 150, 5, 100.0, 60.0
QUEUED, ROUNDS = 50_000, 20
BASELINE = "sqlite x1"


# --- 1. throughput -----------------------------------------------------------------------------


async def throughput(name: str, target: str, processes: int, work: Path) -> dict[str, float]:
    config = SimConfig(time_scale=TIME_SCALE, running_s=RUNNING_S, over_limit="reject",
                       concurrency={MODEL: SLOTS})
    async with run_simulator(config) as sim:
        fleet = Fleet(target, sim, work, slots=SLOTS, qps=10)
        await fleet.open()
        try:
            share = -(-JOBS // processes)
            for i in range(processes):
                fleet.start(f"p{i + 1}", submit=min(share, JOBS - i * share), first=i * share)

            async def done() -> bool:
                return await fleet.count(JobState.DELIVERED) >= JOBS

            await fleet.until(done, 600)
            jobs = await fleet.store.jobs()  # type: ignore[union-attr]
        finally:
            await fleet.close()
        tasks = list(sim.tasks.values())
    span = max(j.delivered_at or 0 for j in jobs) - min(j.created_at for j in jobs)
    held = sum(t.end_at - (t.admitted or t.created) for t in tasks)
    first = min(t.admitted or t.created for t in tasks)
    last = max(t.end_at for t in tasks)
    return {"jobs_per_min": JOBS / span * 60, "utilisation": held / (SLOTS * (last - first)),
            "span_s": span, "tasks": len(tasks),
            "peak_slots": peak_overlap([(t.created, t.end_at) for t in tasks])}


# --- 2. admission with a long queue ------------------------------------------------------------


async def admission(target: str, folder: Path) -> dict[str, float]:
    store = await Store.open(target)
    try:
        now = time.time()
        media = {"first_frame_url": "https://example.com/a.png",
                 "last_frame_url": "https://example.com/b.png"}
        fill_s = await timed(lambda: store.insert_jobs(
            Job(**request(n, media).__dict__, id=f"{n:08x}", state=JobState.QUEUED,
                created_at=now - QUEUED + n) for n in range(QUEUED)))
        settings = Settings(dashscope_api_key="bench", base_url="http://127.0.0.1:9",
                            database_path=folder / "jobs.sqlite3", video_dir=folder / "v",
                            concurrency={MODEL: SLOTS}, on_deck=0)
        engine = Engine(store, InstantProvider(), settings,  # type: ignore[arg-type]
                        clock=Clock())
        load_s = await timed(lambda: engine.queues.load(store, [MODEL]))
        rounds = []
        for _ in range(ROUNDS):
            for job in await store.jobs_in(AT_PROVIDER, MODEL):  # the provider finished them
                await store.update_job(job.id, state=JobState.DELIVERED)
            rounds.append(await timed(engine.admission.admit_all))
            await asyncio.gather(*engine._work, return_exceptions=True)
        admitted = len(await store.jobs_in([JobState.PENDING, JobState.DELIVERED]))
        assert admitted == SLOTS * ROUNDS, admitted
    finally:
        await store.close()
    return {"fill_s": fill_s, "load_ms": load_s * 1e3,
            "round_ms": statistics.median(rounds) * 1e3, "round_max_ms": max(rounds) * 1e3}


async def timed(action: Any) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


# --- a schema of its own on the server ---------------------------------------------------------


class Schema:
    """A fresh schema on the PostgreSQL server for each measurement, dropped after."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def new(self) -> str:
        name = "bench_" + uuid.uuid4().hex[:10]
        conn = await asyncpg.connect(URL, timeout=10)
        try:
            await conn.execute(f"CREATE SCHEMA {name}")
        finally:
            await conn.close()
        self.names.append(name)
        return f"{URL}?search_path={name}"

    async def drop(self) -> None:
        conn = await asyncpg.connect(URL, timeout=10)
        try:
            for name in self.names:
                await conn.execute(f"DROP SCHEMA {name} CASCADE")
        finally:
            await conn.close()


async def main(quick: bool) -> None:
    schemas = Schema()
    results: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            runs = [(BASELINE, str(root / "a" / "jobs.sqlite3"), 1),
                    ("postgresql x1", await schemas.new(), 1),
                    ("postgresql x3", await schemas.new(), 3)]
            for name, target, processes in runs:
                work = root / name.replace(" ", "_")
                work.mkdir(parents=True)
                results[name] = await throughput(name, target, processes, work)
                print(f"  {name}: {results[name]}", flush=True)
            if not quick:
                for name, target in (("sqlite", str(root / "b" / "jobs.sqlite3")),
                                     ("postgresql", await schemas.new())):
                    results[f"admission {name}"] = await admission(target, root / "b")
                    print(f"  admission {name}: {results[f'admission {name}']}", flush=True)
    finally:
        await schemas.drop()
    report(results)


def report(results: dict[str, dict[str, float]]) -> None:
    base = results[BASELINE]
    print(f"\nthroughput: {JOBS} jobs, {SLOTS} slots, tasks of {RUNNING_S:.0f} s at "
          f"{TIME_SCALE:.0f}x; baseline {BASELINE}")
    print(f"{'setup':<16}{'jobs/min':>10}{'ratio':>8}{'slot use':>10}{'ratio':>8}"
          f"{'tasks':>7}{'peak':>6}")
    for name in (BASELINE, "postgresql x1", "postgresql x3"):
        r = results[name]
        speed = r["jobs_per_min"] / base["jobs_per_min"]
        print(f"{name:<16}{r['jobs_per_min']:>10.0f}{speed:>8.2f}"
              f"{r['utilisation']:>10.0%}{r['utilisation'] / base['utilisation']:>8.2f}"
              f"{r['tasks']:>7.0f}{r['peak_slots']:>6.0f}")
    if "admission sqlite" not in results:
        return
    lite, pg = results["admission sqlite"], results["admission postgresql"]
    print(f"\nadmission with {QUEUED:,} queued (baseline sqlite)")
    for key, label in (("load_ms", "read the queue (ms)"), ("round_ms", "one round (ms)"),
                       ("round_max_ms", "worst round (ms)"), ("fill_s", "bulk insert (s)")):
        print(f"{label:<22}{lite[key]:>10.1f}{pg[key]:>10.1f}{pg[key] / lite[key]:>8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="throughput only")
    asyncio.run(main(parser.parse_args().quick))
