"""Poll schedules and ETAs."""

from __future__ import annotations

import math
import random

import pytest

from bot.engine.poll_policy import FixedInterval, HistoryPolicy, LogNormal, SdkSchedule


def history(n: int = 40, median: float = 120.0, sigma: float = 0.4) -> list[float]:
    rng = random.Random(7)
    return [rng.lognormvariate(math.log(median), sigma) for _ in range(n)]


def schedule(policy, model: str = "m", until: float = 600.0) -> list[float]:
    t, polls, times = 0.0, 0, []
    while t < until:
        t += policy.next_delay(model, t, polls)
        polls += 1
        times.append(t)
    return times


def test_sdk_schedule_matches_the_official_waits():
    waits = [SdkSchedule().next_delay("m", 0, i) for i in range(11)]
    assert waits == [1, 1, 2, 2, 2, 4, 4, 4, 5, 5, 5]


def test_fixed_interval():
    assert FixedInterval(15).next_delay("m", 100, 3) == 15


def test_without_history_the_policy_falls_back_to_the_sdk():
    policy = HistoryPolicy()
    policy.learn("m", history(3))
    assert schedule(policy, until=20) == schedule(SdkSchedule(), until=20)


def test_with_history_no_polls_while_completion_is_unlikely():
    """After one early check, nothing until the first plausible completion."""
    policy = HistoryPolicy(early_check_s=5)
    policy.learn("m", history())
    times = schedule(policy)
    first_plausible = LogNormal.fit(history()).quantile(0.005)
    assert times[0] == pytest.approx(5)
    assert times[1] == pytest.approx(first_plausible)


def cost(policy, durations: list[float]) -> tuple[float, float]:
    """Mean queries per task and mean delay from completion to the query that sees it."""
    times = schedule(policy, until=max(durations) + 60)
    queries = delays = 0.0
    for d in durations:
        seen = next(t for t in times if t >= d)
        queries += sum(1 for t in times if t < d) + 1
        delays += seen - d
    return queries / len(durations), delays / len(durations)


def test_history_policy_beats_the_sdk_on_queries_at_no_worse_delay():
    """One task alone: fewer queries, and found no later on average (batching does the rest)."""
    policy = HistoryPolicy(target_delay_s=2.4)
    policy.learn("m", history())
    durations = history(300)
    ours, sdk = cost(policy, durations), cost(SdkSchedule(), durations)
    assert ours[0] < 0.7 * sdk[0]
    assert ours[1] <= sdk[1]


def test_eta_shrinks_as_time_passes_and_matches_the_mean():
    policy = HistoryPolicy()
    policy.learn("m", history(400))
    fresh, later = policy.remaining("m", 0), policy.remaining("m", 100)
    assert later < fresh
    mean = 120 * math.exp(0.4**2 / 2)
    assert fresh == pytest.approx(mean, rel=0.1)


def test_quantile_inverts_survival():
    dist = LogNormal(math.log(120), 0.4)
    for p in (0.01, 0.5, 0.99):
        assert 1 - dist.survival(dist.quantile(p)) == pytest.approx(p, abs=1e-6)
