"""A PostgreSQL connection of its own, for what lives as long as a connection does: a
session-level advisory lock (leadership) and LISTEN (wake-ups). If the process dies, the
server ends the session: the lock is free for another process at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "wanbot_jobs"  # the jobs trigger's channel (bot/engine/store/schema.py)
Heard = Callable[[str], None]  # a notification's payload


class Session:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def try_lock(self, name: str) -> bool:
        """Take the named lock for this session if nobody holds it (never waits). Named per
        schema, so databases shared by tests (a schema each) do not meet."""
        return bool(await self.conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtext(current_schema() || ':' || $1))", name))

    async def ping(self) -> None:
        """Raises if the connection (and with it the session's locks) is gone."""
        await self.conn.fetchval("SELECT 1")

    async def listen(self, heard: Heard) -> None:
        """Call `heard(payload)` for every job created or moved to another state."""

        def callback(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            heard(payload)

        await self.conn.add_listener(CHANNEL, callback)

    def on_lost(self, callback: Callable[[], None]) -> None:
        self.conn.add_termination_listener(lambda _conn: callback())

    @property
    def closed(self) -> bool:
        return self.conn.is_closed()

    async def close(self) -> None:
        if not self.conn.is_closed():
            try:
                await self.conn.close(timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError):
                self.conn.terminate()
