"""Media from Slack: files people gave (private: fetched with the bot token, sent only to the
file's own origin) and links they typed (through the SSRF guard like every link)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.errors import InputError
from bot.media.fetch import Bearer, origin_of
from bot.media.prepare import MediaSource, PrivateFile

Sources = Callable[[list[dict[str, Any]], list[str], str], list[MediaSource]]


def private_file(file: dict[str, Any], token: str) -> PrivateFile:
    """A Slack file object (from a file_input or a message) as a media source."""
    url = str(file.get("url_private_download") or file.get("url_private") or "")
    if not url:
        raise InputError(str(file.get("name") or "file"), "Slack gave no address for this file.")
    return PrivateFile(url, int(file.get("size") or 0), str(file.get("name") or "file"),
                       file.get("mimetype"), bearer=Bearer(origin_of(url), token))


def sources_for(token: str) -> Sources:
    """Files or links for one input (InputError when both are given)."""

    def sources(files: list[dict[str, Any]], urls: list[str], option: str) -> list[MediaSource]:
        if files and urls:
            raise InputError(option, "attach files or give links, not both.")
        if files:
            return [private_file(f, token) for f in files]
        return [MediaSource.link(u) for u in urls]

    return sources
