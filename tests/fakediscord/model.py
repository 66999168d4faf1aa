"""Discord's objects as the fake keeps them: users, roles, channels, guilds, files, messages."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord

Json = dict[str, Any]

API_PREFIX = "/api/v10"
DEFAULT_TOKEN = "fake-bot-token"
DISCORD_EPOCH_MS = 1_420_070_400_000
ACK_DEADLINE_S = 3.0  # Discord drops an interaction not acknowledged within 3 s
TOKEN_TTL_S = 15 * 60.0  # interaction webhook tokens live 15 min from the id's timestamp
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_BODY_BYTES = 512 * 1024 * 1024
HEARTBEAT_INTERVAL_MS = 41_250
HEARTBEAT_ACK_DELAY_S = 0.005  # an instant ACK races discord.py's keep-alive thread
DEFAULT_WAIT_S = 5.0
EPHEMERAL = 1 << 6
LOADING = 1 << 7

MANAGE_GUILD = discord.Permissions(manage_guild=True).value
ADMINISTRATOR = discord.Permissions(administrator=True).value
ALL_PERMISSIONS = discord.Permissions.all().value
EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
    use_external_emojis=True,
    use_application_commands=True,
).value

_sequence = itertools.count(1)


def new_snowflake(at: datetime | None = None) -> int:
    """A process-unique snowflake whose timestamp is ``at`` (default: now)."""
    seconds = time.time() if at is None else at.timestamp()
    return ((int(seconds * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_sequence) & 0x3FFFFF)


def snowflake_time_s(snowflake: int) -> float:
    """The Unix time, in seconds, encoded in ``snowflake``."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000


def iso_time(seconds: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if seconds is None else seconds, UTC).isoformat()


@dataclass(eq=False)
class FakeUser:
    """A Discord user; ``roles`` are names of the guild's roles the member holds;
    ``dms_open`` False: the bot's direct messages are refused (403, 50007)."""

    name: str
    roles: tuple[str, ...] = ()
    bot: bool = False
    locale: str = "en-US"
    id: int = field(default_factory=new_snowflake)
    dms_open: bool = True

    def payload(self) -> Json:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass(eq=False)
class FakeRole:
    """A guild role (the @everyone role is implicit, see ``FakeGuild.all_roles``)."""

    name: str
    permissions: int = 0
    id: int = field(default_factory=new_snowflake)

    def payload(self, position: int) -> Json:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
            "icon": None,
            "unicode_emoji": None,
        }


@dataclass(eq=False)
class FakeChannel:
    """A guild text channel, or a DM channel when ``recipient`` is set."""

    name: str
    type: int = 0
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    id: int = field(default_factory=new_snowflake)
    guild_id: int | None = None
    recipient: FakeUser | None = None
    position: int = 0

    def payload(self) -> Json:
        if self.recipient is not None:
            recipients = [self.recipient.payload()]
            return {"id": str(self.id), "type": 1, "last_message_id": None, "flags": 0,
                    "recipients": recipients}
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }


def default_members() -> list[FakeUser]:
    """alice and bob (plain members) and carol (a moderator with Manage Guild)."""
    return [FakeUser("alice"), FakeUser("bob"), FakeUser("carol", roles=("Moderators",))]


@dataclass(eq=False)
class FakeGuild:
    """A guild; defaults: "Test Guild" with #general, alice, bob and moderator carol."""

    name: str = "Test Guild"
    channels: list[FakeChannel] = field(default_factory=lambda: [FakeChannel("general")])
    members: list[FakeUser] = field(default_factory=default_members)
    roles: list[FakeRole] = field(default_factory=lambda: [FakeRole("Moderators", MANAGE_GUILD)])
    everyone_permissions: int = EVERYONE_PERMISSIONS
    owner: str | None = None
    id: int = field(default_factory=new_snowflake)

    def __post_init__(self) -> None:
        for position, channel in enumerate(self.channels):
            channel.guild_id, channel.position = self.id, position

    @property
    def owner_id(self) -> int | None:
        return next((m.id for m in self.members if m.name == self.owner), None)

    def all_roles(self) -> list[FakeRole]:
        return [FakeRole("@everyone", self.everyone_permissions, id=self.id), *self.roles]

    def permissions_of(self, user: FakeUser) -> int:
        if user.id == self.owner_id:
            return ALL_PERMISSIONS
        value = self.everyone_permissions
        for role in self.roles:
            if role.name in user.roles:
                value |= role.permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value

    def member_payload(self, user: FakeUser, *, with_permissions: bool = False) -> Json:
        data: Json = {
            "user": user.payload(),
            "nick": None,
            "avatar": None,
            "roles": [str(r.id) for r in self.roles if r.name in user.roles],
            "joined_at": iso_time(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_permissions:
            data["permissions"] = str(self.permissions_of(user))
        return data

    def payload(self) -> Json:
        """The REST guild object."""
        owner_id = self.owner_id
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "owner_id": None if owner_id is None else str(owner_id),
            "roles": [role.payload(i) for i, role in enumerate(self.all_roles())],
            "emojis": [],
            "stickers": [],
            "features": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "afk_timeout": 300,
            "approximate_member_count": len(self.members) + 1,
        }

    def create_payload(self, bot: FakeUser) -> Json:
        """The GUILD_CREATE gateway payload, the bot being a member."""
        members = [bot, *self.members]
        return {
            **self.payload(),
            "channels": [channel.payload() for channel in self.channels],
            "members": [self.member_payload(member) for member in members],
            "member_count": len(members),
            "joined_at": iso_time(),
            "large": False,
            "unavailable": False,
            "lazy": True,
            "threads": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass(frozen=True)
class FakeUpload:
    """A file a user attaches to a slash command option; ``size`` overrides the real length."""

    filename: str
    data: bytes
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None


@dataclass(eq=False)
class FakeFile:
    """An attachment stored by the fake and served at ``url``."""

    id: int
    filename: str
    data: bytes
    url: str
    content_type: str
    size: int | None = None
    width: int | None = None
    height: int | None = None
    description: str | None = None

    def payload(self) -> Json:
        return {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data) if self.size is None else self.size,
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
            "width": self.width,
            "height": self.height,
            "description": self.description,
            "ephemeral": False,
            "flags": 0,
        }


@dataclass(eq=False)
class FakeMessage:
    """A stored message: ``data`` is Discord's JSON for it, minus ``attachments`` (``files``)."""

    data: Json
    files: list[FakeFile] = field(default_factory=list)
    edits: int = 0
    deleted: bool = False

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def channel_id(self) -> int:
        return int(self.data["channel_id"])

    @property
    def author_id(self) -> int:
        return int(self.data["author"]["id"])

    @property
    def content(self) -> str:
        return str(self.data["content"])

    @property
    def embeds(self) -> list[Json]:
        return list(self.data["embeds"])

    @property
    def components(self) -> list[Json]:
        return list(self.data["components"])

    @property
    def flags(self) -> int:
        return int(self.data["flags"])

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    @property
    def custom_ids(self) -> list[str]:
        return find_custom_ids(self.components)

    def payload(self) -> Json:
        return {**self.data, "attachments": [f.payload() for f in self.files]}


def find_custom_ids(node: Any) -> list[str]:
    """Every ``custom_id`` in a component tree (rows, labels, sections)."""
    if isinstance(node, list):
        return [cid for item in node for cid in find_custom_ids(item)]
    if not isinstance(node, dict):
        return []
    own = [node["custom_id"]] if "custom_id" in node else []
    children = [node[key] for key in ("components", "component", "accessory") if key in node]
    return own + find_custom_ids(children)
