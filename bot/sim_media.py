"""Media for the DashScope simulator: loading and checking inputs, making the result video.

The simulator checks input the way the provider does after accepting a task: it downloads every
link, decodes it, and fails the task with `InvalidParameter` when the media breaks a limit of
the model (`bot.catalog.MediaLimits`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import struct
from collections.abc import Iterator

import aiohttp
import av
from PIL import Image, UnidentifiedImageError

from bot.catalog import MediaKind, MediaLimits

CHUNK = 64 * 1024
# Pillow's names for what the catalog calls jpeg etc.; phones write JPEGs as MPO.
PIL_FORMATS = {"mpo": "jpeg", "jpg": "jpeg", "tif": "tiff"}
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


class MediaError(Exception):
    """Input the simulated provider cannot use; the text becomes the task's failure message."""


def decode_data_url(url: str) -> bytes:
    """The bytes of a `data:{mime};base64,{data}` URL."""
    head, sep, payload = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise MediaError("a data: URL must look like data:{MIME_type};base64,{base64_data}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError("the base64 data in the data: URL is not valid") from exc


async def fetch(session: aiohttp.ClientSession, url: str, max_bytes: int, timeout_s: float) -> bytes:
    """Download `url` as the provider would: a time limit, and no more than `max_bytes`."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.get(url, timeout=timeout) as resp:
            if resp.status >= 400:
                raise MediaError(f"downloading {url} failed: HTTP {resp.status}")
            data = bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise MediaError(f"{url} is larger than {max_bytes // (1024 * 1024)} MB")
            return bytes(data)
    except TimeoutError as exc:
        raise MediaError(f"downloading {url} timed out") from exc
    except aiohttp.ClientError as exc:
        raise MediaError(f"downloading {url} failed: {type(exc).__name__}") from exc


def check(data: bytes, limits: MediaLimits) -> float | None:
    """Raise MediaError if `data` breaks `limits`; the duration in seconds for audio and video."""
    if len(data) > limits.max_bytes:
        raise MediaError(f"the file is larger than {limits.max_bytes // (1024 * 1024)} MB")
    if limits.kind is MediaKind.IMAGE:
        _check_image(data, limits)
        return None
    return _check_av(data, limits)


def _check_image(data: bytes, limits: MediaLimits) -> None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = (img.format or "").lower()
            width, height = img.size
            alpha = img.mode in ALPHA_MODES or "transparency" in img.info
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise MediaError("the file is not an image the service can read") from exc
    fmt = PIL_FORMATS.get(fmt, fmt)
    if fmt not in limits.formats:
        raise MediaError(f"image format {fmt or 'unknown'} is not one of {_names(limits)}")
    _check_size(width, height, limits)
    if alpha and not limits.alpha:
        raise MediaError("images with an alpha (transparency) channel are not supported")


def _check_av(data: bytes, limits: MediaLimits) -> float:
    try:
        with av.open(io.BytesIO(data)) as container:
            name = container.format.name
            formats = set(name.split(","))
            seconds = (container.duration or 0) / 1_000_000
            video = container.streams.video[0] if container.streams.video else None
            size = (video.codec_context.width, video.codec_context.height) if video else None
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise MediaError(f"the file is not {limits.kind} the service can read") from exc
    if not formats & limits.formats:
        raise MediaError(f"{limits.kind} format {name} is not one of {_names(limits)}")
    if limits.kind is MediaKind.VIDEO:
        if size is None:
            raise MediaError("the file has no video stream")
        _check_size(*size, limits)
    _check_seconds(seconds, limits)
    return seconds


def _check_size(width: int, height: int, limits: MediaLimits) -> None:
    low, high = limits.min_px or 1, limits.max_px or 1_000_000
    if not (low <= width <= high and low <= height <= high):
        raise MediaError(
            f"{limits.kind} is {width}x{height} px; width and height must be {low}-{high} px"
        )
    ratio = width / height
    if limits.min_ratio is not None and limits.max_ratio is not None:
        if not limits.min_ratio <= ratio <= limits.max_ratio:
            raise MediaError(
                f"{limits.kind} aspect ratio {ratio:.2f} is outside "
                f"{limits.min_ratio:.2f}-{limits.max_ratio:.2f} (width / height)"
            )


def _check_seconds(seconds: float, limits: MediaLimits) -> None:
    low, high = limits.min_s or 0, limits.max_s or float("inf")
    if not low <= seconds <= high:
        raise MediaError(f"{limits.kind} lasts {seconds:.1f} s; it must last {low:g}-{high:g} s")


def _names(limits: MediaLimits) -> str:
    return ", ".join(sorted(limits.formats))


@functools.cache
def result_mp4() -> bytes:
    """The video every successful task returns: small, real H.264 in MP4, made once."""
    return make_mp4(160, 96, seconds=1.0, fps=8)


def make_mp4(width: int, height: int, *, seconds: float, fps: int = 8) -> bytes:
    """A real H.264 MP4 of grey frames fading to white (also used by tests as input video)."""
    buf = io.BytesIO()
    frames = max(1, round(seconds * fps))
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "40"}
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([64 + (i * 160) // frames]) * plane.buffer_size)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buf.getvalue()


def make_wav(seconds: float, rate: int = 8000) -> bytes:
    """A silent mono WAV (tests use it as i2v audio input)."""
    samples = round(seconds * rate)
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + samples * 2, b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16,
        b"data", samples * 2,
    )
    return header + bytes(samples * 2)


def padding(size: int) -> Iterator[bytes]:
    """An MP4 `free` box of exactly `size` bytes (>= 8), in chunks: players skip it."""
    if size < 8:
        return
    if size < 2**32:
        head = struct.pack(">I4s", size, b"free")
    else:  # a 64-bit "largesize" box
        head = struct.pack(">I4sQ", 1, b"free", size)
    yield head
    left = size - len(head)
    zeros = bytes(CHUNK)
    while left > 0:
        yield zeros[: min(left, CHUNK)]
        left -= CHUNK
