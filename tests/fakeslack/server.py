"""The fake Slack server (routes, Web API dispatch, auth, scopes, rate tiers, injected errors)
and running a bolt app against it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from tests.fake_support import serve_on_loopback
from tests.fakeslack.interactions import Interactions
from tests.fakeslack.model import (
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_WAIT_S,
    MAX_BODY_BYTES,
    FakeWorkspace,
    Json,
)
from tests.fakeslack.webapi import MethodTable
from tests.fakeslack.wire import Rate, RecordedRequest, SlackError, json_reply, read_params

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RETIRED_METHODS = frozenset({"files.upload"})  # uploads go through the external-upload steps


@dataclass(eq=False)
class Fault:
    """An injected error for the next ``remaining`` calls of a Web API method."""

    method: str
    error: str
    status: int
    remaining: int
    retry_after: int | None = None
    hits: int = 0

    def raise_it(self) -> None:
        self.remaining, self.hits = self.remaining - 1, self.hits + 1
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        raise SlackError(self.error, status=self.status, headers=headers)


class FakeSlack(Interactions):
    """The fake Slack: Web API, Socket Mode, upload URL, file host and response_url hooks, on
    one 127.0.0.1 port, with in-memory state."""

    def __init__(self, workspace: FakeWorkspace | None = None, *,
                 bot_token: str = DEFAULT_BOT_TOKEN, app_token: str = DEFAULT_APP_TOKEN,
                 bot_name: str = "wanbot", rate_limits: bool = False,
                 rates: Mapping[str, Rate] | None = None) -> None:
        super().__init__(workspace, bot_token=bot_token, app_token=app_token, bot_name=bot_name)
        if rates is not None:
            self.limiter.rates.update(rates)
        self.limiter.enabled = rate_limits
        self.tickets: set[str] = set()
        self.ephemeral_edits: list[tuple[str, str]] = []
        self.ack_problems: list[str] = []
        self.triggers = {}
        self.share_delay_s = 0.0
        self._upload_tickets: dict[str, str] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self._faults: list[Fault] = []
        self._methods: MethodTable = {**self.WEB_METHODS, **self.FILE_METHODS,
                                      **self.VIEW_METHODS}
        self._runner: web.AppRunner | None = None

    @property
    def api_url(self) -> str:
        """The Web API base for ``AsyncWebClient(base_url=...)`` and ``SLACK_API_URL``."""
        return self.base_url + "/api/"

    def fail_next(self, method: str, error: str = "internal_error", *, status: int = 200,
                  count: int = 1, retry_after: int | None = None) -> Fault:
        """Answer the next ``count`` calls of ``method`` with ``error`` (HTTP ``status``)."""
        fault = Fault(method, error, status, count, retry_after)
        self._faults.append(fault)
        return fault

    def client(self, token: str | None = None, **kwargs: Any) -> AsyncWebClient:
        """A slack_sdk client of this fake (the bot token unless told)."""
        return AsyncWebClient(token=token or self.bot_token, base_url=self.api_url, **kwargs)

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record_other], client_max_size=MAX_BODY_BYTES)
        for method, path, handler in self._routes():
            app.router.add_route(method, path, handler)
        self._runner, self.base_url = await serve_on_loopback(app)

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for session in self.sockets:
            if not session.ws.closed:
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("*", "/api/{method}", self._api),
            ("GET", "/link/", self._link),
            ("POST", "/upload/v1/{ticket}", self._receive_upload),
            ("GET", "/files-pri/{team_file}/{tail:.*}", self._private_file),
            ("POST", "/hooks/{token}", self._hook_route),
            ("*", "/{tail:.*}", self._unhandled),
        ]

    @web.middleware
    async def _record_other(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Log the non-API routes too, under their first path segment ("upload", "hooks"...)."""
        if request.path.startswith("/api/"):
            return await handler(request)
        record = RecordedRequest(request.method, request.path.split("/")[1])
        self.requests.append(record)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            record.status = exc.status
            raise
        record.status = response.status
        return response

    async def _api(self, request: web.Request) -> web.StreamResponse:
        record = RecordedRequest(request.method, request.match_info["method"])
        self.requests.append(record)
        try:
            record.params = await read_params(request)
            data = await self._call(request, record)
            response = json_reply({"ok": True, **data},
                                  headers={"x-oauth-scopes": ",".join(sorted(
                                      self.workspace.scopes))})
        except SlackError as exc:
            record.error = exc.error
            response = exc.response()
        record.status, record.ok = response.status, record.error is None
        self._waiters.poke()
        return response

    async def _call(self, request: web.Request, record: RecordedRequest) -> Json:
        entry = self._methods.get(record.method)
        if record.method in RETIRED_METHODS:
            raise SlackError("method_deprecated")
        if entry is None:
            self.unhandled.append(record)
            raise SlackError("unknown_method")
        attribute, scope, token_kind = entry
        self._authorize(request, record.params, token_kind)
        fault = next((f for f in self._faults if f.method == record.method and f.remaining), None)
        if fault is not None:
            fault.raise_it()
        if scope is not None:
            self.require_scope(scope)
        self.limiter.check(record.method, self.team_id, record.params)
        handler: Callable[[Json], Awaitable[Json]] = getattr(self, attribute)
        return await handler(record.params)

    def _authorize(self, request: web.Request, params: Json, kind: str) -> None:
        """``Authorization: Bearer`` (or a ``token`` parameter) of the right kind."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        token = token or str(params.pop("token", "") or "")
        params.pop("token", None)  # never keep a secret in the request log
        expected, other_prefix = ((self.app_token, "xoxb-") if kind == "app"
                                  else (self.bot_token, "xapp-"))
        if not token:
            raise SlackError("not_authed")
        if token.startswith(other_prefix):
            raise SlackError("not_allowed_token_type")
        if token != expected:
            raise SlackError("invalid_auth")

    async def _unhandled(self, request: web.Request) -> web.StreamResponse:
        self.unhandled.append(RecordedRequest(request.method, request.path))
        return web.Response(status=404, text="not found")


@contextlib.asynccontextmanager
async def run_fake_slack(workspace: FakeWorkspace | None = None, **options: Any
                         ) -> AsyncIterator[FakeSlack]:
    """A started fake (``.api_url`` set), closed on exit; options as ``FakeSlack``."""
    fake = FakeSlack(workspace, **options)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@contextlib.asynccontextmanager
async def connected_app(fake: FakeSlack, app: AsyncApp, *, timeout_s: float = DEFAULT_WAIT_S
                        ) -> AsyncIterator[AsyncSocketModeHandler]:
    """Run ``app`` over Socket Mode against ``fake`` (its client must use ``fake.api_url``)
    until the connection is up; close it on exit."""
    handler = AsyncSocketModeHandler(app, fake.app_token, web_client=app.client)
    seen = len(fake.live_sockets())
    await handler.connect_async()
    try:
        await fake.wait_connected(seen + 1, timeout_s=timeout_s)
        yield handler
    finally:
        await handler.close_async()
