"""The workspace's settings as a modal (`wan:settings`), for workspace admins: who may make
videos (people and user groups), the gallery channel, the limits and a command's defaults.

The modal shows the current values, so its submission is the whole new state: an empty field
means none (no gallery, everyone may, no limit).
"""

from __future__ import annotations

import json
from typing import Any

from bot.errors import InputError
from bot.frontends.common.team_admin import SettingsChange
from bot.frontends.common.teams import TeamSettings
from bot.frontends.slack.modals import values_of
from bot.provider import catalog
from bot.provider.catalog import Command

CALLBACK = "wan:settings"
NOT_ADMIN = "Only workspace admins and owners can see or change these settings."
LIMITS = (("user_jobs", "Unfinished jobs one person may have", "user_max_concurrent"),
          ("user_daily_seconds", "Seconds of video one person may make per day",
           "user_daily_seconds"),
          ("team_daily_seconds", "Seconds of video the workspace may make per day",
           "team_daily_seconds"))
Block = dict[str, Any]


def settings_view(current: TeamSettings, channel_id: str) -> dict[str, Any]:
    users = [i for i in current.generate_role_ids if not i.startswith("S")]
    groups = [i for i in current.generate_role_ids if i.startswith("S")]
    people: Block = {"type": "multi_users_select", "action_id": "people"}
    if users:
        people["initial_users"] = users
    gallery: Block = {"type": "conversations_select", "action_id": "gallery",
                      "filter": {"include": ["public", "private"]}}
    if current.gallery_channel_id:
        gallery["initial_conversation"] = current.gallery_channel_id
    blocks = [_input("people", "Who may make videos (empty: everyone)", people),
              _text("groups", "…and user group ids (S…), separated by spaces", " ".join(groups)),
              _input("gallery", "Gallery channel: a copy of every public video", gallery)]
    blocks += [_text(name, label, _number(getattr(current, field)))
               for name, label, field in LIMITS]
    blocks += [_select("default_command", "Defaults for the command", [c.value for c in Command]),
               _select("default_model", "…its default model", list(catalog.MODELS)),
               _text("default_resolution", "…its default resolution or size", "")]
    return {"type": "modal", "callback_id": CALLBACK, "blocks": blocks,
            "private_metadata": json.dumps({"channel_id": channel_id}),
            "title": {"type": "plain_text", "text": "Wan settings"},
            "submit": {"type": "plain_text", "text": "Save"}}


def read_settings(view: dict[str, Any]) -> SettingsChange:
    """The change a submission asks for (InputError naming the block that is wrong)."""
    values = values_of(view)
    roles = tuple(values.get("people") or ()) + tuple((values.get("groups") or "").split())
    gallery = values.get("gallery")
    limits = {field: _parse(name, values.get(name)) for name, _, field in LIMITS}
    return SettingsChange(
        gallery_channel_id=gallery or None, clear_gallery=not gallery, role_ids=roles,
        clear_roles=not roles, user_max_concurrent=int(limits["user_max_concurrent"]),
        user_daily_seconds=limits["user_daily_seconds"],
        team_daily_seconds=limits["team_daily_seconds"],
        command=values.get("default_command"), model=values.get("default_model"),
        resolution=(values.get("default_resolution") or "").strip() or None)


def _parse(name: str, raw: str | None) -> float:
    text = (raw or "").strip()
    if not text:
        return 0.0  # no limit
    try:
        value = float(text)
    except ValueError:
        raise InputError(name, "a number, or empty for no limit.") from None
    if value < 0 or (name == "user_jobs" and not value.is_integer()):
        raise InputError(name, "a whole number, 0 or more." if name == "user_jobs"
                         else "a number of seconds, 0 or more.")
    return value


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _input(block_id: str, label: str, element: Block) -> Block:
    return {"type": "input", "block_id": block_id, "optional": True, "element": element,
            "label": {"type": "plain_text", "text": label}}


def _text(block_id: str, label: str, initial: str) -> Block:
    element: Block = {"type": "plain_text_input", "action_id": block_id}
    if initial:
        element["initial_value"] = initial
    return _input(block_id, label, element)


def _select(block_id: str, label: str, values: list[str]) -> Block:
    options = [{"text": {"type": "plain_text", "text": v}, "value": v} for v in values]
    return _input(block_id, label, {"type": "static_select", "action_id": block_id,
                                    "options": options})
