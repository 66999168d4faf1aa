"""A real PostgreSQL server for tests (started by .ci/postgres): each test gets a schema of its
own in the test database, dropped after it. Unreachable: the test skips saying why, except
under CI (CI=true), where it fails: CI never skips these."""

from __future__ import annotations

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
