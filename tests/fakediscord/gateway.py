"""The websocket at ``/``: HELLO, heartbeats, IDENTIFY -> READY + GUILD_CREATE, dispatches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Coroutine, Mapping
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakediscord.model import HEARTBEAT_ACK_DELAY_S, HEARTBEAT_INTERVAL_MS, Json
from tests.fakediscord.records import GatewaySession, serves
from tests.fakediscord.state import FakeState


class GatewayRoutes(FakeState):
    """The websocket at ``/``: HELLO, heartbeats, IDENTIFY -> READY + GUILD_CREATE."""

    _tasks: set[asyncio.Task[None]]

    @property
    def gateway_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http") + "/"

    async def dispatch(self, event: str, data: Mapping[str, Any]) -> int:
        """Send a DISPATCH event to every identified gateway whose shard has its guild;
        returns how many got it."""
        guild = data.get("guild_id")
        sessions = [s for s in self.gateways
                    if s.live and s.serves(int(guild) if guild is not None else None)]
        for session in sessions:
            await session.send(0, dict(data), event)
        return len(sessions)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        session = GatewaySession(ws=ws, query=dict(request.query))
        self.gateways.append(session)
        await session.send(10, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS})
        try:
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    await self._on_frame(session, json.loads(frame.data))
        finally:
            session.closed = True
            self._waiters.poke()
        return ws

    async def _on_frame(self, session: GatewaySession, frame: Json) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:
            session.heartbeats += 1
            self._spawn(self._ack_soon(session))
        elif op == 2:
            await self._identify(session, data or {})
        elif op == 6:
            await session.send(9, False)  # no RESUME support: make the client identify afresh
        elif op == 8:
            await self._member_chunk(session, data or {})

    async def _ack_soon(self, session: GatewaySession) -> None:
        await asyncio.sleep(HEARTBEAT_ACK_DELAY_S)
        if not session.closed and not session.ws.closed:
            with contextlib.suppress(ConnectionError):
                await session.send(11, None)
                session.acks += 1

    async def _identify(self, session: GatewaySession, data: Json) -> None:
        if data.get("token") != self.token:
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return
        session.identify = data
        await session.send(0, self._ready_payload(data), "READY")
        for guild in self.guilds.values():
            if session.serves(guild.id):  # a shard hears only of its own guilds
                await session.send(0, guild.create_payload(self.bot_user), "GUILD_CREATE")
        self._waiters.poke()

    def _ready_payload(self, identify: Json) -> Json:
        payload: Json = {
            "v": 10,
            "user": {**self.bot_user.payload(), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(guild_id), "unavailable": True} for guild_id in self.guilds
                       if serves(identify, guild_id)],
            "session_id": secrets.token_hex(16),
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "session_type": "normal",
            "auth": {},
            "geo_ordered_rtc_regions": [],
            "guild_join_requests": [],
        }
        if "shard" in identify:
            payload["shard"] = identify["shard"]
        return payload

    async def _member_chunk(self, session: GatewaySession, data: Json) -> None:
        guild = self.guilds.get(int(data.get("guild_id", 0)))
        if guild is None:
            return
        members = [guild.member_payload(u) for u in (self.bot_user, *guild.members)]
        chunk = {"guild_id": str(guild.id), "members": members, "chunk_index": 0,
                 "chunk_count": 1, "not_found": [], "nonce": data.get("nonce")}
        await session.send(0, chunk, "GUILD_MEMBERS_CHUNK")
