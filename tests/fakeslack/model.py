"""Slack's objects as the fake keeps them: workspace, users, channels, messages, files."""

from __future__ import annotations

import itertools
import mimetypes
import time
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

API_PREFIX = "/api/"
DEFAULT_BOT_TOKEN = "xoxb-1-fake-bot-token"
DEFAULT_APP_TOKEN = "xapp-1-fake-app-token"
# The minimal scopes of the manifest; a test widens them with ``FakeWorkspace.scopes``.
DEFAULT_SCOPES = frozenset({"commands", "chat:write", "chat:write.public", "files:read",
                            "files:write", "im:write", "users:read"})
ACK_DEADLINE_S = 3.0  # Slack shows "operation_timeout" when an envelope is not acked in 3 s
TRIGGER_TTL_S = 3.0  # a trigger_id opens one view within 3 s
HOOK_TTL_S = 30 * 60.0  # response_url: 30 minutes ...
HOOK_MAX_USES = 5  # ... and 5 uses
FILE_INPUT_MAX_BYTES = 10 * 1024 * 1024  # file_input refuses bigger files in the client
MODAL_TITLE_MAX = 24
MODAL_BLOCKS_MAX = 100
MESSAGE_BLOCKS_MAX = 50
PRIVATE_METADATA_MAX = 3000
VIEW_STACK_MAX = 3
MESSAGE_TEXT_MAX = 40_000
DEFAULT_WAIT_S = 5.0
MAX_BODY_BYTES = 1024 * 1024 * 1024

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A process-unique Slack-shaped id (``C`` + 10 upper-case hex digits, and so on)."""
    return f"{prefix}{next(_ids):010X}"


class TsClock:
    """Message timestamps ("1700000000.000100"): unique and increasing, as Slack's are."""

    def __init__(self) -> None:
        self._last_us = 0

    def next(self) -> str:
        now_us = max(int(time.time() * 1_000_000), self._last_us + 1)
        self._last_us = now_us
        return f"{now_us // 1_000_000}.{now_us % 1_000_000:06d}"


@dataclass(eq=False)
class FakeUser:
    """A workspace member; admins and owners are who ``users.info`` says they are."""

    name: str
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    is_bot: bool = False
    id: str = field(default_factory=lambda: new_id("U"))

    def payload(self, team_id: str) -> Json:
        return {
            "id": self.id, "team_id": team_id, "name": self.name, "deleted": False,
            "real_name": self.name.title(), "tz": "Europe/London", "tz_offset": 0,
            "is_admin": self.is_admin, "is_owner": self.is_owner,
            "is_primary_owner": self.is_primary_owner, "is_restricted": False,
            "is_ultra_restricted": False, "is_bot": self.is_bot, "is_app_user": False,
            "profile": {"real_name": self.name.title(), "display_name": self.name},
        }

    def brief(self, team_id: str) -> Json:
        """The ``user`` object of interactive payloads."""
        return {"id": self.id, "username": self.name, "name": self.name, "team_id": team_id}


@dataclass(eq=False)
class FakeChannel:
    """A channel; ``bot_member`` False: the bot was never invited (``/invite @wanbot``).
    ``dm_user`` set: the bot's DM with that user (always a member)."""

    name: str
    is_private: bool = False
    bot_member: bool = True
    dm_user: FakeUser | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            prefix = "D" if self.dm_user else ("G" if self.is_private else "C")
            self.id = new_id(prefix)

    @property
    def is_im(self) -> bool:
        return self.dm_user is not None

    def payload(self) -> Json:
        if self.dm_user is not None:
            return {"id": self.id, "is_im": True, "user": self.dm_user.id, "is_open": True}
        return {"id": self.id, "name": self.name, "is_channel": not self.is_private,
                "is_private": self.is_private, "is_im": False, "is_member": self.bot_member}


def default_users() -> list[FakeUser]:
    """alice and bob (members), carol (an admin) and olive (the primary owner)."""
    return [FakeUser("alice"), FakeUser("bob"), FakeUser("carol", is_admin=True),
            FakeUser("olive", is_admin=True, is_owner=True, is_primary_owner=True)]


def default_channels() -> list[FakeChannel]:
    """#general (bot in it), #random (public, bot not in it), #secret (private, bot not in)."""
    return [FakeChannel("general"), FakeChannel("random", bot_member=False),
            FakeChannel("secret", is_private=True, bot_member=False)]


@dataclass(eq=False)
class FakeWorkspace:
    """One workspace (team) and its knobs: the app's scopes, uploads allowed or not."""

    name: str = "Test Workspace"
    domain: str = "test-workspace"
    users: list[FakeUser] = field(default_factory=default_users)
    channels: list[FakeChannel] = field(default_factory=default_channels)
    usergroups: dict[str, list[str]] = field(default_factory=dict)  # handle -> user names
    scopes: frozenset[str] = DEFAULT_SCOPES
    file_uploads_disabled: bool = False
    max_upload_bytes: int | None = None  # file_upload_size_restricted above this
    id: str = field(default_factory=lambda: new_id("T"))

    def team(self) -> Json:
        return {"id": self.id, "domain": self.domain}


_FILETYPES = {"jpeg": "jpg", "mpeg": "mp3", "quicktime": "mov", "x-wav": "wav", "wave": "wav"}


def filetype_of(name: str) -> str:
    """Slack's short ``filetype`` (``png``, ``jpg``, ``mp4``...) from the file name."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
    return _FILETYPES.get(ext, ext)


@dataclass(eq=False)
class SlackFile:
    """A file in Slack: given by a user (``url_private*`` served to the bot token) or uploaded
    by the bot through ``files.getUploadURLExternal`` (``data`` filled by the upload URL)."""

    name: str
    data: bytes
    user_id: str
    team_id: str
    base_url: str
    mimetype: str | None = None
    size: int | None = None  # overrides len(data) in the file object (tests of big files)
    title: str | None = None
    redirect_to: str | None = None  # the private URL answers 302 to here (origin tests)
    id: str = field(default_factory=lambda: new_id("F"))
    created: int = field(default_factory=lambda: int(time.time()))
    shares: list[FakeMessage] = field(default_factory=list)  # the messages showing it
    deleted: bool = False  # files.delete took it down

    def __post_init__(self) -> None:
        if self.mimetype is None:
            self.mimetype = mimetypes.guess_type(self.name)[0] or "application/octet-stream"

    @property
    def url_private(self) -> str:
        return f"{self.base_url}/files-pri/{self.team_id}-{self.id}/{self.name}"

    @property
    def url_private_download(self) -> str:
        return f"{self.base_url}/files-pri/{self.team_id}-{self.id}/download/{self.name}"

    def payload(self) -> Json:
        """The file object Slack puts in payloads and ``files.info``."""
        channels = sorted({message.channel_id for message in self.shares})
        return {
            "id": self.id, "created": self.created, "timestamp": self.created,
            "name": self.name, "title": self.title or self.name, "mimetype": self.mimetype,
            "filetype": filetype_of(self.name), "pretty_type": filetype_of(self.name).upper(),
            "user": self.user_id, "user_team": self.team_id, "editable": False,
            "size": len(self.data) if self.size is None else self.size, "mode": "hosted",
            "is_external": False, "external_type": "", "is_public": False,
            "public_url_shared": False, "display_as_bot": False,
            "url_private": self.url_private, "url_private_download": self.url_private_download,
            "permalink": f"{self.base_url}/files/{self.user_id}/{self.id}/{self.name}",
            "channels": channels, "groups": [], "ims": [],
            "shares": {"public": {channel: [_share(m) for m in self.shares
                                            if m.channel_id == channel] for channel in channels}},
        }


def _share(message: FakeMessage) -> Json:
    """One entry of a file's ``shares``: where it shows (a thread reply names its thread)."""
    entry: Json = {"ts": message.ts}
    if message.thread_ts:
        entry["thread_ts"] = message.thread_ts
    return entry


@dataclass(eq=False)
class FakeMessage:
    """A stored channel message (the bot's or a user's); ``thread_ts`` set: a thread reply."""

    channel_id: str
    ts: str
    text: str = ""
    blocks: list[Json] = field(default_factory=list)
    user_id: str = ""
    bot_id: str | None = None
    thread_ts: str | None = None
    files: list[SlackFile] = field(default_factory=list)
    metadata: Json | None = None
    edits: int = 0
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return False

    @property
    def action_ids(self) -> list[str]:
        return find_action_ids(self.blocks)

    def payload(self, replies: int = 0) -> Json:
        data: Json = {"type": "message", "ts": self.ts, "text": self.text, "user": self.user_id}
        if self.blocks:
            data["blocks"] = self.blocks
        if self.bot_id:
            data.update(bot_id=self.bot_id, app_id="A0FAKEAPP01")
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        elif replies:
            data.update(thread_ts=self.ts, reply_count=replies)
        if self.files:
            data.update(files=[f.payload() for f in self.files], upload=True)
        if self.metadata:
            data["metadata"] = self.metadata
        if self.edits:
            data["edited"] = {"user": self.user_id, "ts": self.ts}
        return data


@dataclass(eq=False)
class EphemeralMessage:
    """A message only ``user_id`` sees: never in history, never editable by ``chat.update``."""

    channel_id: str
    user_id: str
    ts: str
    text: str = ""
    blocks: list[Json] = field(default_factory=list)
    thread_ts: str | None = None
    replaced: int = 0  # times a response_url replaced it (the only way to change it)
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return True

    @property
    def action_ids(self) -> list[str]:
        return find_action_ids(self.blocks)


def find_action_ids(node: Any) -> list[str]:
    """Every ``action_id`` in a block tree (actions, section accessories, inputs)."""
    if isinstance(node, list):
        return [aid for item in node for aid in find_action_ids(item)]
    if not isinstance(node, dict):
        return []
    own = [node["action_id"]] if "action_id" in node else []
    children = [node[key] for key in ("elements", "accessory", "element") if key in node]
    return own + find_action_ids(children)


def find_element(blocks: list[Json], action_id: str) -> tuple[Json, Json] | None:
    """The (block, element) holding ``action_id``."""
    for block in blocks:
        elements = [*block.get("elements", []), block.get("accessory"), block.get("element")]
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block, element
    return None
