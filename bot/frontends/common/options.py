"""What every front end calls a command's inputs and options, and how typed values become the
catalog's parameters.

The provider names inputs by body field (`first_frame_url`); people see option names
(`first_frame`). One table here, so error messages name the same option everywhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from bot.provider.catalog import Command


class InputOption(NamedTuple):
    name: str  # what people type or see
    required: bool


INPUTS: dict[Command, dict[str, InputOption]] = {  # body field -> option
    Command.KF2V: {"first_frame_url": InputOption("first_frame", True),
                   "last_frame_url": InputOption("last_frame", True)},
    Command.I2V: {"img_url": InputOption("image", True),
                  "audio_url": InputOption("audio", False)},
    Command.ANIMATE: {"image_url": InputOption("image", True),
                      "video_url": InputOption("video", True)},
    Command.REFERENCE: {"ref_images_url": InputOption("image", True)},
}
RENAMED = {"obj_or_bg": "roles"}  # parameters people know by another name


def option_names(command: Command) -> dict[str, str]:
    """Body field or parameter -> the option name people use, for one command."""
    return {field: option.name for field, option in INPUTS[command].items()} | RENAMED


def parameters(**values: Any) -> dict[str, Any]:
    """Typed option values to catalog parameters: unset ones dropped, durations as numbers."""
    if values.get("duration") is not None:
        values["duration"] = int(values["duration"])
    return {k: v for k, v in values.items() if v is not None}
