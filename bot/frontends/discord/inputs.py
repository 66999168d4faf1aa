"""What the slash commands offer and accept, from the catalog: choices, option descriptions
and attachments as media sources. (The check of an attachment's declared type, which every
front end shares, is `bot.frontends.common.declared`.)
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.frontends.common.declared import format_names
from bot.media.prepare import MediaSource
from bot.provider import catalog
from bot.provider.catalog import Command
from bot.units import MiB


def choices(command: Command, option: str) -> list[app_commands.Choice[str]]:
    """Every value any of the command's models allows for an option, in catalog order."""
    values = catalog.option_values(command, option)
    return [app_commands.Choice(name=str(v), value=str(v)) for v in values]


def model_choices(command: Command) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=m.name, value=m.name) for m in catalog.models_for(command)]


def accepts(command: Command, field: str, what: str) -> str:
    """An attachment option's description: what it is and the file types the models take."""
    limits = [f.limits for m in catalog.models_for(command) for f in m.inputs if f.name == field]
    formats = frozenset().union(*(lim.formats for lim in limits))
    top_mb = max(lim.max_bytes for lim in limits) // MiB
    return f"{what}: {format_names(formats)}, up to {top_mb} MB"[:100]


def attachment(item: discord.Attachment | None) -> MediaSource | None:
    if item is None:
        return None
    return MediaSource.attachment(item.url, size=item.size, filename=item.filename,
                                  content_type=item.content_type)


def link(url: str | None) -> MediaSource | None:
    return MediaSource.link(url.strip()) if url and url.strip() else None


