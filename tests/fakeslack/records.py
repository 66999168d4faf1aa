"""What the fake records: socket sessions, envelopes and their acks, views, response_url hooks,
uploads."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.fake_support import Waiters
from tests.fakeslack.model import (
    DEFAULT_WAIT_S,
    HOOK_MAX_USES,
    HOOK_TTL_S,
    EphemeralMessage,
    FakeChannel,
    FakeMessage,
    FakeUser,
    Json,
    SlackFile,
)


@dataclass(eq=False)
class SocketSession:
    """One Socket Mode websocket connection (opened with a ticket from apps.connections.open)."""

    ws: web.WebSocketResponse
    ticket: str
    closed: bool = False
    frames: list[Json] = field(default_factory=list)  # every frame the app sent
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def live(self) -> bool:
        return not self.closed and not self.ws.closed

    async def send(self, data: Json) -> None:
        async with self._lock:
            await self.ws.send_str(json.dumps(data))


@dataclass(eq=False)
class Ack:
    """The app's ack of an envelope; ``late``: after the deadline (Slack ignored it)."""

    payload: Json | None
    latency_s: float
    late: bool

    @property
    def response_action(self) -> str | None:
        return (self.payload or {}).get("response_action")

    @property
    def errors(self) -> dict[str, str]:
        return dict((self.payload or {}).get("errors") or {})


class EnvelopeRecord:
    """One injected envelope (``slash_commands``, ``interactive``, ``events_api``) and its ack."""

    def __init__(self, envelope: Json, *, user: FakeUser | None, channel: FakeChannel | None,
                 deadline_s: float, waiters: Waiters) -> None:
        self.envelope = envelope
        self.envelope_id: str = envelope["envelope_id"]
        self.type: str = envelope["type"]
        self.payload: Json = envelope["payload"]
        self.user, self.channel = user, channel
        self.deadline_s = deadline_s
        self.sent_at = time.monotonic()
        self.ack: Ack | None = None
        self.acks = 0  # more than one: the app acked twice
        self.hook: ResponseHook | None = None
        self._waiters = waiters

    @property
    def timed_out(self) -> bool:
        """Slack gave up on it ("operation_timeout"): acked late, or not yet and too late."""
        if self.ack is not None:
            return self.ack.late
        return time.monotonic() - self.sent_at > self.deadline_s

    async def acked(self, timeout_s: float = DEFAULT_WAIT_S) -> Ack:
        """The app's ack, once it arrives (late ones too: check ``.late``)."""
        return await self._waiters.wait(lambda: self.ack, timeout_s,
                                        f"the ack of {self.type} {self.envelope_id}")


@dataclass(eq=False)
class OpenedView:
    """A modal the app opened (``views.open``/``push``), its updates and how it ended."""

    data: Json  # Slack's view object as returned by views.* (id, hash, callback_id, blocks...)
    user: FakeUser
    channel: FakeChannel | None
    stack: list[OpenedView]
    updates: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # from response_action: errors
    closed: bool = False

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def callback_id(self) -> str:
        return str(self.data.get("callback_id") or "")

    @property
    def blocks(self) -> list[Json]:
        return list(self.data.get("blocks") or [])

    @property
    def private_metadata(self) -> str:
        return str(self.data.get("private_metadata") or "")

    def block(self, block_id: str) -> Json | None:
        return next((b for b in self.blocks if b.get("block_id") == block_id), None)


@dataclass(eq=False)
class ResponseHook:
    """A ``response_url``: 30 minutes and 5 uses; ``source`` is the message clicked on."""

    token: str
    user: FakeUser
    channel: FakeChannel
    source: FakeMessage | EphemeralMessage | None = None
    created_at: float = field(default_factory=time.time)
    posts: list[Json] = field(default_factory=list)
    sent: list[FakeMessage | EphemeralMessage] = field(default_factory=list)
    expired_early: bool = False

    def expired(self) -> bool:
        return self.expired_early or time.time() - self.created_at >= HOOK_TTL_S

    def used_up(self) -> bool:
        return len(self.posts) >= HOOK_MAX_USES

    def expire(self) -> None:
        """Let the URL die now, as 30 minutes would (tests: no waiting for it)."""
        self.expired_early = True


@dataclass(eq=False)
class UploadRecord:
    """One external upload: its ticket, the bytes POSTed to the upload URL, where it went."""

    file: SlackFile
    length: int
    received: int | None = None
    chunked: bool = False  # sent with Transfer-Encoding: chunked (streamed)
    completed: bool = False
    channel_id: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
