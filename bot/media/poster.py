"""A poster frame: one still from a video, shown with a video that goes out as a link (too big
to attach) so the message still shows what the video is.

Blocking (PyAV decodes, Pillow writes): run it on a pool (`EncodePool.run`).
"""

from __future__ import annotations

import os
from pathlib import Path

import av
from PIL import Image

MAX_SIDE_PX = 1280  # as large as a chat client shows it
QUALITY = 85


def poster_frame(src: Path, dst: Path, *, at: float = 0.5) -> Path:
    """The frame at `at` of the video's length (the middle: past any fade-in) as a JPEG at
    `dst`, at most MAX_SIDE_PX on its longer side. Written whole or not at all; raises
    av.FFmpegError for a file that is not a video, ValueError for one without frames."""
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        if container.duration:
            target = int(container.duration * at)  # in av.time_base units
            container.seek(target, any_frame=False, backward=True)
        picture = _frame_at(container, stream, target=(container.duration or 0) * at / av.time_base)
    picture.thumbnail((MAX_SIDE_PX, MAX_SIDE_PX), Image.Resampling.LANCZOS)
    part = dst.with_name(dst.name + ".part")
    try:
        picture.save(part, "JPEG", quality=QUALITY)
        os.replace(part, dst)
    finally:
        part.unlink(missing_ok=True)
    return dst


def _frame_at(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
              target: float) -> Image.Image:
    """The first frame at or after `target` seconds (after the seek to the keyframe before it),
    else the last one decoded."""
    last = None
    for frame in container.decode(stream):
        last = frame
        if frame.time is None or frame.time >= target:
            break
    if last is None:
        raise ValueError("the video has no frames")
    return last.to_image()
