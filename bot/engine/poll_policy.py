"""When to ask the provider about a task next, and when it will likely be done.

The provider does not push; every status query costs a share of the account's 20 queries per
second. From the durations of past tasks like this one (same model, resolution, length and
mode; else the same model) we estimate the distribution of durations (bot.engine.durations)
and space the queries so that the expected detection delay stays near a target while spending
as few queries as possible: the interval at time t is proportional to sqrt(S(t) / f(t))
(S survival, f density), the optimum of "queries = ∫S/w" against "delay = ∫f·w/2", bounded
where that rule alone would overshoot. Before completion is plausible we do not ask at all,
except once early to catch tasks the provider rejects at once.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.clock import Clock
from bot.engine.durations import Table


class PollPolicy(Protocol):
    batch: bool  # one list query may answer for every active task at once

    def next_delay(self, key: str, elapsed_s: float, polls: int, *,
                   slot_wanted: bool = False) -> float:
        """Seconds to wait before the next status query of a task `elapsed_s` old; `key` is
        its `history_key` (or just its model). `slot_wanted`: a queued job waits for this
        task's slot, so every second its end goes unseen the slot stands idle."""
        ...

    def learn(self, key: str, durations: Sequence[float]) -> None:
        """Take in the latest durations (newest first) of a history key or a model."""
        ...

    def remaining(self, key: str, elapsed_s: float) -> float | None:
        """Expected seconds until a task of this key (or model), `elapsed_s` old, is done."""
        ...

    def typical(self, key: str) -> float | None:
        """The mean duration of a task of this key (or model)."""
        ...


class NoHistory:
    """For fixed schedules: they learn nothing and guess no ETA."""

    def learn(self, key: str, durations: Sequence[float]) -> None:
        return None

    def remaining(self, key: str, elapsed_s: float) -> float | None:
        return None

    def typical(self, key: str) -> float | None:
        return None


class SdkSchedule(NoHistory):
    """The official SDK's waits: 1, 1, 2, 2, 2, 4, 4, 4, then 5 s for ever."""

    batch = False
    STEPS = (1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0)

    def next_delay(self, key: str, elapsed_s: float, polls: int, *,
                   slot_wanted: bool = False) -> float:
        return self.STEPS[polls] if polls < len(self.STEPS) else 5.0


@dataclass
class FixedInterval(NoHistory):
    """What the provider's documents suggest: a query every `seconds` (15)."""

    seconds: float = 15.0
    batch: bool = False

    def next_delay(self, key: str, elapsed_s: float, polls: int, *,
                   slot_wanted: bool = False) -> float:
        return self.seconds


KEY_SEPARATOR = "|"
DRIVERS = ("resolution", "size", "duration", "mode")  # the options that change how long it takes


def history_key(model: str, options: Mapping[str, Any]) -> str:
    """What a task's duration depends on: its model and the options that drive it."""
    return KEY_SEPARATOR.join([model, *(str(options.get(name, "")) for name in DRIVERS)])


def model_of(key: str) -> str:
    return key.split(KEY_SEPARATOR, 1)[0]


@dataclass
class _Fit:
    table: Table
    shape: list[float]  # at each grid time, the interval sqrt(S/f) asks for per second of target
    ceiling: list[float]  # at each grid time, the longest interval allowed there
    target: float  # the mean delay aimed at, seconds
    slot_target: float  # the same while a queued job waits for the slot
    median: float


class HistoryPolicy:
    """Polls by the history of tasks like this one (or of its model); the SDK's schedule
    without one.

    The interval at time t is the optimum sqrt(S/f) times a constant set by the delay target,
    bounded by what the fit justifies: the next query is at the first moment where the time
    waited reaches the interval wanted *there*, so a quiet stretch never carries the wait past
    the point where tasks start to finish; the delay one interval adds to a task still running
    stays under a share of the target; and an interval is at most a share of the time a task of
    this kind takes. Past the end of the history intervals grow with the time elapsed, as a
    backoff would.

    While a queued job waits for the task's slot (and the provider holds none on deck), each
    second between the task's end and our seeing it is a second the paid-for slot stands idle
    and everyone queued waits longer: the target then shrinks to `slot_share` of the median
    (the share of slot time we accept to lose), never below `slot_floor_s`, and never so far
    that one task alone would cost more than a query per `slot_query_every_s` of its median
    (the SDK asks every 5 s): with the sqrt rule, queries times mean delay is (∫sqrt(S·f))²/2,
    so a wide history affords less tightening than a narrow one. Queries go up only while a
    queue waits, and a list query answers for every task at once.
    """

    batch = True

    def __init__(
        self,
        *,
        min_history: int = 5,
        target_delay_s: float = 2.0,
        delay_share: float = 0.25,
        min_interval_s: float = 0.5,
        max_interval_s: float = 60.0,
        interval_share: float = 1.0,
        step_delay: float = 0.5,
        tail_share: float = 0.05,
        early_check_s: float = 5.0,
        history_limit: int = 100,
        slot_share: float = 0.01,
        slot_floor_s: float = 0.5,
        slot_query_every_s: float = 6.0,
    ) -> None:
        self.min_history = min_history
        self.target_delay_s = target_delay_s
        self.delay_share = delay_share  # of the median: short tasks get a shorter target
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self.interval_share = interval_share  # of max(elapsed, median): the longest wait
        self.step_delay = step_delay  # of the target: what one interval may add to the delay
        self.tail_share = tail_share  # of the elapsed time, past the end of the history
        self.early_check_s = early_check_s
        self.history_limit = history_limit
        self.slot_share = slot_share
        self.slot_floor_s = slot_floor_s
        self.slot_query_every_s = slot_query_every_s
        self.fallback = SdkSchedule()
        self._fits: dict[str, _Fit] = {}

    def learn(self, key: str, durations: Sequence[float]) -> None:
        """Refit a key's (or a model's) distribution from its latest durations, newest first."""
        if len(durations) < self.min_history:
            self._fits.pop(key, None)
            return
        table = Table.of(durations[: self.history_limit])
        median = table.quantile(0.5)
        target = min(self.target_delay_s, self.delay_share * median)
        spread = max(table.integral(lambda s, f: math.sqrt(s * f)), 1e-9)
        affordable = spread**2 / 2 * self.slot_query_every_s / max(median, 1e-9)
        slot_target = min(target, max(self.slot_share * median, self.slot_floor_s, affordable))
        unit = 2 / spread
        shape = [unit * math.sqrt(s / f) if f > 0 else math.inf
                 for s, f in zip(table.survival, table.density, strict=True)]
        ceiling = [min(self.max_interval_s, self.interval_share * max(t, median))
                   for t in table.at]
        self._fits[key] = _Fit(table, shape, ceiling, target, slot_target, median)

    def known(self, key: str) -> Table | None:
        fit = self._fit(key)
        return fit.table if fit else None

    def _fit(self, key: str) -> _Fit | None:
        return self._fits.get(key) or self._fits.get(model_of(key))

    def next_delay(self, key: str, elapsed_s: float, polls: int, *,
                   slot_wanted: bool = False) -> float:
        fit = self._fit(key)
        if fit is None:
            return self.fallback.next_delay(key, elapsed_s, polls)
        table = fit.table
        if polls == 0 and elapsed_s < self.early_check_s < table.quantile(0.005):
            return self.early_check_s - elapsed_s
        if elapsed_s >= table.end:
            interval = self.tail_share * elapsed_s
            return min(max(interval, self.min_interval_s), self.max_interval_s)
        return self._scan(fit, elapsed_s, fit.slot_target if slot_wanted else fit.target)

    def _scan(self, fit: _Fit, t: float, target: float) -> float:
        """From the last query at `t`: the first grid time where the wait reaches the interval
        wanted there (for a mean delay of `target`), or where the delay this interval adds to a
        task still running at `t` reaches `step_delay` x the target."""
        table = fit.table
        area, running = table.area_after(t), table.survival_at(t)
        budget = self.step_delay * target * running
        longest = min(self.max_interval_s, self.interval_share * max(t, fit.median))
        first = bisect.bisect_left(table.at, t + self.min_interval_s)
        for i in range(first, len(table.at)):
            wait = table.at[i] - t
            added = wait * running - (area - table.tail[i])  # ∫ (at_i - u) f(u) du from t
            wanted = max(self.min_interval_s, min(target * fit.shape[i], fit.ceiling[i]))
            if wait >= wanted or added >= budget:
                return min(wait, longest)
        return min(max(table.end - t, self.min_interval_s), longest)

    def remaining(self, key: str, elapsed_s: float) -> float | None:
        """Expected seconds until a task of this key (or model), `elapsed_s` old, is done."""
        fit = self._fit(key)
        return fit.table.mean_remaining(elapsed_s) if fit else None

    def typical(self, key: str) -> float | None:
        """The mean duration of a task of this key (or model), from history."""
        fit = self._fit(key)
        return fit.table.mean if fit else None


class QueryLimiter:
    """At most `per_second` queries in any window of one second (a sliding log)."""

    def __init__(self, per_second: float, clock: Clock) -> None:
        self.limit = max(1, int(per_second))
        self.clock = clock
        self._sent: list[float] = []
        self.peak = 0

    def fill(self) -> None:
        """Count a full second's queries as just sent: a new leader's first second may follow
        the last one's (dead, but its queries still count against the account)."""
        now = self.clock.now()
        self._sent = [now] * self.limit

    async def acquire(self) -> None:
        while True:
            now = self.clock.now()
            self._sent = [t for t in self._sent if now - t < 1.0]
            if len(self._sent) < self.limit:
                self._sent.append(now)
                self.peak = max(self.peak, len(self._sent))
                return
            await self.clock.sleep(1.0 - (now - self._sent[0]) + 1e-3)
