"""The fake's in-memory state (workspace, messages, files, views, hooks), the channel rules
Slack applies to the bot, and the helpers tests read it with."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

from tests.fakeslack.model import (
    ACK_DEADLINE_S,
    DEFAULT_WAIT_S,
    EphemeralMessage,
    FakeChannel,
    FakeMessage,
    FakeUser,
    FakeWorkspace,
    Json,
    SlackFile,
    TsClock,
    new_id,
)
from tests.fakeslack.records import (
    EnvelopeRecord,
    OpenedView,
    ResponseHook,
    SocketSession,
    UploadRecord,
    Waiters,
)
from tests.fakeslack.wire import RateLimiter, RecordedRequest, SlackError

T = TypeVar("T")
AnyMessage = FakeMessage | EphemeralMessage


class FakeState:
    """The workspace, its messages and files, and what the app did; plus the waiters."""

    def __init__(self, workspace: FakeWorkspace | None, *, bot_token: str, app_token: str,
                 bot_name: str) -> None:
        self.workspace = workspace or FakeWorkspace()
        self.bot_token, self.app_token = bot_token, app_token
        self.bot_user = FakeUser(bot_name, is_bot=True)
        self.bot_id, self.app_id = new_id("B"), new_id("A")
        self.users: dict[str, FakeUser] = {u.name: u for u in self.workspace.users}
        self.channels: dict[str, FakeChannel] = {c.id: c for c in self.workspace.channels}
        self.usergroup_ids = {new_id("S"): handle for handle in self.workspace.usergroups}
        self.messages: defaultdict[str, list[FakeMessage]] = defaultdict(list)
        self.ephemerals: list[EphemeralMessage] = []
        self.files: dict[str, SlackFile] = {}
        self.uploads: dict[str, UploadRecord] = {}
        self.views: dict[str, OpenedView] = {}
        self.hooks: dict[str, ResponseHook] = {}
        self.envelopes: list[EnvelopeRecord] = []
        self.sockets: list[SocketSession] = []
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        self.file_fetches: list[tuple[str, bool]] = []  # (file id, served the bytes)
        self.ack_deadline_s = ACK_DEADLINE_S
        self.limiter = RateLimiter()
        self.base_url = ""
        self._ts = TsClock()
        self._waiters = Waiters()

    @property
    def team_id(self) -> str:
        return self.workspace.id

    @property
    def rate_limits_enabled(self) -> bool:
        return self.limiter.enabled

    @rate_limits_enabled.setter
    def rate_limits_enabled(self, value: bool) -> None:
        self.limiter.enabled = value

    # ---- lookups

    def user(self, who: str | FakeUser) -> FakeUser:
        """A user by name (or the user itself)."""
        return who if isinstance(who, FakeUser) else self.users[who]

    def user_by_id(self, user_id: str) -> FakeUser | None:
        everyone = [self.bot_user, *self.users.values()]
        return next((u for u in everyone if u.id == user_id), None)

    def channel(self, key: str | FakeChannel) -> FakeChannel:
        """A channel by id or by name (or the channel itself)."""
        if isinstance(key, FakeChannel):
            return key
        found = [c for c in self.channels.values() if key in (c.id, c.name)]
        if not found:
            raise KeyError(f"no channel {key!r}")
        return found[0]

    def dm_channel(self, who: str | FakeUser) -> FakeChannel:
        """The bot's DM with a user, opened if needed (what conversations.open returns)."""
        user = self.user(who)
        found = [c for c in self.channels.values() if c.dm_user is user]
        if found:
            return found[0]
        channel = FakeChannel(user.name, dm_user=user)
        self.channels[channel.id] = channel
        return channel

    def file(self, file_id: str) -> SlackFile:
        found = self.files.get(file_id)
        if found is None:
            raise SlackError("file_not_found")
        return found

    # ---- Slack's rules for the bot in a channel

    def target_channel(self, channel_id: str) -> FakeChannel:
        """Where the bot may post: a member channel, a DM, or (with ``chat:write.public``)
        any public channel; private ones it is not in are invisible to it."""
        user = self.user_by_id(channel_id)
        if user is not None and not user.is_bot:
            return self.dm_channel(user)  # posting to a user id goes to the app's DM
        channel = self.channels.get(channel_id)
        if channel is None or (channel.is_private and not channel.bot_member):
            raise SlackError("channel_not_found")
        public_ok = "chat:write.public" in self.workspace.scopes
        if not channel.bot_member and not (public_ok and not channel.is_private):
            raise SlackError("not_in_channel")
        return channel

    def message_in(self, channel: FakeChannel, ts: str) -> FakeMessage:
        found = [m for m in self.messages.get(channel.id, []) if m.ts == ts and not m.deleted]
        if not found:
            raise SlackError("message_not_found")
        return found[0]

    def new_ts(self) -> str:
        return self._ts.next()

    def store_message(self, message: FakeMessage) -> FakeMessage:
        self.messages[message.channel_id].append(message)
        self._waiters.poke()
        return message

    def bot_message(self, channel: FakeChannel, text: str, blocks: list[Json],
                    thread_ts: str | None = None) -> FakeMessage:
        message = FakeMessage(channel.id, self.new_ts(), text, blocks, self.bot_user.id,
                              self.bot_id, thread_ts or None)
        return self.store_message(message)

    def ephemeral(self, channel: FakeChannel, user: FakeUser, text: str, blocks: list[Json],
                  thread_ts: str | None = None) -> EphemeralMessage:
        message = EphemeralMessage(channel.id, user.id, self.new_ts(), text, blocks, thread_ts)
        self.ephemerals.append(message)
        self._waiters.poke()
        return message

    # ---- test-side set-up

    def user_file(self, name: str, data: bytes, *, user: str | FakeUser = "alice",
                  mimetype: str | None = None, size: int | None = None,
                  redirect_to: str | None = None) -> SlackFile:
        """A file a user gave Slack; its ``url_private*`` serve the bytes to the bot token."""
        owner = self.user(user)
        stored = SlackFile(name, data, owner.id, self.team_id, self.base_url, mimetype, size,
                           redirect_to=redirect_to)
        self.files[stored.id] = stored
        return stored

    def post_as_user(self, channel: str | FakeChannel, text: str = "", *,
                     user: str | FakeUser = "alice", files: Sequence[SlackFile] = (),
                     thread_ts: str | None = None) -> FakeMessage:
        """A message a user posted (with files: what a message shortcut acts on)."""
        where = self.channel(channel)
        message = FakeMessage(where.id, self.new_ts(), text, [], self.user(user).id,
                              thread_ts=thread_ts, files=list(files))
        for shared in files:
            shared.shares.append(message)
        return self.store_message(message)

    # ---- reading (public)

    def messages_in(self, channel: str | FakeChannel) -> list[FakeMessage]:
        """The channel's top-level messages, oldest first (not thread replies, not deleted)."""
        where = self.channel(channel)
        return [m for m in self.messages.get(where.id, []) if not m.deleted and not m.thread_ts]

    def thread(self, channel: str | FakeChannel, ts: str) -> list[FakeMessage]:
        """The replies in the thread of ``ts``, oldest first."""
        where = self.channel(channel)
        return [m for m in self.messages.get(where.id, []) if m.thread_ts == ts and not m.deleted]

    def dm_messages(self, who: str | FakeUser) -> list[FakeMessage]:
        """Everything the bot posted in its DM with a user (threads included)."""
        channel = self.dm_channel(who)
        return [m for m in self.messages.get(channel.id, []) if not m.deleted]

    def ephemerals_for(self, who: str | FakeUser) -> list[EphemeralMessage]:
        user = self.user(who)
        return [m for m in self.ephemerals if m.user_id == user.id and not m.deleted]

    def uploads_titled(self, title: str) -> list[SlackFile]:
        """Files the bot uploaded and shared with this title (once per share)."""
        return [u.file for u in self.uploads.values()
                if u.completed and u.file.title == title and not u.file.deleted]

    def calls(self, method: str) -> list[RecordedRequest]:
        """Recorded Web API calls of ``method`` (e.g. ``chat.update``), in order."""
        return [r for r in self.requests if r.method == method]

    def ack_failures(self) -> list[EnvelopeRecord]:
        """Envelopes Slack gave up on ("operation_timeout"): acked late or never."""
        return [e for e in self.envelopes if e.timed_out]

    def open_views(self, callback_id: str | None = None) -> list[OpenedView]:
        return [v for v in self.views.values()
                if not v.closed and callback_id in (None, v.callback_id)]

    def notify(self) -> None:
        """Re-check every ``wait_for`` probe now: for probes on state outside the fake."""
        self._waiters.poke()

    async def wait_for(self, probe: Callable[[], T | None], *, timeout_s: float = DEFAULT_WAIT_S,
                       what: str = "a condition") -> T:
        """Resolve with ``probe()`` once it is not None; re-checked after every change."""
        return await self._waiters.wait(probe, timeout_s, what)

    async def wait_for_message(
        self, channel: str | FakeChannel, predicate: Callable[[FakeMessage], bool] | None = None,
        *, thread_ts: str | None = None, timeout_s: float = DEFAULT_WAIT_S,
    ) -> FakeMessage:
        """The first message in the channel (or in the thread of ``thread_ts``) matching."""
        def probe() -> FakeMessage | None:
            pool = self.messages_in(channel) if thread_ts is None else self.thread(channel,
                                                                                   thread_ts)
            return next((m for m in pool if predicate is None or predicate(m)), None)

        return await self.wait_for(probe, timeout_s=timeout_s, what=f"a message in {channel}")

    async def wait_for_upload(self, title: str, *, timeout_s: float = DEFAULT_WAIT_S
                              ) -> SlackFile:
        """The first shared upload with this title."""
        return await self.wait_for(lambda: next(iter(self.uploads_titled(title)), None),
                                   timeout_s=timeout_s, what=f"an upload titled {title!r}")

    def hook_for(self, envelope: EnvelopeRecord) -> ResponseHook:
        if envelope.hook is None:
            raise KeyError(f"{envelope.type} {envelope.envelope_id} has no response_url")
        return envelope.hook
