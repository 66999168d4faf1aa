"""Slack's listeners by kind, as bolt's starter template lays them out: each module has one
`register(app, services)`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.frontends.slack.listeners import actions, commands, shortcuts, views
from bot.frontends.slack.services import Services


def register(app: AsyncApp, services: Services) -> None:
    commands.register(app, services)
    actions.register(app, services)
    views.register(app, services)
    shortcuts.register(app, services)
