"""Time as the engine sees it: real, or compressed for benchmarks and fast tests."""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Wall-clock seconds since the epoch; sleeping and waiting in the same seconds."""

    scale = 1.0  # clock seconds per real second

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> bool:
        """Wait for `event` at most `timeout_s` clock seconds (None: for ever); True if set."""
        if timeout_s is None:
            await event.wait()
            return True
        try:
            await asyncio.wait_for(event.wait(), max(0.0, timeout_s) / self.scale)
        except TimeoutError:
            return False
        return True


class ScaledClock(Clock):
    """`scale` simulated seconds pass for every real second, starting from the real now.

    Shared by the simulator and the engine in one process, so both agree on what time it is."""

    def __init__(self, scale: float, start: float | None = None) -> None:
        self.scale = scale
        self._start = time.time() if start is None else start
        self._mono = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._mono) * self.scale

    def advance(self, seconds: float) -> None:
        """Jump ahead (tests: let time pass without waiting for it)."""
        self._start += seconds
