"""Several bot processes (tests/fleet_bot.py) on one database and one simulator:
start, kill, restart them; read what they delivered and who led; wait on the database's own
wake-ups (LISTEN) for a condition over every process's work."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.engine import JobState, Store
from bot.engine.store import PostgresStore
from bot.engine.store.session import Session
from bot.sim.server import Simulator
from tests.conftest import make_image

ROOT = Path(__file__).resolve().parent.parent


class Fleet:
    def __init__(self, url: str, sim: Simulator, work: Path, **options: Any) -> None:
        self.url, self.sim, self.work = url, sim, work
        self.options = options
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: dict[int, float] = {}  # pid -> when it was SIGKILLed
        self.starts = 0
        first = sim.add_file("first.png", make_image((640, 480)), "image/png")
        last = sim.add_file("last.png", make_image((640, 480)), "image/png")
        self.media = json.dumps({"first_frame_url": first, "last_frame_url": last})
        self.store: Store | None = None
        self._session: Session | None = None
        self._wake = asyncio.Event()

    async def open(self) -> None:
        self.store = await Store.open(self.url)
        if isinstance(self.store, PostgresStore):  # SQLite: re-checked on the tick alone
            self._session = await self.store.session()
            await self._session.listen(lambda _payload: self._wake.set())

    def start(self, name: str, submit: int = 0, first: int = 0) -> None:
        self.starts += 1
        args = [sys.executable, "-m", "tests.fleet_bot", self.url, self.sim.base_url,
                self.sim.api_key, str(self.work), "--name", name, "--media", self.media,
                "--submit", str(submit), "--first", str(first)]
        for key, value in self.options.items():
            args += [f"--{key}", str(value)]
        log = (self.work / f"{name}.{self.starts}.log").open("wb")
        self.procs[name] = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def kill(self, name: str) -> float:
        """SIGKILL: no clean-up at all. The moment it was sent."""
        proc = self.procs[name]
        sent = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.killed[proc.pid] = sent
        return sent

    async def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._session is not None:
            await self._session.close()
        if self.store is not None:
            await self.store.close()

    def alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is None]

    def leaders(self) -> list[dict[str, Any]]:
        return _lines(self.work / "leaders.jsonl")

    def deliveries(self) -> list[dict[str, Any]]:
        return _lines(self.work / "deliveries.jsonl")

    def speakers_overlapping(self) -> list[tuple[str, int, int]]:
        """(job, pid, pid) wherever a job's updates passed from one process to another that
        was not dead yet: its progress would have been edited by two processes."""
        by_job: dict[str, list[dict[str, Any]]] = {}
        for update in _lines(self.work / "updates.jsonl"):
            by_job.setdefault(update["job"], []).append(update)
        found = []
        for job_id, updates in by_job.items():
            updates.sort(key=lambda u: u["at"])
            for before, after in itertools.pairwise(updates):
                if before["pid"] != after["pid"] and not (
                        self.killed.get(before["pid"], float("inf")) <= after["at"]):
                    found.append((job_id, before["pid"], after["pid"]))
        return found

    async def count(self, *states: JobState) -> int:
        assert self.store is not None
        return len(await self.store.jobs_in(states))

    async def until(self, check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
        """Wait until `check()` holds: re-checked on every wake-up from the database, and
        every tenth of a second for what makes none (a file line, a new leader)."""
        async def wait() -> None:
            while not await check():
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.1)

        await asyncio.wait_for(wait(), timeout_s)


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals],
                    key=lambda e: (e[0], e[1]))
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak
