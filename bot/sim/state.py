"""The simulator's state that is not HTTP: its knobs (`SimConfig`, `Fault`), its clock for
tests, and what it records (`SimTask`, `SimRequest`)."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.provider.catalog import Model

DEFAULT_KEY = "sk-sim-0000000000000000"
MODERATION = ("DataInspectionFailed", "Input data may contain inappropriate content.")
DEFAULT_ERRORS = {
    429: ("Throttling", "Requests throttling triggered."),
    500: ("InternalError", "An internal error has occured, please try again later."),
    502: ("InternalError", "Bad gateway."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable, please try later."),
}

# fixed, or drawn per task from the model's name (bot.sim.durations draws named shapes)
Seconds = float | Callable[[str], float]


class ManualClock:
    """A clock that moves only when told to: tests get exact, repeatable task states."""

    def __init__(self, start: float = 1_760_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def key_id(key: str) -> str:
    """The id the provider shows for an API key: stable, and not the key."""
    return str(int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big"))


@dataclass
class Fault:
    """Make the next `times` requests to `route` (one of ROUTES, or "*") misbehave."""

    route: str
    times: int = 1
    status: int | None = 500  # None: answer normally (after delay_s)
    code: str = "InternalError"
    message: str = ""
    retry_after_s: float | None = None  # sent as a Retry-After header
    drop: bool = False  # close the connection without answering
    delay_s: float = 0.0  # real seconds to wait first
    after: bool = False  # misbehave after the request took effect (the task exists)


@dataclass
class SimConfig:
    """Everything the simulator does; fields may be changed while it runs."""

    api_key: str = field(default=DEFAULT_KEY, repr=False)
    # More accounts: each key is its own account, with its own slots, query rate and tasks
    # (a task is known only to the key that created it). May grow while the simulator runs;
    # a key taken out is refused from then on (InvalidApiKey), as a revoked key is.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    region: str = "singapore"  # only this region's model names are known
    # Tasks run this many times faster than the clock: their durations shrink, the calendar
    # does not (every time reported is the clock's). A change applies to tasks created later.
    time_scale: float = 1.0
    clock: Callable[[], float] = field(default=time.time, repr=False)  # the wall clock
    pending_s: Seconds = 2.0  # queue time once a slot is free (before time_scale)
    running_s: Seconds = 60.0
    ttl_s: float = 86_400.0  # task ids and result links live 24 h
    concurrency: dict[str, int] = field(default_factory=dict)  # catalog name -> slots
    over_limit: str = "queue"  # "queue": hold PENDING for a slot; "reject": 429 Throttling
    query_qps: int = 20  # task queries per clock second, per account
    rate_retry_after_s: float | None = None
    fetch_timeout_s: float = 10.0  # real seconds to download one input
    result_bytes: int = 0  # pad result videos to this size (0: as made)
    result_video: bytes | None = field(default=None, repr=False)  # every result (None: a small one)
    moderation_words: tuple[str, ...] = ("sim-blocked",)  # in a prompt: DataInspectionFailed
    task_failures: list[tuple[str, str]] = field(default_factory=list)  # next tasks fail so
    faults: list[Fault] = field(default_factory=list)
    log_limit: int = 10_000  # requests kept in `Simulator.requests`

    @property
    def api_key_id(self) -> str:
        """The id the task list gives for the account's key: stable, and not the key."""
        return key_id(self.api_key)

    def account_of(self, key: str) -> str | None:
        """The account (its key's id) a key opens, or None for a key it does not know."""
        known = [self.api_key, *self.api_keys]
        good = [k for k in known if hmac.compare_digest(key.encode(), k.encode())]
        return key_id(good[0]) if good else None

    def slots(self, model: Model) -> int:
        return self.concurrency.get(model.name, model.default_concurrency)

    def fail(self, route: str, times: int = 1, status: int = 500, code: str | None = None,
             message: str | None = None, *, retry_after_s: float | None = None,
             after: bool = False) -> Fault:
        """Answer the next `times` requests to `route` with an error."""
        default_code, default_message = DEFAULT_ERRORS.get(status, ("InternalError", "Error."))
        fault = Fault(route, times, status, code or default_code, message or default_message,
                      retry_after_s, after=after)
        self.faults.append(fault)
        return fault

    def drop(self, route: str, times: int = 1, *, after: bool = False) -> Fault:
        """Close the connection of the next `times` requests without an answer."""
        fault = Fault(route, times, None, drop=True, after=after)
        self.faults.append(fault)
        return fault

    def slow(self, route: str, delay_s: float, times: int = 1, *, after: bool = False) -> Fault:
        """Answer the next `times` requests only after `delay_s` real seconds (`after`: the
        request has taken effect first, e.g. the task exists)."""
        fault = Fault(route, times, None, delay_s=delay_s, after=after)
        self.faults.append(fault)
        return fault

    def moderate_next(self, times: int = 1) -> None:
        """The next `times` accepted tasks fail the content check."""
        self.task_failures.extend([MODERATION] * times)


@dataclass
class SimRequest:
    """One request as the simulator saw it, minus secrets."""

    method: str
    path: str
    route: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int | None = None  # None: not answered (dropped connection)
    at: float = 0.0  # when it arrived (the wall clock): rates across clients are checked on it


@dataclass(eq=False)
class SimTask:
    """One task; its state is derived from these times whenever someone asks."""

    task_id: str
    model: Model
    api_name: str
    request_id: str
    created: float
    params: dict[str, Any]
    prompt: str | None
    pending_s: float  # clock seconds, time_scale applied
    running_s: float
    failure: tuple[str, str] | None = None  # (code, message) it will fail with
    admitted: float | None = None  # when it got a concurrency slot
    canceled_at: float | None = None
    check_done_at: float | None = None  # when its input media were checked
    media_s: float | None = None  # the reference video's length (animate)
    account: str = ""  # the id of the key that created it: only that account sees it

    @property
    def scheduled(self) -> float | None:
        return None if self.admitted is None else self.admitted + self.pending_s

    @property
    def end_at(self) -> float:
        """When it stops holding a slot; infinite while that is not yet known."""
        if self.canceled_at is not None:
            return self.canceled_at
        if self.scheduled is None or self.check_done_at is None:
            return math.inf
        # A task cannot end before its media were checked, and a bad one fails at once.
        finish = self.scheduled if self.failure else self.scheduled + self.running_s
        return max(finish, self.check_done_at)

    def status(self, now: float, ttl_s: float) -> str:
        if now >= self.created + ttl_s:
            return "UNKNOWN"
        if self.canceled_at is not None:
            return "CANCELED"
        if self.scheduled is None or now < self.scheduled:
            return "PENDING"
        if now < self.end_at:
            return "RUNNING"
        return "FAILED" if self.failure else "SUCCEEDED"

    def succeeded_by(self, now: float) -> bool:
        return self.canceled_at is None and not self.failure and now >= self.end_at
