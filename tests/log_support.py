"""Logging put back after a test that ran `setup_logging` (it changes process-wide state)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from bot.logs import QUIET, URL_LOGGERS


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """The root's handlers and level, and the level and filters of the loggers setup_logging
    quiets or masks, as they were before the block."""
    loggers = [logging.getLogger(), *map(logging.getLogger, [*QUIET, *URL_LOGGERS])]
    saved = [(lg, lg.level, lg.handlers[:], lg.filters[:]) for lg in loggers]
    try:
        yield
    finally:
        for logger, level, handlers, filters in saved:
            logger.setLevel(level)
            logger.handlers[:], logger.filters[:] = handlers, filters
