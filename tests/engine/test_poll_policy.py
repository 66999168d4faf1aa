"""Poll schedules and ETAs."""

from __future__ import annotations

import math
import random

import pytest

from bot.engine.poll_policy import (
    FixedInterval,
    HistoryPolicy,
    SdkSchedule,
    history_key,
)
from bot.sim.durations import Durations


def history(n: int = 40, median: float = 120.0, sigma: float = 0.4) -> list[float]:
    rng = random.Random(7)
    return [rng.lognormvariate(math.log(median), sigma) for _ in range(n)]


def schedule(policy, key: str = "m", until: float = 600.0) -> list[float]:
    t, polls, times = 0.0, 0, []
    while t < until:
        t += policy.next_delay(key, t, polls)
        polls += 1
        times.append(t)
    return times


def cost(policy, durations: list[float], lag: float = 0.05) -> tuple[float, float]:
    """Mean queries per task and mean delay from completion to the query that sees it (a
    query sees what was so `lag` seconds before it: the provider's own latency)."""
    times = schedule(policy, until=max(durations) + 60)
    queries = delays = 0.0
    for d in durations:
        seen = next(t for t in times if t >= d + lag)
        queries += sum(1 for t in times if t < d + lag) + 1
        delays += seen - d
    return queries / len(durations), delays / len(durations)


def learnt(spec: str, n: int = 20, key: str = "m", **settings: float) -> HistoryPolicy:
    policy = HistoryPolicy(**settings)  # type: ignore[arg-type]
    policy.learn(key, Durations.parse(spec).sample(n))
    return policy


def test_sdk_schedule_matches_the_official_waits():
    """The fallback waits exactly as the official SDK does."""
    waits = [SdkSchedule().next_delay("m", 0, i) for i in range(11)]
    assert waits == [1, 1, 2, 2, 2, 4, 4, 4, 5, 5, 5]


def test_fixed_interval():
    """A fixed schedule waits the same every time."""
    assert FixedInterval(15).next_delay("m", 100, 3) == 15


def test_without_history_the_policy_falls_back_to_the_sdk():
    """Fewer than min_history durations: the SDK's schedule."""
    policy = HistoryPolicy()
    policy.learn("m", history(3))
    assert schedule(policy, until=20) == schedule(SdkSchedule(), until=20)


def test_with_history_no_polls_while_completion_is_unlikely():
    """After one early check, at most one query before the first 1% of tasks are done."""
    policy = HistoryPolicy(early_check_s=5)
    policy.learn("m", history())
    times = schedule(policy)
    table = policy.known("m")
    assert table is not None
    assert times[0] == pytest.approx(5)
    assert sum(1 for t in times[1:] if t < table.quantile(0.01)) <= 1


def test_history_policy_beats_the_sdk_on_queries_at_no_worse_delay():
    """One task alone: fewer queries, and found no later on average (batching does the rest)."""
    policy = HistoryPolicy(target_delay_s=2.0)
    policy.learn("m", history())
    durations = history(300)
    ours, sdk = cost(policy, durations), cost(SdkSchedule(), durations)
    assert ours[0] < 0.7 * sdk[0]
    assert ours[1] <= sdk[1]


def test_constant_durations_first_poll_lands_at_the_duration():
    """After 60 s every time, the first poll after the early check is just before 60 s."""
    times = schedule(learnt("constant:60"), until=60)
    assert times[0] == pytest.approx(5)
    assert 57.0 <= times[1] <= 60.5


def test_constant_durations_a_miss_is_followed_by_a_short_interval():
    """A task not done at its usual 60 s is asked about again within two seconds."""
    policy = learnt("constant:60")
    assert policy.next_delay("m", 59.9, 2) <= 2.0


def test_short_constant_durations_are_seen_sooner_than_by_the_sdk():
    """Tasks of 3 s every time: fewer queries and less delay than the SDK's schedule."""
    durations = Durations.parse("uniform:2.95:3.05").sample(200)
    ours, sdk = cost(learnt("constant:3"), durations), cost(SdkSchedule(), durations)
    assert ours[0] <= sdk[0]
    assert ours[1] < sdk[1]


@pytest.mark.parametrize("spec", ["constant:60", "uniform:60:70", "lognormal:90:0.05",
                                  "mix:60:240"])
def test_tight_and_mixed_histories_cost_a_third_of_the_sdk_at_no_worse_delay(spec):
    """Tight or clustered histories: one task alone needs a third of the SDK's queries."""
    durations = Durations.parse(spec, seed=11).sample(300)
    ours, sdk = cost(learnt(spec, n=40), durations), cost(SdkSchedule(), durations)
    assert ours[1] <= sdk[1]
    assert ours[0] <= sdk[0] / 3


@pytest.mark.parametrize("spec", ["lognormal:90:0.6", "heavy:90:0.1:5"])
def test_wide_histories_cost_fewer_queries_at_no_worse_delay(spec):
    """Wide histories: fewer queries than the SDK for one task alone (lists share the rest)."""
    durations = Durations.parse(spec, seed=11).sample(300)
    ours, sdk = cost(learnt(spec, n=40), durations), cost(SdkSchedule(), durations)
    assert ours[1] <= sdk[1]
    assert ours[0] <= 0.9 * sdk[0]


@pytest.mark.parametrize("spec", ["constant:60", "mix:60:240", "heavy:90:0.1:5"])
def test_every_interval_is_bounded_by_the_time_a_task_takes(spec):
    """No wait longer than max(elapsed, median) nor a minute, nor below the floor."""
    policy = learnt(spec)
    table = policy.known("m")
    assert table is not None
    median, t, polls = table.quantile(0.5), 0.0, 0
    while t < 1000:
        wait = policy.next_delay("m", t, polls)
        assert policy.min_interval_s <= wait <= min(60.0, max(t, median) * 1.01)
        t, polls = t + wait, polls + 1


def test_two_clusters_are_both_watched():
    """60 s or 240 s: polls land just after each cluster, none wasted in between."""
    times = schedule(learnt("mix:60:240", n=40), until=245)
    assert any(60 <= t <= 62.5 for t in times)
    assert any(240 <= t <= 242.5 for t in times)
    assert sum(1 for t in times if 70 < t < 230) <= 5


def test_past_the_history_intervals_grow_with_the_time_elapsed():
    """A task far longer than any before is asked about less and less often."""
    policy = learnt("constant:60")
    assert policy.next_delay("m", 200, 5) < policy.next_delay("m", 600, 9)


def test_keyed_history_falls_back_to_the_model():
    """A key without its own history uses its model's; one with its own history uses that."""
    policy = learnt("constant:60")
    tight = history_key("m", {"resolution": "480P"})
    other = history_key("m", {"resolution": "1080P"})
    policy.learn(tight, Durations.parse("constant:20").sample(20))
    assert policy.next_delay(other, 59.9, 2) == policy.next_delay("m", 59.9, 2)
    assert policy.typical(tight) == pytest.approx(20, rel=0.02)
    assert policy.typical(other) == pytest.approx(60, rel=0.02)


def test_history_key_names_only_what_drives_duration():
    """Resolution, length and mode make a key; a seed or watermark does not."""
    base = {"resolution": "720P", "duration": 5, "mode": "wan-pro"}
    assert history_key("m", base) == history_key("m", {**base, "seed": 3, "watermark": True})
    assert history_key("m", base) != history_key("m", {**base, "duration": 10})
    assert history_key("m", base).startswith("m|")


def test_eta_shrinks_as_time_passes_and_matches_the_mean():
    """The expected remaining time falls as a task ages and starts at the mean."""
    policy = HistoryPolicy()
    policy.learn("m", history(400))
    fresh, later = policy.remaining("m", 0), policy.remaining("m", 100)
    assert fresh is not None and later is not None
    assert later < fresh
    mean = 120 * math.exp(0.4**2 / 2)
    assert fresh == pytest.approx(mean, rel=0.1)


class SlotWanted:
    """A policy asked as the poller asks while a queued job waits for the task's slot."""

    def __init__(self, policy: HistoryPolicy) -> None:
        self.policy = policy

    def next_delay(self, key: str, elapsed_s: float, polls: int) -> float:
        return self.policy.next_delay(key, elapsed_s, polls, slot_wanted=True)


@pytest.mark.parametrize("spec", ["uniform:60:70", "lognormal:90:0.05", "lognormal:90:0.1"])
def test_a_wanted_slot_is_seen_free_within_a_hundredth_of_a_task(spec):
    """A queued job waits for the slot: the end is seen about 1% of the median after it (the
    slot time lost per task), sooner than otherwise, still for fewer queries than the SDK's."""
    durations = Durations.parse(spec, seed=11).sample(300)
    policy = learnt(spec)
    table = policy.known("m")
    assert table is not None
    wanted, usual = cost(SlotWanted(policy), durations), cost(policy, durations)
    sdk = cost(SdkSchedule(), durations)
    assert wanted[1] <= 0.015 * table.quantile(0.5) + 0.1  # + the provider's own lag
    assert wanted[1] < 0.7 * usual[1]
    assert wanted[0] <= 0.6 * sdk[0]


def test_fixed_schedules_ignore_a_wanted_slot():
    """The SDK's and the fixed schedule are the same whether or not a slot is wanted."""
    for policy in (SdkSchedule(), FixedInterval(15)):
        assert schedule(SlotWanted(policy)) == schedule(policy)  # type: ignore[arg-type]
