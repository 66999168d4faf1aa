"""When to ask the provider about a task next, and when it will likely be done.

The provider does not push; every status query costs a share of the account's 20 queries per
second. With a history of a model's durations we fit a lognormal and space the queries so that
the expected detection delay stays near a target while spending as few queries as possible:
the interval at time t is proportional to sqrt(S(t) / f(t)) (S survival, f density), the
optimum of "queries = ∫S/w" against "delay = ∫f·w/2". Before completion is plausible we do not
ask at all, except once early to catch tasks the provider rejects at once.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.clock import Clock

SQRT2 = math.sqrt(2.0)


class PollPolicy(Protocol):
    batch: bool  # one list query may answer for every active task at once

    def next_delay(self, model: str, elapsed_s: float, polls: int) -> float:
        """Seconds to wait before the next status query of a task `elapsed_s` old."""
        ...

    def learn(self, model: str, durations: Sequence[float]) -> None:
        """Take in a model's latest durations (newest first)."""
        ...

    def remaining(self, model: str, elapsed_s: float) -> float | None:
        """Expected seconds until a task of this model, `elapsed_s` old, is done."""
        ...

    def typical(self, model: str) -> float | None:
        """The mean duration of a task of this model."""
        ...


class NoHistory:
    """For fixed schedules: they learn nothing and guess no ETA."""

    def learn(self, model: str, durations: Sequence[float]) -> None:
        return None

    def remaining(self, model: str, elapsed_s: float) -> float | None:
        return None

    def typical(self, model: str) -> float | None:
        return None


class SdkSchedule(NoHistory):
    """The official SDK's waits: 1, 1, 2, 2, 2, 4, 4, 4, then 5 s for ever."""

    batch = False
    STEPS = (1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0)

    def next_delay(self, model: str, elapsed_s: float, polls: int) -> float:
        return self.STEPS[polls] if polls < len(self.STEPS) else 5.0


@dataclass
class FixedInterval(NoHistory):
    """What the provider's documents suggest: a query every `seconds` (15)."""

    seconds: float = 15.0
    batch: bool = False

    def next_delay(self, model: str, elapsed_s: float, polls: int) -> float:
        return self.seconds


@dataclass(frozen=True)
class LogNormal:
    mu: float
    sigma: float

    @classmethod
    def fit(cls, durations: Sequence[float]) -> LogNormal:
        logs = [math.log(max(d, 0.5)) for d in durations]
        sigma = statistics.pstdev(logs) if len(logs) > 1 else 0.5
        return cls(statistics.fmean(logs), max(sigma, 0.05))

    def survival(self, t: float) -> float:
        if t <= 0:
            return 1.0
        return 0.5 * math.erfc((math.log(t) - self.mu) / (self.sigma * SQRT2))

    def density(self, t: float) -> float:
        if t <= 0:
            return 0.0
        z = (math.log(t) - self.mu) / self.sigma
        return math.exp(-0.5 * z * z) / (t * self.sigma * math.sqrt(2 * math.pi))

    def quantile(self, p: float) -> float:
        return math.exp(self.mu + self.sigma * SQRT2 * _erfinv(2 * p - 1))

    def mean_remaining(self, elapsed: float) -> float:
        """E[T - elapsed | T > elapsed], by a short numeric integral of the survival."""
        s0 = self.survival(elapsed)
        if s0 < 1e-6:
            return max(1.0, 0.1 * math.exp(self.mu))
        top = max(self.quantile(0.9999), elapsed * 2)
        steps = 200
        h = (top - elapsed) / steps
        area = sum(self.survival(elapsed + (i + 0.5) * h) for i in range(steps)) * h
        return area / s0

    def sqrt_sf_integral(self) -> float:
        """∫ sqrt(S·f) dt: fixes the constant that turns a delay target into intervals."""
        lo, hi, steps = self.quantile(1e-5), self.quantile(1 - 1e-5), 400
        h = (hi - lo) / steps
        points = (lo + (i + 0.5) * h for i in range(steps))
        return sum(math.sqrt(self.survival(t) * self.density(t)) for t in points) * h


def _erfinv(y: float) -> float:
    """Inverse error function (Giles' approximation, refined by two Newton steps)."""
    y = min(max(y, -0.999999), 0.999999)
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5:
        w -= 2.5
        x = 2.81022636e-08
        for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                  -0.00125372503, -0.00417768164, 0.246640727, 1.50140941):
            x = c + x * w
    else:
        w = math.sqrt(w) - 3
        x = -0.000200214257
        for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                  -0.0076224613, 0.00943887047, 1.00167406, 2.83297682):
            x = c + x * w
    x *= y
    for _ in range(2):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


@dataclass
class _Fit:
    dist: LogNormal
    scale: float  # multiplies sqrt(S/f) to give the interval


class HistoryPolicy:
    """Polls by each model's own history; falls back to the SDK schedule without one."""

    batch = True

    def __init__(
        self,
        *,
        min_history: int = 5,
        target_delay_s: float = 2.0,
        min_interval_s: float = 1.0,
        max_interval_s: float = 60.0,
        early_check_s: float = 5.0,
    ) -> None:
        self.min_history = min_history
        self.target_delay_s = target_delay_s
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self.early_check_s = early_check_s
        self.fallback = SdkSchedule()
        self._fits: dict[str, _Fit] = {}

    def learn(self, model: str, durations: Sequence[float]) -> None:
        """Refit a model's distribution from its latest durations (newest first)."""
        if len(durations) < self.min_history:
            self._fits.pop(model, None)
            return
        dist = LogNormal.fit(durations)
        scale = 2 * self.target_delay_s / dist.sqrt_sf_integral()
        self._fits[model] = _Fit(dist, scale)

    def known(self, model: str) -> LogNormal | None:
        fit = self._fits.get(model)
        return fit.dist if fit else None

    def next_delay(self, model: str, elapsed_s: float, polls: int) -> float:
        fit = self._fits.get(model)
        if fit is None:
            return self.fallback.next_delay(model, elapsed_s, polls)
        first_plausible = fit.dist.quantile(0.005)
        if polls == 0 and elapsed_s < self.early_check_s < first_plausible:
            return self.early_check_s - elapsed_s
        if elapsed_s < first_plausible:
            return first_plausible - elapsed_s
        ratio = fit.dist.survival(elapsed_s) / max(fit.dist.density(elapsed_s), 1e-12)
        interval = fit.scale * math.sqrt(ratio)
        return min(max(interval, self.min_interval_s), self.max_interval_s)

    def remaining(self, model: str, elapsed_s: float) -> float | None:
        """Expected seconds until a task of this model, `elapsed_s` old, is done."""
        fit = self._fits.get(model)
        return fit.dist.mean_remaining(elapsed_s) if fit else None

    def typical(self, model: str) -> float | None:
        """The mean duration of a task of this model, from history."""
        fit = self._fits.get(model)
        return fit.dist.mean_remaining(0.0) if fit else None


class QueryLimiter:
    """At most `per_second` queries in any window of one second (a sliding log)."""

    def __init__(self, per_second: float, clock: Clock) -> None:
        self.limit = max(1, int(per_second))
        self.clock = clock
        self._sent: list[float] = []
        self.peak = 0

    async def acquire(self) -> None:
        while True:
            now = self.clock.now()
            self._sent = [t for t in self._sent if now - t < 1.0]
            if len(self._sent) < self.limit:
                self._sent.append(now)
                self.peak = max(self.peak, len(self._sent))
                return
            await self.clock.sleep(1.0 - (now - self._sent[0]) + 1e-3)
