"""What the Slack listeners use, built once by `bot.frontends.slack.app`: passed in, so no
listener reaches for a global or for the app that owns it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.engine import Engine, Store
from bot.frontends.common.lifecycle import Lifecycle
from bot.frontends.slack.access import SlackAccess
from bot.frontends.slack.generate import SlackGenerate
from bot.frontends.slack.job_actions import SlackJobActions
from bot.frontends.slack.submit import Notify


@dataclass(frozen=True)
class Services:
    settings: Settings
    client: AsyncWebClient
    engine: Engine
    store: Store
    lifecycle: Lifecycle
    access: SlackAccess
    generate: SlackGenerate
    actions: SlackJobActions
    # settings are read, changed and written one change at a time
    saving: asyncio.Lock = field(default_factory=asyncio.Lock)

    def notify_in(self, channel_id: str, user_id: str) -> Notify:
        """An ephemeral note in a channel (a DM when the bot cannot post there)."""

        async def notify(text: str) -> None:
            try:
                await self.client.chat_postEphemeral(channel=channel_id, user=user_id, text=text)
            except Exception:  # not in the channel, or it is gone: the DM always works
                opened = await self.client.conversations_open(users=user_id)
                await self.client.chat_postMessage(channel=opened["channel"]["id"], text=text)

        return notify
