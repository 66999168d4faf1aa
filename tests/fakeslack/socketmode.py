"""The Socket Mode websocket: ``hello``, envelopes out, acks in (3 s deadline), disconnects."""

from __future__ import annotations

import json
import time
import uuid

from aiohttp import WSMsgType, web

from tests.fakeslack.model import DEFAULT_WAIT_S, FakeChannel, FakeUser, Json
from tests.fakeslack.records import Ack, EnvelopeRecord, ResponseHook, SocketSession
from tests.fakeslack.views import ViewMethods
from tests.fakeslack.wire import SlackError


class SocketRoutes(ViewMethods):
    """``/link/?ticket=...`` (the URL apps.connections.open hands out) and the envelopes."""

    def live_sockets(self) -> list[SocketSession]:
        return [s for s in self.sockets if s.live]

    async def wait_connected(self, count: int = 1, *, timeout_s: float = DEFAULT_WAIT_S
                             ) -> list[SocketSession]:
        """Once ``count`` Socket Mode connections are open."""
        return await self.wait_for(
            lambda: self.live_sockets() if len(self.live_sockets()) >= count else None,
            timeout_s=timeout_s, what=f"{count} Socket Mode connection(s)")

    async def request_reconnect(self, reason: str = "refresh_requested") -> None:
        """Send ``disconnect`` (as Slack does every few hours); the SDK reconnects."""
        for session in self.live_sockets():
            await session.send({"type": "disconnect", "reason": reason,
                                "debug_info": {"host": "fake-slack"}})

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self.tickets:  # each URL from apps.connections.open works once
            return web.Response(status=401, text="invalid ticket")
        self.tickets.discard(ticket)
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        session = SocketSession(ws, ticket)
        self.sockets.append(session)
        await session.send({"type": "hello", "num_connections": len(self.live_sockets()),
                            "debug_info": {"host": "fake-slack", "approximate_connection_time":
                                           18060}, "connection_info": {"app_id": self.app_id}})
        self._waiters.poke()
        try:
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    self._on_frame(session, json.loads(frame.data))
        finally:
            session.closed = True
            self._waiters.poke()
        return ws

    def _on_frame(self, session: SocketSession, frame: Json) -> None:
        session.frames.append(frame)
        record = next((e for e in self.envelopes
                       if e.envelope_id == frame.get("envelope_id")), None)
        if record is None:
            self.ack_problems.append(f"ack of an unknown envelope: {frame!r}")
            return
        record.acks += 1
        if record.ack is not None:
            self.ack_problems.append(f"{record.type} {record.envelope_id} acked twice")
            return
        latency = time.monotonic() - record.sent_at
        payload = frame.get("payload") or None
        record.ack = Ack(payload, latency, latency > record.deadline_s)
        if not record.ack.late:
            self._apply_ack(record, payload)
        self._waiters.poke()

    def _apply_ack(self, record: EnvelopeRecord, payload: Json | None) -> None:
        """A timely ack: a view submission's decides the modal; a slash command's is a reply."""
        if record.payload.get("type") == "view_submission":
            self.apply_submission_ack(record, payload)
        elif payload and record.type == "slash_commands" and record.hook is not None:
            try:
                self.respond(record.hook, payload)
            except SlackError as exc:
                self.ack_problems.append(f"slash command ack payload: {exc.error}")

    async def send_envelope(self, kind: str, payload: Json, *, accepts_response_payload: bool,
                            user: FakeUser | None = None, channel: FakeChannel | None = None,
                            hook: ResponseHook | None = None, via: int | None = None
                            ) -> EnvelopeRecord:
        """Send one envelope on one live connection (Slack picks one of them): the newest,
        or the ``via``-th in the order they opened (several processes of one app)."""
        live = self.live_sockets()
        if not live:
            raise RuntimeError("no app is connected to the fake Slack's Socket Mode")
        if via is not None and not 0 <= via < len(live):
            raise RuntimeError(f"no live connection number {via}: {len(live)} are open")
        envelope = {"envelope_id": str(uuid.uuid4()), "type": kind, "payload": payload,
                    "accepts_response_payload": accepts_response_payload}
        record = EnvelopeRecord(envelope, user=user, channel=channel,
                                deadline_s=self.ack_deadline_s, waiters=self._waiters)
        record.hook = hook
        self.envelopes.append(record)
        await live[-1 if via is None else via].send(envelope)
        return record

    def respond(self, hook: ResponseHook, body: Json) -> None:
        """A response_url post (or a slash command's ack payload): Slack's message rules."""
        source = hook.source
        if body.get("delete_original"):
            if source is not None:
                source.deleted = True
            return
        text, blocks = str(body.get("text") or ""), body.get("blocks") or []
        if not text and not blocks:
            raise SlackError("no_text")
        if body.get("replace_original") and source is not None:
            source.text, source.blocks = text, list(blocks)
            if source.ephemeral:
                source.replaced += 1  # type: ignore[union-attr]
            else:
                source.edits += 1  # type: ignore[union-attr]
            return
        thread_ts = body.get("thread_ts")
        if body.get("response_type") == "in_channel":
            hook.sent.append(self.bot_message(hook.channel, text, list(blocks), thread_ts))
        else:
            hook.sent.append(self.ephemeral(hook.channel, hook.user, text, list(blocks),
                                            thread_ts))
