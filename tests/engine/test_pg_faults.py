"""PostgreSQL connection faults: a blip (connections dropped) is retried and nothing is lost;
a server gone for longer than the bound stops the store with StorageError naming the database
(never its password). The faults are real: the store talks through a TCP relay the test cuts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from bot.engine import JobState, Store
from bot.errors import StorageError
from tests.engine.test_store import make_job
from tests.pg_support import Relay


@pytest.fixture
async def relayed(pg_url: str) -> AsyncIterator[tuple[Relay, str]]:
    parts = urlsplit(pg_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    netloc = parts.netloc.replace(f":{parts.port}", f":{relay.port}")
    yield relay, parts._replace(netloc=netloc).geturl()
    if relay.server is not None:
        relay.server.close()
    relay.drop()


async def test_a_dropped_connection_is_retried_and_nothing_is_lost(relayed, caplog):
    """Every connection cut between two writes: the next write and read go through."""
    relay, url = relayed
    caplog.set_level(logging.WARNING, "bot.engine.store.postgres")
    store = await Store.open(url)
    try:
        await store.insert_job(make_job())
        relay.drop()
        moved = await store.update_job("j1", expect=[JobState.QUEUED], state=JobState.CANCELED)
        assert moved is not None and moved.state is JobState.CANCELED
        relay.drop()
        assert (await store.get_job("j1")).state is JobState.CANCELED
        assert len([r for r in caplog.records if "connection problem" in r.message]) >= 2
    finally:
        await store.close()


async def test_a_server_gone_past_the_bound_is_a_storage_error(relayed):
    """Nothing listening for longer than the retry bound: StorageError, without the
    password, saying the connection was lost."""
    relay, url = relayed
    store = await Store.open(url)
    store.retry_for_s = 1.0  # type: ignore[attr-defined]
    await relay.stop()
    try:
        with pytest.raises(StorageError) as caught:
            await store.get_job("j1")
    finally:
        await asyncio.wait_for(store.close(), 10)
    text = str(caught.value)
    assert "lost the connection" in text and ":wanbot@" not in text and "wanbot@" in text


async def test_a_wrong_password_is_a_storage_error_saying_what_to_check(pg_url):
    """Refused credentials stop at once, with advice and without the password."""
    with pytest.raises(StorageError) as caught:
        await Store.open(pg_url.replace("wanbot:wanbot@", "wanbot:wrong@"))
    assert "check the user and password" in str(caught.value)
    assert "wrong" not in str(caught.value)
