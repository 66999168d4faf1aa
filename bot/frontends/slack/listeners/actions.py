"""The job buttons, `wan:<action>:<job id>`: matched by a pattern, so buttons on messages posted
by an earlier process work the same. Edit and rerun and Extend open their modals; the others
act at once."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.frontends.common.job_buttons import BUTTON, Action
from bot.frontends.common.texts import oops_text
from bot.frontends.slack.listeners.commands import notifier
from bot.frontends.slack.modals import edit_view, extend_view
from bot.frontends.slack.services import Services
from bot.frontends.slack.submit import Notify

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    async def button(ack: Any, body: dict[str, Any], action: dict[str, Any],
                     respond: Any) -> None:
        await ack()
        notify = notifier(respond)
        await guarded(on_button(services, body, action, notify), notify)

    app.action(BUTTON)(button)


async def guarded(work: Awaitable[None], notify: Notify) -> None:
    """Run what follows an ack, telling the person when it fails. Nothing escapes to bolt: an
    error raised just after `ack()` makes bolt drop the ack, and Slack then shows the person
    "operation_timeout" however the work ended."""
    try:
        await work
    except Exception:
        reference = secrets.token_hex(4)
        log.exception("a Slack action failed (reference %s)", reference)
        await notify(oops_text(reference))


async def on_button(services: Services, body: dict[str, Any], action: dict[str, Any],
                    notify: Any) -> None:
    match = BUTTON.fullmatch(str(action.get("action_id")))
    if match is None:
        return
    user_id = str(body["user"]["id"])
    job = await services.actions.job(match["id"], notify)
    if job is None:
        return
    action = Action(match["action"])
    if action not in FORMS:
        await services.actions.on_click(action, job, user_id, notify)
        return
    refusal = await (services.actions.edit_refusal(job, user_id) if action is Action.EDIT
                     else services.actions.extend_refusal(job, user_id))
    if refusal is not None:
        await notify(refusal)
        return
    channel = str((body.get("channel") or {}).get("id") or job.channel_id)
    await services.client.views_open(trigger_id=body["trigger_id"],
                                     view=FORMS[action](job, channel))


FORMS = {Action.EDIT: edit_view, Action.EXTEND: extend_view}  # buttons that open a modal
