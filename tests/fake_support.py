"""Pieces the chat fakes (tests/fakediscord, tests/fakeslack) share: the waiters tests await,
and serving an aiohttp app on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class Waiters:
    """Futures resolved when a probe returns something other than None after a change."""

    def __init__(self) -> None:
        self._pending: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []

    async def wait(self, probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
        found = probe()
        if found is not None:
            return found
        entry = (probe, asyncio.get_running_loop().create_future())
        self._pending.append(entry)
        try:
            async with asyncio.timeout(timeout_s):
                return await entry[1]
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}") from None
        finally:
            self._pending.remove(entry)

    def poke(self) -> None:
        for probe, future in list(self._pending):
            if future.done():
                continue
            try:
                found = probe()
            except Exception as exc:  # a broken probe must fail its waiter, not the fake
                future.set_exception(exc)
            else:
                if found is not None:
                    future.set_result(found)


async def serve_on_loopback(app: web.Application) -> tuple[web.AppRunner, str]:
    """Start ``app`` on 127.0.0.1 at a free port; returns its runner and base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"
