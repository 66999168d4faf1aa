"""The fake Discord server (routes, middleware, faults) and running a bot against it."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web

from tests.fake_support import serve_on_loopback
from tests.fakediscord.interactions import InteractionRoutes
from tests.fakediscord.limits import Limiter, RateLimits
from tests.fakediscord.model import API_PREFIX, DEFAULT_TOKEN, MAX_BODY_BYTES, FakeGuild
from tests.fakediscord.rest import RestRoutes
from tests.fakediscord.wire import (
    ApiError,
    Fault,
    RecordedRequest,
    api_path,
    bucket_key,
    current_request,
    ok_ratelimit_headers,
)

T = TypeVar("T")
ClientT = TypeVar("ClientT", bound=discord.Client)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeDiscord(InteractionRoutes, RestRoutes):
    """The fake Discord: an aiohttp server on 127.0.0.1 with in-memory state."""

    def __init__(
        self,
        guilds: Sequence[FakeGuild] | None = None,
        *,
        token: str = DEFAULT_TOKEN,
        bot_name: str = "wanbot",
        owner: str = "carol",
        rate_limits: RateLimits | None = None,
    ) -> None:
        super().__init__(guilds, token=token, bot_name=bot_name, owner=owner)
        # Opt-in: Discord's per-route and global limits, with real 429s and headers.
        self.limiter = Limiter(rate_limits) if rate_limits is not None else None
        self._by_token = {}
        self._modals = {}
        self._tasks = set()
        self._faults: list[Fault] = []
        self._runner: web.AppRunner | None = None

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be."""
        return self.base_url + API_PREFIX

    def fail_next(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 429,
        retry_after: float = 0.05,
        count: int = 1,
        code: int | None = None,
        message: str | None = None,
    ) -> Fault:
        """Answer the next ``count`` matching requests with ``status`` (429: retryable)."""
        fault = Fault(method.upper(), re.compile(path_regex), status, retry_after, count, code,
                      message)
        self._faults.append(fault)
        return fault

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        for method, path, handler in self._routes():
            app.router.add_route(method, path, handler)
        self._runner, self.base_url = await serve_on_loopback(app)

    async def close(self) -> None:
        for session in self.gateways:
            if not session.ws.closed:
                await session.ws.close(code=1001)
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def _routes(self) -> list[tuple[str, str, Handler]]:
        api, hook = API_PREFIX, API_PREFIX + "/webhooks/{app}/{token}"
        channel, commands = api + "/channels/{channel}", api + "/applications/{app}"
        return [
            ("GET", "/", self._gateway),
            ("GET", "/attachments/{file}/{name}", self._get_attachment),
            ("GET", api + "/users/@me", self._get_me),
            ("POST", api + "/users/@me/channels", self._create_dm),
            ("GET", api + "/users/{user}", self._get_user),
            ("GET", api + "/oauth2/applications/@me", self._get_application),
            ("GET", api + "/applications/@me", self._get_application),
            ("GET", api + "/gateway", self._get_gateway),
            ("GET", api + "/gateway/bot", self._get_gateway),
            ("GET", commands + "/commands", self._get_commands),
            ("PUT", commands + "/commands", self._put_commands),
            ("GET", commands + "/guilds/{guild}/commands", self._get_commands),
            ("PUT", commands + "/guilds/{guild}/commands", self._put_commands),
            ("POST", api + "/interactions/{interaction}/{token}/callback", self._callback),
            ("POST", hook, self._execute_webhook),
            ("*", hook + "/messages/{message}", self._webhook_message),
            ("GET", api + "/guilds/{guild}", self._get_guild),
            ("GET", api + "/guilds/{guild}/channels", self._get_guild_channels),
            ("GET", api + "/guilds/{guild}/members/{user}", self._get_member),
            ("GET", channel, self._get_channel),
            ("POST", channel + "/typing", self._typing),
            ("GET", channel + "/messages", self._list_messages),
            ("POST", channel + "/messages", self._post_message),
            ("GET", channel + "/messages/{message}", self._get_message),
            ("PATCH", channel + "/messages/{message}", self._patch_message),
            ("DELETE", channel + "/messages/{message}", self._delete_message_route),
            ("*", "/{tail:.*}", self._unhandled),
        ]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        record = RecordedRequest(request.method, api_path(request.path), dict(request.query))
        current_request.set(record)
        self.requests.append(record)
        response = await self._respond(request, handler, record)
        record.status = response.status
        self._waiters.poke()
        return response

    async def _respond(
        self, request: web.Request, handler: Handler, record: RecordedRequest
    ) -> web.StreamResponse:
        bucket = bucket_key(request)
        fault = next((f for f in self._faults if f.matches(record.method, record.path)), None)
        if fault is not None:
            fault.remaining, fault.hits = fault.remaining - 1, fault.hits + 1
            return fault.response(bucket)
        limiter = self.limiter if request.path.startswith(API_PREFIX) else None
        if limiter is not None and (refused := limiter.check(request, bucket)) is not None:
            return refused
        try:
            self._authorize(request)
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        if request.path.startswith(API_PREFIX) and not response.prepared:
            headers = (self.limiter.headers(request, bucket) if self.limiter is not None
                       else ok_ratelimit_headers(bucket))
            response.headers.update(headers)
        return response

    def _authorize(self, request: web.Request) -> None:
        tokenless = (API_PREFIX + "/webhooks/", API_PREFIX + "/interactions/")
        if not request.path.startswith(API_PREFIX) or request.path.startswith(tokenless):
            return
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise ApiError(401)


@contextlib.asynccontextmanager
async def run_fake_discord(
    guilds: Sequence[FakeGuild] | None = None,
    *,
    token: str = DEFAULT_TOKEN,
    bot_name: str = "wanbot",
    owner: str = "carol",
    rate_limits: RateLimits | None = None,
) -> AsyncIterator[FakeDiscord]:
    """A started fake (``.base_url`` set), closed on exit; `rate_limits` enforces Discord's."""
    fake = FakeDiscord(guilds, token=token, bot_name=bot_name, owner=owner,
                       rate_limits=rate_limits)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@contextlib.contextmanager
def discord_pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and gateway address at ``fake``; restore them on exit."""
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


async def _unless_stopped(
    awaitable: Awaitable[T], runner: asyncio.Task[None], timeout_s: float, what: str
) -> T:
    """Await ``awaitable`` but fail fast if the bot's task ends first."""
    waiter = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({waiter, runner}, timeout=timeout_s,
                                 return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        return waiter.result()
    waiter.cancel()
    if runner in done:
        runner.result()
        raise RuntimeError(f"the bot stopped before it was {what}")
    raise TimeoutError(f"the bot was not {what} within {timeout_s}s")


async def _stop(bot: discord.Client, runner: asyncio.Task[None], timeout_s: float) -> None:
    await bot.close()
    await asyncio.wait({runner}, timeout=timeout_s)
    if not runner.done():
        runner.cancel()
        await asyncio.wait({runner})


@contextlib.asynccontextmanager
async def connected_bot(
    fake: FakeDiscord,
    bot_factory: Callable[[], ClientT],
    *,
    token: str | None = None,
    timeout_s: float = 10.0,
    guild_ready_timeout_s: float | None = 0.1,
) -> AsyncIterator[ClientT]:
    """Run ``bot_factory()`` against ``fake`` with ``bot.start`` until ready; close it on exit.

    ``guild_ready_timeout_s`` replaces discord.py's 2 s wait for more GUILD_CREATEs after the
    last one (None keeps the bot's own setting).
    """
    with discord_pointed_at(fake):
        bot = bot_factory()
        if guild_ready_timeout_s is not None:
            bot._connection.guild_ready_timeout = guild_ready_timeout_s
        seen = len(fake.gateways)
        runner = asyncio.create_task(bot.start(token or fake.token), name="fake-discord-bot")
        try:
            identified = fake.wait_for(
                lambda: next((s for s in fake.gateways[seen:] if s.identify), None),
                timeout_s=timeout_s, what="IDENTIFY")
            await _unless_stopped(identified, runner, timeout_s, "identified")
            await _unless_stopped(bot.wait_until_ready(), runner, timeout_s, "ready")
            yield bot
        finally:
            await _stop(bot, runner, timeout_s)
        if not runner.cancelled() and runner.exception() is not None:
            raise RuntimeError("the bot's task failed") from runner.exception()
