"""Engine benchmark on the simulator, time compressed. Run by hand: `python bench/engine.py`.

200 jobs from 10 users (in 3 teams) over 3 models with 2, 2 and 1 slots; task durations drawn
from a lognormal with a median of 120 simulated seconds and sigma 0.4; every model starts with 20
finished jobs of history (as a bot that has run for a while has). The same workload runs three
times, each in its own process at once: with our poll policy, with the official SDK's schedule
(1, 1, 2, 2, 2, 4, 4, 4, 5... s) and with a fixed 15 s poll, so the ratios compare like with
like on a shared, noisy machine. A fourth process measures fairness: one user's single job
submitted behind another user's twenty on a one-slot model; a fifth, twenty 3 s kf2v jobs on
two slots (ten rounds of 3 s at best).

Then the same three policies on each shape of durations in DISTRIBUTIONS (constant, uniform,
narrow to wide lognormals, two clusters, a heavy tail): 60 jobs over the same three models, 20
finished jobs of history per model drawn from the same shape, time compressed by
DISTRIBUTION_SCALE (less for short tasks: SCALES). There `utilisation` is the makespan per model
(the worst model) over the makespan the same jobs would have if each slot started its next task
the moment one ended (each task counted for the time it held a slot, in the order admitted): it
counts the slot time lost to detection delay and to the engine's own turnaround (a few real
milliseconds, magnified by the compression). `--gaps` shows that loss per slot turnover, by
step (bench/slot_gaps.py). `--distribution NAME` runs just that one shape.

`--over-limit queue`: the simulator holds tasks beyond the slots PENDING instead of refusing
them, and the distributions run with ON_DECK=1 (ours, sdk) and ON_DECK=0 (no-deck, our policy)
at once; `deck_gain` is ours' makespan over no-deck's.

Prints tables, or with --json one object with the keys utilisation, queries_per_job,
mean_delay_s (each {ours, sdk, fixed15}), peak_qps, qps_cap, fairness_worst_wait_s,
slot_turnover_s, kf2v_rounds, kf2v_rounds_cold, peak_rss_mb, cpu_s, over_limit, and
distributions: {name: {median_s, mean_delay_s, p95_delay_s, queries_per_job, utilisation,
gaps}}, each figure but median_s as {ours, sdk, fixed15} (queue: {ours, no-deck, sdk}, and
deck_gain).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from slot_gaps import gap_table, summary, turnovers

from bot.clock import ScaledClock
from bot.config import Settings
from bot.engine import Engine, Job, JobRequest, JobState, Store
from bot.engine.poll_policy import FixedInterval, HistoryPolicy, PollPolicy, SdkSchedule
from bot.provider import catalog
from bot.provider.client import DashScope
from bot.sim.durations import Durations
from bot.sim.server import SimConfig, Simulator, run_simulator

JOBS, USERS, HISTORY = 200, 10, 20
DEFAULT_SHAPE = "lognormal:120:0.4"  # median 120 s, sigma 0.4 (bot.sim.durations)
QPS_CAP = 10.0
SCALE = 150.0  # simulated seconds per real second
MODELS = {"wan2.2-kf2v-flash": 2, "wan2.2-i2v-flash": 2, "wan2.1-kf2v-plus": 1}
SHARE = {"wan2.2-kf2v-flash": 0.4, "wan2.2-i2v-flash": 0.4, "wan2.1-kf2v-plus": 0.2}
POLICIES = {"ours": HistoryPolicy, "sdk": SdkSchedule, "fixed15": lambda: FixedInterval(15.0)}
# --over-limit queue: the provider holds tasks beyond the slots PENDING; each variant is a
# policy and its ON_DECK. "no-deck" is the baseline the deck is measured against.
DECK_VARIANTS = {"ours": ("ours", 1), "no-deck": ("ours", 0), "sdk": ("sdk", 1)}
DONE = {JobState.DELIVERED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED}
DISTRIBUTIONS = {  # name -> the simulator's duration spec (bot.sim.durations)
    "constant-3s": "constant:3",
    "constant-60s": "constant:60",
    "uniform-60-70s": "uniform:60:70",
    "lognormal-0.05": "lognormal:90:0.05",
    "lognormal-0.1": "lognormal:90:0.1",
    "lognormal-0.3": "lognormal:90:0.3",
    "lognormal-0.6": "lognormal:90:0.6",
    "mix-60-240s": "mix:60:240",
    "heavy-tail": "heavy:90:0.1:5",
}
DISTRIBUTION_JOBS = 60
SCALES = {"constant-3s": 10.0}  # short tasks: compress less, so a millisecond stays small
DISTRIBUTION_SCALE = 40.0
FIGURES = ("mean_delay_s", "p95_delay_s", "queries_per_job", "utilisation")


class Sink:
    """Delivers into nothing; the benchmark measures the engine, not a front end."""

    def upload_limit(self, job: Job) -> None:
        return None

    async def deliver(self, job: Job, video: Path) -> dict[str, Any]:
        return {}

    async def find_delivery(self, job: Job) -> dict[str, Any] | None:
        return None


async def seed_history(store: Store, shape: str) -> None:
    """HISTORY finished jobs per model, of the very kind the bench submits, with durations
    drawn from `shape` (a generator of their own: not the tasks' own durations)."""
    past = iter(Durations.parse(shape, seed=2).sample(HISTORY * len(MODELS)))
    for model in MODELS:
        options = catalog.resolve_options(catalog.get_model(model), {})
        for i in range(HISTORY):
            await store.insert_job(Job(
                id=f"h-{model}-{i}", platform="bench", team_id="t", channel_id="c",
                user_id="history", command="kf2v", model=model, state=JobState.DELIVERED,
                created_at=0.0, finished_at=float(i), provider_seconds=next(past),
                options=options))


async def upload_inputs(client: DashScope, png: bytes) -> dict[str, str]:
    """Upload the two frames once per model; every job then points at them."""
    urls = {}
    for model in MODELS:
        api = catalog.get_model(model).api_name("singapore")
        urls[model] = await client.upload(api, "frame.png", png, "image/png")
    return urls


def request(model: str, user: int, oss: str) -> JobRequest:
    spec = catalog.get_model(model)
    media = {f.name: oss for f in spec.inputs if f.required}
    return JobRequest(platform="bench", team_id=f"team{user % 3}", channel_id="c",
                      user_id=f"user{user}", command=str(spec.command), model=model,
                      media=media, options=catalog.resolve_options(spec, {}),
                      prompt="a benchmark", oss=True)


def workload(rng: random.Random) -> list[tuple[str, int]]:
    models = [m for m, share in SHARE.items() for _ in range(round(JOBS * share))]
    rng.shuffle(models)
    return [(m, rng.randrange(USERS)) for m in models]


def png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (640, 480), "grey").save(buf, "PNG")
    return buf.getvalue()


class Run:
    """One engine with one policy against its own simulator and SQLite file; task durations
    drawn from `shape` (a bot.sim.durations spec)."""

    def __init__(self, policy: PollPolicy, folder: Path, concurrency: dict[str, int],
                 shape: str = DEFAULT_SHAPE, scale: float = SCALE, *,
                 over_limit: str = "reject", on_deck: int = 1, history: bool = True) -> None:
        self.policy = policy
        self.folder = folder
        self.concurrency = concurrency
        self.shape = shape
        self.clock = ScaledClock(scale)
        self.over_limit = over_limit
        self.on_deck = on_deck
        self.history = history

    def sim_config(self) -> SimConfig:
        return SimConfig(clock=self.clock.now, time_scale=1.0, pending_s=0.0,
                         running_s=Durations.parse(self.shape, seed=7),
                         concurrency=dict(self.concurrency), over_limit=self.over_limit)

    def settings(self, sim: Simulator) -> Settings:
        return Settings(dashscope_api_key=sim.api_key, base_url=sim.base_url,
                        database_path=self.folder / "bench.sqlite3",
                        video_dir=self.folder / "videos", max_qps=QPS_CAP,
                        concurrency=dict(self.concurrency), on_deck=self.on_deck)

    async def __call__(self, jobs: list[tuple[str, int]]) -> tuple[Engine, list[Job], Simulator]:
        async with run_simulator(self.sim_config()) as sim, aiohttp.ClientSession() as http:
            settings = self.settings(sim)
            store = await Store.open(settings.database_path)
            if self.history:
                await seed_history(store, self.shape)
            client = DashScope(http, sim.base_url, sim.api_key)
            engine = Engine(store, client, settings, clock=self.clock, policy=self.policy)
            engine.set_deliverer("bench", Sink())
            await engine.start()
            await self.submit_all(engine, client, jobs)
            await engine.stop()
            done = [j for j in await store.jobs() if j.user_id != "history"]
            await store.close()
            return engine, done, sim

    async def submit_all(self, engine: Engine, client: DashScope,
                         jobs: list[tuple[str, int]]) -> None:
        urls = await upload_inputs(client, png_bytes())
        left = len(jobs)
        all_done = asyncio.Event()

        async def count(update: Any) -> None:
            nonlocal left
            if update.job.state in DONE:
                left -= 1
                if left == 0:
                    all_done.set()

        engine.subscribe(count)
        self.start = self.clock.now()
        for model, user in jobs:
            await engine.submit(request(model, user, urls[model]))
        await asyncio.wait_for(all_done.wait(), timeout=120)


def measure(run: Run, engine: Engine, jobs: list[Job], sim: Simulator) -> dict[str, Any]:
    ends = {t.task_id: t.end_at for t in sim.tasks.values()}
    delays = [j.finished_at - ends[j.task_id] for j in jobs if j.task_id in ends]
    ratios = {}
    for model, slots in MODELS.items():
        mine = [j for j in jobs if j.model == model]
        ideal = sum(j.provider_seconds or 0 for j in mine) / slots
        makespan = max(j.finished_at or 0 for j in mine) - run.start
        ratios[model] = makespan / ideal
    return {
        "utilisation": max(ratios.values()),
        "utilisation_by_model": ratios,
        "queries_per_job": engine.queries / len(jobs),
        "mean_delay_s": sum(delays) / len(delays),
        "peak_qps": engine.limiter.peak,
        "failed": sum(1 for j in jobs if j.state is not JobState.DELIVERED),
        "sim_429": sum(1 for r in sim.requests if r.status == 429 and r.route != "create"),
    }


def no_delay_makespan(durations: list[float], slots: int) -> float:
    """When the last job would end if each slot took the next job the moment one finished."""
    free = [0.0] * slots
    for seconds in durations:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return max(free)


def measure_shape(run: Run, engine: Engine, jobs: list[Job], sim: Simulator) -> dict[str, Any]:
    """The figures of one distribution: delays, queries and slot time lost to polling.

    The ideal is made of the time each task held a slot at the provider (not of its time there:
    a task held PENDING on deck waits there without costing the slot anything)."""
    ends = {t.task_id: t.end_at for t in sim.tasks.values()}
    held = {t.task_id: t.end_at - t.scheduled for t in sim.tasks.values()
            if t.scheduled is not None}
    delays = sorted(j.finished_at - ends[j.task_id] for j in jobs
                    if j.task_id in ends and j.finished_at)
    ratios = []
    for model, slots in MODELS.items():
        mine = sorted((j for j in jobs if j.model == model), key=lambda j: j.submitted_at or 0)
        makespan = max(j.finished_at or 0 for j in mine) - run.start
        ideal = no_delay_makespan([held.get(j.task_id or "", 0.0) for j in mine], slots)
        ratios.append(makespan / ideal)
    return {
        "median_s": statistics.median(held.get(j.task_id or "", 0.0) for j in jobs),
        "mean_delay_s": statistics.fmean(delays),
        "p95_delay_s": delays[min(len(delays) - 1, round(0.95 * len(delays)))],
        "queries_per_job": engine.queries / len(jobs),
        "utilisation": max(ratios),
        "failed": sum(1 for j in jobs if j.state is not JobState.DELIVERED),
        "gaps": summary(turnovers(jobs, sim, MODELS)),
    }


async def child(variant: str, shape_name: str | None, over_limit: str) -> dict[str, Any]:
    policy_name, on_deck = DECK_VARIANTS[variant] if over_limit == "queue" else (variant, 1)
    with tempfile.TemporaryDirectory() as folder:
        if shape_name is None:
            run = Run(POLICIES[policy_name](), Path(folder), MODELS)
            engine, jobs, sim = await run(workload(random.Random(1)))
            return measure(run, engine, jobs, sim)
        scale = SCALES.get(shape_name, DISTRIBUTION_SCALE)
        run = Run(POLICIES[policy_name](), Path(folder), MODELS, DISTRIBUTIONS[shape_name],
                  scale, over_limit=over_limit, on_deck=on_deck)
        engine, jobs, sim = await run(workload(random.Random(1))[:DISTRIBUTION_JOBS])
        return measure_shape(run, engine, jobs, sim)


async def fairness() -> dict[str, Any]:
    """User A queues 20 jobs on a one-slot model, then user B one: how long does B wait?"""
    with tempfile.TemporaryDirectory() as folder:
        model = "wan2.1-kf2v-plus"
        run = Run(HistoryPolicy(), Path(folder), {model: 1})
        jobs = [(model, 0)] * 20 + [(model, 1)]
        _, done, _ = await run(jobs)
        admitted = sorted(done, key=lambda j: j.submitted_at or 0)
        b = next(j for j in done if j.user_id == "user1")
        # One turnover: from one admission on the slot to the next.
        turnover = (admitted[1].submitted_at or 0) - (admitted[0].submitted_at or 0)
        return {"fairness_worst_wait_s": (b.submitted_at or 0) - b.created_at,
                "slot_turnover_s": turnover, "admitted_before": admitted.index(b)}


async def rounds() -> dict[str, Any]:
    """Twenty 3 s kf2v jobs on two slots: the makespan in rounds of 3 s (ten at best), with
    twenty such tasks of history and with none (the SDK's schedule until five are done)."""
    model, result = "wan2.2-kf2v-flash", {}
    for name, history in (("kf2v_rounds", True), ("kf2v_rounds_cold", False)):
        with tempfile.TemporaryDirectory() as folder:
            run = Run(HistoryPolicy(), Path(folder), {model: 2}, "constant:3",
                      SCALES["constant-3s"], history=history)
            _, done, _ = await run([(model, user) for user in range(20)])
            result[name] = (max(j.finished_at or 0 for j in done) - run.start) / 3.0
    return result


def spawn(kind: str, shape: str | None = None,
          over_limit: str = "reject") -> subprocess.Popen[str]:
    extra = ["--distribution", shape] if shape else []
    return subprocess.Popen([sys.executable, __file__, "--child", kind, *extra,
                             "--over-limit", over_limit], stdout=subprocess.PIPE, text=True)


def variants(over_limit: str) -> list[str]:
    return list(DECK_VARIANTS if over_limit == "queue" else POLICIES)


def collect_shape(shape: str, over_limit: str = "reject") -> dict[str, Any]:
    """One distribution, its three variants at once (like with like on a noisy machine)."""
    names = variants(over_limit)
    procs = {p: spawn(p, shape, over_limit) for p in names}
    out = {p: json.loads(proc.communicate()[0]) for p, proc in procs.items()}
    result: dict[str, Any] = {"median_s": out["ours"]["median_s"]}
    result.update({key: {p: out[p][key] for p in names}
                   for key in (*FIGURES, "failed", "gaps")})
    if over_limit == "queue":  # what the deck buys: makespan with it over without it
        util = result["utilisation"]
        result["deck_gain"] = util["ours"] / util["no-deck"]
    return result


def collect() -> dict[str, Any]:
    kinds = [*POLICIES, "fairness", "rounds"]
    procs = {kind: spawn(kind) for kind in kinds}
    out = {kind: json.loads(proc.communicate()[0]) for kind, proc in procs.items()}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = {
        key: {p: out[p][key] for p in POLICIES}
        for key in ("utilisation", "queries_per_job", "mean_delay_s")
    }
    result.update(
        peak_qps=max(out[p]["peak_qps"] for p in POLICIES), qps_cap=QPS_CAP,
        fairness_worst_wait_s=out["fairness"]["fairness_worst_wait_s"],
        slot_turnover_s=out["fairness"]["slot_turnover_s"],
        fairness_admitted_before=out["fairness"]["admitted_before"],
        **out["rounds"],
        peak_rss_mb=usage.ru_maxrss / 1024, cpu_s=usage.ru_utime + usage.ru_stime,
        failed={p: out[p]["failed"] for p in POLICIES},
        utilisation_by_model={p: out[p]["utilisation_by_model"] for p in POLICIES},
    )
    return result


def table(r: dict[str, Any], wall_s: float) -> str:
    rows = [f"{'':24}{'ours':>10}{'sdk':>10}{'fixed15':>10}{'ours/sdk':>10}"]
    for key, label in (("utilisation", "makespan / ideal"),
                       ("queries_per_job", "status queries / job"),
                       ("mean_delay_s", "mean detect delay (s)")):
        v = r[key]
        rows.append(f"{label:24}{v['ours']:>10.3f}{v['sdk']:>10.3f}{v['fixed15']:>10.3f}"
                    f"{v['ours'] / v['sdk']:>10.3f}")
    rows += [
        f"peak query rate: {r['peak_qps']}/s (cap {r['qps_cap']:.0f}/s)",
        f"fairness: one job behind another user's 20 waited {r['fairness_worst_wait_s']:.1f} s"
        f" (one slot turnover: {r['slot_turnover_s']:.1f} s;"
        f" jobs admitted before it: {r['fairness_admitted_before']})",
        f"twenty 3 s kf2v jobs on two slots took {r['kf2v_rounds']:.1f} rounds"
        f" ({r['kf2v_rounds_cold']:.1f} with no history; ten at best)",
        f"peak RSS {r['peak_rss_mb']:.0f} MB, CPU {r['cpu_s']:.1f} s, wall {wall_s:.1f} s;"
        f" jobs not delivered: {r['failed']}",
    ]
    return "\n".join(rows)


def shape_table(shapes: dict[str, dict[str, Any]], over_limit: str = "reject") -> str:
    """One row per distribution: each variant (ours / sdk / fixed15) for each figure."""
    names = variants(over_limit)
    heading = "/".join("fix15" if p == "fixed15" else p for p in names)
    rows = [f"{'distribution':16}{'median':>8}  {'mean delay s':>20}  {'p95 delay s':>20}"
            f"  {'queries/job':>20}  {'makespan/no-delay':>22}",
            f"{'':16}{'s':>8}  " + "  ".join(f"{heading:>20}" for _ in range(3))
            + f"  {heading:>22}"]
    for name, r in shapes.items():
        cells = ["/".join(f"{r[key][p]:.{2 if key == 'utilisation' else 1}f}" for p in names)
                 for key in FIGURES]
        rows.append(f"{name:16}{r['median_s']:>8.1f}  {cells[0]:>20}  {cells[1]:>20}"
                    f"  {cells[2]:>20}  {cells[3]:>22}")
        if "deck_gain" in r:
            rows[-1] += f"  deck: {r['deck_gain']:.3f}x the makespan without"
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS,
                        help="run only this distribution of durations")
    parser.add_argument("--shapes-only", action="store_true",
                        help="skip the 200-job workload and fairness: only the distributions")
    parser.add_argument("--over-limit", choices=("reject", "queue"), default="reject",
                        help="what the simulator does with a create beyond a model's slots; "
                             "queue: only the distributions, with ON_DECK=1 (ours, sdk) "
                             "against ON_DECK=0 (no-deck)")
    parser.add_argument("--gaps", action="store_true",
                        help="also print where each slot turnover's time goes, by step")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        special = {"fairness": fairness, "rounds": rounds}.get(args.child)
        work = (special() if special
                else child(args.child, args.distribution, args.over_limit))
        print(json.dumps(asyncio.run(work)))
        return
    started = time.monotonic()
    only_shapes = args.distribution or args.shapes_only or args.over_limit == "queue"
    result = {} if only_shapes else collect()
    names = [args.distribution] if args.distribution else list(DISTRIBUTIONS)
    result["over_limit"] = args.over_limit
    result["distributions"] = {name: collect_shape(name, args.over_limit) for name in names}
    if args.json:
        print(json.dumps(result))
        return
    if "utilisation" in result:
        print(table(result, time.monotonic() - started))
    print(shape_table(result["distributions"], args.over_limit))
    if args.gaps:
        print(gap_table({n: r["gaps"] for n, r in result["distributions"].items()}))

if __name__ == "__main__":
    main()
