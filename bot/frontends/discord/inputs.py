"""What the slash commands offer and accept, from the catalog: choices, option descriptions,
attachments as media sources, and the check of an attachment's declared type.

Discord cannot filter an attachment option by file type, so the type Discord declares (content
type, else the file name's extension) is checked against the model before anything is
downloaded. Images of other types pass: `bot.media.prepare` converts them; the bytes decide later.
"""

from __future__ import annotations

import dataclasses
import mimetypes
from pathlib import PurePath
from typing import Any

import discord
from discord import app_commands

from bot.errors import InputError
from bot.frontends.common.intake import Ask
from bot.frontends.common.teams import TeamSettings
from bot.media.prepare import MIME, Attachment, MediaSource
from bot.provider import catalog
from bot.provider.catalog import Command, MediaKind, MediaLimits, Model

# Content types Discord (or a browser) may declare, beyond the standard ones in MIME.
ALIASES = {"image/jpg": "jpeg", "audio/x-wav": "wav", "audio/wave": "wav",
           "audio/vnd.wave": "wav", "audio/mp3": "mp3", "video/avi": "avi",
           "video/msvideo": "avi"}
FORMAT_OF = {**{mime: fmt for fmt, mime in MIME.items()}, **ALIASES}
NOUNS = {MediaKind.IMAGE: "an image", MediaKind.AUDIO: "audio", MediaKind.VIDEO: "a video"}


def choices(command: Command, option: str) -> list[app_commands.Choice[str]]:
    """Every value any of the command's models allows for an option, in catalog order."""
    values = catalog.option_values(command, option)
    return [app_commands.Choice(name=str(v), value=str(v)) for v in values]


def model_choices(command: Command) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=m.name, value=m.name) for m in catalog.models_for(command)]


def format_names(formats: frozenset[str]) -> str:
    """Like "JPEG, PNG or WEBP", in the order of `bot.media.prepare.MIME`."""
    ordered = [f for f in MIME if f in formats] + sorted(formats - set(MIME))
    names = [f.upper() for f in ordered]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def accepts(command: Command, field: str, what: str) -> str:
    """An attachment option's description: what it is and the file types the models take."""
    limits = [f.limits for m in catalog.models_for(command) for f in m.inputs if f.name == field]
    formats = frozenset().union(*(lim.formats for lim in limits))
    top_mb = max(lim.max_bytes for lim in limits) // catalog.MiB
    return f"{what}: {format_names(formats)}, up to {top_mb} MB"[:100]


def attachment(item: discord.Attachment | None) -> MediaSource | None:
    if item is None:
        return None
    return MediaSource.attachment(item.url, size=item.size, filename=item.filename,
                                  content_type=item.content_type)


def link(url: str | None) -> MediaSource | None:
    return MediaSource.link(url.strip()) if url and url.strip() else None


def options(**values: Any) -> dict[str, Any]:
    """Slash-command values to catalog parameters (durations are numbers there)."""
    if values.get("duration") is not None:
        values["duration"] = int(values["duration"])
    return {k: v for k, v in values.items() if v is not None}


def declared_type(item: Attachment) -> str | None:
    """The content type Discord declared, else the one the file name suggests."""
    declared = (item.content_type or "").partition(";")[0].strip().lower()
    return declared or mimetypes.guess_type(PurePath(item.filename).name)[0]


def check_declared(item: Attachment, limits: MediaLimits, option: str) -> None:
    """Refuse an attachment whose declared type the model cannot take; nothing is downloaded."""
    declared = declared_type(item)
    if declared is None:
        return  # nothing declared: the bytes decide
    kind_ok = declared.partition("/")[0] == limits.kind.value
    if kind_ok and (limits.kind is MediaKind.IMAGE or FORMAT_OF.get(declared) in limits.formats):
        return
    raise InputError(option, f"{item.filename} is declared as {declared}; this takes "
                             f"{NOUNS[limits.kind]} ({format_names(limits.formats)}).")


def check_inputs(ask: Ask) -> None:
    """Before any download: every input is one the model takes, and every attachment is
    declared as a type it takes (`check_declared`)."""
    model: Model = catalog.get_model(ask.model or catalog.default_model(ask.command).name,
                                     ask.command)
    fields = {f.name for f in model.inputs}
    for name in (n for n, items in ask.inputs.items() if items and n not in fields):
        option = ask.option_names.get(name, name)
        raise InputError(option, f"{model.name} does not take this input.")
    for field in model.inputs:
        option = ask.option_names.get(field.name, field.name)
        items = list(ask.inputs.get(field.name, ()))
        for number, item in enumerate(items, start=1):
            # as bot.frontends.common.intake names them
            label = f"{option}{number}" if len(items) > 1 else option
            if isinstance(item, Attachment):
                check_declared(item, field.limits, label)


def with_defaults(ask: Ask, team: TeamSettings) -> Ask:
    """The team's default model and options where the person gave none, each only if the
    chosen model takes it (a default that does not fit is left out, not an error)."""
    defaults = team.defaults.get(str(ask.command), {})
    names = {m.name for m in catalog.models_for(ask.command)}
    wanted = defaults.get("model")
    model_name = ask.model or (wanted if wanted in names else None)
    model = catalog.get_model(model_name or catalog.default_model(ask.command).name,
                              ask.command)
    options = dict(ask.options)
    for name, value in defaults.items():
        if name != "model" and options.get(name) is None:
            fitted = _fit(model, name, value)
            if fitted is not None:
                options[name] = fitted
    return dataclasses.replace(ask, model=model_name, options=options)


def _fit(model: Model, name: str, value: Any) -> Any:
    """A stored default as the model's option takes it; None if it does not take it."""
    option = model.options.get(name)
    if option is None or option.kind not in (str, int):
        return None
    try:
        converted = option.kind(value)
    except ValueError:
        return None
    return None if option.choices and converted not in option.choices else converted
