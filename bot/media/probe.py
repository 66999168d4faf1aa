"""What a media file is, whether a model takes it, and what can safely be fixed.

Probing, checking and repairing, against the catalog's `MediaLimits`. Every refusal is an
`InputError` naming the user's option and the rule with the actual value. Pillow and PyAV run on
a bounded `MediaPool`, never on the event loop. An image is sized by its header first (bigger
than any model takes: refused undecoded), then decoded once, shrunk while decoding
(`bot.media.decode`): by the repair when one is needed, else to check that it is readable.
"""

from __future__ import annotations

import asyncio
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import av
from PIL import Image

from bot.errors import InputError
from bot.media.decode import MAX_SIDE_PX, decode, onto_white
from bot.media.pool import DEFAULT_WORKERS, MediaPool, shared_pool
from bot.provider.catalog import MediaKind, MediaLimits
from bot.units import format_mb

CHECK_SIDE_PX = 256  # an image handed over as is is still decoded, this small, to prove it reads
JPEG_QUALITIES = (90, 80, 70, 60, 50, 40)
MIME = {  # every format some model takes, in the order messages list them
    "jpeg": "image/jpeg",
    "png": "image/png",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
}
EXTENSIONS = {"jpeg": ".jpg", "tiff": ".tif"}  # others: "." + format
SAVE_MODES = {  # the formats we write, and the modes each writes as is (others are converted)
    "jpeg": frozenset({"L", "RGB", "CMYK"}),
    "png": frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}),
    "bmp": frozenset({"1", "L", "P", "RGB", "RGBA"}),
    "webp": frozenset({"RGB", "RGBA"}),
    "tiff": frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "CMYK"}),
}
FFMPEG_NAMES = {"matroska": "mkv", "mpegts": "ts", "image2": "image"}  # as people know them
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zlib.error)  # Pillow's for bad files
ORIENTATIONS = {  # EXIF orientation -> the transposition that shows the image upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# --- what we found ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    noun: ClassVar[str] = "image"
    format: str  # as probed: jpeg png bmp webp tiff gif ...
    width: int
    height: int
    has_alpha: bool
    size_bytes: int


@dataclass(frozen=True)
class AudioInfo:
    noun: ClassVar[str] = "audio"
    format: str  # wav mp3 mp4 ogg ...
    duration_s: float
    size_bytes: int


@dataclass(frozen=True)
class VideoInfo:
    noun: ClassVar[str] = "video"
    format: str  # mp4 mov avi mkv ...
    duration_s: float
    width: int
    height: int
    size_bytes: int


MediaInfo = ImageInfo | AudioInfo | VideoInfo


# --- messages -------------------------------------------------------------------------------


def _names(formats: frozenset[str]) -> str:
    ordered = [f for f in MIME if f in formats] + sorted(formats - MIME.keys())
    names = [f.upper() for f in ordered]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _unreadable(limits: MediaLimits) -> str:
    what = {MediaKind.IMAGE: "an image", MediaKind.AUDIO: "audio", MediaKind.VIDEO: "a video"}
    return f"this file is not {what[limits.kind]} Wan can read; use {_names(limits.formats)}."


def _ratio(r: float, digits: int = 3) -> str:
    return f"{r:.{digits}g}:1" if r >= 1 else f"1:{1 / r:.{digits}g}"


def _seconds(s: float, digits: int = 1) -> str:
    return f"{s:.{digits}f}"


def _precise(
    value: float, bounds: tuple[float | None, ...], show: Callable[[float, int], str], digits: int
) -> str:
    """`value` with enough digits not to read like the limit it breaks (30.04 s, not 30.0 s)."""
    while digits < 6 and any(
        b is not None and show(b, digits) == show(value, digits) for b in bounds
    ):
        digits += 1
    return show(value, digits)


def _between(
    low: float | None, high: float | None, show: Callable[[float], str] = "{:g}".format
) -> str:
    if low is not None and high is not None:
        return f"between {show(low)} and {show(high)}"
    return f"at least {show(low)}" if low is not None else f"at most {show(high or 0)}"


# --- checks ---------------------------------------------------------------------------------


def _check_sides(info: ImageInfo | VideoInfo, limits: MediaLimits, option: str) -> None:
    low, high = limits.min_px, limits.max_px
    sides = (info.width, info.height)
    if (low is not None and min(sides) < low) or (high is not None and max(sides) > high):
        raise InputError(
            option,
            f"the {info.noun} is {info.width}×{info.height} px; "
            f"this model needs each side {_between(low, high)} px.",
        )


def _check_ratio(info: ImageInfo | VideoInfo, limits: MediaLimits, option: str) -> None:
    low, high = limits.min_ratio, limits.max_ratio
    ratio = info.width / info.height
    if (low is not None and ratio < low) or (high is not None and ratio > high):
        raise InputError(
            option,
            f"the {info.noun} is {info.width}×{info.height} px "
            f"({_precise(ratio, (low, high), _ratio, 3)}); "
            f"this model needs a width-to-height ratio {_between(low, high, _ratio)}.",
        )


def _check_duration(info: AudioInfo | VideoInfo, limits: MediaLimits, option: str) -> None:
    low, high = limits.min_s, limits.max_s
    d = info.duration_s
    if (low is not None and d < low) or (high is not None and d > high):
        shown = _precise(d, (low, high), _seconds, 1)
        raise InputError(
            option, f"the {info.noun} is {shown} s long; this model needs {_between(low, high)} s."
        )


def check(info: MediaInfo, limits: MediaLimits, *, option: str) -> None:
    """Every rule of `limits`; the first one broken becomes an InputError naming `option`."""
    if info.format not in limits.formats:
        raise InputError(
            option, f"the file is {info.format.upper()}; this model takes {_names(limits.formats)}."
        )
    if info.size_bytes > limits.max_bytes:
        size, cap = format_mb(info.size_bytes), format_mb(limits.max_bytes)
        raise InputError(option, f"the file is {size} MB; this model takes at most {cap} MB.")
    if isinstance(info, ImageInfo | VideoInfo):
        _check_sides(info, limits, option)
        _check_ratio(info, limits, option)
    if isinstance(info, AudioInfo | VideoInfo):
        _check_duration(info, limits, option)
    if isinstance(info, ImageInfo) and info.has_alpha and not limits.alpha:
        raise InputError(option, "the image has transparency, which this model does not take.")


def _scaled_size(width: int, height: int, max_px: int) -> tuple[int, int]:
    scale = max_px / max(width, height)
    return (max(1, min(max_px, round(width * scale))), max(1, min(max_px, round(height * scale))))


def _check_geometry(info: ImageInfo, limits: MediaLimits, option: str) -> None:
    """Refuse what no safe repair fixes: too small (we never upscale), the wrong shape (we never
    crop), or so long and thin that shrinking it would push the short side under the minimum."""
    if limits.min_px is not None and min(info.width, info.height) < limits.min_px:
        _check_sides(info, limits, option)
    _check_ratio(info, limits, option)
    if limits.max_px is None or max(info.width, info.height) <= limits.max_px:
        return
    short = min(_scaled_size(info.width, info.height, limits.max_px))
    if limits.min_px is not None and short < limits.min_px:
        raise InputError(
            option,
            f"the image is {info.width}×{info.height} px; shrunk to fit {limits.max_px} px its "
            f"short side would be {short} px, under this model's {limits.min_px} px minimum.",
        )


# --- probing (worker threads) -------------------------------------------------------------


def _open_image(data: bytes, limits: MediaLimits, option: str) -> Image.Image:
    """The image, header read and nothing decoded; refuses what no model takes by its size."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise InputError(option, "the image has too many pixels for the bot to read.") from None
    except _PIL_ERRORS:
        raise InputError(option, _unreadable(limits)) from None
    if max(image.size) > MAX_SIDE_PX:
        image.close()
        raise InputError(
            option,
            f"the image is {image.width}×{image.height} px; no model takes more than "
            f"{MAX_SIDE_PX} px a side, so the bot does not read it. Make it smaller and try again.",
        )
    return image


def _decode(
    image: Image.Image, target: int, limits: MediaLimits, option: str, flatten: bool = False
) -> Image.Image:
    """Decode once (see `bot.media.decode`); a truncated or corrupt file fails here, not at the
    provider."""
    try:
        return decode(image, target, option=option, flatten=flatten)
    except _PIL_ERRORS:
        raise InputError(option, _unreadable(limits)) from None


def _image_format(image: Image.Image) -> str:
    # MPO is what many phone cameras write: a plain JPEG with extra frames after it.
    return "jpeg" if image.format == "MPO" else (image.format or "unknown").lower()


def _probe_image(data: bytes, limits: MediaLimits, option: str) -> ImageInfo:
    with _open_image(data, limits, option) as image:
        info = ImageInfo(
            _image_format(image), image.width, image.height, image.has_transparency_data, len(data)
        )
        if not _needs_repair(info, limits):  # else the repair decodes it, once
            _decode(image, CHECK_SIDE_PX, limits, option)
    return info


def _container_format(name: str, head: bytes) -> str:
    """Our format name for what FFmpeg found; mp4 and mov share a demuxer, the ftyp brand
    tells them apart."""
    if not name.startswith("mov,mp4"):
        first = name.split(",")[0].removesuffix("_pipe")
        return FFMPEG_NAMES.get(first, first)
    if head[4:8] != b"ftyp":
        return "mov"  # classic QuickTime files start with moov/mdat/wide atoms, no ftyp
    brand = head[8:12].decode("latin-1")
    if brand == "qt  ":
        return "mov"
    return "m4a" if brand.startswith("M4A") else "3gp" if brand.startswith("3g") else "mp4"


def _duration_s(container: Any, stream: Any) -> float | None:
    if container.duration:
        return container.duration / av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _av_info(
    container: Any, head: bytes, size: int, limits: MediaLimits, option: str
) -> AudioInfo | VideoInfo:
    video = limits.kind is MediaKind.VIDEO
    streams = container.streams.video if video else container.streams.audio
    duration = _duration_s(container, streams[0]) if streams else None
    if duration is None:
        raise InputError(option, _unreadable(limits))
    fmt = _container_format(container.format.name, head)
    if not video:
        return AudioInfo(fmt, duration, size)
    codec = streams[0].codec_context
    if not codec.width or not codec.height:
        raise InputError(option, _unreadable(limits))
    return VideoInfo(fmt, duration, codec.width, codec.height, size)


def _probe_av(content: bytes | Path, limits: MediaLimits, option: str) -> AudioInfo | VideoInfo:
    if isinstance(content, bytes):
        head, size, source = content[:12], len(content), io.BytesIO(content)
    else:
        with content.open("rb") as file:
            head = file.read(12)
        size, source = content.stat().st_size, str(content)
    try:
        with av.open(source) as container:
            return _av_info(container, head, size, limits, option)
    except av.FFmpegError:
        raise InputError(option, _unreadable(limits)) from None


async def probe(
    content: bytes | Path, limits: MediaLimits, *, option: str, pool: MediaPool | None = None
) -> MediaInfo:
    """What the file is (of the kind `limits` expects); InputError if it cannot be read as one.
    Runs on `pool` (default: the process's shared pool of DEFAULT_WORKERS)."""
    pool = pool or shared_pool(DEFAULT_WORKERS)
    if limits.kind is not MediaKind.IMAGE:
        return await pool.run(_probe_av, content, limits, option)
    if isinstance(content, Path):
        content = await asyncio.to_thread(content.read_bytes)
    return await pool.run(_probe_image, content, limits, option)


# --- repair (images only, worker thread) --------------------------------------------------


def _needs_repair(info: ImageInfo, limits: MediaLimits) -> bool:
    return (
        (limits.max_px is not None and max(info.width, info.height) > limits.max_px)
        or (info.has_alpha and not limits.alpha)
        or info.format not in limits.formats
        or info.size_bytes > limits.max_bytes
    )


def _encode(image: Image.Image, fmt: str, quality: int = 92) -> bytes:
    if image.mode not in SAVE_MODES[fmt]:
        keep_alpha = fmt != "jpeg" and image.has_transparency_data
        image = image.convert("RGBA" if keep_alpha else "RGB")
    params: dict[str, Any] = {"quality": quality} if fmt in ("jpeg", "webp") else {}
    if image.info.get("icc_profile"):
        params["icc_profile"] = image.info["icc_profile"]  # keep the colours as they were
    out = io.BytesIO()
    image.save(out, format=fmt.upper(), **params)
    return out.getvalue()


def _fit(
    image: Image.Image, limits: MediaLimits, option: str, notes: list[str]
) -> tuple[Image.Image, str, bytes]:
    """Re-encode as JPEG at falling quality until it fits the byte limit."""
    cap = format_mb(limits.max_bytes)
    if "jpeg" not in limits.formats:
        raise InputError(option, f"the image is over this model's {cap} MB limit.")
    if image.has_transparency_data:
        image = onto_white(image)  # JPEG has no alpha channel
        notes.append("flattened transparency onto white")
    for quality in JPEG_QUALITIES:
        out = _encode(image, "jpeg", quality)
        if len(out) <= limits.max_bytes:
            notes.append(f"re-encoded as JPEG (quality {quality}) to fit {cap} MB")
            return image, "jpeg", out
    raise InputError(
        option,
        f"the image is {format_mb(len(out))} MB even as a JPEG at quality {JPEG_QUALITIES[-1]}; "
        f"this model takes at most {cap} MB.",
    )


def _scale(
    image: Image.Image, size: tuple[int, int], max_px: int | None, notes: list[str]
) -> Image.Image:
    """Fit `image` (decoded, perhaps already shrunk from `size`) within `max_px` a side."""
    if max_px is not None and max(image.size) > max_px:
        if image.mode in ("1", "P"):  # Pillow resizes these with nearest-neighbour only
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        scaled = _scaled_size(image.width, image.height, max_px)
        image = image.resize(scaled, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if image.size != size:
        notes.append(f"scaled {size[0]}×{size[1]} → {image.width}×{image.height}")
    return image


def _orientation(source: Image.Image) -> int:
    if source.format != "PNG":
        return source.getexif().get(0x0112, 1)
    exif = Image.Exif()  # Pillow's PNG getexif() decodes the whole image to look further on
    if source.info.get("exif"):
        exif.load(source.info["exif"])
    return exif.get(0x0112, 1)


def _upright(
    image: Image.Image, orientation: int, size: tuple[int, int]
) -> tuple[Image.Image, tuple[int, int]]:
    """`image` turned as its EXIF `orientation` says (re-encoding drops the tag, so the rotation
    goes into the pixels), and its original `size` so turned."""
    method = ORIENTATIONS.get(orientation)
    if method is None:
        return image, size
    turned = method in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                        Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
    return image.transpose(method), (size[1], size[0]) if turned else size


def _repair_image_sync(
    data: bytes, info: ImageInfo, limits: MediaLimits, option: str
) -> tuple[bytes, ImageInfo, list[str]]:
    notes: list[str] = []
    with _open_image(data, limits, option) as source:
        # Whether there is a second frame, never how many: counting walks every frame.
        animated = getattr(source, "is_animated", False)
        orientation, size = _orientation(source), source.size  # before decoding
        flatten = source.has_transparency_data and not limits.alpha
        decoded = _decode(source, limits.max_px or MAX_SIDE_PX, limits, option, flatten)
        image, size = _upright(decoded, orientation, size)
        image = _scale(image, size, limits.max_px, notes)
        if flatten:
            if image.has_transparency_data:  # decode flattens as it goes; a safety net
                image = onto_white(image)
            notes.append("flattened transparency onto white")
        # Keep the format when the model takes it; otherwise PNG (lossless, every model takes it).
        fmt = info.format if info.format in limits.formats and info.format in SAVE_MODES else "png"
        out = _encode(image, fmt)  # inside `with`: `image` may still be the source itself
        if len(out) > limits.max_bytes:
            image, fmt, out = _fit(image, limits, option, notes)
        elif fmt != info.format:
            notes.append(f"converted {info.format.upper()}{' (first frame)' * animated} to "
                         f"{fmt.upper()}")
        alpha = fmt != "jpeg" and image.has_transparency_data
        return out, ImageInfo(fmt, image.width, image.height, alpha, len(out)), notes


async def repair_image(
    data: bytes, info: ImageInfo, limits: MediaLimits, *, option: str, pool: MediaPool | None = None
) -> tuple[bytes, ImageInfo, tuple[str, ...]]:
    """Fix what is safe (shrink, flatten, convert, re-encode), one note per fix; refuse the rest.
    Never upscales, never crops. Returns the input unchanged when nothing needs fixing."""
    _check_geometry(info, limits, option)
    if not _needs_repair(info, limits):
        return data, info, ()
    try:
        out, fixed, notes = await (pool or shared_pool(DEFAULT_WORKERS)).run(
            _repair_image_sync, data, info, limits, option
        )
    except _PIL_ERRORS:
        raise InputError(
            option, "the bot could not convert this image; save it as PNG or JPEG and try again."
        ) from None
    return out, fixed, tuple(f"{option}: {note}" for note in notes)

