"""A real PostgreSQL server for tests (started by .ci/postgres): each test gets a schema of its
own in the test database, dropped after it. Unreachable: the test skips saying why, except
under CI (CI=true), where it fails: CI never skips these. `Relay`: a TCP relay to the server that
a test can cut, for real connection faults."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

URL = os.environ.get("TEST_DATABASE_URL", "postgresql://wanbot:wanbot@127.0.0.1:5432/wanbot_test")
WHY = ("no PostgreSQL server at TEST_DATABASE_URL (default: the one .ci/postgres starts; run "
       "it as root to start the machine's PostgreSQL 15 and create the test role and database)")


async def connect() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(URL, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{WHY}: {exc}")
        pytest.skip(f"{WHY}: {exc}")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A postgresql:// URL whose tables live in a fresh schema of their own."""
    admin = await connect()
    schema = "t_" + uuid.uuid4().hex[:12]
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{URL}?search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


class Relay:
    """A TCP relay to the database that can drop every connection, or stop listening."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer),
                             return_exceptions=True)

    def drop(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.drop()
        await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
