"""How long a kind of task takes, learnt from its past durations without assuming a shape.

Real durations come in every shape: one model at one resolution takes nearly the same time
every run (a spike), a model shared by two resolutions gives two spikes, and now and then a task
takes five times longer. A lognormal fitted to such histories is far too wide on a spike and
wrong between two. So each past duration spreads as a narrow lognormal kernel (a kernel density
estimate in log time), each kernel as wide as the gap to its k-th nearest neighbour: tight where
the history is tight, wider where it is sparse. Everything a poll policy needs is tabulated
once per fit on a grid of steps of at most 1% in time.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SQRT2 = math.sqrt(2.0)
SQRT2PI = math.sqrt(2.0 * math.pi)
GRID_STEP = 0.01  # in log time: grid points at most 1% apart
REACH = 4.0  # a kernel's table reaches this many widths either side


@dataclass(frozen=True)
class Kernel:
    centre: float  # log seconds
    width: float  # log seconds
    weight: float


def kernels(durations: Sequence[float], *, min_width: float = 0.004,
            min_width_s: float = 0.15) -> list[Kernel]:
    """One kernel per distinct past duration; near-equal ones merged."""
    logs = sorted(math.log(max(d, 0.1)) for d in durations)
    n = len(logs)
    k = min(n - 1, max(2, round(math.sqrt(n))))
    spread = min(statistics.pstdev(logs), _iqr(logs) / 1.34) if n > 1 else 0.0
    widest = max(0.9 * spread * n ** -0.2, min_width)  # Silverman's rule: the upper bound
    found: list[Kernel] = []
    for i, x in enumerate(logs):
        gaps = sorted(abs(x - y) for y in logs[max(0, i - k):i + k + 1])
        width = min(1.5 * gaps[min(k, len(gaps) - 1)], widest)
        width = max(width, min_width, min_width_s / math.exp(x))
        last = found[-1] if found else None
        if last and x - last.centre < 0.25 * min(width, last.width):
            total = last.weight + 1.0
            found[-1] = Kernel((last.centre * last.weight + x) / total,
                               (last.width * last.weight + width) / total, total)
        else:
            found.append(Kernel(x, width, 1.0))
    return [Kernel(c.centre, c.width, c.weight / n) for c in found]


def _iqr(sorted_values: list[float]) -> float:
    quartiles = statistics.quantiles(sorted_values, n=4) if len(sorted_values) > 1 else [0, 0, 0]
    return quartiles[2] - quartiles[0]


@dataclass(frozen=True)
class Table:
    """Survival S and density f of the duration at grid times `at` (seconds, ascending)."""

    at: list[float]
    survival: list[float]
    density: list[float]
    tail: list[float]  # ∫ S dt from each grid time to the grid's end
    mean: float  # expected duration

    @classmethod
    def of(cls, durations: Sequence[float], **widths: float) -> Table:
        parts = kernels(durations, **widths)
        lo = min(p.centre - REACH * p.width for p in parts)
        hi = max(p.centre + REACH * p.width for p in parts)
        step = min(GRID_STEP, min(p.width for p in parts) / 3)  # finer than the tightest
        steps = max(2, math.ceil((hi - lo) / step))
        at = [math.exp(lo + i * (hi - lo) / steps) for i in range(steps + 1)]
        survival, density = [], []
        for t in at:
            s, f = _evaluate(parts, math.log(t))
            survival.append(s)
            density.append(f / t)
        tail = [0.0] * len(at)
        for i in range(len(at) - 2, -1, -1):
            step = at[i + 1] - at[i]
            tail[i] = tail[i + 1] + (survival[i] + survival[i + 1]) / 2 * step
        mean = sum(p.weight * math.exp(p.centre + p.width**2 / 2) for p in parts)
        return cls(at, survival, density, tail, mean)

    @property
    def end(self) -> float:
        """Past this time no task of the history would still be running."""
        return self.at[-1]

    def index(self, t: float) -> int:
        """The last grid point at or before `t` (-1 before the grid)."""
        return bisect.bisect_right(self.at, t) - 1

    def survival_at(self, t: float) -> float:
        i = self.index(t)
        return 1.0 if i < 0 else self.survival[i]

    def area_after(self, t: float) -> float:
        """∫ S dt from `t` to the grid's end (linear within a grid step)."""
        i = self.index(t)
        if i < 0:
            return self.at[0] - t + self.tail[0]
        return max(self.tail[i] - (t - self.at[i]) * self.survival[i], 0.0)

    def quantile(self, p: float) -> float:
        """The first grid time by which a share `p` of tasks are done."""
        i = bisect.bisect_left([-s for s in self.survival], p - 1.0)
        return self.at[min(i, len(self.at) - 1)]

    def integral(self, of: Callable[[float, float], float]) -> float:
        """∫ of(S, f) dt over the grid."""
        total = 0.0
        for i in range(1, len(self.at)):
            total += of(self.survival[i], self.density[i]) * (self.at[i] - self.at[i - 1])
        return total

    def mean_remaining(self, elapsed: float) -> float:
        """E[T - elapsed | T > elapsed], integrating the survival over the grid."""
        left = self.survival_at(elapsed)
        if elapsed >= self.end or left < 1e-6:
            return max(1.0, 0.1 * self.quantile(0.5))
        return self.area_after(elapsed) / left


def _evaluate(parts: list[Kernel], y: float) -> tuple[float, float]:
    """Survival and density (per log second) of the kernel mixture at log time `y`."""
    survival = density = 0.0
    for p in parts:
        z = (y - p.centre) / p.width
        if z < -8:
            survival += p.weight
        elif z < 8:
            survival += p.weight * 0.5 * math.erfc(z / SQRT2)
            density += p.weight * math.exp(-0.5 * z * z) / (p.width * SQRT2PI)
    return survival, density
