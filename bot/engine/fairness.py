"""The order in which queued jobs get a provider slot: round-robin over teams, then over the
users of a team, then each user's jobs oldest first. One user's twenty jobs wait behind
another user's one, not in front of it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar


class Queued(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def team_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def created_at(self) -> float: ...


J = TypeVar("J", bound=Queued)


def fair_order(
    queued: Sequence[J],
    team_last: Mapping[str, float],
    user_last: Mapping[str, float],
) -> list[J]:
    """Every queued job in the order it would be admitted, given when each team and user last
    had a job admitted (missing: never, which goes first)."""
    by_user: dict[str, list[J]] = defaultdict(list)
    for job in sorted(queued, key=lambda j: j.created_at):
        by_user[job.user_id].append(job)
    teams: dict[str, set[str]] = defaultdict(set)
    for user, jobs in by_user.items():
        teams[jobs[0].team_id].add(user)
    team_turn = {t: team_last.get(t, float("-inf")) for t in teams}
    user_turn = {u: user_last.get(u, float("-inf")) for u in by_user}
    order: list[J] = []
    tick = max([0.0, *team_last.values(), *user_last.values()])
    while by_user:
        team = min(teams, key=lambda t: (team_turn[t], _oldest(by_user, teams[t])))
        user = min(teams[team], key=lambda u: (user_turn[u], by_user[u][0].created_at))
        order.append(by_user[user].pop(0))
        tick += 1
        team_turn[team] = user_turn[user] = tick
        if not by_user[user]:
            del by_user[user]
            teams[team].discard(user)
            if not teams[team]:
                del teams[team]
    return order


def _oldest(by_user: Mapping[str, Sequence[Queued]], users: set[str]) -> float:
    return min(by_user[u][0].created_at for u in users)
