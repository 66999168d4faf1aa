"""The hook every test runs under can fail: it catches a task's exception nobody retrieved."""

from __future__ import annotations

import asyncio

from tests.asyncio_support import Unretrieved


def test_a_dropped_failing_task_is_reported() -> None:
    """A task that raised and was let go unawaited shows up in the reports."""

    async def fail() -> None:
        raise RuntimeError("nobody looked")

    async def leak() -> list[str]:
        hooks = Unretrieved(asyncio.get_running_loop(), debug=True).install()
        task = asyncio.get_running_loop().create_task(fail())
        await asyncio.wait([task])  # it fails (wait does not look at the exception) ...
        del task  # ... and the only reference is dropped
        return hooks.uninstall()

    loop = asyncio.new_event_loop()  # its own loop: the report must not fail this test
    try:
        reports = loop.run_until_complete(leak())
    finally:
        loop.close()
    assert len(reports) == 1 and "nobody looked" in reports[0]


def test_a_retrieved_failure_is_not_reported() -> None:
    """A task whose exception was looked at is no report."""

    async def fail() -> None:
        raise RuntimeError("seen")

    async def watch() -> list[str]:
        hooks = Unretrieved(asyncio.get_running_loop()).install()
        await asyncio.gather(fail(), return_exceptions=True)
        return hooks.uninstall()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(watch()) == []
    finally:
        loop.close()
