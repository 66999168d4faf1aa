"""Extend, for any front end: a new clip that starts where a finished one ends.

The parent's last frame, decoded from our own copy of its video (on the media pool), is the
new job's first frame: image-to-video with a model of the parent's family, or first/last-frame
when the person gives a last frame too. The frame is a local file to `prepare` like any input
(checked, and uploaded privately to the provider's temporary storage), and the request is an
`Ask` like a typed command's, so it passes the same checks, limits and budgets: every clip of a
chain is a job that counts. The new job names its parent (`parent_id`); when it is delivered,
`chains` posts the whole chain as one video.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.engine import Display, Job, JobState
from bot.errors import InputError
from bot.frontends.common.intake import Ask
from bot.frontends.common.options import option_names
from bot.media.frames import NoFrame, last_frame_png
from bot.media.pool import MediaPool
from bot.media.prepare import LocalFile, MediaSource
from bot.provider import catalog
from bot.provider.catalog import Command, Model

NOT_FINISHED = "Only a finished video can be extended."
FRAME_GONE = ("This video is no longer kept here, so its last frame cannot be taken; extend a "
              "newer video, or make this one again with Rerun.")
CARRIED = ("resolution", "duration", "prompt_extend", "watermark")  # options the new clip keeps
FIRST = {Command.I2V: "img_url", Command.KF2V: "first_frame_url"}


@dataclass(frozen=True)
class FrameOf(LocalFile):
    """The last frame of a job's video, as a local input named for people."""

    job_id: str = ""

    @property
    def label(self) -> str:
        return f"last frame of job {self.job_id}"


def refusal(parent: Job) -> str | None:
    """Why `parent` cannot be extended (whoever asks); None when it can."""
    if parent.state is not JobState.DELIVERED:
        return NOT_FINISHED
    if not parent.video_path:
        return FRAME_GONE
    return None


def model_for(parent_model: str, command: Command) -> Model:
    """The parent's model when it makes `command`, else one of its family: the same version
    (wan2.2 ...) and, where there is one, the same tier (flash, plus ...)."""
    parent = catalog.get_model(parent_model)
    if parent.command is command:
        return parent
    version = _version(parent.name)
    family = [m for m in catalog.models_for(command) if _version(m.name) == version]
    tier = parent.name.rsplit("-", 1)[-1]
    same_tier = [m for m in family if m.name.rsplit("-", 1)[-1] == tier]
    return (same_tier or family or [catalog.default_model(command)])[0]


def _version(name: str) -> str:
    return name.split("-", 1)[0].replace("wanx", "wan")


def carried_options(parent: Job, model: Model) -> dict[str, Any]:
    """The parent's options the new model takes with the same value (a new seed each time)."""
    kept: dict[str, Any] = {}
    for name in CARRIED:
        option, value = model.options.get(name), parent.options.get(name)
        if option is None or value is None:
            continue
        if option.choices is None or value in option.choices:
            kept[name] = value
    return kept


def ask_for(parent: Job, frame: Path, *, prompt: str | None,
            last_frame: MediaSource | None = None, display: Display | None = None) -> Ask:
    """The request that continues `parent` from its last frame (in `frame`)."""
    command = Command.KF2V if last_frame is not None else Command.I2V
    model = model_for(parent.model, command)
    inputs: dict[str, list[MediaSource]] = {FIRST[command]: [FrameOf(frame, job_id=parent.id)]}
    if last_frame is not None:
        inputs["last_frame_url"] = [last_frame]
    return Ask(command, model.name, (prompt or "").strip() or None, parent.negative_prompt,
               carried_options(parent, model), inputs, option_names(command),
               private=parent.private, display=display or Display())


@contextlib.asynccontextmanager
async def last_frame(parent: Job, pool: MediaPool) -> AsyncIterator[Path]:
    """The parent's last frame as a PNG file for the block (InputError when it cannot be
    taken: the video is gone or unreadable)."""
    try:
        png = await pool.run(last_frame_png, Path(parent.video_path or ""))
    except NoFrame:
        raise InputError("job", FRAME_GONE) from None
    path = await asyncio.to_thread(_write_temp, png, parent.id)
    try:
        yield path
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


def _write_temp(data: bytes, job_id: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f"wanbot-{job_id}-last-", suffix=".png")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return Path(name)
