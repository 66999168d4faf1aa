"""Admission order: round-robin over teams, then users, then oldest first."""

from __future__ import annotations

from tests.engine.test_store import make_job


def jobs(spec: list[tuple[str, str]]):
    return [make_job(f"j{i}", team_id=t, user_id=u, created_at=float(i))
            for i, (t, u) in enumerate(spec)]


def test_one_users_twenty_jobs_do_not_hold_back_anothers_one():
    """Bob's single job goes second, not twenty-first."""
    from bot.engine.fairness import fair_order

    queued = jobs([("t", "alice")] * 20 + [("t", "bob")])
    order = fair_order(queued, {}, {})
    assert [j.user_id for j in order[:3]] == ["alice", "bob", "alice"]


def test_teams_take_turns_before_users():
    """A team with three users does not get three turns to another team's one."""
    from bot.engine.fairness import fair_order

    queued = jobs([("big", "a"), ("big", "b"), ("big", "c"), ("small", "d"), ("small", "d")])
    order = fair_order(queued, {}, {})
    assert [j.team_id for j in order] == ["big", "small", "big", "small", "big"]


def test_recently_served_user_waits_for_others():
    """Whoever was admitted last goes after those who were not."""
    from bot.engine.fairness import fair_order

    queued = jobs([("t", "alice"), ("t", "bob")])
    order = fair_order(queued, {"t": 5.0}, {"alice": 5.0})
    assert [j.user_id for j in order] == ["bob", "alice"]


def test_each_users_jobs_stay_in_their_order():
    from bot.engine.fairness import fair_order

    queued = jobs([("t", "alice"), ("t", "alice"), ("t", "alice")])
    assert [j.id for j in fair_order(queued, {}, {})] == ["j0", "j1", "j2"]
