"""Queue benchmark. Run by hand: `python bench/admission.py` (a few minutes; --quick skips 50,000).

At 100 / 1,000 / 5,000 / 50,000 queued jobs (1,000 people in 10 teams, one model with 5 slots),
first with no history, then with 500,000 finished jobs: one admission round, the event loop's
worst stall, `submit`, a job's place in line, rebuilding the queue at start, peak RSS and the
Discord edits a minute the progress board asks for. Each size runs in its own process (its RSS
is its own) on a fresh SQLite file. The provider answers at once: the engine's own work is
measured, not HTTP.

The baseline, measured in the same process, is main's path kept here as functions: every
admission reads and fair-orders the whole queue (last_admitted without a usable index) and
tells every queued job its new place (`ids.index` per job); `submit` orders the queue twice;
the board edits every queued message whose place changed (at most once per message per 5 s).
At 50,000 the baseline's place updates are left out (quadratic: minutes): its figures there
are lower bounds. Edits a minute assume 10 admissions a minute and 5 channels; ours are capped
by the board's budget (4 per channel per 5 s), the baseline's by nothing but the interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.engine import AT_PROVIDER, Engine, Job, JobRequest, JobState, Store
from bot.engine.fairness import fair_order
from bot.engine.store.base import _to_columns
from bot.frontends.discord.edit_budget import CHANNEL_EDITS
from bot.frontends.discord.progress import PLACES_BUDGET_S
from bot.frontends.discord.queue_places import QueuePlaces
from bot.provider import catalog
from bot.provider.tasks import Task, TaskStatus

MODEL = "wan2.2-kf2v-flash"
SLOTS, TEAMS, USERS, CHANNELS = 5, 10, 1000, 5
SIZES, HISTORY = (100, 1000, 5000, 50000), 500_000
ROUNDS, SUBMITS, BASELINE_ROUNDS = 20, 20, 3
ADMISSIONS_PER_MIN = 10
EDITS_PER_MIN_CAP = CHANNELS * CHANNEL_EDITS * 60 / 5  # the board's budget
QUADRATIC_FROM = 20_000  # the baseline's place updates are skipped from this size


class InstantProvider:
    """Accepts every task at once: the benchmark measures the engine, not HTTP."""

    async def create_task(self, endpoint: str, body: dict[str, Any], *,
                          oss_resolve: bool = False) -> Task:
        return Task(task_id=uuid.uuid4().hex, status=TaskStatus.PENDING)

    async def close(self) -> None:
        return None


class StallMeter:
    """The event loop's worst lateness for a 1 ms sleep while it runs."""

    def __init__(self) -> None:
        self.worst_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst_s = max(self.worst_s, time.perf_counter() - start - 0.001)

    def __enter__(self) -> StallMeter:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def request(rng: random.Random) -> JobRequest:
    user = rng.randrange(USERS)
    params = catalog.resolve_options(catalog.get_model(MODEL), {"resolution": "480P"})
    return JobRequest(
        platform="bench", team_id=f"t{user % TEAMS}", channel_id=f"c{user % CHANNELS}",
        user_id=f"u{user}", command="kf2v", model=MODEL, prompt="a cat looks up",
        media={"first_frame_url": "https://example.com/a.png",
               "last_frame_url": "https://example.com/b.png"},
        options=params, expected_seconds=5)


async def populate(store: Store, queued: int, history: int, rng: random.Random) -> None:
    """`history` finished jobs, then `queued` waiting ones, written in bulk (streamed, so the
    benchmark's own rows do not count in its peak memory)."""
    now = time.time()
    columns = list(_to_columns(_job(rng, 0, now, True).__dict__))
    sql = (f"INSERT INTO jobs ({', '.join(columns)})"
           f" VALUES ({', '.join('?' for _ in columns)})")
    rows = (tuple(_to_columns(_job(rng, n, now, n < history).__dict__).values())
            for n in range(history + queued))
    await store.db.executemany(sql, rows)
    await store.db.commit()


def _job(rng: random.Random, n: int, now: float, finished: bool) -> Job:
    at = now - 86400 + n * 0.01
    return Job(**request(rng).__dict__, id=f"{n:08x}", created_at=at,
               state=JobState.DELIVERED if finished else JobState.QUEUED,
               submitted_at=at + 1 if finished else None,
               finished_at=at + 61 if finished else None,
               provider_seconds=60.0 if finished else None)


async def free_slots(store: Store) -> None:
    """The provider finished everything sent: every slot is free again."""
    states = ", ".join(f"'{s}'" for s in AT_PROVIDER)
    await store.db.execute(f"UPDATE jobs SET state = 'delivered' WHERE state IN ({states})")
    await store.db.commit()


async def timed(action: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def timed_cpu(action: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Wall time, and the event loop thread's CPU time (SQLite runs in another thread)."""
    start, cpu = time.perf_counter(), time.thread_time()
    await action()
    return time.perf_counter() - start, time.thread_time() - cpu


# --- main's path, kept as the baseline ---------------------------------------------------------


async def baseline_order(store: Store) -> list[Any]:
    """main's `_queue_order`: the whole queue read and ordered (no usable history index)."""
    queued = await store.queued(MODEL)
    last = {}
    for column in ("team_id", "user_id"):
        sql = (f"SELECT {column}, MAX(submitted_at) FROM jobs NOT INDEXED"
               " WHERE model = ? AND submitted_at IS NOT NULL GROUP BY 1")
        async with store.db.execute(sql, (MODEL,)) as cur:
            last[column] = {str(r[0]): float(r[1]) for r in await cur.fetchall()}
    return fair_order(queued, last["team_id"], last["user_id"])


async def baseline_round(store: Store, places: bool) -> None:
    """main's `_admit_all` for one model (the order, read once; the same writes as ours) and
    `_emit_queue` (every queued job's place by `ids.index`, a second order read)."""
    for queued in (await baseline_order(store))[:SLOTS]:
        job = await store.get_job(queued.id)
        assert job is not None
        await store.update_job(job.id, expect=[JobState.QUEUED], state=JobState.SUBMITTING,
                               submitted_at=time.time(), attempts=job.attempts + 1)
    if not places:
        return
    order = await baseline_order(store)
    ids = [q.id for q in order]
    for job in await store.jobs_in([JobState.QUEUED], MODEL):
        ids.index(job.id)


async def baseline_submit(store: Store, rng: random.Random) -> None:
    """main's `submit`: insert, then the queue order twice (its place, then the update)."""
    now = time.time()
    await store.insert_job(Job(**request(rng).__dict__, id=uuid.uuid4().hex[:8],
                               state=JobState.QUEUED, created_at=now, updated_at=now))
    await baseline_order(store)
    await baseline_order(store)


# --- measuring ---------------------------------------------------------------------------------


async def measure_ours(store: Store, folder: Path, rng: random.Random) -> dict[str, float]:
    settings = Settings(dashscope_api_key="bench", base_url="http://127.0.0.1:9",
                        database_path=folder / "jobs.sqlite3", video_dir=folder / "videos",
                        concurrency={MODEL: SLOTS})
    engine = Engine(store, InstantProvider(), settings, clock=Clock())  # type: ignore[arg-type]
    rebuild_s = await timed(lambda: engine.queues.load(store, [MODEL]))
    places = QueuePlaces(engine.queues)
    for job_id in engine.queues.get(MODEL).front():
        places.follow(job_id, MODEL)  # every queued job has a progress message
    await board_pass(places, engine)  # as at start: every place looked at once
    rounds, cpus, wanted = [], [], []
    with StallMeter() as stall:
        for _ in range(ROUNDS):
            await free_slots(store)
            wall, cpu = await timed_cpu(engine.admission.admit_all)
            rounds.append(wall)
            cpus.append(cpu)
            await asyncio.sleep(0.01)  # the spawned submits record their tasks
            wanted.append(await board_pass(places, engine) * ADMISSIONS_PER_MIN / SLOTS)
        submits = [await timed(lambda: engine.submit(request(rng))) for _ in range(SUBMITS)]
        last = engine.queues.get(MODEL).front()[-1]
        place_s = await timed(lambda: engine.update_for(_stub(last)))
    await asyncio.gather(*engine._work, return_exceptions=True)
    return {"round_ms": statistics.median(rounds) * 1e3, "round_max_ms": max(rounds) * 1e3,
            "round_loop_ms": statistics.median(cpus) * 1e3,
            "stall_ms": stall.worst_s * 1e3, "submit_ms": statistics.median(submits) * 1e3,
            "submit_max_ms": max(submits) * 1e3, "place_ms": place_s * 1e3,
            "rebuild_ms": rebuild_s * 1e3,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "edits_per_min": min(statistics.mean(wanted), EDITS_PER_MIN_CAP)}


async def board_pass(places: QueuePlaces, engine: Engine) -> int:
    """What the progress board does after the queue moved: look at the places that may have
    changed, in chunks as its edit loop does; the number of edits that asks for."""
    queue, asked, more = engine.queues.get(MODEL), 0, True
    while more:
        more, changed = places.changed(PLACES_BUDGET_S)
        for job_id, _urgency in changed:
            places.shown(job_id, queue.position(job_id))  # as if edited
        asked += len(changed)
        await asyncio.sleep(0)
    return asked


def _stub(job_id: str) -> Job:
    """A queued job as `update_for` needs it (its place comes from the queue)."""
    return Job(**request(random.Random(0)).__dict__, id=job_id, state=JobState.QUEUED,
               created_at=time.time())


async def measure_baseline(store: Store, queued: int, rng: random.Random) -> dict[str, float]:
    places = queued < QUADRATIC_FROM
    rounds, cpus = [], []
    with StallMeter() as stall:
        for _ in range(BASELINE_ROUNDS):
            await free_slots(store)
            wall, cpu = await timed_cpu(lambda: baseline_round(store, places))
            rounds.append(wall)
            cpus.append(cpu)
        submits = [await timed(lambda: baseline_submit(store, rng)) for _ in range(3)]
    per_admission = queued  # every queued job's place changed
    return {"round_ms": statistics.median(rounds) * 1e3, "stall_ms": stall.worst_s * 1e3,
            "round_loop_ms": statistics.median(cpus) * 1e3,
            "submit_ms": statistics.median(submits) * 1e3,
            "edits_per_min": min(per_admission * ADMISSIONS_PER_MIN, queued * 12),
            "lower_bound": not places}


async def one(queued: int, history: int) -> dict[str, Any]:
    rng = random.Random(queued + history)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = await Store.open(folder / "jobs.sqlite3")
        try:
            await populate(store, queued, history, rng)
            ours = await measure_ours(store, folder, rng)
            baseline = await measure_baseline(store, queued, rng)
        finally:
            await store.close()
    return {"queued": queued, "history": history, "ours": ours, "baseline": baseline}


# --- running and reporting ---------------------------------------------------------------------


def run_child(queued: int, history: int) -> dict[str, Any]:
    """One size in its own process, so its peak RSS is its own."""
    out = subprocess.run([sys.executable, __file__, "--one", str(queued), str(history)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def ratio(base: float, ours: float) -> str:
    return f"{base / ours:,.0f}x" if ours > 0 else "-"


def table(results: list[dict[str, Any]]) -> str:
    head = ("queued  history | round ms: wall, loop CPU, base (x) | stall ms ours/base |"
            " submit ms ours(max)/base (x)  | place ms | rebuild ms | RSS MB | edits/min ours/base")
    lines = [head, "-" * len(head)]
    for r in results:
        o, b = r["ours"], r["baseline"]
        more = ">" if b["lower_bound"] else ""
        lines.append(
            f"{r['queued']:>6} {r['history']:>8} | {o['round_ms']:5.1f}, {o['round_loop_ms']:4.1f},"
            f" {more}{b['round_ms']:7.0f} ({more}{ratio(b['round_ms'], o['round_ms'])})"
            f" | {o['stall_ms']:5.1f} / {more}{b['stall_ms']:6.0f}"
            f" | {o['submit_ms']:4.2f} ({o['submit_max_ms']:4.1f}) / {b['submit_ms']:6.0f}"
            f" ({ratio(b['submit_ms'], o['submit_ms'])}) | {o['place_ms']:8.2f}"
            f" | {o['rebuild_ms']:10.0f} | {o['rss_mb']:6.0f} |"
            f" {o['edits_per_min']:4.0f} / {b['edits_per_min']:,.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="skip 50,000 and the history")
    parser.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(one(*args.one))))
        return
    sizes = [s for s in SIZES if not (args.quick and s > 5000)]
    histories = (0,) if args.quick else (0, HISTORY)
    results = [run_child(n, h) for h in histories for n in sizes]
    print(json.dumps(results, indent=1) if args.json else table(results))


if __name__ == "__main__":
    main()
