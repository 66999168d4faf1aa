"""asyncio's debug hooks for tests: a failure in a background task that nobody looked at
("exception was never retrieved") is collected, so the test that caused it can fail."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

NEVER_RETRIEVED = "never retrieved"


class Unretrieved:
    """While installed on a loop: every "exception was never retrieved" report kept in
    `reports` (and still passed on to the handler that was there); with `debug`, asyncio's
    debug mode too (where each task was made, slow callbacks, wrong-thread calls)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, debug: bool = False) -> None:
        self.loop = loop
        self.debug = debug
        self.reports: list[str] = []
        self._previous = loop.get_exception_handler()
        self._debug = loop.get_debug()

    def install(self) -> Unretrieved:
        self.loop.set_debug(self.debug or self._debug)
        self.loop.set_exception_handler(self._handle)
        return self

    def uninstall(self) -> list[str]:
        """Collect garbage first (a task dropped unawaited reports when it is freed); then
        restore the loop; the reports seen."""
        gc.collect()
        self.loop.set_exception_handler(self._previous)
        self.loop.set_debug(self._debug)
        return self.reports

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if NEVER_RETRIEVED in message:
            error = context.get("exception")
            self.reports.append(f"{message}: {error!r}")
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)
