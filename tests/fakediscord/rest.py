"""Bot-token REST routes: users, application, commands, guilds, channels, messages, CDN."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.fakediscord.model import FakeChannel, FakeMessage, Json, new_snowflake
from tests.fakediscord.records import CommandSync
from tests.fakediscord.state import FakeState
from tests.fakediscord.wire import (
    ApiError,
    check_message,
    check_upload,
    current_request,
    json_response,
    read_body,
)

_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")


def _history(messages: list[FakeMessage], query: Mapping[str, str]) -> list[FakeMessage]:
    """``GET /channels/{id}/messages`` selection, newest first like Discord."""
    limit = max(1, min(int(query.get("limit", 50)), 100))
    if "after" in query:
        chosen = [m for m in messages if m.id > int(query["after"])][:limit]
    elif "before" in query:
        chosen = [m for m in messages if m.id < int(query["before"])][-limit:]
    elif "around" in query:
        index = next((i for i, m in enumerate(messages) if m.id >= int(query["around"])), 0)
        start = max(0, index - limit // 2)
        chosen = messages[start : start + limit]
    else:
        chosen = messages[-limit:]
    return list(reversed(chosen))


def _check_command(item: Mapping[str, Any], slash: bool) -> None:
    """Discord's name/description/option-count rules; 400 50035 like the real API."""
    name, description = item.get("name", ""), item.get("description", "")
    options = item.get("options") or []
    bad_name = slash and (not _COMMAND_NAME.match(name) or name != name.lower())
    bad_description = slash and not 1 <= len(description) <= 100
    if bad_name or bad_description or len(options) > 25:
        raise ApiError(400, 50035, f"Invalid Form Body (command or option {name!r})")
    for option in options:
        _check_command(option, slash)


class RestRoutes(FakeState):
    """Bot-token routes: users, application, commands, guilds, channels, messages, CDN."""

    def _bot_user_payload(self) -> Json:
        return {**self.bot_user.payload(), "verified": True, "mfa_enabled": False}

    async def _get_me(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._bot_user_payload())

    async def _get_application(self, request: web.Request) -> web.StreamResponse:
        return json_response({
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "icon": None,
            "description": "",
            "summary": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": self.owner.payload(),
            "team": None,
            "bot": self.bot_user.payload(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": len(self.guilds),
        })

    async def _get_gateway(self, request: web.Request) -> web.StreamResponse:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway_url, "shards": self.recommended_shards,
                              "session_start_limit": limit})

    async def _get_user(self, request: web.Request) -> web.StreamResponse:
        user = self._user_by_id(int(request.match_info["user"]))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return json_response(user.payload())

    async def _create_dm(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        user = self._user_by_id(int(body.json.get("recipient_id") or 0))
        if user is None:
            raise ApiError(400, 50035, "Invalid Form Body (recipient_id)")
        return json_response(self.dm_channel(user).payload())

    async def _get_commands(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.commands.get(self._command_scope(request), []))

    async def _put_commands(self, request: web.Request) -> web.StreamResponse:
        scope = self._command_scope(request)
        body = await read_body(request)
        payload: list[Json] = body.json if isinstance(body.json, list) else []
        for item in payload:
            _check_command(item, item.get("type", 1) == 1)
        previous = {(c["name"], c.get("type", 1)): c for c in self.commands.get(scope, [])}
        stored = [self._registered(c, scope, previous.get((c["name"], c.get("type", 1))))
                  for c in payload]
        self.commands[scope] = stored
        self.command_syncs.append(CommandSync(scope, stored))
        return json_response(stored)

    def _command_scope(self, request: web.Request) -> int | None:
        if request.match_info["app"] != str(self.application_id):
            raise ApiError(403, 50001, "Missing Access")
        raw = request.match_info.get("guild")
        return None if raw is None else self._guild_of(raw).id

    def _registered(self, command: Json, scope: int | None, old: Json | None) -> Json:
        stored = {"type": 1, "description": "", "dm_permission": True, "nsfw": False,
                  "default_member_permissions": None, **command,
                  "id": old["id"] if old else str(new_snowflake()),
                  "application_id": str(self.application_id), "version": str(new_snowflake())}
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    async def _get_guild(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._guild_of(request.match_info["guild"]).payload())

    async def _get_guild_channels(self, request: web.Request) -> web.StreamResponse:
        guild = self._guild_of(request.match_info["guild"])
        return json_response([channel.payload() for channel in guild.channels])

    async def _get_member(self, request: web.Request) -> web.StreamResponse:
        guild = self._guild_of(request.match_info["guild"])
        wanted = int(request.match_info["user"])
        found = [u for u in (self.bot_user, *guild.members) if u.id == wanted]
        if not found:
            raise ApiError(404, 10007, "Unknown Member")
        return json_response(guild.member_payload(found[0]))

    async def _get_channel(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._channel_of(request.match_info["channel"]).payload())

    async def _typing(self, request: web.Request) -> web.StreamResponse:
        self._channel_of(request.match_info["channel"])
        return web.Response(status=204)

    async def _list_messages(self, request: web.Request) -> web.StreamResponse:
        channel = self._channel_of(request.match_info["channel"])
        chosen = _history(self.messages.get(channel.id, []), request.query)
        return json_response([message.payload() for message in chosen])

    async def _get_message(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        return json_response(self._message_in(info["channel"], info["message"]).payload())

    async def _post_message(self, request: web.Request) -> web.StreamResponse:
        channel = self._channel_of(request.match_info["channel"])
        body = await read_body(request)
        if channel.recipient is not None and not channel.recipient.dms_open:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        check_upload(body, channel.upload_limit)
        check_message(body, creating=True)
        message = self._new_message(channel, body, extra=self._reply_fields(channel, body.json))
        return json_response(message.payload())

    def _reply_fields(self, channel: FakeChannel, data: Json) -> Json:
        reference = data.get("message_reference")
        if not reference:
            return {}
        target = self._by_id.get(int(reference.get("message_id") or 0))
        resolved = target.payload() if target and not target.deleted else None
        full_reference = {"channel_id": str(channel.id), **reference}
        return {"type": 19, "message_reference": full_reference, "referenced_message": resolved}

    async def _patch_message(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        message = self._message_in(info["channel"], info["message"])
        if message.author_id != self.bot_user.id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        body = await read_body(request)
        check_upload(body, self._channel_of(info["channel"]).upload_limit)
        check_message(body, creating=False)
        return json_response(self._edit_message(message, body).payload())

    async def _delete_message_route(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        self._delete_message(self._message_in(info["channel"], info["message"]))
        return web.Response(status=204)

    async def _get_attachment(self, request: web.Request) -> web.StreamResponse:
        stored = self.files.get(int(request.match_info["file"]))
        if stored is None:
            raise ApiError(404, 0, "404: Not Found")
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})

    async def _unhandled(self, request: web.Request) -> web.StreamResponse:
        self.unhandled.append(current_request.get())
        raise ApiError(404, 0, "404: Not Found")
