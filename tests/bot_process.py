"""`python -m bot` as an operator runs it: a subprocess configured only by its environment, in a
working directory of its own (so no developer's `.env` leaks in), its log in a file. The test
reads it the way a supervisor would: `/healthz` on its HEALTH_PORT, its exit status."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL = 4000  # characters of a process's log shown when a wait on it fails

Health = dict[str, Any]


def free_port() -> int:
    """A TCP port nothing listens on now (the process binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_command(*args: str, env: Mapping[str, str], cwd: Path, timeout_s: float = 60.0
                ) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` to the end (e.g. `migrate`), with only `env` for settings."""
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=_base(env),
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def _base(env: Mapping[str, str]) -> dict[str, str]:
    """What any process needs to run this checkout's code, and nothing of the caller's."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8", **env}


class BotProcess:
    """One `python -m bot`, serving /healthz at 127.0.0.1:HEALTH_PORT."""

    def __init__(self, name: str, env: Mapping[str, str], work: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**env, "HEALTH_PORT": str(self.port)}
        self.work = work / name
        self.log = self.work / "bot.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=self.work,
                                         env=_base(self.env), stdout=log, stderr=log)

    def kill(self) -> float:
        """SIGKILL, no clean-up at all; the moment it was sent."""
        assert self.proc is not None
        sent = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return sent

    async def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, as a supervisor stops it; its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.name} did not stop on SIGTERM:\n{self.tail()}") from None

    async def health(self, http: aiohttp.ClientSession) -> Health | None:
        """What /healthz says (200 or 503), or None while nothing answers."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(self.url, timeout=aiohttp.ClientTimeout(total=2)) as answer:
                return {"status": answer.status, **await answer.json()}
        return None

    async def until(self, http: aiohttp.ClientSession, check: Callable[[Health], bool],
                    what: str, timeout_s: float = 30.0) -> Health:
        """/healthz once `check` holds for it, asked every tenth of a second (the process
        tells nobody when it changes); fails early, with its log, if the process exits."""
        deadline = time.monotonic() + timeout_s
        while True:
            report = await self.health(http)
            if report is not None and check(report):
                return report
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) waiting for "
                                     f"{what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {what} in {timeout_s} s (last /healthz: "
                                     f"{report}):\n{self.tail()}")
            await asyncio.sleep(0.1)

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-LOG_TAIL:]

    def close(self) -> None:
        """Whatever happened: no process left behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
