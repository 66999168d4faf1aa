"""The Slack front end: builds its services over the shared engine and runs bolt's AsyncApp over
Socket Mode (no public URL). The only module that builds the Slack services."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock
from bot.config import Settings
from bot.engine import Engine, Store
from bot.frontends.common.chains import Chains
from bot.frontends.common.lifecycle import Lifecycle
from bot.frontends.slack import listeners
from bot.frontends.slack.access import SlackAccess
from bot.frontends.slack.chain_posts import SlackChainPoster
from bot.frontends.slack.delivery import SlackDeliverer
from bot.frontends.slack.generate import SlackGenerate
from bot.frontends.slack.job_actions import SlackJobActions
from bot.frontends.slack.progress import SlackProgress
from bot.frontends.slack.services import Services
from bot.frontends.slack.submit import SlackSubmitter
from bot.media.fetch import guarded_session
from bot.media.prepare import MediaContext

log = logging.getLogger(__name__)

DRAIN_S = 5.0
SETTLE_S = 3.0
API_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 30.0


def web_client(settings: Settings) -> AsyncWebClient:
    """The Web API client: every call under a timeout; a 429 waits as Retry-After says."""
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                            timeout=API_TIMEOUT_S)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    return client


class SlackFront:
    def __init__(self, settings: Settings, engine: Engine, store: Store,
                 http: aiohttp.ClientSession, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.client = web_client(settings)
        self.lifecycle = Lifecycle()
        self.media_session = guarded_session(settings.trusted_hosts)
        self.progress = SlackProgress(self.client, engine, store, clock=clock)
        self.deliverer = SlackDeliverer(self.client, http, engine.clock, store)
        self.services = self._services(store)
        # an extension's whole chain as one video, after the clip
        self.chains = Chains(engine, store, settings, "slack",
                             SlackChainPoster(self.client, self.deliverer))
        self.app = AsyncApp(client=self.client, process_before_response=False)
        listeners.register(self.app, self.services)
        self.handler: AsyncSocketModeHandler | None = None

    def _services(self, store: Store) -> Services:
        access = SlackAccess(self.client, store)
        submitter = SlackSubmitter(self.client, self.engine, store, self.progress)
        generate = SlackGenerate(self.settings, store, access=access, lifecycle=self.lifecycle,
                                 submitter=submitter, media=self.media_context,
                                 clock=self.engine.clock)
        actions = SlackJobActions(self.engine, store, access=access, lifecycle=self.lifecycle,
                                  progress=self.progress, deliverer=self.deliverer,
                                  submitter=submitter, generate=generate)
        return Services(self.settings, self.client, self.engine, store, self.lifecycle,
                        access, generate, actions)

    def media_context(self) -> MediaContext:
        return MediaContext.from_settings(self.media_session, self.settings,
                                          uploader=self.engine.upload)

    async def start(self) -> None:
        """Connect: progress first (recovered jobs show at once), then deliveries, then
        Socket Mode, whose commands may now come in."""
        await self.client.auth_test()  # a refused token or no network: fail now, plainly
        self.progress.start()
        self.engine.set_deliverer("slack", self.deliverer)
        self.chains.start()
        self.handler = AsyncSocketModeHandler(self.app, self.settings.slack_app_token,
                                              web_client=self.client)
        await asyncio.wait_for(self.handler.connect_async(), CONNECT_TIMEOUT_S)
        log.info("Slack: connected over Socket Mode")

    async def drain(self) -> None:
        """Stop taking commands; let running ones finish their writes."""
        await self.lifecycle.drain(DRAIN_S)

    async def close(self) -> None:
        """After the engine stopped: the chain videos stop (they resume on the next start),
        the last progress edits, then disconnect."""
        await self.chains.close()
        await self.progress.close(settle_s=SETTLE_S)
        if self.handler is not None:
            await self.handler.close_async()
        await self.media_session.close()
