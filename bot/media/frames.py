"""Stills from a video: its last frame (where an extended clip starts) and a poster frame (shown
with a video that goes out as a link, too big to attach, so the message still shows it).

Only part of the file is decoded: a seek to the keyframe before the wanted moment, then forward
(the whole file only when the container cannot seek). Blocking (PyAV decodes, Pillow encodes):
run it on a pool, never on the event loop.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import av
from av.container import InputContainer
from av.video.stream import VideoStream
from PIL import Image

TAIL_S = 2.0  # for the last frame, seek this far before the end: a keyframe is closer than that
POSTER_SIDE_PX = 1280  # as large as a chat client shows a poster
POSTER_QUALITY = 85


class NoFrame(Exception):
    """The file holds no decodable video frame (it is gone, damaged or not a video)."""


def last_frame_png(video: Path) -> bytes:
    """The last frame of `video`, as PNG bytes (RGB). Raises NoFrame."""
    buffer = io.BytesIO()
    still(video).save(buffer, "PNG")
    return buffer.getvalue()


def poster_frame(src: Path, dst: Path, *, at: float = 0.5) -> Path:
    """The frame at `at` of the video's length (the middle: past any fade-in) as a JPEG at
    `dst`, at most POSTER_SIDE_PX on its longer side. Written whole or not at all; raises
    NoFrame."""
    picture = still(src, at)
    picture.thumbnail((POSTER_SIDE_PX, POSTER_SIDE_PX), Image.Resampling.LANCZOS)
    part = dst.with_name(dst.name + ".part")
    try:
        picture.save(part, "JPEG", quality=POSTER_QUALITY)
        os.replace(part, dst)
    finally:
        part.unlink(missing_ok=True)
    return dst


def still(video: Path, at: float | None = None) -> Image.Image:
    """The first frame at or after `at` of the video's length (0 to 1), or its last frame when
    `at` is None. Raises NoFrame."""
    try:
        with av.open(str(video)) as container:
            assert isinstance(container, InputContainer)
            if not container.streams.video:
                raise NoFrame(f"{video.name} has no video stream")
            stream = container.streams.video[0]
            frame = (_decode(container, stream, at, seek=True)
                     or _decode(container, stream, at, seek=False))
    except (av.error.FFmpegError, OSError) as exc:
        raise NoFrame(f"{video.name} cannot be read: {exc}") from exc
    if frame is None:
        raise NoFrame(f"{video.name} has no video frame")
    return frame.to_image()


def _decode(container: InputContainer, stream: VideoStream, at: float | None, *,
            seek: bool) -> av.VideoFrame | None:
    """Decode from the keyframe before the wanted moment (seek) or from the start, up to the
    first frame at or after `at` (None: to the end); that frame, else the last one decoded."""
    span = _span(container, stream)
    if seek:
        if span is None:
            return None
        start_s, length_s = span
        wanted_s = start_s + (max(0.0, length_s - TAIL_S) if at is None else length_s * at)
        container.seek(int(wanted_s / stream.time_base), backward=True, any_frame=False,
                       stream=stream)
    else:
        container.seek(0)
    target_s = None if at is None or span is None else span[0] + span[1] * at
    last = None
    for frame in container.decode(stream):
        last = frame
        if target_s is not None and (frame.time is None or frame.time >= target_s):
            break
    return last


def _span(container: InputContainer, stream: VideoStream) -> tuple[float, float] | None:
    """The stream's start and length in seconds, if they are known."""
    if stream.time_base is None:
        return None
    if stream.duration is not None:
        length_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        length_s = container.duration / av.time_base
    else:
        return None
    return float((stream.start_time or 0) * stream.time_base), length_s
