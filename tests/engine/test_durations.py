"""Durations estimated from past ones: any shape, tabulated once per fit."""

from __future__ import annotations

import math
import random

from bot.engine.durations import Table
from bot.sim.durations import Durations


def history(n: int = 400, median: float = 120.0, sigma: float = 0.4) -> list[float]:
    rng = random.Random(7)
    return [rng.lognormvariate(math.log(median), sigma) for _ in range(n)]


def test_quantile_inverts_survival():
    """The table's quantile is where the share done reaches p (within one grid step)."""
    table = Table.of(history())
    for p in (0.01, 0.5, 0.99):
        at = table.quantile(p)
        assert 1 - table.survival_at(at) >= p
        assert 1 - table.survival_at(at * 0.985) < p


def test_a_tight_history_gives_a_tight_estimate():
    """Twenty runs of 60 s: nearly every task is expected within two seconds of 60 s."""
    table = Table.of([60.0] * 20)
    assert 58.0 < table.quantile(0.01) < table.quantile(0.99) < 62.0


def test_two_clusters_stay_two():
    """60 s or 240 s: nothing is expected to finish in between."""
    table = Table.of(Durations.parse("mix:60:240").sample(40))
    between = table.survival_at(70) - table.survival_at(230)
    assert between < 0.01
    assert 0.3 < table.survival_at(150) < 0.7


def test_mean_and_remaining_agree_with_the_history():
    """The mean is the history's mean; a task past the first cluster expects the second."""
    drawn = Durations.parse("mix:60:240").sample(40)
    table = Table.of(drawn)
    assert abs(table.mean - sum(drawn) / len(drawn)) < 1.0
    assert abs(table.mean_remaining(100) - 140) < 3.0
