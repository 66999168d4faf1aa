"""What the admin commands need from teams, for any front end: a change to a team's settings
checked against the catalog, and the usage report.

A change is checked whole before anything is written, so a refused change leaves the stored
settings as they were. Limits given as 0 mean "no limit": a front end needs one way to lift a
limit, and 0 video-seconds a day would otherwise stop the whole team.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from bot.engine import Store
from bot.errors import InputError
from bot.frontends.common import teams
from bot.frontends.common.teams import DAY_S, TeamSettings, Usage
from bot.provider import catalog
from bot.provider.catalog import Command

# The option that sets a command's output size: "resolution" on most models, "size" on VACE.
SIZE_OPTIONS = ("resolution", "size")
MONTH_DAYS = 30
N = TypeVar("N", int, float)


@dataclass(frozen=True)
class SettingsChange:
    """What an admin asked to change; None and False leave a setting as it is."""

    gallery_channel_id: str | None = None
    clear_gallery: bool = False
    role_ids: tuple[str, ...] = ()
    clear_roles: bool = False
    user_max_concurrent: int | None = None  # 0: no limit
    user_daily_seconds: float | None = None  # 0: no limit
    team_daily_seconds: float | None = None  # 0: no limit
    command: str | None = None  # whose defaults `model` and `resolution` are
    model: str | None = None
    resolution: str | None = None
    clear_defaults: bool = False  # of `command`, or of every command without one

    @property
    def empty(self) -> bool:
        return self == SettingsChange()


def apply_change(current: TeamSettings, change: SettingsChange) -> TeamSettings:
    """The settings after `change`; InputError (naming the option) if any part is refused."""
    _check_conflicts(change)
    gallery = change.gallery_channel_id or current.gallery_channel_id
    roles = change.role_ids or current.generate_role_ids
    return dataclasses.replace(
        current,
        gallery_channel_id=None if change.clear_gallery else gallery,
        generate_role_ids=() if change.clear_roles else roles,
        user_max_concurrent=_limit(change.user_max_concurrent, current.user_max_concurrent),
        user_daily_seconds=_limit(change.user_daily_seconds, current.user_daily_seconds),
        team_daily_seconds=_limit(change.team_daily_seconds, current.team_daily_seconds),
        defaults=_defaults(current.defaults, change),
    )


def _check_conflicts(change: SettingsChange) -> None:
    if change.clear_gallery and change.gallery_channel_id:
        raise InputError("clear_gallery", "give a gallery channel or clear it, not both.")
    if change.clear_roles and change.role_ids:
        raise InputError("clear_roles", "give roles or clear them, not both.")
    if change.command is None and (change.model or change.resolution):
        raise InputError("default_command", "say which command these defaults are for.")


def _limit(asked: N | None, current: N | None) -> N | None:
    if asked is None:
        return current
    return asked or None


def _defaults(current: Mapping[str, Mapping[str, str]],
              change: SettingsChange) -> dict[str, dict[str, str]]:
    defaults = {command: dict(values) for command, values in current.items()}
    if change.clear_defaults:
        if change.command is None:
            defaults.clear()
        else:
            defaults.pop(change.command, None)
    if change.command is None or not (change.model or change.resolution):
        return defaults
    command = Command(change.command)
    mine = defaults.setdefault(command.value, {})
    if change.model:
        mine["model"] = _model_for(command, change.model).name
    if change.resolution:
        mine[_size_option(command)] = change.resolution
    _check_fits(command, mine)
    return defaults


def _model_for(command: Command, name: str) -> catalog.Model:
    allowed = [m.name for m in catalog.models_for(command)]
    if catalog.ALIASES.get(name, name) not in allowed:
        raise InputError("default_model", f"`{name}` is not a model /{command} can use. "
                                          f"Try: {', '.join(allowed)}.")
    return catalog.get_model(name, command)


def _size_option(command: Command) -> str:
    model = catalog.default_model(command)
    found = next((o for o in SIZE_OPTIONS if o in model.options), None)
    if found is None:
        raise InputError("default_resolution", f"/{command} has no resolution to choose.")
    return found


def _check_fits(command: Command, defaults: Mapping[str, str]) -> None:
    """The default size must be one the default model makes (else every use would fail)."""
    model = catalog.get_model(defaults.get("model") or catalog.default_model(command).name)
    for name in SIZE_OPTIONS:
        value = defaults.get(name)
        option = model.options.get(name)
        if value is None or option is None or value in (option.choices or ()):
            continue
        allowed = ", ".join(str(c) for c in option.choices or ())
        raise InputError("default_resolution",
                         f"{model.name} supports {allowed} (got {value}).")


# --- usage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageReport:
    """A team's and one member's usage today and over the last 30 days (UTC days)."""

    team_today: Usage
    team_month: Usage
    user_today: Usage
    user_month: Usage
    unfinished: int  # the member's jobs not finished yet
    resets_at: float  # when today's budgets start again


async def usage_report(store: Store, team_id: str, user_id: str, now: float) -> UsageReport:
    today = teams.day_start(now)
    month = today - (MONTH_DAYS - 1) * DAY_S
    return UsageReport(
        team_today=await teams.usage(store, team_id, today),
        team_month=await teams.usage(store, team_id, month),
        user_today=await teams.usage(store, team_id, today, user_id),
        user_month=await teams.usage(store, team_id, month, user_id),
        unfinished=await teams.unfinished(store, team_id, user_id),
        resets_at=today + DAY_S,
    )
