"""The job buttons, `wan:<action>:<job id>`: matched by a pattern, so buttons on messages posted
by an earlier process work the same. Edit and rerun opens its modal; the others act at once."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.frontends.common.job_buttons import BUTTON, Action
from bot.frontends.slack.listeners.commands import notifier
from bot.frontends.slack.modals import edit_view
from bot.frontends.slack.services import Services


def register(app: AsyncApp, services: Services) -> None:
    async def button(ack: Any, body: dict[str, Any], action: dict[str, Any],
                     respond: Any) -> None:
        await ack()
        await on_button(services, body, action, notifier(respond))

    app.action(BUTTON)(button)


async def on_button(services: Services, body: dict[str, Any], action: dict[str, Any],
                    notify: Any) -> None:
    match = BUTTON.fullmatch(str(action.get("action_id")))
    if match is None:
        return
    user_id = str(body["user"]["id"])
    job = await services.actions.job(match["id"], notify)
    if job is None:
        return
    if Action(match["action"]) is not Action.EDIT:
        await services.actions.on_click(Action(match["action"]), job, user_id, notify)
        return
    refusal = await services.actions.edit_refusal(job, user_id)
    if refusal is not None:
        await notify(refusal)
        return
    channel = str((body.get("channel") or {}).get("id") or job.channel_id)
    await services.client.views_open(trigger_id=body["trigger_id"], view=edit_view(job, channel))
