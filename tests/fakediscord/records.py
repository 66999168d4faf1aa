"""What the fake records about gateways and interactions, and the waiters tests await."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_support import Waiters
from tests.fakediscord.model import (
    DEFAULT_WAIT_S,
    TOKEN_TTL_S,
    FakeChannel,
    FakeMessage,
    FakeUser,
    Json,
    snowflake_time_s,
)
from tests.fakediscord.wire import ApiError


@dataclass(eq=False)
class CommandSync:
    """One bulk overwrite of application commands (``guild_id`` None: global)."""

    guild_id: int | None
    commands: list[Json]

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.commands]


@dataclass(eq=False)
class CallbackRecord:
    """One ``POST /interactions/{id}/{token}/callback``; ``accepted`` if Discord took it."""

    type: int
    data: Json
    latency_s: float
    accepted: bool = False


@dataclass(eq=False)
class GatewaySession:
    """One websocket connection to the fake gateway."""

    ws: web.WebSocketResponse
    query: dict[str, str]
    identify: Json | None = None
    seq: int = 0
    heartbeats: int = 0
    acks: int = 0
    closed: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def live(self) -> bool:
        return self.identify is not None and not self.closed and not self.ws.closed

    def serves(self, guild_id: int | None) -> bool:
        return serves(self.identify or {}, guild_id)


    @property
    def intents(self) -> int:
        return int((self.identify or {}).get("intents", 0))

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        async with self._lock:
            frame: Json = {"op": op, "d": data, "s": None, "t": None}
            if op == 0:
                self.seq += 1
                frame.update(s=self.seq, t=event)
            await self.ws.send_str(json.dumps(frame))


class InteractionRecord:
    """One injected interaction and everything the bot did with its id and token."""

    def __init__(
        self,
        payload: Json,
        *,
        channel: FakeChannel,
        user: FakeUser,
        size_limit: int,
        component_message: FakeMessage | None,
        waiters: Waiters,
    ) -> None:
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.channel = channel
        self.user = user
        self.size_limit = size_limit
        self.component_message = component_message
        self.injected_at = time.monotonic()
        self.attempts: list[CallbackRecord] = []
        self.callback: CallbackRecord | None = None
        self.original: FakeMessage | None = None
        self.followups: list[FakeMessage] = []
        self.thinking = False
        self.expired_early = False
        self._waiters = waiters

    @property
    def expires_at_s(self) -> float:
        """Unix time at which the token dies (id timestamp + 15 min)."""
        return snowflake_time_s(self.id) + TOKEN_TTL_S

    def token_expired(self) -> bool:
        return self.expired_early or time.time() >= self.expires_at_s

    def expire(self) -> None:
        """Let the token die now, as 15 minutes would (tests: no waiting for it)."""
        self.expired_early = True

    async def responded(self, timeout_s: float = DEFAULT_WAIT_S) -> CallbackRecord:
        """The first callback attempt (check ``.accepted``), once it arrives."""
        return await self._waiters.wait(
            lambda: self.attempts[0] if self.attempts else None, timeout_s, "a callback"
        )

    async def wait_followups(
        self, count: int = 1, *, timeout_s: float = DEFAULT_WAIT_S
    ) -> list[FakeMessage]:
        """The followups once at least ``count`` were sent."""
        return await self._waiters.wait(
            lambda: list(self.followups) if len(self.followups) >= count else None,
            timeout_s,
            f"{count} followup(s)",
        )

    def message(self, ref: str) -> FakeMessage:
        """``@original`` or one of this interaction's message ids, as the webhook routes see it."""
        if ref == "@original":
            candidates = [self.original]
        else:
            candidates = [m for m in (self.original, *self.followups) if m and str(m.id) == ref]
        found = [m for m in candidates if m is not None and not m.deleted]
        if not found:
            raise ApiError(404, 10008, "Unknown Message")
        return found[0]

    def message_fields(self, application_id: int) -> Json:
        """Fields Discord sets on messages created through this interaction."""
        owners = self.payload["authorizing_integration_owners"]
        metadata = {"id": str(self.id), "type": self.type, "user": self.user.payload(),
                    "authorizing_integration_owners": owners}
        return {"webhook_id": str(application_id), "application_id": str(application_id),
                "type": 20 if self.type == 2 else 0, "interaction_metadata": metadata}


def serves(identify: Json, guild_id: int | None) -> bool:
    """Whether a session identified so gets a guild's events: Discord's shard rule,
    (guild_id >> 22) % shard_count; DMs (no guild) go to shard 0."""
    shard = identify.get("shard")
    if not shard:
        return True
    shard_id, count = int(shard[0]), int(shard[1])
    return (0 if guild_id is None else (guild_id >> 22) % count) == shard_id
