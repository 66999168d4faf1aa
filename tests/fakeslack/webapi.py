"""Web API methods about identity, messages, conversations, users and user groups."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import ClassVar

from tests.fakeslack.model import (
    MESSAGE_BLOCKS_MAX,
    MESSAGE_TEXT_MAX,
    FakeChannel,
    FakeMessage,
    Json,
)
from tests.fakeslack.state import FakeState
from tests.fakeslack.wire import SlackError, json_arg

Handler = Callable[[Json], Awaitable[Json]]
# method -> (handler attribute, scope the bot token needs or None, token kind)
MethodTable = dict[str, tuple[str, str | None, str]]

_HISTORY_SCOPES = {"im": "im:history", "private": "groups:history", "public": "channels:history"}
_READ_SCOPES = {"im": "im:read", "private": "groups:read", "public": "channels:read"}


def _kind(channel: FakeChannel) -> str:
    return "im" if channel.is_im else ("private" if channel.is_private else "public")


def message_content(params: Json) -> tuple[str, list[Json]]:
    """Text and blocks of a message call, checked as Slack checks them."""
    text = str(params.get("text") or "")
    blocks = json_arg(params, "blocks") or []
    if not text and not blocks and not params.get("attachments"):
        raise SlackError("no_text")
    if len(text) > MESSAGE_TEXT_MAX:
        raise SlackError("msg_too_long")
    if not isinstance(blocks, list) or len(blocks) > MESSAGE_BLOCKS_MAX:
        raise SlackError("invalid_blocks")
    if any(not isinstance(b, dict) or not b.get("type") for b in blocks):
        raise SlackError("invalid_blocks")
    return text, blocks


class WebApiMethods(FakeState):
    """auth, apps.connections.open, chat.*, conversations.*, users.info, usergroups."""

    WEB_METHODS: ClassVar[MethodTable] = {
        "auth.test": ("_auth_test", None, "bot"),
        "apps.connections.open": ("_connections_open", None, "app"),
        "chat.postMessage": ("_post_message", "chat:write", "bot"),
        "chat.update": ("_update_message", "chat:write", "bot"),
        "chat.postEphemeral": ("_post_ephemeral", "chat:write", "bot"),
        "chat.delete": ("_delete_message", "chat:write", "bot"),
        "chat.getPermalink": ("_permalink", None, "bot"),
        "conversations.open": ("_open_conversation", "im:write", "bot"),
        "conversations.info": ("_conversation_info", None, "bot"),
        "conversations.history": ("_history", None, "bot"),
        "conversations.replies": ("_replies", None, "bot"),
        "users.info": ("_users_info", "users:read", "bot"),
        "usergroups.users.list": ("_usergroup_users", "usergroups:read", "bot"),
    }

    tickets: set[str]
    ephemeral_edits: list[tuple[str, str]]  # (method, ts) of refused edits of ephemerals

    def require_scope(self, scope: str) -> None:
        provided = self.workspace.scopes
        if scope not in provided:
            raise SlackError("missing_scope",
                             extra={"needed": scope, "provided": ",".join(sorted(provided))})

    def usergroup_id(self, handle: str) -> str:
        """The id of a user group given by handle in ``FakeWorkspace.usergroups``."""
        return next(gid for gid, name in self.usergroup_ids.items() if name == handle)

    async def _auth_test(self, params: Json) -> Json:
        return {"url": self.base_url + "/", "team": self.workspace.name,
                "user": self.bot_user.name, "team_id": self.team_id,
                "user_id": self.bot_user.id, "bot_id": self.bot_id, "app_id": self.app_id,
                "is_enterprise_install": False}

    async def _connections_open(self, params: Json) -> Json:
        ticket = secrets.token_urlsafe(12)
        self.tickets.add(ticket)
        return {"url": "ws" + self.base_url.removeprefix("http") + f"/link/?ticket={ticket}"}

    async def _post_message(self, params: Json) -> Json:
        channel = self.target_channel(str(params.get("channel") or ""))
        text, blocks = message_content(params)
        message = self.bot_message(channel, text, blocks, self._thread_root(channel, params))
        message.metadata = json_arg(params, "metadata")
        return {"channel": channel.id, "ts": message.ts, "message": message.payload()}

    def _thread_root(self, channel: FakeChannel, params: Json) -> str | None:
        """The thread to reply in: a reply's ts given as ``thread_ts`` means its parent."""
        thread_ts = str(params.get("thread_ts") or "") or None
        given = next((m for m in self.messages.get(channel.id, []) if m.ts == thread_ts), None)
        return given.thread_ts if given is not None and given.thread_ts else thread_ts

    def _own_message(self, params: Json, method: str) -> FakeMessage:
        """The bot's message at (channel, ts); ephemerals and others' messages are refused."""
        channel_id, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        channel = self.target_channel(channel_id)
        if any(e.ts == ts and e.channel_id == channel.id for e in self.ephemerals):
            self.ephemeral_edits.append((method, ts))
            raise SlackError("message_not_found")  # Slack never stored the ephemeral
        message = self.message_in(channel, ts)
        if message.user_id != self.bot_user.id:
            raise SlackError("cant_update_message" if method == "chat.update"
                             else "cant_delete_message")
        return message

    async def _update_message(self, params: Json) -> Json:
        message = self._own_message(params, "chat.update")
        text, blocks = message_content(params)
        message.text, message.edits = text, message.edits + 1
        if "blocks" in params:
            message.blocks = blocks
        self._waiters.poke()
        return {"channel": message.channel_id, "ts": message.ts, "text": message.text,
                "message": message.payload()}

    async def _post_ephemeral(self, params: Json) -> Json:
        channel = self.target_channel(str(params.get("channel") or ""))
        user = self.user_by_id(str(params.get("user") or ""))
        if user is None:
            raise SlackError("user_not_found")
        if channel.dm_user is not None and channel.dm_user is not user:
            raise SlackError("user_not_in_channel")
        text, blocks = message_content(params)
        message = self.ephemeral(channel, user, text, blocks, params.get("thread_ts"))
        return {"message_ts": message.ts}

    async def _delete_message(self, params: Json) -> Json:
        message = self._own_message(params, "chat.delete")
        message.deleted = True
        self._waiters.poke()
        return {"channel": message.channel_id, "ts": message.ts}

    async def _permalink(self, params: Json) -> Json:
        channel = self.channels.get(str(params.get("channel") or ""))
        if channel is None:
            raise SlackError("channel_not_found")
        message = self.message_in(channel, str(params.get("message_ts") or ""))
        link = f"{self.base_url}/archives/{channel.id}/p{message.ts.replace('.', '')}"
        return {"channel": channel.id, "permalink": link}

    async def _open_conversation(self, params: Json) -> Json:
        ids = [u for u in str(params.get("users") or "").split(",") if u]
        if len(ids) != 1:
            raise SlackError("not_enough_users" if not ids else "too_many_users")
        user = self.user_by_id(ids[0])
        if user is None or user.is_bot:
            raise SlackError("user_not_found")
        return {"channel": self.dm_channel(user).payload(), "already_open": False}

    def _readable(self, params: Json, scopes: dict[str, str]) -> FakeChannel:
        channel = self.channels.get(str(params.get("channel") or ""))
        if channel is None or (channel.is_private and not channel.bot_member):
            raise SlackError("channel_not_found")
        self.require_scope(scopes[_kind(channel)])
        return channel

    async def _conversation_info(self, params: Json) -> Json:
        return {"channel": self._readable(params, _READ_SCOPES).payload()}

    async def _history(self, params: Json) -> Json:
        channel = self._readable(params, _HISTORY_SCOPES)
        if not channel.bot_member:
            raise SlackError("not_in_channel")
        pool = [m for m in self.messages.get(channel.id, []) if not m.deleted and not m.thread_ts]
        oldest, latest = float(params.get("oldest") or 0), float(params.get("latest") or 1e12)
        chosen = [m for m in reversed(pool) if oldest <= float(m.ts) <= latest]
        limit = int(params.get("limit") or 100)
        start = int(params.get("cursor") or 0)
        page = chosen[start:start + limit]
        more = start + limit < len(chosen)
        return {"messages": [m.payload(len(self.thread(channel, m.ts))) for m in page],
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    async def _replies(self, params: Json) -> Json:
        channel = self._readable(params, _HISTORY_SCOPES)
        ts = str(params.get("ts") or "")
        parent = next((m for m in self.messages.get(channel.id, [])
                       if m.ts == ts and not m.deleted), None)
        if parent is None:
            raise SlackError("thread_not_found")
        replies = self.thread(channel, ts)
        return {"messages": [parent.payload(len(replies)), *(m.payload() for m in replies)],
                "has_more": False, "response_metadata": {"next_cursor": ""}}

    async def _users_info(self, params: Json) -> Json:
        user = self.user_by_id(str(params.get("user") or ""))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user.payload(self.team_id)}

    async def _usergroup_users(self, params: Json) -> Json:
        handle = self.usergroup_ids.get(str(params.get("usergroup") or ""))
        if handle is None:
            raise SlackError("no_such_subteam")
        names = self.workspace.usergroups[handle]
        return {"users": [self.users[name].id for name in names]}
