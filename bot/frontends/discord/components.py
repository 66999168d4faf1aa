"""The buttons on job messages and the edit-and-rerun form, which keep working after a restart.

Every custom_id names an action and a job, `wan:<action>:<job id>`; nothing else is kept in
memory, so a click on a message posted by an earlier process is handled like any other: the job
is read from the store and `JobActions` (`job_actions`) decides. The form's custom_id is
`wan:editform:<job id>`; its submission is handled the same stateless way (cogs.controls).
"""

from __future__ import annotations

import re
from typing import Any, Protocol, cast

import discord

from bot.engine import Job, JobState
from bot.frontends.common.extend import model_for
from bot.frontends.common.job_buttons import (
    BUTTON,
    CANCELABLE,
    ENDED_EARLY,
    Action,
    again_actions,
    custom_id,
    video_actions,
)
from bot.provider import catalog
from bot.provider.catalog import Command

LOOKS = {
    Action.CANCEL: ("Cancel", discord.ButtonStyle.danger),
    Action.RERUN: ("Rerun", discord.ButtonStyle.secondary),
    Action.EDIT: ("Edit and rerun", discord.ButtonStyle.secondary),
    Action.SHARE: ("Share", discord.ButtonStyle.primary),
    Action.DELETE: ("Delete", discord.ButtonStyle.secondary),
    Action.EXTEND: ("Extend", discord.ButtonStyle.primary),
}


class ButtonHandler(Protocol):
    """What a click on a job button or a submitted edit form is handed to (`JobActions`)."""

    async def on_button(self, interaction: discord.Interaction[Any], action: Action,
                        job_id: str) -> None: ...

    async def on_form(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...

    async def on_extend_form(self, interaction: discord.Interaction[Any],
                             job_id: str) -> None: ...


class HasButtonHandler(Protocol):
    """A client that knows its button handler: the buttons need nothing else of it."""

    @property
    def actions(self) -> ButtonHandler: ...


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=BUTTON):
    """One button of one job; rebuilt from its custom_id on every click."""

    def __init__(self, action: Action, job_id: str) -> None:
        label, style = LOOKS[action]
        super().__init__(discord.ui.Button(label=label, style=style,
                                           custom_id=custom_id(action, job_id)))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Button[Any], match: re.Match[str], /) -> JobButton:
        return cls(Action(match["action"]), match["id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client = cast(HasButtonHandler, interaction.client)
        await client.actions.on_button(interaction, self.action, self.job_id)


def view_of(job: Job, actions: list[Action]) -> discord.ui.View | None:
    """A view of these buttons; None (no buttons) when the list is empty."""
    if not actions:
        return None
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(JobButton(action, job.id))
    return view


def progress_actions(job: Job) -> list[Action]:
    """Cancel while it can still matter; Rerun and Edit once it ended without a video; the
    result's buttons when the progress message itself carries the video."""
    if job.state in CANCELABLE and not job.cancel_requested:
        return [Action.CANCEL]
    if job.state in ENDED_EARLY:
        return again_actions(job)
    if job.state is JobState.DELIVERED and job.delivery and job.delivery.place == "ephemeral":
        shared = job.delivery.shared is not None
        return [*([] if shared else [Action.SHARE]), *video_actions(job)]
    return []


def result_actions(job: Job, *, share: bool = False) -> list[Action]:
    """On a posted video: Share (a private job's DM), Rerun, Edit and rerun, Extend, Delete."""
    return [*([Action.SHARE] if share else []), *video_actions(job), Action.DELETE]


def actions_on(message: discord.Message | None) -> list[Action]:
    """The job buttons a message carries now, in order."""
    ids = [getattr(c, "custom_id", None) for row in (message.components if message else [])
           for c in getattr(row, "children", [row])]
    return [Action(m["action"]) for i in ids if i and (m := BUTTON.fullmatch(i))]


def progress_view(job: Job) -> discord.ui.View | None:
    return view_of(job, progress_actions(job))


def result_view(job: Job, *, share: bool = False) -> discord.ui.View | None:
    return view_of(job, result_actions(job, share=share))


def shared_view(job: Job) -> discord.ui.View | None:
    """On a private video its requester shared into the channel: Delete only. The video is what
    was shared; Rerun or Edit there would hand the kept-private prompt to whoever clicks."""
    return view_of(job, [Action.DELETE])


def edit_form(job: Job) -> discord.ui.Modal:
    """The edit-and-rerun form, filled in from the job.

    Stopped before it is sent, so discord.py keeps no copy: the submission is handled by
    custom_id (cogs.controls), which also works after a restart."""
    model = catalog.get_model(job.model)
    form = discord.ui.Modal(title=f"Edit and rerun job {job.id}", timeout=None,
                            custom_id=f"wan:editform:{job.id}")
    form.add_item(discord.ui.TextInput(
        label="Prompt", custom_id="prompt", style=discord.TextStyle.paragraph,
        default=job.prompt, required=model.prompt_required,
        max_length=min(model.prompt_max or 4000, 4000)))
    if model.negative_prompt_max:
        form.add_item(discord.ui.TextInput(
            label="Negative prompt", custom_id="negative_prompt",
            style=discord.TextStyle.paragraph, default=job.negative_prompt, required=False,
            max_length=min(model.negative_prompt_max, 4000)))
    if "seed" in model.options:
        form.add_item(discord.ui.TextInput(
            label="Seed (empty for a random one)", custom_id="seed", required=False,
            default=None if job.seed is None else str(job.seed), max_length=10))
    form.stop()
    return form


def extend_form(job: Job) -> discord.ui.Modal:
    """The Extend form: the prompt of the next clip, filled in with this one's (a last frame
    cannot be attached to a form: /extend takes one). Handled by custom_id, like edit_form."""
    form = discord.ui.Modal(title=f"Extend job {job.id}", timeout=None,
                            custom_id=f"wan:extendform:{job.id}")
    form.add_item(discord.ui.TextInput(
        label="What happens next", custom_id="prompt", style=discord.TextStyle.paragraph,
        default=job.prompt, required=False,
        max_length=min(model_for(job.model, Command.I2V).prompt_max or 800, 4000),
        placeholder="Starts from the last frame; /extend also takes a last frame"))
    form.stop()
    return form


def form_values(data: Any) -> dict[str, str]:
    """The values of a submitted form, by input custom_id, however Discord nested them."""
    found: dict[str, str] = {}
    if isinstance(data, list):
        for item in data:
            found.update(form_values(item))
    elif isinstance(data, dict):
        if "custom_id" in data and "value" in data:
            found[str(data["custom_id"])] = str(data["value"] or "")
        for key in ("components", "component"):
            found.update(form_values(data.get(key)))
    return found
