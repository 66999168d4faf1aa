"""The message shortcut "Make a Wan video" (`wan:from_message`): the files of a message become
a job's inputs (how clips above file_input's 10 MB reach /animate). First the command, then the
usual form, where each input picks one of the message's files."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.frontends.slack.listeners.commands import notifier
from bot.frontends.slack.modals import new_job_view, values_of
from bot.frontends.slack.services import Services
from bot.provider.catalog import Command

CALLBACK = "wan:from_message"
NO_FILES = "That message has no files. Use the shortcut on a message with images or a video."


def register(app: AsyncApp, services: Services) -> None:
    async def shortcut(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        files = list((body.get("message") or {}).get("files") or [])
        if not files:
            await notifier(respond)(NO_FILES)
            return
        channel = str((body.get("channel") or {}).get("id") or "")
        await services.client.views_open(trigger_id=body["trigger_id"],
                                         view=command_view(channel, files))

    async def picked(ack: Any, view: dict[str, Any]) -> None:
        meta = json.loads(view.get("private_metadata") or "{}")
        command = Command(values_of(view).get("command") or "i2v")
        files = await file_objects(services, meta.get("files") or [])
        await ack(response_action="update",
                  view=new_job_view(command, str(meta.get("channel_id") or ""), files))

    app.shortcut(CALLBACK)(shortcut)
    app.view(CALLBACK)(picked)


def command_view(channel_id: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    options = [{"text": {"type": "plain_text", "text": f"/{c} "}, "value": c.value}
               for c in Command]
    select = {"type": "static_select", "action_id": "command", "options": options}
    return {"type": "modal", "callback_id": CALLBACK,
            "title": {"type": "plain_text", "text": "Make a Wan video"},
            "submit": {"type": "plain_text", "text": "Next"},
            "private_metadata": json.dumps({"channel_id": channel_id,
                                            "files": [str(f["id"]) for f in files][:50]}),
            "blocks": [{"type": "input", "block_id": "command", "element": select,
                        "label": {"type": "plain_text", "text": "What to make"}}]}


async def file_objects(services: Services, ids: list[str]) -> list[dict[str, Any]]:
    """The file objects (names, private URLs) of a message's files."""
    found = []
    for file_id in ids:
        answer = await services.client.files_info(file=file_id)
        found.append(dict(answer["file"]))
    return found
