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


# What a new team starts with, so a fresh install cannot be run up by one person: admins raise
# or remove them (/settings, 0 for no limit).
DEFAULT_USER_JOBS = 3
DEFAULT_USER_DAILY_S = 300.0
LIMITS = ("user_max_concurrent", "user_daily_seconds", "team_daily_seconds")
NO_LIMIT = 0  # how a removed limit is stored; None in a TeamSettings


@dataclass(frozen=True)
class TeamSettings:
    """A team's settings. A limit of None means no limit; a team that never set one has the
    default. Stored, a removed limit is 0 and an unset one is missing (or None, as rows saved
    before there were defaults have it), so the two cannot be confused."""

    gallery_channel_id: str | None = None  # every finished video is also posted here
    generate_role_ids: tuple[str, ...] = ()  # empty: everyone may generate
    user_max_concurrent: int | None = DEFAULT_USER_JOBS  # unfinished jobs one person may have
    user_daily_seconds: float | None = DEFAULT_USER_DAILY_S  # one person's video-seconds a day
    team_daily_seconds: float | None = None  # video-seconds the whole team may make per day
    defaults: dict[str, dict[str, str]] = field(default_factory=dict)  # command -> option

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeamSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "generate_role_ids" in values:
            values["generate_role_ids"] = tuple(values["generate_role_ids"])
        for name in LIMITS:
            if name in values and values[name] is None:
                del values[name]  # never set: the default
            elif values.get(name) == NO_LIMIT:
                values[name] = None
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["generate_role_ids"] = list(self.generate_role_ids)
        for name in LIMITS:
            if data[name] is None:
                data[name] = NO_LIMIT
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


@dataclass(frozen=True)
class Claim:
    """What one request would take: a job, and its video-seconds."""

    team_id: str
    user_id: str
    seconds: float


@dataclass(frozen=True)
class Held:
    """What requests still being prepared (not yet queued) will take, on top of the store."""

    user_jobs: int = 0
    user_seconds: float = 0.0
    team_seconds: float = 0.0


async def check_admission(store: Store, request: JobRequest, now: float) -> None:
    """Raise LimitError if this request would break one of its team's limits."""
    claim = Claim(request.team_id, request.user_id, request.expected_seconds)
    await check_limits(store, claim, now)


async def check_limits(store: Store, claim: Claim, now: float,
                       held: Held | None = None) -> None:
    """Raise LimitError if `claim`, with what is `held` for requests on their way, would break
    one of its team's limits."""
    team, held = await load(store, claim.team_id), held or Held()
    limit = team.user_max_concurrent
    if limit is not None:
        stored = await unfinished(store, claim.team_id, claim.user_id)
        if stored + held.user_jobs >= limit:
            # A held request just queued is counted twice until its hold ends: never say more
            # than the limit unless the store alone has more (the limit was lowered).
            shown = min(stored + held.user_jobs, max(stored, limit))
            raise LimitError(f"You already have {shown} unfinished job(s); the limit is "
                             f"{limit}. Try again when one finishes.")
    since, resets = day_start(now), day_start(now) + DAY_S
    if team.user_daily_seconds is not None:
        used = await usage(store, claim.team_id, since, claim.user_id)
        _within("your", used.total_s + held.user_seconds, claim.seconds,
                team.user_daily_seconds, resets)
    if team.team_daily_seconds is not None:
        used = await usage(store, claim.team_id, since)
        _within("this server's", used.total_s + held.team_seconds, claim.seconds,
                team.team_daily_seconds, resets)


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
