"""A video's last frame as a still image: where an extended clip starts.

Only the end of the file is decoded: a seek to the last keyframe before the end, then forward
to the last frame (the whole file only when the container cannot seek). Run it on the media
pool: decoding is CPU work and must not block the event loop.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
from av.container import InputContainer
from av.video.stream import VideoStream

TAIL_S = 2.0  # seek this far before the end; a keyframe is normally closer than that


class NoFrame(Exception):
    """The file holds no decodable video frame (it is gone, damaged or not a video)."""


def last_frame_png(video: Path) -> bytes:
    """The last frame of `video`, as PNG bytes (RGB). Raises NoFrame."""
    try:
        with av.open(str(video)) as container:
            assert isinstance(container, InputContainer)
            if not container.streams.video:
                raise NoFrame(f"{video.name} has no video stream")
            stream = container.streams.video[0]
            frame = _last(container, stream, seek=True) or _last(container, stream, seek=False)
    except (av.error.FFmpegError, OSError) as exc:
        raise NoFrame(f"{video.name} cannot be read: {exc}") from exc
    if frame is None:
        raise NoFrame(f"{video.name} has no video frame")
    buffer = io.BytesIO()
    frame.to_image().save(buffer, "PNG")
    return buffer.getvalue()


def _last(container: InputContainer, stream: VideoStream, *, seek: bool) -> av.VideoFrame | None:
    """The last frame decoded from the tail (seek) or from the start."""
    if seek:
        end = _end_pts(container, stream)
        if end is None:
            return None
        container.seek(end, backward=True, any_frame=False, stream=stream)
    else:
        container.seek(0)
    last = None
    for frame in container.decode(stream):
        last = frame
    return last


def _end_pts(container: InputContainer, stream: VideoStream) -> int | None:
    """A timestamp (in the stream's time base) a little before the end, if the length is known."""
    if stream.time_base is None:
        return None
    if stream.duration is not None:
        end_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        end_s = container.duration / av.time_base
    else:
        return None
    start_s = float((stream.start_time or 0) * stream.time_base)
    return int((start_s + max(0.0, end_s - TAIL_S)) / stream.time_base)
