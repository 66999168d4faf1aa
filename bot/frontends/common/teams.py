"""What a team (a Discord guild, a Slack workspace) has set, and the limits it enforces.

Usage is counted in video-seconds, the unit the provider bills: finished jobs count what the
provider's `usage` block says; jobs still on their way count what they will produce, so twenty
requests at once cannot slip past a limit together. Days are UTC days.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.engine import JobRequest, Store
from bot.errors import WanbotError

DAY_S = 86_400


@dataclass(frozen=True)
class TeamSettings:
    gallery_channel_id: str | None = None  # every finished video is also posted here
    generate_role_ids: tuple[str, ...] = ()  # empty: everyone may generate
    user_max_concurrent: int | None = None  # unfinished jobs one person may have
    user_daily_seconds: float | None = None  # video-seconds one person may make per day
    team_daily_seconds: float | None = None  # video-seconds the whole team may make per day
    defaults: dict[str, dict[str, str]] = field(default_factory=dict)  # command -> option

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeamSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "generate_role_ids" in values:
            values["generate_role_ids"] = tuple(values["generate_role_ids"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["generate_role_ids"] = list(self.generate_role_ids)
        return data

    def default_for(self, command: str, option: str) -> str | None:
        return self.defaults.get(command, {}).get(option)


async def load(store: Store, team_id: str) -> TeamSettings:
    return TeamSettings.from_dict(await store.get_team_settings(team_id))


async def save(store: Store, team_id: str, settings: TeamSettings) -> None:
    await store.set_team_settings(team_id, settings.to_dict())


class LimitError(WanbotError):
    """A request over a limit: refused before it is queued, with what is left and when."""

    def __init__(self, message: str, resets_at: float | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.resets_at = resets_at
        self.reason = reason or message  # the message without its reset time, for front ends


def day_start(now: float) -> float:
    return (now // DAY_S) * DAY_S


@dataclass(frozen=True)
class Usage:
    """Video-seconds made (per the provider) and still on their way."""

    made_s: float
    pending_s: float
    jobs: int

    @property
    def total_s(self) -> float:
        return self.made_s + self.pending_s


async def usage(store: Store, team_id: str, since: float, user_id: str | None = None) -> Usage:
    return Usage(*await store.usage_totals(team_id, since, user_id))


async def unfinished(store: Store, team_id: str, user_id: str) -> int:
    return await store.unfinished_count(team_id, user_id)


async def check_admission(store: Store, request: JobRequest, now: float) -> None:
    """Raise LimitError if this request would break one of its team's limits."""
    team = await load(store, request.team_id)
    if team.user_max_concurrent is not None:
        running = await unfinished(store, request.team_id, request.user_id)
        if running >= team.user_max_concurrent:
            raise LimitError(
                f"You already have {running} unfinished job(s); the limit is "
                f"{team.user_max_concurrent}. Try again when one finishes.")
    since, resets = day_start(now), day_start(now) + DAY_S
    wanted = request.expected_seconds
    if team.user_daily_seconds is not None:
        used = await usage(store, request.team_id, since, request.user_id)
        _within("your", used.total_s, wanted, team.user_daily_seconds, resets)
    if team.team_daily_seconds is not None:
        used = await usage(store, request.team_id, since)
        _within("this server's", used.total_s, wanted, team.team_daily_seconds, resets)


def _within(whose: str, used: float, wanted: float, limit: float, resets: float) -> None:
    if used + wanted <= limit:
        return
    left = max(0.0, limit - used)
    reason = (f"This job makes {wanted:g} s of video but {whose} daily budget has {left:g} s "
              f"left of {limit:g} s.")
    raise LimitError(f"{reason} It resets at {_clock(resets)}.", resets, reason)


def _clock(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%H:%M UTC")


def reset_in(now: float) -> timedelta:
    return timedelta(seconds=int(day_start(now) + DAY_S - now))
