"""/kf2v, /i2v, /animate, /reference (links in the text queue at once; none open a modal) and
/wan (jobs, job <id>, queue, usage, settings, help). Every command is acked at once."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.errors import InputError
from bot.frontends.common.intake import Owner
from bot.frontends.slack.generate import PLATFORM, ask_from_text, error_text, team_of
from bot.frontends.slack.listeners.wan import wan_command
from bot.frontends.slack.modals import new_job_view
from bot.frontends.slack.services import Services
from bot.frontends.slack.submit import Notify
from bot.provider.catalog import Command


def register(app: AsyncApp, services: Services) -> None:
    async def generate(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        await on_generate(services, command, notifier(respond))

    async def wan(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        await wan_command(services, command, notifier(respond))

    for name in Command:
        app.command(f"/{name}")(generate)
    app.command("/wan")(wan)


def notifier(respond: Any) -> Notify:
    """Private notes through the command's response_url (an ephemeral answer)."""

    async def notify(text: str) -> None:
        await respond(text=text, response_type="ephemeral", replace_original=False)

    return notify


async def on_generate(services: Services, payload: dict[str, Any], notify: Notify) -> None:
    command = Command(str(payload["command"]).lstrip("/"))
    try:
        ask = ask_from_text(command, str(payload.get("text") or ""))
    except InputError as exc:
        await notify(error_text(exc))
        return
    if ask is None:
        view = new_job_view(command, str(payload["channel_id"]))
        await services.client.views_open(trigger_id=payload["trigger_id"], view=view)
        return
    owner = Owner(PLATFORM, team_of(str(payload["team_id"])), str(payload["channel_id"]),
                  str(payload["user_id"]))
    await services.generate.run(ask, owner, notify)

