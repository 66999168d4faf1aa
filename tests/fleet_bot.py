"""One bot process for the several-processes tests and bench/scale.py: an engine on a shared
PostgreSQL store (or alone on a SQLite file), the simulator as provider, and a test front end
instead of a chat one. It records each delivery as a line appended to a file (the "post";
`find_delivery` looks there), each time it becomes leader as a line in another, and queues
`--submit` jobs of its own at start.

    python -m tests.fleet_bot URL_OR_PATH SIM_BASE_URL API_KEY WORKDIR --name p1 --submit 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp

from bot.config import Settings
from bot.engine import Engine, Job, JobRequest, JobUpdate, Store
from bot.engine.poll_policy import FixedInterval
from bot.engine.shared import SharedCoordination
from bot.engine.store import PostgresStore
from bot.provider import catalog
from bot.provider.client import DashScope

MODEL = "wan2.2-kf2v-flash"


class FileFront:
    """Posts are lines appended to a file (one write each, so a kill leaves whole lines)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name

    def upload_limit(self, job: Job) -> None:
        return None  # any size: the original

    async def deliver(self, job: Job, video: Path) -> dict[str, Any]:
        assert await asyncio.to_thread(lambda: video.stat().st_size) > 0
        line = json.dumps({"job": job.id, "by": self.name, "pid": os.getpid()}) + "\n"
        await asyncio.to_thread(_append, self.path, line)
        return {"by": self.name}

    async def find_delivery(self, job: Job) -> dict[str, Any] | None:
        text = await asyncio.to_thread(_read, self.path)
        posts = [json.loads(line) for line in text.splitlines() if line.strip()]
        return next(({"by": p["by"]} for p in posts if p["job"] == job.id), None)


class Updates:
    """Every update the engine sends this process's front end (a progress edit each)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name

    async def note(self, update: JobUpdate) -> None:
        line = json.dumps({"job": update.job.id, "state": str(update.job.state),
                           "pid": os.getpid(), "at": time.time()}) + "\n"
        await asyncio.to_thread(_append, self.path, line)


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def request(number: int, media: dict[str, str]) -> JobRequest:
    model = catalog.get_model(MODEL)
    return JobRequest(
        platform="test", team_id=f"t{number % 3}", channel_id="c", user_id=f"u{number % 7}",
        command="kf2v", model=MODEL, media=media,
        options=catalog.resolve_options(model, {"resolution": "480P"}),
        prompt=f"job number {number}",  # unique: reconciliation tells tasks apart by it
        expected_seconds=5)


async def run(args: argparse.Namespace) -> None:
    work = Path(args.workdir)
    shared = args.url.startswith("postgresql://")
    settings = Settings(
        dashscope_api_key=args.api_key, base_url=args.sim,
        database_url=args.url if shared else "", database_path=Path(args.url),
        video_dir=work / "videos" / args.name, media_handoff="url", on_deck=0,
        concurrency={MODEL: args.slots}, max_qps=args.qps, http_timeout_s=3.0)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    store = await Store.open(settings.database)
    async with aiohttp.ClientSession() as http:
        client = DashScope(http, args.sim, args.api_key, timeout_s=3.0)
        coord = SharedCoordination(store, lease_s=args.lease, heartbeat_s=args.lease / 6,
                                   rescan_s=args.lease / 3) if isinstance(
                                       store, PostgresStore) else None
        engine = Engine(store, client, settings, policy=FixedInterval(args.poll, batch=True),
                        coordination=coord)
        engine.set_deliverer("test", FileFront(work / "deliveries.jsonl", args.name))
        engine.subscribe(Updates(work / "updates.jsonl", args.name).note)
        engine.guard.on_failure(stop.set)
        watch = asyncio.create_task(_note_leadership(coord, work / "leaders.jsonl", args.name))
        await engine.start()
        media = json.loads(args.media)
        for n in range(args.first, args.first + args.submit):
            await engine.submit(request(n, media))
        await stop.wait()
        watch.cancel()
        await engine.stop()
    await store.close()


async def _note_leadership(coord: SharedCoordination | None, path: Path, name: str) -> None:
    if coord is None:
        return  # alone on SQLite: nobody else to lead
    await coord.leading.wait()
    line = json.dumps({"name": name, "pid": os.getpid(), "at": coord.led_at}) + "\n"
    await asyncio.to_thread(_append, path, line)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("url", "sim", "api_key", "workdir"):
        parser.add_argument(name)
    parser.add_argument("--name", required=True)
    parser.add_argument("--media", required=True, help="the jobs' media, as JSON")
    parser.add_argument("--submit", type=int, default=0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument("--qps", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--lease", type=float, default=3.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.name} %(name)s "
                        "%(levelname)s %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
