"""What a user does, as envelopes: slash commands, button clicks, message shortcuts, modal
submissions, events; and the ``response_url`` hooks they carry."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.fakeslack.model import (
    EphemeralMessage,
    FakeChannel,
    FakeMessage,
    FakeUser,
    Json,
    find_element,
    new_id,
)
from tests.fakeslack.records import EnvelopeRecord, ResponseHook
from tests.fakeslack.socketmode import SocketRoutes
from tests.fakeslack.views import submission_state
from tests.fakeslack.wire import SlackError, json_reply

VERIFICATION_TOKEN = "fake-verification-token"  # deprecated by Slack, still in every payload


class Interactions(SocketRoutes):
    """The builders tests call (``slash``, ``click``, ``shortcut``, ``submit_view``, ``event``)
    and the ``/hooks/{token}`` route behind every ``response_url``."""

    def _hook(self, user: FakeUser, channel: FakeChannel,
              source: FakeMessage | EphemeralMessage | None = None) -> ResponseHook:
        hook = ResponseHook(secrets.token_urlsafe(16), user, channel, source)
        self.hooks[hook.token] = hook
        return hook

    def hook_url(self, hook: ResponseHook) -> str:
        return f"{self.base_url}/hooks/{hook.token}"

    def _common(self, user: FakeUser) -> Json:
        return {"token": VERIFICATION_TOKEN, "team": self.workspace.team(),
                "user": user.brief(self.team_id), "api_app_id": self.app_id,
                "is_enterprise_install": False, "enterprise": None}

    async def slash(self, command: str, text: str = "", *, user: str | FakeUser = "alice",
                    channel: str | FakeChannel = "general", via: int | None = None
                    ) -> EnvelopeRecord:
        """A user types ``command text`` in ``channel``; await ``.acked()`` for the ack.
        ``via``: which live connection gets it (see ``send_envelope``)."""
        who, where = self.user(user), self.channel(channel)
        hook = self._hook(who, where)
        payload = {"token": VERIFICATION_TOKEN, "team_id": self.team_id,
                   "team_domain": self.workspace.domain, "channel_id": where.id,
                   "channel_name": "directmessage" if where.is_im else where.name,
                   "user_id": who.id, "user_name": who.name, "command": command, "text": text,
                   "api_app_id": self.app_id, "is_enterprise_install": "false",
                   "response_url": self.hook_url(hook),
                   "trigger_id": self.new_trigger(who, where)}
        return await self.send_envelope("slash_commands", payload, accepts_response_payload=True,
                                        user=who, channel=where, hook=hook, via=via)

    async def click(self, message: FakeMessage | EphemeralMessage, action_id: str, *,
                    user: str | FakeUser = "alice") -> EnvelopeRecord:
        """A user clicks the button (or element) ``action_id`` on a message."""
        found = find_element(message.blocks, action_id)
        if found is None or message.deleted:
            raise ValueError(f"message {message.ts} has no element {action_id!r}")
        block, element = found
        who, where = self.user(user), self.channel(message.channel_id)
        hook = self._hook(who, where, message)
        action = {"action_id": action_id, "block_id": block.get("block_id", ""),
                  "type": element.get("type"), "value": element.get("value"),
                  "text": element.get("text"), "action_ts": f"{time.time():.6f}"}
        payload = {**self._common(who), "type": "block_actions",
                   "container": {"type": "message", "message_ts": message.ts,
                                 "channel_id": where.id, "is_ephemeral": message.ephemeral},
                   "trigger_id": self.new_trigger(who, where),
                   "channel": {"id": where.id, "name": where.name},
                   "state": {"values": {}}, "response_url": self.hook_url(hook),
                   "actions": [action]}
        if isinstance(message, FakeMessage):
            payload["message"] = message.payload()
        return await self.send_envelope("interactive", payload, accepts_response_payload=False,
                                        user=who, channel=where, hook=hook)

    async def shortcut(self, message: FakeMessage, callback_id: str, *,
                       user: str | FakeUser = "alice") -> EnvelopeRecord:
        """A user runs the message shortcut ``callback_id`` on ``message``."""
        who, where = self.user(user), self.channel(message.channel_id)
        hook = self._hook(who, where)
        payload = {**self._common(who), "type": "message_action", "callback_id": callback_id,
                   "trigger_id": self.new_trigger(who, where), "message_ts": message.ts,
                   "message": message.payload(), "action_ts": f"{time.time():.6f}",
                   "channel": {"id": where.id, "name": where.name},
                   "response_url": self.hook_url(hook)}
        return await self.send_envelope("interactive", payload, accepts_response_payload=False,
                                        user=who, channel=where, hook=hook)

    async def submit_view(self, view: str, values: Mapping[str, Any], *,
                          user: str | FakeUser | None = None) -> EnvelopeRecord:
        """A user submits the open modal ``view`` (an id or a callback_id); ``values`` by
        block id: str for text inputs and selects, a list for checkboxes, SlackFile(s) for a
        file_input. Await ``.acked()``: ``response_action``/``errors`` come back there."""
        opened = self.find_view(view)
        who = self.user(user) if user is not None else opened.user
        data = {**opened.data, "state": submission_state(opened, values)}
        payload = {**self._common(who), "type": "view_submission", "view": data,
                   "trigger_id": self.new_trigger(who, opened.channel), "response_urls": []}
        return await self.send_envelope("interactive", payload, accepts_response_payload=True,
                                        user=who, channel=opened.channel)

    async def event(self, event: Json) -> EnvelopeRecord:
        """An Events API event (e.g. ``{"type": "app_mention", ...}``)."""
        payload = {"token": VERIFICATION_TOKEN, "team_id": self.team_id,
                   "api_app_id": self.app_id, "event": event, "type": "event_callback",
                   "event_id": new_id("Ev"), "event_time": int(time.time()),
                   "authorizations": [{"team_id": self.team_id, "user_id": self.bot_user.id,
                                       "is_bot": True, "is_enterprise_install": False}]}
        return await self.send_envelope("events_api", payload, accepts_response_payload=False)

    async def _hook_route(self, request: web.Request) -> web.StreamResponse:
        hook = self.hooks.get(request.match_info["token"])
        if hook is None or hook.expired():
            return json_reply({"ok": False, "error": "expired_url"}, status=404)
        if hook.used_up():
            return json_reply({"ok": False, "error": "used_url"}, status=404)
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        hook.posts.append(body)
        try:
            self.respond(hook, body)
        except SlackError as exc:
            return json_reply({"ok": False, "error": exc.error}, status=400)
        self._waiters.poke()
        return json_reply({"ok": True})
