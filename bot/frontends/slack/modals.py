"""The modals: a new job (`wan:new:<command>`), Edit and rerun (`wan:editform:<job id>`) and
Extend (`wan:extendform:<job id>`), and what a submission of each asks for.

A media input is an `input` block whose block_id and action_id are the option name, holding a
`file_input` (Slack's own upload, 10 MB at most) with a `<name>_url` text block beside it for a
link; the rest are the slash commands' options. A submission carries no channel, so the
channel rides in `private_metadata`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.engine import Job
from bot.errors import InputError
from bot.frontends.common.intake import Ask
from bot.frontends.common.options import INPUTS, RENAMED, parameters
from bot.media.prepare import MediaSource
from bot.provider import catalog
from bot.provider.catalog import Command

Block = dict[str, Any]
SELECTS = ("model", "resolution", "duration", "mode", "size")
FLAGS = ("private", "prompt_extend", "watermark")
FLAG_LABELS = {"private": "Private: only I see it; the video comes by DM",
               "prompt_extend": "Let the provider rewrite the prompt",
               "watermark": "Add the provider's AI-generated mark"}
SLACK_NAMES = {"ref_images_url": "images"}  # one block takes all of /reference's images
MAX_IMAGES = 3


@dataclass(frozen=True)
class Metadata:
    """What a submission needs that Slack does not send back: where the command was typed."""

    channel_id: str
    command: str
    files: tuple[str, ...] = ()  # from a message shortcut: the ids of the message's files

    def dump(self) -> str:
        return json.dumps({"channel_id": self.channel_id, "command": self.command,
                           "files": list(self.files)})

    @classmethod
    def load(cls, text: str) -> Metadata:
        data = json.loads(text or "{}")
        return cls(str(data.get("channel_id", "")), str(data.get("command", "")),
                   tuple(str(f) for f in data.get("files") or ()))


def media_names(command: Command) -> dict[str, str]:
    """Body field -> the block (and option) name of each media input on Slack."""
    return {field: SLACK_NAMES.get(field, option.name)
            for field, option in INPUTS[command].items()}


def new_job_view(command: Command, channel_id: str,
                 files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The form; with `files` (a message shortcut) each input picks one of them instead."""
    blocks: list[Block] = []
    for field, name in media_names(command).items():
        blocks += _pick_blocks(field, name, files) if files else _media_blocks(command, field, name)
    if command is not Command.ANIMATE:
        blocks.append(_text_input("prompt", "Prompt", multiline=True,
                                  optional=command is not Command.REFERENCE))
        blocks.append(_text_input("negative_prompt", "Negative prompt", optional=True))
    blocks += [block for name in SELECTS if (block := _select(command, name))]
    if command is Command.REFERENCE:
        blocks.append(_text_input("roles", "Roles: obj or bg per image, e.g. obj,bg",
                                  optional=True))
    blocks.append(_flags(command))
    ids = tuple(str(f["id"]) for f in files or ())
    return _view(f"wan:new:{command}", f"Wan · /{command}", blocks,
                 Metadata(channel_id, str(command), ids))


def edit_view(job: Job, channel_id: str) -> dict[str, Any]:
    blocks = [_text_input("prompt", "Prompt", multiline=True, optional=True,
                          initial=job.prompt or ""),
              _text_input("negative_prompt", "Negative prompt", optional=True,
                          initial=job.negative_prompt or ""),
              _text_input("seed", "Seed (empty: a new random one)", optional=True)]
    return _view(f"wan:editform:{job.id}", "Edit and rerun", blocks,
                 Metadata(channel_id, job.command))


def extend_view(job: Job, channel_id: str) -> dict[str, Any]:
    """The Extend form: the next clip's prompt (this one's to start with), and a last frame to
    end on, if the person wants one (then first/last-frame instead of image-to-video)."""
    blocks = [_text_input("prompt", "What happens next", multiline=True, optional=True,
                          initial=job.prompt or ""),
              *_media_blocks(Command.KF2V, "last_frame_url", "last_frame")]
    return _view(f"wan:extendform:{job.id}", "Extend", blocks, Metadata(channel_id, job.command))


def _view(callback_id: str, title: str, blocks: list[Block], meta: Metadata) -> dict[str, Any]:
    return {"type": "modal", "callback_id": callback_id, "private_metadata": meta.dump(),
            "title": {"type": "plain_text", "text": title[:24]},
            "submit": {"type": "plain_text", "text": "Make it"},
            "close": {"type": "plain_text", "text": "Cancel"}, "blocks": blocks}


def _media_blocks(command: Command, field: str, name: str) -> list[Block]:
    formats = sorted({fmt for model in catalog.models_for(command) for f in model.inputs
                      if f.name == field for fmt in f.limits.formats})
    many = MAX_IMAGES if field == "ref_images_url" else 1
    upload = {"type": "file_input", "action_id": name, "filetypes": formats, "max_files": many}
    label = name.replace("_", " ").capitalize()
    return [
        {"type": "input", "block_id": name, "optional": True, "element": upload,
         "label": {"type": "plain_text", "text": label}},
        _text_input(f"{name}_url", f"…or a link to {'them' if many > 1 else 'it'}",
                    optional=True),
    ]


def _pick_blocks(field: str, name: str, files: list[dict[str, Any]]) -> list[Block]:
    """A choice among a message's files for one input (1-3 for /reference's images)."""
    options = [{"text": {"type": "plain_text", "text": str(f.get("name") or f["id"])[:75]},
                "value": str(f["id"])} for f in files[:100]]
    many = field == "ref_images_url"
    element: Block = {"type": "multi_static_select" if many else "static_select",
                      "action_id": name, "options": options}
    if many:
        element["max_selected_items"] = MAX_IMAGES
    label = name.replace("_", " ").capitalize()
    return [{"type": "input", "block_id": name, "optional": True, "element": element,
             "label": {"type": "plain_text", "text": label}},
            _text_input(f"{name}_url", "…or a link instead", optional=True)]


def _text_input(name: str, label: str, *, multiline: bool = False, optional: bool = False,
                initial: str = "") -> Block:
    element: Block = {"type": "plain_text_input", "action_id": name, "multiline": multiline}
    if initial:
        element["initial_value"] = initial
    return {"type": "input", "block_id": name, "optional": optional, "element": element,
            "label": {"type": "plain_text", "text": label}}


def _select(command: Command, name: str) -> Block | None:
    values = ([m.name for m in catalog.models_for(command)] if name == "model"
              else [str(v) for v in catalog.option_values(command, name)])
    if len(values) < 2:
        return None
    options = [{"text": {"type": "plain_text", "text": v}, "value": v} for v in values]
    return {"type": "input", "block_id": name, "optional": True,
            "label": {"type": "plain_text", "text": name.capitalize()},
            "element": {"type": "static_select", "action_id": name, "options": options}}


def _flags(command: Command) -> Block:
    names = ["private", "watermark"] if command is Command.ANIMATE else list(FLAGS)
    options = [{"text": {"type": "plain_text", "text": FLAG_LABELS[n]}, "value": n}
               for n in names]
    element: Block = {"type": "checkboxes", "action_id": "flags", "options": options}
    if "prompt_extend" in names:  # on unless unticked, as the provider's default is
        element["initial_options"] = [o for o in options if o["value"] == "prompt_extend"]
    return {"type": "input", "block_id": "flags", "optional": True,
            "label": {"type": "plain_text", "text": "Options"}, "element": element}


# --- reading a submission -------------------------------------------------------------------


def values_of(view: dict[str, Any]) -> dict[str, Any]:
    """block_id -> the element's value: text, a selected value, files, or checked values."""
    out: dict[str, Any] = {}
    for block_id, actions in (view.get("state") or {}).get("values", {}).items():
        for state in actions.values():
            out[block_id] = _value(state)
    return out


def _value(state: dict[str, Any]) -> Any:
    kind = state.get("type")
    if kind == "file_input":
        return list(state.get("files") or [])
    if kind == "checkboxes":
        return [o["value"] for o in state.get("selected_options") or []]
    if kind in ("static_select", "external_select"):
        return (state.get("selected_option") or {}).get("value")
    if kind == "multi_static_select":
        return [o["value"] for o in state.get("selected_options") or []]
    if kind == "multi_users_select":
        return list(state.get("selected_users") or [])
    if kind == "conversations_select":
        return state.get("selected_conversation")
    return state.get("value")


@dataclass(frozen=True)
class Typed:
    """A submission as typed: the ask (inputs still to fetch) and where to answer."""

    ask: Ask
    meta: Metadata


def read_new_job(view: dict[str, Any], sources: Any,
                 picked: dict[str, dict[str, Any]] | None = None) -> Typed:
    """The request a new-job modal asks for. `sources(files, urls, option)` turns its files and
    links into media sources; `picked` holds the file objects a shortcut's choices name.
    InputError names the block that is wrong."""
    meta = Metadata.load(view.get("private_metadata", ""))
    command = Command(meta.command)
    values = values_of(view)
    inputs, names = {}, {}
    for field, name in media_names(command).items():
        urls = (values.get(f"{name}_url") or "").split()
        inputs[field] = sources(_files(values.get(name), picked or {}), urls, name)
        names[field] = name
    flags = set(values.get("flags") or [])
    roles = values.get("roles")
    options = parameters(
        **{k: values.get(k) for k in SELECTS if k != "model"},
        prompt_extend=None if command is Command.ANIMATE else "prompt_extend" in flags,
        watermark="watermark" in flags or None,
        obj_or_bg=[r.strip() for r in roles.split(",")] if roles else None)
    ask = Ask(command, values.get("model"), values.get("prompt"), values.get("negative_prompt"),
              options, {k: v for k, v in inputs.items() if v}, names | RENAMED,
              private="private" in flags)
    return Typed(ask, meta)


def _files(value: Any, picked: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """File objects from a file_input, or from a shortcut's choice of file ids."""
    if isinstance(value, str):
        value = [value]
    return [picked[v] if isinstance(v, str) else v for v in value or [] if
            not isinstance(v, str) or v in picked]


def check_inputs_given(typed: Typed) -> None:
    """Every required input is given once: as files or as links, not both."""
    command = Command(typed.meta.command)
    for field, option in INPUTS[command].items():
        name = media_names(command)[field]
        if option.required and not typed.ask.inputs.get(field):
            raise InputError(name, "attach a file here or give a link below.")


def read_extend(view: dict[str, Any], sources: Any) -> tuple[str, MediaSource | None]:
    """The prompt and the last frame (a file or a link; None: none) an Extend form asks for."""
    values = values_of(view)
    urls = (values.get("last_frame_url") or "").split()
    given = sources(_files(values.get("last_frame"), {}), urls, "last_frame")
    if len(given) > 1:
        raise InputError("last_frame", "give one last frame.")
    return values.get("prompt") or "", (given[0] if given else None)


def read_edit(view: dict[str, Any]) -> tuple[str, str, str]:
    values = values_of(view)
    return (values.get("prompt") or "", values.get("negative_prompt") or "",
            values.get("seed") or "")
