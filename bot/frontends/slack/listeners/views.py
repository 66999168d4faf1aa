"""Modal submissions: a new job (`wan:new:<command>`), Edit and rerun (`wan:editform:<id>`),
Extend (`wan:extendform:<id>`) and the settings (`wan:settings`). What can be checked without a
download is answered in the ack, on the block that is wrong; what needs a download comes back as
an ephemeral note."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.errors import InputError
from bot.frontends.common import teams
from bot.frontends.common.intake import Owner
from bot.frontends.common.job_buttons import JOB_ID
from bot.frontends.common.team_admin import apply_change
from bot.frontends.slack import pages
from bot.frontends.slack.files import sources_for
from bot.frontends.slack.generate import PLATFORM, team_of
from bot.frontends.slack.listeners.actions import guarded
from bot.frontends.slack.listeners.shortcuts import file_objects
from bot.frontends.slack.modals import (
    Metadata,
    check_inputs_given,
    read_edit,
    read_extend,
    read_new_job,
)
from bot.frontends.slack.services import Services
from bot.frontends.slack.settings_modal import CALLBACK, NOT_ADMIN, read_settings
from bot.frontends.slack.submit import Notify

NEW = re.compile(r"wan:new:(?P<command>[a-z0-9]+)")
EDIT = re.compile(rf"wan:editform:{JOB_ID}")
EXTEND = re.compile(rf"wan:extendform:{JOB_ID}")


def register(app: AsyncApp, services: Services) -> None:
    async def new_job(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await on_new_job(services, ack, body, view)

    async def edited(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        meta = Metadata.load(view.get("private_metadata", ""))
        notify = services.notify_in(meta.channel_id, str(body["user"]["id"]))
        await guarded(on_edited(services, body, view, notify), notify)

    async def extended(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await on_extended(services, ack, body, view)

    async def settings(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await on_settings(services, ack, body, view)

    app.view(NEW)(new_job)
    app.view(EDIT)(edited)
    app.view(EXTEND)(extended)
    app.view(CALLBACK)(settings)


def block_for(exc: InputError, view: dict[str, Any]) -> str:
    """The block an error belongs on: the one named after its option, else the first."""
    blocks = [b.get("block_id", "") for b in view.get("blocks") or []]
    name = exc.option.rstrip("0123456789")
    for candidate in (exc.option, name, f"{name}s"):
        if candidate in blocks:
            return candidate
    return blocks[0] if blocks else exc.option


async def on_new_job(services: Services, ack: Any, body: dict[str, Any],
                     view: dict[str, Any]) -> None:
    user_id, team_id = str(body["user"]["id"]), team_of(str(body["team"]["id"]))
    meta = Metadata.load(view.get("private_metadata", ""))
    picked = {f["id"]: f for f in await file_objects(services, list(meta.files))}
    try:
        typed = read_new_job(view, sources_for(services.settings.slack_bot_token), picked)
        check_inputs_given(typed)
        owner = Owner(PLATFORM, team_id, typed.meta.channel_id, user_id)
        ask = await services.generate.checked(typed.ask, owner)
    except InputError as exc:
        await ack(response_action="errors", errors={block_for(exc, view): exc.message})
        return
    await ack()
    notify = services.notify_in(typed.meta.channel_id, user_id)
    await services.generate.run(ask, owner, notify)


async def on_edited(services: Services, body: dict[str, Any], view: dict[str, Any],
                    notify: Notify) -> None:
    match = EDIT.fullmatch(str(view.get("callback_id")))
    user_id = str(body["user"]["id"])
    job = await services.actions.job(match["id"] if match else "", notify)
    if job is not None:
        await services.actions.edited(job, user_id, read_edit(view), notify)


async def on_extended(services: Services, ack: Any, body: dict[str, Any],
                      view: dict[str, Any]) -> None:
    """An Extend form: the last frame's block answered in the ack when it is wrong."""
    try:
        prompt, last = read_extend(view, sources_for(services.settings.slack_bot_token))
    except InputError as exc:
        await ack(response_action="errors", errors={block_for(exc, view): exc.message})
        return
    await ack()
    meta = Metadata.load(view.get("private_metadata", ""))
    user_id = str(body["user"]["id"])
    notify = services.notify_in(meta.channel_id, user_id)
    match = EXTEND.fullmatch(str(view.get("callback_id")))

    async def extend() -> None:
        job = await services.actions.job(match["id"] if match else "", notify)
        if job is not None:
            await services.actions.extended(job, user_id, (prompt, last), notify)

    await guarded(extend(), notify)


async def on_settings(services: Services, ack: Any, body: dict[str, Any],
                      view: dict[str, Any]) -> None:
    user_id, team_id = str(body["user"]["id"]), team_of(str(body["team"]["id"]))
    if not await services.access.is_admin(user_id):
        await ack(response_action="errors", errors={"people": NOT_ADMIN})
        return
    try:
        change = read_settings(view)
        async with services.saving:
            updated = apply_change(await teams.load(services.store, team_id), change)
            await teams.save(services.store, team_id, updated)
    except InputError as exc:
        await ack(response_action="errors", errors={block_for(exc, view): exc.message})
        return
    await ack()
    meta = Metadata.load(view.get("private_metadata", ""))
    await services.notify_in(meta.channel_id, user_id)(
        "Saved. The new settings apply from the next request.\n" + pages.settings_text(updated))

