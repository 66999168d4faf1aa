"""The fake's in-memory state (users, guilds, channels, messages, files) and its waiters."""

from __future__ import annotations

import mimetypes
import re
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

from tests.fakediscord.model import (
    ACK_DEADLINE_S,
    DEFAULT_WAIT_S,
    EPHEMERAL,
    LOADING,
    FakeChannel,
    FakeFile,
    FakeGuild,
    FakeMessage,
    FakeUpload,
    FakeUser,
    Json,
    iso_time,
    new_snowflake,
)
from tests.fakediscord.records import (
    CommandSync,
    GatewaySession,
    InteractionRecord,
    Waiters,
)
from tests.fakediscord.wire import ApiError, Body, RecordedRequest

T = TypeVar("T")
_MENTION = re.compile(r"<@!?(\d+)>")


def _edited_flags(old: int, new: int | None) -> int:
    """Ephemeral can't change; an edit always ends the "thinking" state."""
    return (old & EPHEMERAL) | ((old if new is None else new) & ~(EPHEMERAL | LOADING))


class FakeState:
    """Users, guilds, channels, messages and files, plus the change notifications."""

    def __init__(
        self,
        guilds: Sequence[FakeGuild] | None,
        *,
        token: str,
        bot_name: str,
        owner: str,
    ) -> None:
        self.token = token
        self.bot_user = FakeUser(bot_name, bot=True)
        self.application_id = self.bot_user.id
        chosen = list(guilds) if guilds is not None else [FakeGuild()]
        self.guilds: dict[int, FakeGuild] = {guild.id: guild for guild in chosen}
        self.channels: dict[int, FakeChannel] = {c.id: c for g in chosen for c in g.channels}
        self.users: dict[str, FakeUser] = {u.name: u for g in chosen for u in g.members}
        self.owner = self.users.get(owner) or FakeUser(owner)
        self.messages: defaultdict[int, list[FakeMessage]] = defaultdict(list)
        self.files: dict[int, FakeFile] = {}
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        self.commands: dict[int | None, list[Json]] = {}
        self.command_syncs: list[CommandSync] = []
        self.interactions: list[InteractionRecord] = []
        self.gateways: list[GatewaySession] = []
        self.ack_deadline_s = ACK_DEADLINE_S
        self.recommended_shards = 1  # what GET /gateway/bot answers as `shards`
        self.base_url = ""
        self._by_id: dict[int, FakeMessage] = {}
        self._waiters = Waiters()

    @property
    def guild(self) -> FakeGuild:
        """The first (by default the only) guild."""
        return next(iter(self.guilds.values()))

    def channel(self, key: str | int) -> FakeChannel:
        """A channel by id or by name."""
        found = [c for c in self.channels.values() if key in (c.id, c.name)]
        if not found:
            raise KeyError(f"no channel {key!r}")
        return found[0]

    def user(self, who: str | FakeUser) -> FakeUser:
        return who if isinstance(who, FakeUser) else self.users[who]

    def dm_channel(self, who: str | FakeUser) -> FakeChannel:
        """The DM channel with a user, opened if needed."""
        user = self.user(who)
        found = [c for c in self.channels.values() if c.recipient is user]
        if found:
            return found[0]
        channel = FakeChannel(user.name, type=1, recipient=user)
        self.channels[channel.id] = channel
        return channel

    def _user_by_id(self, user_id: int) -> FakeUser | None:
        everyone = [self.bot_user, self.owner, *self.users.values()]
        return next((u for u in everyone if u.id == user_id), None)

    def _channel_of(self, channel_id: str | int) -> FakeChannel:
        channel = self.channels.get(int(channel_id))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _guild_of(self, guild_id: str | int) -> FakeGuild:
        guild = self.guilds.get(int(guild_id))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    def _message_in(self, channel_id: str | int, message_id: str | int) -> FakeMessage:
        message = self._by_id.get(int(message_id))
        if message is None or message.deleted or message.channel_id != int(channel_id):
            raise ApiError(404, 10008, "Unknown Message")
        return message

    def _store_file(self, upload: FakeUpload, description: str | None = None) -> FakeFile:
        file_id = new_snowflake()
        guessed = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        path = f"/attachments/{file_id}/{urllib.parse.quote(upload.filename)}"
        stored = FakeFile(
            id=file_id,
            filename=upload.filename,
            data=upload.data,
            url=self.base_url + path,
            content_type=upload.content_type or guessed,
            size=upload.size,
            width=upload.width,
            height=upload.height,
            description=description,
        )
        self.files[file_id] = stored
        return stored

    def _attached_files(self, body: Body, existing: list[FakeFile]) -> list[FakeFile]:
        """Discord's rule: ``attachments`` lists what to keep (by id) and new files (by index)."""
        entries = body.json.get("attachments")
        if entries is None:
            return [*existing, *(self._store_file(part.upload()) for part in body.files)]
        uploads = {part.index: part for part in body.files}
        kept = {f.id: f for f in existing}
        result: list[FakeFile] = []
        for entry in entries:
            ident = int(entry["id"])
            if ident in uploads:
                upload = uploads[ident].upload()
                result.append(self._store_file(upload, entry.get("description")))
            elif ident in kept:
                result.append(kept[ident])
        return result

    def _mentions(self, content: str | None) -> list[Json]:
        users = [self._user_by_id(int(raw)) for raw in _MENTION.findall(content or "")]
        return [user.payload() for user in users if user is not None]

    def _new_message(
        self, channel: FakeChannel, body: Body, *, flags: int = 0, extra: Json | None = None
    ) -> FakeMessage:
        data = body.json
        message = FakeMessage({
            "id": str(new_snowflake()),
            "type": 0,
            "channel_id": str(channel.id),
            "author": self.bot_user.payload(),
            "content": data.get("content") or "",
            "embeds": data.get("embeds") or [],
            "components": data.get("components") or [],
            "timestamp": iso_time(),
            "edited_timestamp": None,
            "tts": bool(data.get("tts")),
            "mention_everyone": False,
            "mentions": self._mentions(data.get("content")),
            "mention_roles": [],
            "pinned": False,
            "flags": (data.get("flags") or 0) | flags,
            **(extra or {}),
        })
        message.files = self._attached_files(body, [])
        self._by_id[message.id] = message
        if not message.ephemeral:
            self.messages[channel.id].append(message)
        return message

    def _edit_message(self, message: FakeMessage, body: Body) -> FakeMessage:
        data = body.json
        for key, empty in (("content", ""), ("embeds", []), ("components", [])):
            if key in data:
                message.data[key] = data[key] or empty
        message.data["mentions"] = self._mentions(message.content)
        message.data["flags"] = _edited_flags(message.flags, data.get("flags"))
        message.files = self._attached_files(body, message.files)
        message.data["edited_timestamp"] = iso_time()
        message.edits += 1
        return message

    def _delete_message(self, message: FakeMessage) -> None:
        message.deleted = True
        listed = self.messages.get(message.channel_id, [])
        if message in listed:
            listed.remove(message)

    # ---- waiting and inspection (public)

    def notify(self) -> None:
        """Re-check every ``wait_for`` probe now: for probes on state outside the fake."""
        self._waiters.poke()

    async def wait_for(
        self, probe: Callable[[], T | None], *, timeout_s: float = DEFAULT_WAIT_S,
        what: str = "a condition",
    ) -> T:
        """Resolve with ``probe()`` once it is not None; re-checked after every change."""
        return await self._waiters.wait(probe, timeout_s, what)

    async def wait_for_message(
        self, channel_id: int, predicate: Callable[[FakeMessage], bool] | None = None, *,
        timeout_s: float = DEFAULT_WAIT_S,
    ) -> FakeMessage:
        """The first message in the channel matching ``predicate``."""
        def probe() -> FakeMessage | None:
            found = [m for m in self.messages.get(channel_id, []) if not predicate or predicate(m)]
            return found[0] if found else None

        return await self.wait_for(probe, timeout_s=timeout_s, what=f"a message in {channel_id}")

    async def wait_for_edit(
        self, channel_id: int, predicate: Callable[[FakeMessage], bool] | None = None, *,
        message_id: int | None = None, timeout_s: float = DEFAULT_WAIT_S,
    ) -> FakeMessage:
        """The first edited message in the channel (optionally ``message_id``) matching."""
        def matches(m: FakeMessage) -> bool:
            wanted = message_id is None or m.id == message_id
            return wanted and m.edits > 0 and (predicate is None or predicate(m))

        def probe() -> FakeMessage | None:
            return next((m for m in self.messages.get(channel_id, []) if matches(m)), None)

        return await self.wait_for(probe, timeout_s=timeout_s, what=f"an edit in {channel_id}")

    def bot_message(self, channel_key: str | int, content: str = "",
                    embeds: list[Json] | None = None) -> FakeMessage:
        """A message the bot posted earlier, made without a request (a test's setup)."""
        body = Body({"content": content, "embeds": embeds or []})
        return self._new_message(self.channel(channel_key), body)

    def message_by_id(self, message_id: int | str) -> FakeMessage | None:
        """Any stored message (ephemeral and deleted ones too) by id."""
        return self._by_id.get(int(message_id))

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path matches ``path_regex`` (re.search)."""
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    def find_command(self, name: str, guild_id: int | None = None) -> Json | None:
        """A synced chat-input command: the guild's first, then the global one."""
        scopes = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        return None
