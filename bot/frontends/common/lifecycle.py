"""A front end's life: whether it is closing, and the commands a shutdown lets finish.

Shared by every front end, so a service (buttons, commands) knows about shutdown without
knowing the client that owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Lifecycle:
    def __init__(self) -> None:
        self.closing = False
        self._commands: set[asyncio.Task[object]] = set()

    @contextlib.asynccontextmanager
    async def command_running(self) -> AsyncIterator[None]:
        """Marks a command that is checking or queueing a job: a shutdown lets it finish."""
        task = asyncio.current_task()
        assert task is not None, "commands run in tasks"
        self._commands.add(task)
        try:
            yield
        finally:
            self._commands.discard(task)

    async def drain(self, timeout_s: float) -> None:
        """Stop taking commands; wait for running ones, cancelling any still stuck after
        `timeout_s` (a slow download, most likely: the person can ask again later)."""
        self.closing = True
        if self._commands:
            _, late = await asyncio.wait(set(self._commands), timeout=timeout_s)
            for task in late:
                task.cancel()
