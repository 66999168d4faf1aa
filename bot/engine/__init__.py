"""The engine: requests in, delivered videos out, across restarts. Front ends use only this."""

from bot.engine.engine import Engine
from bot.engine.jobs import (
    AT_PROVIDER,
    TERMINAL,
    CancelOutcome,
    Job,
    JobRequest,
    JobState,
    JobUpdate,
)
from bot.engine.keys import KeyPool
from bot.engine.records import ChainVideo, Delivery, Display, Fit, Post, ProgressRef
from bot.engine.results import RESULT_TTL_S, Deliverer
from bot.engine.store import Store

__all__ = [
    "AT_PROVIDER",
    "RESULT_TTL_S",
    "TERMINAL",
    "CancelOutcome",
    "ChainVideo",
    "Deliverer",
    "Delivery",
    "Display",
    "Engine",
    "Fit",
    "Job",
    "JobRequest",
    "JobState",
    "JobUpdate",
    "KeyPool",
    "Post",
    "ProgressRef",
    "Store",
]
