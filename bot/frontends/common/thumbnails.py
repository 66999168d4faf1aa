"""The picture a progress message shows: the job's first input image, when the chat service
can fetch it from its address itself and showing that address gives nothing away.

What the provider got is not always such an address: an upload (`oss://`, readable only by the
provider), a `data:` URL, a host on our own network (trusted for tests or local files), a
Slack file (readable only with the bot's token). None of those is ever put in a message.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from bot.engine import Job
from bot.errors import InputError
from bot.provider import catalog
from bot.provider.catalog import MediaKind

LOCAL_SUFFIXES = (".local", ".localhost", ".internal", ".lan", ".home.arpa", ".corp")
TOKEN_HOSTS = frozenset({"files.slack.com"})  # files only the bot's token opens


def thumbnail_url(job: Job) -> str | None:
    """The first input image's address if the chat service may show it, else None."""
    try:
        model = catalog.get_model(job.model)
    except InputError:  # a model the catalog no longer has: nothing to show
        return None
    for field in model.inputs:
        if field.kind is MediaKind.IMAGE and (value := job.media.get(field.name)):
            url = value[0] if isinstance(value, list) else value
            return url if isinstance(url, str) and is_public_url(url) else None
    return None


def is_public_url(url: str) -> bool:
    """An http(s) address on the public internet, with no credentials in it."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    if "." not in host or host == "localhost" or host.endswith(LOCAL_SUFFIXES):
        return False
    return host not in TOKEN_HOSTS
