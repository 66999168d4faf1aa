"""The bounded pool every media probe and repair runs on.

Decoding an image or demuxing a video is CPU- and memory-heavy. Run in the event loop's default
executor, a burst of inputs would take every thread (and each its own hundreds of MB) and queue
the loop's other thread work (file writes, DNS) behind them. Here at most `workers` run at once,
on their own threads; the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
DEFAULT_WORKERS = 2  # as Settings.media_workers: for callers that pass no pool


class MediaPool:
    """At most `workers` media jobs at once, on threads of their own."""

    def __init__(self, workers: int = DEFAULT_WORKERS) -> None:
        if workers < 1:
            raise ValueError("a media pool needs at least one worker")
        self.workers = workers
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="wanbot-media")

    async def run(self, fn: Callable[..., T], /, *args: object) -> T:
        """`fn(*args)` on one of the pool's threads; waits for a free one first."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        """Stop taking work; what is queued is dropped, what runs finishes on its own."""
        self._executor.shutdown(wait=False, cancel_futures=True)


@functools.cache
def shared_pool(workers: int) -> MediaPool:
    """The process's pool of this size: every context built from the same settings shares it,
    so the bound holds across commands."""
    return MediaPool(workers)
