"""Input media: fetch it, probe it, check it against the catalog, repair what is safe, hand it over.

`prepare()` is the one entry point. Every refusal is an `InputError` naming the user's option
and the rule with the actual value, raised before anything is spent. Pillow and PyAV work in
worker threads; downloads go through `bot.media.fetch` (SSRF guard, byte cap, timeout).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from bot.config import Settings
from bot.errors import InputError
from bot.media.fetch import (
    Bearer,
    GuardedConnector,
    fetch_bytes,
    fetch_to_file,
    guarded_session,
    over_limit,
)
from bot.media.pool import MediaPool, shared_pool
from bot.media.probe import (
    EXTENSIONS,
    MIME,
    ImageInfo,
    MediaInfo,
    check,
    probe,
    repair_image,
)
from bot.provider.catalog import InputField, MediaKind, MediaLimits

IMAGE_FETCH_FACTOR = 2  # images up to twice a model's byte limit are read, then re-encoded to fit


# --- what the caller gives us -------------------------------------------------------------


class MediaSource:
    """Where one input comes from: a `Link`, an `Attachment` or a `LocalFile`."""

    @staticmethod
    def link(url: str) -> Link:
        return Link(url)

    @staticmethod
    def attachment(
        url: str, *, size: int, filename: str, content_type: str | None = None
    ) -> Attachment:
        return Attachment(url, size, filename, content_type)

    @staticmethod
    def local(path: str | Path) -> LocalFile:
        return LocalFile(Path(path))

    @property
    def label(self) -> str:
        """How to name the input to the person who gave it."""
        raise NotImplementedError


@dataclass(frozen=True)
class Link(MediaSource):
    """A link a user typed: fetched through the SSRF guard."""

    url: str

    @property
    def label(self) -> str:
        return self.url


@dataclass(frozen=True)
class Attachment(MediaSource):
    """A file attached in Discord; its CDN URL is public, so it counts as a link."""

    url: str
    size: int  # as Discord declares it: checked before any byte is downloaded
    filename: str
    content_type: str | None = None  # informational: the bytes are probed, not trusted

    @property
    def label(self) -> str:
        return self.filename


@dataclass(frozen=True)
class PrivateFile(Attachment):
    """A file a chat platform keeps private (Slack): fetched with the bot's token, which goes to
    the file's own origin only; never a public link, so always handed over as an upload."""

    bearer: Bearer | None = None  # its repr leaves the token out


@dataclass(frozen=True)
class LocalFile(MediaSource):
    """A file on disk (terminal front end): no public URL, so it is uploaded or inlined."""

    path: Path

    @property
    def label(self) -> str:
        return self.path.name


# (model_api_name, filename, bytes or a file path, content_type) -> "oss://..."
Uploader = Callable[[str, str, bytes | Path, str], Awaitable[str]]


@dataclass(frozen=True)
class MediaContext:
    """What `prepare` needs from the outside world."""

    # Ideally from `bot.media.fetch.guarded_session(settings.trusted_hosts)`; with any other session
    # a guarded one is opened per fetch, because only a guarded connector defeats DNS rebinding.
    session: aiohttp.ClientSession
    settings: Settings
    uploader: Uploader
    # Where probes and repairs run; None: the process's pool of `settings.media_workers`,
    # shared by every context so the bound holds across commands.
    pool: MediaPool | None = None

    @classmethod
    def from_settings(
        cls, session: aiohttp.ClientSession, settings: Settings, *, uploader: Uploader
    ) -> MediaContext:
        return cls(session, settings, uploader)

    @property
    def media_pool(self) -> MediaPool:
        return self.pool or shared_pool(self.settings.media_workers)


@dataclass(frozen=True)
class Prepared:
    """One input, ready for the request body."""

    field: str  # the body's input field (the catalog's name)
    url: str  # a public link, an oss:// URL from the uploader, or a data: URL
    info: MediaInfo  # of what the provider will receive (after any repair)
    notes: tuple[str, ...] = ()  # one line per repair, for the user
    oss: bool = False  # the request needs the header X-DashScope-OssResourceResolve: enable

    @property
    def needs_oss(self) -> bool:
        """The name docs/ARCHITECTURE.md uses."""
        return self.oss


# --- getting the bytes ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    content: bytes | Path  # images and audio in memory; videos as a file
    filename: str
    public_url: str | None  # a link the provider can fetch itself; None for local files
    private: bool = False  # a platform's private file: only ever handed over as an upload


def _byte_cap(limits: MediaLimits, settings: Settings) -> int:
    factor = IMAGE_FETCH_FACTOR if limits.kind is MediaKind.IMAGE else 1
    return min(limits.max_bytes * factor, settings.fetch_max_bytes)


def _url_name(url: str) -> str:
    try:
        return URL(url).name or "input"
    except ValueError:
        return "input"


@asynccontextmanager
async def _session(ctx: MediaContext) -> AsyncIterator[aiohttp.ClientSession]:
    if isinstance(ctx.session.connector, GuardedConnector):
        yield ctx.session
        return
    async with guarded_session(ctx.settings.trusted_hosts) as session:
        yield session


@asynccontextmanager
async def _temp_path(name: str) -> AsyncIterator[Path]:
    suffix = re.sub(r"[^A-Za-z0-9.]", "", Path(name).suffix)[:8]
    fd, raw = await asyncio.to_thread(tempfile.mkstemp, prefix="wanbot-", suffix=suffix)
    os.close(fd)
    path = Path(raw)
    try:
        yield path
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def _read_local(path: Path, limits: MediaLimits, option: str, cap: int) -> _Loaded:
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > cap:
            raise InputError(option, over_limit(cap, size))
        if limits.kind is MediaKind.VIDEO:
            return _Loaded(path, path.name, None)  # probed and uploaded in place, never copied
        return _Loaded(await asyncio.to_thread(path.read_bytes), path.name, None)
    except OSError as exc:
        raise InputError(option, f"could not read {path.name}: {exc.strerror or exc}.") from None


@asynccontextmanager
async def _load(
    item: MediaSource, limits: MediaLimits, option: str, ctx: MediaContext
) -> AsyncIterator[_Loaded]:
    """The input's bytes (or file), cleaned up on exit."""
    cap = _byte_cap(limits, ctx.settings)
    if isinstance(item, LocalFile):
        yield await _read_local(item.path, limits, option, cap)
        return
    if not isinstance(item, Link | Attachment):
        raise TypeError(f"not a media source: {item!r}")
    if isinstance(item, Attachment) and item.size > cap:
        raise InputError(option, over_limit(cap, item.size))  # costs nothing: not downloaded
    name = item.filename if isinstance(item, Attachment) else _url_name(item.url)
    private = isinstance(item, PrivateFile)
    limit: dict[str, Any] = {
        "option": option,
        "max_bytes": cap,
        "timeout_s": ctx.settings.fetch_timeout_s,
        "bearer": item.bearer if private else None,
    }
    public_url = None if private else str(URL(item.url.strip()))
    if limits.kind is not MediaKind.VIDEO:
        async with _session(ctx) as session:
            data = await fetch_bytes(session, item.url, **limit)
        yield _Loaded(data, name, public_url, private)
        return
    async with _temp_path(name) as path:
        async with _session(ctx) as session:
            await fetch_to_file(session, item.url, path, **limit)
        yield _Loaded(path, name, public_url, private)


# --- handing over -------------------------------------------------------------------------


def _upload_name(filename: str, fmt: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(filename).stem).strip("_")[:60] or "input"
    return stem + EXTENSIONS.get(fmt, f".{fmt}")


def _data_url_sync(content: bytes | Path, fmt: str) -> str:
    data = content if isinstance(content, bytes) else content.read_bytes()
    return f"data:{MIME[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


async def _hand_over(
    loaded: _Loaded,
    content: bytes | Path,
    info: MediaInfo,
    notes: tuple[str, ...],
    field: InputField,
    model_api_name: str,
    ctx: MediaContext,
) -> Prepared:
    """The URL for the body, per `settings.media_handoff`: url sends the user's own link when
    nothing was repaired; data inlines the bytes where the field allows it; auto and oss, and
    every case the others do not cover (local files, repaired media), upload. Uploading is the
    default because it works in every region (Beijing cannot reach every host, Discord's CDN
    links expire) and the provider then reads exactly the bytes we checked."""
    mode = ctx.settings.media_handoff
    if loaded.public_url and not notes and mode == "url":
        return Prepared(field.name, loaded.public_url, info, notes)
    if mode == "data" and field.accepts_data_url and not loaded.private:
        url = await asyncio.to_thread(_data_url_sync, content, info.format)
        return Prepared(field.name, url, info, notes)
    name = _upload_name(loaded.filename, info.format)
    url = await ctx.uploader(model_api_name, name, content, MIME[info.format])
    return Prepared(field.name, url, info, notes, oss=url.startswith("oss://"))


async def prepare(
    item: MediaSource,
    field: InputField,
    *,
    option: str,
    model_api_name: str,
    ctx: MediaContext,
) -> Prepared:
    """Fetch, probe, check, repair and hand over one input. `option` is the name the user typed
    (every InputError and note carries it); `field.name` is what the request body uses."""
    limits = field.limits
    async with _load(item, limits, option, ctx) as loaded:
        content = loaded.content
        notes: tuple[str, ...] = ()
        pool = ctx.media_pool
        info = await probe(content, limits, option=option, pool=pool)
        if isinstance(info, ImageInfo) and isinstance(content, bytes):
            content, info, notes = await repair_image(
                content, info, limits, option=option, pool=pool
            )
        check(info, limits, option=option)
        return await _hand_over(loaded, content, info, notes, field, model_api_name, ctx)
