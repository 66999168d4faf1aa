"""Injected interactions (slash, click, modal), their callbacks and their webhook routes."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.fakediscord.gateway import GatewayRoutes
from tests.fakediscord.model import (
    EPHEMERAL,
    EVERYONE_PERMISSIONS,
    LOADING,
    FakeChannel,
    FakeMessage,
    FakeUpload,
    FakeUser,
    Json,
    find_custom_ids,
    new_snowflake,
)
from tests.fakediscord.records import CallbackRecord, InteractionRecord
from tests.fakediscord.wire import (
    ApiError,
    Body,
    check_message,
    check_upload,
    json_response,
    read_body,
)


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    return 10 if isinstance(value, float) else 3


def _declared_option_types(command: Json | None, path: Sequence[str]) -> dict[str, int]:
    options: list[Json] = (command or {}).get("options", [])
    for part in path:
        options = next((o.get("options", []) for o in options if o["name"] == part), [])
    return {option["name"]: option["type"] for option in options}


def _nest_options(path: Sequence[str], leaf: list[Json]) -> list[Json]:
    """Wrap leaf options in subcommand (1) / subcommand group (2) options."""
    options = leaf
    for depth in reversed(range(len(path))):
        kind = 1 if depth == len(path) - 1 else 2
        options = [{"name": path[depth], "type": kind, "options": options}]
    return options


def _submitted_component(component: Json, values: Mapping[str, str]) -> Json:
    """What Discord sends back for one component of a modal the bot opened."""
    if component["type"] == 1:
        children = [_submitted_component(c, values) for c in component["components"]]
        return {"type": 1, "components": children}
    if component["type"] == 18:
        return {"type": 18, "component": _submitted_component(component["component"], values)}
    custom_id = component.get("custom_id", "")
    if component["type"] == 4:
        return {"type": 4, "custom_id": custom_id, "value": values.get(custom_id, "")}
    chosen = [values[custom_id]] if custom_id in values else []
    return {"type": component["type"], "custom_id": custom_id, "values": chosen}


def _modal_components(definition: Json | None, values: Mapping[str, str]) -> list[Json]:
    if definition is None:
        return [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
                for k, v in values.items()]
    unknown = set(values) - set(find_custom_ids(definition["components"]))
    if unknown:
        raise ValueError(f"modal {definition.get('custom_id')!r} has no inputs {sorted(unknown)}")
    return [_submitted_component(c, values) for c in definition["components"]]


class InteractionRoutes(GatewayRoutes):
    """Injected interactions, their callbacks and the webhook routes of their tokens."""

    _by_token: dict[str, InteractionRecord]
    _modals: dict[str, tuple[Json, InteractionRecord]]

    async def slash(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: str | FakeUser = "alice",
        channel_id: int | None = None,
        guild_id: int | None = None,
        attachments: Mapping[str, FakeUpload] | None = None,
        id_time: datetime | None = None,
        attachment_size_limit: int | None = None,
    ) -> InteractionRecord:
        """Inject a chat-input command; ``name`` may be "group sub" for subcommands."""
        channel = self._pick_channel(channel_id, guild_id)
        data = self._command_data(name, options or {}, attachments or {}, channel)
        return await self._inject(2, data, user=user, channel=channel, id_time=id_time,
                                  size_limit=attachment_size_limit)

    async def click(
        self,
        custom_id: str,
        message_id: int,
        *,
        user: str | FakeUser = "alice",
        values: Sequence[str] | None = None,
        id_time: datetime | None = None,
        attachment_size_limit: int | None = None,
    ) -> InteractionRecord:
        """Inject a button click (or a select choice with ``values``) on a stored message."""
        message = self._by_id.get(message_id)
        if message is None or message.deleted:
            raise KeyError(f"no message {message_id}")
        if custom_id not in message.custom_ids:
            raise ValueError(f"message {message_id} has no component {custom_id!r}")
        data: Json = {"custom_id": custom_id, "component_type": 2 if values is None else 3}
        if values is not None:
            data["values"] = list(values)
        return await self._inject(3, data, user=user, channel=self._channel_of(message.channel_id),
                                  id_time=id_time, size_limit=attachment_size_limit,
                                  message=message)

    async def submit_modal(
        self,
        custom_id: str,
        values: Mapping[str, str],
        *,
        user: str | FakeUser | None = None,
        channel_id: int | None = None,
        id_time: datetime | None = None,
    ) -> InteractionRecord:
        """Inject a MODAL_SUBMIT, shaped like the modal the bot opened (if it did)."""
        definition, opener = self._modals.get(custom_id, (None, None))
        channel = self._pick_channel(channel_id, None) if opener is None else opener.channel
        data = {"custom_id": custom_id, "components": _modal_components(definition, values)}
        who = user or (opener.user if opener else "alice")
        return await self._inject(5, data, user=who, channel=channel, id_time=id_time,
                                  size_limit=None)

    def opened_modal(self, custom_id: str) -> Json | None:
        """The modal the bot opened with this custom_id (its ``data``), if it did."""
        found = self._modals.get(custom_id)
        return found[0] if found else None

    def _pick_channel(self, channel_id: int | None, guild_id: int | None) -> FakeChannel:
        if channel_id is not None:
            return self.channel(channel_id)
        guild = self.guilds[guild_id] if guild_id is not None else self.guild
        return guild.channels[0]

    def _command_data(
        self, name: str, options: Mapping[str, Any], attachments: Mapping[str, FakeUpload],
        channel: FakeChannel,
    ) -> Json:
        top, *path = name.split()
        command = self.find_command(top, channel.guild_id)
        declared = _declared_option_types(command, path)
        leaf = [{"name": key, "type": declared.get(key) or _infer_option_type(value),
                 "value": value} for key, value in options.items()]
        resolved: dict[str, Json] = {}
        for key, upload in attachments.items():
            stored = self._store_file(upload)
            leaf.append({"name": key, "type": 11, "value": str(stored.id)})
            resolved.setdefault("attachments", {})[str(stored.id)] = stored.payload()
        for option in leaf:
            self._resolve(option, channel, resolved)
        data: Json = {"id": command["id"] if command else str(new_snowflake()), "name": top,
                      "type": 1, "options": _nest_options(path, leaf)}
        if resolved:
            data["resolved"] = resolved
        if command is not None and "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return data

    def _resolve(self, option: Json, channel: FakeChannel, resolved: Json) -> None:
        """Channel (7) and role (8) options carry their objects in `resolved`, as Discord
        sends them (discord.py cannot make a channel option from a bare id)."""
        if option["type"] == 7:
            target = self.channel(int(option["value"]))
            entry = {**target.payload(), "permissions": str(EVERYONE_PERMISSIONS)}
            resolved.setdefault("channels", {})[str(target.id)] = entry
        elif option["type"] == 8:
            roles = self.guilds[channel.guild_id or 0].all_roles()
            place = next(i for i, r in enumerate(roles) if r.id == int(option["value"]))
            resolved.setdefault("roles", {})[str(roles[place].id)] = roles[place].payload(place)

    async def _inject(
        self, kind: int, data: Json, *, user: str | FakeUser, channel: FakeChannel,
        id_time: datetime | None, size_limit: int | None, message: FakeMessage | None = None,
    ) -> InteractionRecord:
        who = self.user(user)
        limit = channel.upload_limit if size_limit is None else size_limit
        payload = self._interaction_payload(new_snowflake(id_time), kind, data, who, channel, limit)
        if message is not None:
            payload["message"] = message.payload()
        record = InteractionRecord(payload, channel=channel, user=who, size_limit=limit,
                                   component_message=message, waiters=self._waiters)
        self.interactions.append(record)
        self._by_token[record.token] = record
        if await self.dispatch("INTERACTION_CREATE", payload) == 0:
            raise RuntimeError("no bot is connected to the fake gateway")
        return record

    def _interaction_payload(
        self, interaction_id: int, kind: int, data: Json, user: FakeUser, channel: FakeChannel,
        size_limit: int,
    ) -> Json:
        guild = self.guilds.get(channel.guild_id or 0)
        app_permissions = guild.permissions_of(self.bot_user) if guild else EVERYONE_PERMISSIONS
        payload: Json = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "token": f"itoken-{secrets.token_urlsafe(24)}",
            "version": 1,
            "channel_id": str(channel.id),
            "channel": channel.payload(),
            "app_permissions": str(app_permissions),
            "locale": user.locale,
            "attachment_size_limit": size_limit,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id) if guild else "0"},
            "context": 0 if guild else 1,
        }
        if guild is None:
            return {**payload, "user": user.payload()}
        member = guild.member_payload(user, with_permissions=True)
        return {**payload, "guild_id": str(guild.id), "guild_locale": "en-US", "member": member,
                "guild": {"id": str(guild.id), "locale": "en-US", "features": []}}

    # ---- POST /interactions/{interaction}/{token}/callback

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        record = self._by_token.get(request.match_info["token"])
        if record is None or str(record.id) != request.match_info["interaction"]:
            raise ApiError(404, 10062, "Unknown interaction")
        body = await read_body(request)
        attempt = CallbackRecord(int(body.json.get("type", 0)), body.json.get("data") or {},
                                 time.monotonic() - record.injected_at)
        record.attempts.append(attempt)
        if record.callback is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if attempt.latency_s > self.ack_deadline_s:
            raise ApiError(404, 10062, "Unknown interaction")
        check_upload(body, record.size_limit)
        message = self._apply_callback(record, attempt, Body(attempt.data, body.files))
        attempt.accepted, record.callback = True, attempt
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        return json_response(self._callback_result(record, attempt, message))

    def _apply_callback(
        self, record: InteractionRecord, attempt: CallbackRecord, body: Body
    ) -> FakeMessage | None:
        """Apply a callback; returns the message it created or updated (types 4, 5, 7)."""
        if attempt.type == 4:
            check_message(body, creating=True)
            extra = record.message_fields(self.application_id)
            record.original = self._new_message(record.channel, body, extra=extra)
            return record.original
        if attempt.type == 5:
            thinking = Body({"flags": (attempt.data.get("flags") or 0) & EPHEMERAL})
            extra = record.message_fields(self.application_id)
            record.original = self._new_message(record.channel, thinking, flags=LOADING,
                                                extra=extra)
            record.thinking = True
            return record.original
        if attempt.type in (6, 7):
            return self._update_component_message(record, body if attempt.type == 7 else None)
        if attempt.type == 9:
            self._modals[str(attempt.data.get("custom_id"))] = (attempt.data, record)
        return None

    def _update_component_message(
        self, record: InteractionRecord, body: Body | None
    ) -> FakeMessage | None:
        message = record.component_message
        if message is None:
            raise ApiError(400, 50035, "Invalid Form Body (not a component interaction)")
        record.original = message
        if body is None:
            return None
        check_message(body, creating=False)
        return self._edit_message(message, body)

    @staticmethod
    def _callback_result(
        record: InteractionRecord, attempt: CallbackRecord, message: FakeMessage | None
    ) -> Json:
        info: Json = {"id": str(record.id), "type": record.type,
                      "response_message_loading": attempt.type == 5,
                      "response_message_ephemeral": bool(message and message.ephemeral)}
        if message is None:
            return {"interaction": info}
        info["response_message_id"] = str(message.id)
        return {"interaction": info,
                "resource": {"type": attempt.type, "message": message.payload()}}

    # ---- /webhooks/{app}/{token}...

    def _token_record(self, request: web.Request) -> InteractionRecord:
        record = self._by_token.get(request.match_info["token"])
        if record is None or request.match_info["app"] != str(self.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        if record.token_expired():
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if record.callback is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        return record

    async def _execute_webhook(self, request: web.Request) -> web.StreamResponse:
        record = self._token_record(request)
        body = await read_body(request)
        check_upload(body, record.size_limit)
        check_message(body, creating=True)
        if record.thinking and record.original is not None:
            record.thinking = False  # the first followup after a defer edits the thinking message
            message = self._edit_message(record.original, body)
        else:
            extra = record.message_fields(self.application_id)
            message = self._new_message(record.channel, body, extra=extra)
        record.followups.append(message)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message.payload())
        return web.Response(status=204)

    async def _webhook_message(self, request: web.Request) -> web.StreamResponse:
        record = self._token_record(request)
        message = record.message(request.match_info["message"])
        if request.method == "GET":
            return json_response(message.payload())
        if request.method == "DELETE":
            self._delete_message(message)
            return web.Response(status=204)
        body = await read_body(request)
        check_upload(body, record.size_limit)
        check_message(body, creating=False)
        if message is record.original:
            record.thinking = False
        return json_response(self._edit_message(message, body).payload())
