"""Modals: trigger ids (3 s, single use), views.open/update/push with Slack's limits, the
state a submission carries, and what a view_submission's ack does to the modal."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tests.fakeslack.files import FileMethods
from tests.fakeslack.model import (
    FILE_INPUT_MAX_BYTES,
    MODAL_BLOCKS_MAX,
    MODAL_TITLE_MAX,
    PRIVATE_METADATA_MAX,
    TRIGGER_TTL_S,
    VIEW_STACK_MAX,
    FakeChannel,
    FakeUser,
    Json,
    SlackFile,
    new_id,
)
from tests.fakeslack.records import EnvelopeRecord, OpenedView
from tests.fakeslack.webapi import MethodTable
from tests.fakeslack.wire import SlackError, invalid_arguments, json_arg

_TEXT_INPUTS = {"plain_text_input", "number_input", "email_text_input", "url_text_input"}
_ONE_OPTION = {"static_select", "radio_buttons"}
_MANY_OPTIONS = {"checkboxes", "multi_static_select"}


class FileInputRejected(ValueError):
    """Slack's client would not let the user attach this file (over 10 MB, too many)."""


@dataclass(eq=False)
class Trigger:
    user: FakeUser
    channel: FakeChannel | None
    issued_at: float
    used: bool = False


def _check_text(view: Json, key: str, limit: int) -> None:
    text = str((view.get(key) or {}).get("text") or "")
    if len(text) > limit:
        raise invalid_arguments(f"must be less than {limit + 1} characters", f"/view/{key}/text")


def validate_view(view: Any) -> Json:
    """Slack's checks on a modal: type, title <= 24, <= 100 blocks, private_metadata <= 3000,
    unique block ids, a submit button when there are inputs, file_input's max_files 1-10."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        raise invalid_arguments("must be a modal view", "/view/type")
    if not (view.get("title") or {}).get("text"):
        raise invalid_arguments("missing required field: title", "/view/title")
    for key in ("title", "submit", "close"):
        _check_text(view, key, MODAL_TITLE_MAX)
    if len(str(view.get("private_metadata") or "")) > PRIVATE_METADATA_MAX:
        raise invalid_arguments(f"must be less than {PRIVATE_METADATA_MAX + 1} characters",
                                "/view/private_metadata")
    _check_blocks(view)
    return view


def _check_blocks(view: Json) -> None:
    blocks = view.get("blocks") or []
    if len(blocks) > MODAL_BLOCKS_MAX:
        raise invalid_arguments(f"no more than {MODAL_BLOCKS_MAX} items allowed", "/view/blocks")
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    if len(ids) != len(set(ids)):
        raise invalid_arguments("block_id must be unique", "/view/blocks")
    inputs = [b for b in blocks if b.get("type") == "input"]
    if inputs and not view.get("submit"):
        raise invalid_arguments("submit is required when an input block is present",
                                "/view/submit")
    for index, block in enumerate(inputs):
        element = block.get("element") or {}
        if not block.get("label") or not element.get("type"):
            raise invalid_arguments("input needs a label and an element", f"/view/blocks/{index}")
        if element["type"] == "file_input" and not 1 <= int(element.get("max_files", 1)) <= 10:
            raise invalid_arguments("max_files must be 1-10", f"/view/blocks/{index}")


def _element_state(element: Json, value: Any) -> Json:
    """What Slack puts in ``view.state.values[block][action]`` for one element."""
    kind = element["type"]
    state: Json = {"type": kind}
    options = {o["value"]: o for o in element.get("options") or []}
    if kind in _TEXT_INPUTS:
        state["value"] = None if value is None else str(value)
    elif kind in _ONE_OPTION:
        state["selected_option"] = None if value is None else _option(options, value)
    elif kind in _MANY_OPTIONS:
        state["selected_options"] = [_option(options, v) for v in value or []]
    elif kind == "file_input":
        state["files"] = [f.payload() for f in _checked_files(element, value)]
    elif kind == "users_select":
        state["selected_user"] = value
    elif kind == "multi_users_select":
        state["selected_users"] = list(value or [])
    elif kind in ("conversations_select", "channels_select"):
        state["selected_conversation" if kind.startswith("conv") else "selected_channel"] = value
    else:
        raise ValueError(f"the fake cannot fill a {kind} element")
    return state


def _option(options: Mapping[str, Json], value: str) -> Json:
    if value not in options:
        raise ValueError(f"no option {value!r} (have {sorted(options)})")
    return options[value]


def _checked_files(element: Json, value: Any) -> list[SlackFile]:
    files: list[SlackFile] = [] if value is None else (
        [value] if isinstance(value, SlackFile) else list(value))
    if len(files) > int(element.get("max_files", 1)):
        raise FileInputRejected(f"{element['action_id']} takes at most "
                                f"{element.get('max_files', 1)} files")
    for given in files:
        if (given.size if given.size is not None else len(given.data)) > FILE_INPUT_MAX_BYTES:
            raise FileInputRejected(f"{given.name} is over file_input's 10 MB")
    return files


def _initial(element: Json) -> Any:
    """What an element the user left alone submits: its initial value, as Slack's client."""
    if "initial_option" in element:
        return element["initial_option"]["value"]
    if "initial_options" in element:
        return [o["value"] for o in element["initial_options"]]
    for key in ("initial_value", "initial_users", "initial_conversation", "initial_channel",
                "initial_user"):
        if key in element:
            return element[key]
    return None


def submission_state(view: OpenedView, values: Mapping[str, Any]) -> Json:
    """``view.state`` of a submission: every input block, ``values`` keyed by block id (a
    block left out submits its initial value; None clears it).
    A required input left empty raises, as Slack's client would not submit the modal."""
    inputs = [b for b in view.blocks if b.get("type") == "input"]
    unknown = set(values) - {b.get("block_id") for b in inputs}
    if unknown:
        raise ValueError(f"view {view.callback_id!r} has no input blocks {sorted(unknown)}")
    state: dict[str, Json] = {}
    for block in inputs:
        element = block["element"]
        value = values[block["block_id"]] if block["block_id"] in values else _initial(element)
        if not block.get("optional") and value in (None, "", [], ()):
            raise ValueError(f"Slack would not submit: {block['block_id']!r} is required")
        state[block["block_id"]] = {element["action_id"]: _element_state(element, value)}
    return {"values": state}


class ViewMethods(FileMethods):
    """views.open / views.update / views.push and the triggers that open them."""

    VIEW_METHODS: ClassVar[MethodTable] = {
        "views.open": ("_views_open", None, "bot"),
        "views.update": ("_views_update", None, "bot"),
        "views.push": ("_views_push", None, "bot"),
    }

    triggers: dict[str, Trigger]
    ack_problems: list[str]  # acks Slack would reject (errors on unknown blocks, bad views)

    def new_trigger(self, user: FakeUser, channel: FakeChannel | None) -> str:
        digits = f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}"
        trigger_id = f"{digits}.{secrets.token_hex(16)}"
        self.triggers[trigger_id] = Trigger(user, channel, time.monotonic())
        return trigger_id

    def expire_trigger(self, trigger_id: str) -> None:
        """Age a trigger past its 3 s (tests: no waiting for it)."""
        self.triggers[trigger_id].issued_at -= TRIGGER_TTL_S

    def _use_trigger(self, params: Json) -> Trigger:
        trigger = self.triggers.get(str(params.get("trigger_id") or ""))
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if trigger.used:
            raise SlackError("exchanged_trigger_id")
        if time.monotonic() - trigger.issued_at > TRIGGER_TTL_S:
            raise SlackError("expired_trigger_id")
        trigger.used = True
        return trigger

    def _view_data(self, view: Json, view_id: str, root_id: str | None) -> Json:
        """Slack's view object: what the app sent plus the ids, hash and empty state."""
        defaults = {key: "" for key in ("callback_id", "external_id", "private_metadata")}
        return {**defaults, **view, "id": view_id, "team_id": self.team_id,
                "app_id": self.app_id, "bot_id": self.bot_id,
                "app_installed_team_id": self.team_id, "state": {"values": {}},
                "hash": secrets.token_hex(8), "root_view_id": root_id or view_id,
                "previous_view_id": None}

    def _open(self, view: Json, user: FakeUser, channel: FakeChannel | None,
              stack: list[OpenedView]) -> OpenedView:
        view_id = new_id("V")
        root = stack[0].id if stack else None
        opened = OpenedView(self._view_data(view, view_id, root), user, channel, stack)
        if stack:
            opened.data["previous_view_id"] = stack[-1].id
        stack.append(opened)
        self.views[view_id] = opened
        self._waiters.poke()
        return opened

    async def _views_open(self, params: Json) -> Json:
        trigger = self._use_trigger(params)
        view = validate_view(json_arg(params, "view"))
        return {"view": self._open(view, trigger.user, trigger.channel, []).data}

    async def _views_push(self, params: Json) -> Json:
        trigger = self._use_trigger(params)
        view = validate_view(json_arg(params, "view"))
        stacks = [v.stack for v in self.views.values() if v.user is trigger.user and not v.closed]
        if not stacks:
            raise SlackError("not_found")
        if len([v for v in stacks[-1] if not v.closed]) >= VIEW_STACK_MAX:
            raise SlackError("push_limit_reached")
        return {"view": self._open(view, trigger.user, trigger.channel, stacks[-1]).data}

    async def _views_update(self, params: Json) -> Json:
        view_id, external = params.get("view_id"), params.get("external_id")
        found = [v for v in self.views.values() if not v.closed
                 and (v.id == view_id or (external and v.data.get("external_id") == external))]
        if not found:
            raise SlackError("not_found")
        if params.get("hash") and params["hash"] != found[0].data["hash"]:
            raise SlackError("hash_conflict")
        return {"view": self._replace(found[0], validate_view(json_arg(params, "view"))).data}

    def _replace(self, opened: OpenedView, view: Json) -> OpenedView:
        kept = {k: opened.data[k] for k in ("id", "root_view_id", "previous_view_id")}
        opened.data = {**self._view_data(view, opened.id, None), **kept}
        opened.updates += 1
        opened.errors = {}
        self._waiters.poke()
        return opened

    def find_view(self, key: str) -> OpenedView:
        """An open view by id, else the newest open one with this callback_id."""
        if key in self.views and not self.views[key].closed:
            return self.views[key]
        found = self.open_views(key)
        if not found:
            raise KeyError(f"no open view {key!r}")
        return found[-1]

    def apply_submission_ack(self, record: EnvelopeRecord, payload: Json | None) -> None:
        """What Slack does with a view_submission's ack: errors, update, push, clear, close."""
        opened = self.views[record.payload["view"]["id"]]
        action = (payload or {}).get("response_action")
        if action == "errors":
            errors = dict(payload.get("errors") or {})  # type: ignore[union-attr]
            inputs = {b.get("block_id") for b in opened.blocks if b.get("type") == "input"}
            if set(errors) - inputs:
                unknown = sorted(set(errors) - inputs)
                self.ack_problems.append(f"errors for unknown blocks {unknown}")
            opened.errors = errors
        elif action in ("update", "push"):
            self._apply_new_view(opened, action, (payload or {}).get("view"))
        else:
            targets: Sequence[OpenedView] = opened.stack if action == "clear" else [opened]
            for view in targets:
                view.closed = True
        self._waiters.poke()

    def _apply_new_view(self, opened: OpenedView, action: str, view: Any) -> None:
        try:
            checked = validate_view(view)
        except SlackError as exc:
            self.ack_problems.append(f"response_action {action}: {exc.extra or exc.error}")
            return
        if action == "update":
            self._replace(opened, checked)
        elif len([v for v in opened.stack if not v.closed]) >= VIEW_STACK_MAX:
            self.ack_problems.append("response_action push: push_limit_reached")
        else:
            self._open(checked, opened.user, opened.channel, opened.stack)
