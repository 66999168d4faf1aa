"""Task durations drawn from a named shape, for `SimConfig.running_s` (or `pending_s`).

Real models rarely give smooth durations: one model at one resolution takes about the same time
every run, a model used at two settings gives two clusters, and a few tasks take far longer. A
`Durations` is a `Seconds` spec (a callable of the model's name) drawing from one such shape with
its own seeded generator, so two simulators given equal specs draw equal durations.

    Durations.parse("constant:3")          3 s every time
    Durations.parse("uniform:60:70")       anywhere from 60 to 70 s
    Durations.parse("lognormal:90:0.3")    median 90 s, sigma 0.3 in log seconds
    Durations.parse("mix:60:240")          60 s or 240 s, as likely
    Durations.parse("heavy:90:0.1:5")      lognormal 90 s, sigma 0.1; one task in ten 5x longer
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

Draw = Callable[[random.Random], float]
HEAVY_SHARE = 0.1  # of tasks in a heavy tail


def _constant(seconds: float) -> Draw:
    return lambda rng: seconds


def _uniform(low: float, high: float) -> Draw:
    return lambda rng: rng.uniform(low, high)


def _lognormal(median: float, sigma: float) -> Draw:
    return lambda rng: rng.lognormvariate(math.log(median), sigma)


def _mix(*seconds: float) -> Draw:
    return lambda rng: rng.choice(seconds)


def _heavy(median: float, sigma: float, factor: float) -> Draw:
    def draw(rng: random.Random) -> float:
        stretch = factor if rng.random() < HEAVY_SHARE else 1.0
        return stretch * rng.lognormvariate(math.log(median), sigma)

    return draw


SHAPES: dict[str, tuple[Callable[..., Draw], int]] = {  # name -> (maker, number of figures)
    "constant": (_constant, 1),
    "uniform": (_uniform, 2),
    "lognormal": (_lognormal, 2),
    "mix": (_mix, 2),
    "heavy": (_heavy, 3),
}


@dataclass
class Durations:
    """Seconds drawn per task from one shape; `spec` is the text it was parsed from."""

    spec: str
    draw: Draw = field(repr=False)
    seed: int = 7
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @classmethod
    def parse(cls, spec: str, seed: int = 7) -> Durations:
        """`shape:figure:...`, e.g. `uniform:60:70`; see the module's documentation."""
        shape, *figures = spec.split(":")
        if shape not in SHAPES:
            raise ValueError(f"unknown duration shape {shape!r}; one of {', '.join(SHAPES)}")
        maker, count = SHAPES[shape]
        if len(figures) != count:
            example = ":".join([shape, *"1" * count])
            raise ValueError(f"{shape} takes {count} figure(s), as in {example}")
        return cls(spec, maker(*(float(f) for f in figures)), seed)

    def __call__(self, model: str) -> float:
        return max(0.0, self.draw(self.rng))

    def sample(self, count: int) -> list[float]:
        """`count` durations from a generator of their own (history for a benchmark)."""
        rng = random.Random(self.seed + 1)
        return [max(0.0, self.draw(rng)) for _ in range(count)]
