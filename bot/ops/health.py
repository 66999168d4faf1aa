"""`/healthz` and `/metrics` on an opt-in port (HEALTH_PORT), for probes and Prometheus.

`/healthz` answers 200 with a small JSON document while the engine runs and its database
answers, else 503 (a container orchestrator then restarts the process). `/metrics` is
Prometheus's text format: the engine's counters, and gauges set just before each scrape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.engine import Engine
from bot.errors import StorageError

log = logging.getLogger(__name__)

STORAGE_TIMEOUT_S = 5.0  # a database that does not answer a tiny read in this long is not ok

Chat = Callable[[], Awaitable[dict[str, bool]]]  # chat front end -> connected
Leader = Callable[[], bool | None]  # this process leads the shared queue (None: unknown)


async def _no_chat() -> dict[str, bool]:
    return {}


class HealthServer:
    def __init__(self, engine: Engine, *, host: str, port: int, chat: Chat = _no_chat,
                 leader: Leader = lambda: None) -> None:
        self.engine = engine
        self.host = host
        self.port = port  # 0: any free port (tests); the real one once started
        self.chat = chat
        self.leader = leader
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        log.info("health and metrics at %s/healthz and /metrics", self.url)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the process is healthy, and what says so."""
        storage = await self._storage()
        running = self.engine.running
        report = {"engine": "running" if running else "stopped", "storage": storage,
                  "chat": await self.chat(), "leader": self.leader()}
        return running and storage == "ok", report

    async def _storage(self) -> str:
        """"ok", or what is wrong with the database (a fault found here stops the engine)."""
        guard = self.engine.guard
        if guard.failure is None:
            try:
                await asyncio.wait_for(self.engine.store.check_file(), STORAGE_TIMEOUT_S)
                await asyncio.wait_for(self.engine.store.schema_version(), STORAGE_TIMEOUT_S)
            except StorageError as exc:
                guard.fail(exc)
            except TimeoutError:
                return "not answering"
        return "ok" if guard.failure is None else str(guard.failure)

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, report = await self.health()
        return web.json_response(report, status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.engine.refresh_metrics()
        return web.Response(body=self.engine.metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
