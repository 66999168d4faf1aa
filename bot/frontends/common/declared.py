"""The check of an attachment's declared type, before anything is downloaded.

Chat platforms cannot filter an attachment by file type, so the type the platform declares
(content type, else the file name's extension) is checked against the model first. Images of
other types pass: `bot.media.prepare` converts them; the bytes decide later.
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePath

from bot.errors import InputError
from bot.frontends.common.intake import Ask
from bot.media.prepare import MIME, Attachment
from bot.provider import catalog
from bot.provider.catalog import MediaKind, MediaLimits, Model

# Content types Discord (or a browser) may declare, beyond the standard ones in MIME.
ALIASES = {"image/jpg": "jpeg", "audio/x-wav": "wav", "audio/wave": "wav",
           "audio/vnd.wave": "wav", "audio/mp3": "mp3", "video/avi": "avi",
           "video/msvideo": "avi"}
FORMAT_OF = {**{mime: fmt for fmt, mime in MIME.items()}, **ALIASES}
NOUNS = {MediaKind.IMAGE: "an image", MediaKind.AUDIO: "audio", MediaKind.VIDEO: "a video"}


def format_names(formats: frozenset[str]) -> str:
    """Like "JPEG, PNG or WEBP", in the order of `bot.media.prepare.MIME`."""
    ordered = [f for f in MIME if f in formats] + sorted(formats - set(MIME))
    names = [f.upper() for f in ordered]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


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
            label = f"{option}{number}" if len(items) > 1 else option  # as intake names them
            if isinstance(item, Attachment):
                check_declared(item, field.limits, label)
