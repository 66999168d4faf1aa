"""Faults of the engine's own storage made loud and safe, and no background failure unseen.

A database that can no longer be written, or whose file was removed or replaced while the bot
ran, stops the engine with one clear error (its front end then exits with status 1) instead of
carrying on into a file nobody will read again. Every background task of the engine ends here:
its exception is retrieved and logged, and a storage fault among them stops the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.clock import Clock
from bot.engine.store import Store
from bot.errors import StorageError

log = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0  # how often the database file is checked to be the one opened


class StorageGuard:
    def __init__(self, store: Store, clock: Clock, every_s: float = CHECK_EVERY_S) -> None:
        self.store = store
        self.clock = clock
        self.every_s = every_s
        self.failure: StorageError | None = None  # set once, by the first fault
        self._callbacks: list[Callable[[], None]] = []

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Call `callback` (at once if it already happened) when storage fails."""
        self._callbacks.append(callback)
        if self.failure is not None:
            callback()

    def fail(self, error: StorageError) -> None:
        """Storage is unusable: say so once, loudly, and tell whoever stops the engine."""
        if self.failure is not None:
            return
        self.failure = error
        log.error("stopping: the database failed: %s", error)
        for callback in self._callbacks:
            callback()

    async def watch_file(self) -> None:
        """Now and then, check that the database file is still the one that was opened."""
        while True:
            await self.clock.sleep(self.every_s)
            try:
                await self.store.check_file()
            except StorageError as error:
                self.fail(error)
                return

    def start(self, coro: Any, name: str | None = None) -> asyncio.Task[Any]:
        """Run `coro` in the background, its outcome always looked at (`task_done`)."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self.task_done)
        return task

    def task_done(self, task: asyncio.Task[Any]) -> None:
        """Retrieve a finished background task's exception: a storage fault stops the
        engine; anything else is a bug, logged with its traceback."""
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, StorageError):
            self.fail(error)
        elif error is not None:
            log.error("background task %s failed", task.get_name(), exc_info=error)
