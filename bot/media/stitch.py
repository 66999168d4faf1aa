"""Clips joined end to end into one video: the whole chain of an extended clip.

When every clip's streams match (codec, size, frame rate, time base; and audio alike or absent
in all), the packets are copied, each clip shifted to start where the previous one ended: no
quality lost and little CPU. Otherwise, or when copying fails, every frame is re-encoded
(H.264, and AAC when any clip has sound) at the first clip's size and frame rate, each clip
kept exactly as long as it was (frames repeated or dropped to the new rate, silence where a
clip has no sound). Either way the result lasts the sum of the clips. Blocking: run it on a
worker pool, never on the event loop. The output is written beside `dst` and renamed, so a
crash leaves no half file under its name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer, OutputContainer

from bot.media.stitch_encode import encode_clips

log = logging.getLogger(__name__)


class StitchError(Exception):
    """A clip cannot be read, or the result cannot be written."""


@dataclass(frozen=True)
class Stitched:
    path: Path
    seconds: float  # the sum of the clips' lengths
    copied: bool  # True: streams copied; False: re-encoded


@dataclass(frozen=True)
class Shape:
    """What must match between clips for their packets to be copied into one file."""

    video: tuple[object, ...]
    audio: tuple[object, ...] | None
    seconds: float  # this clip's length (its video stream's)


def stitch(clips: Sequence[Path], dst: Path) -> Stitched:
    """Join `clips` in order into `dst` (an MP4). Raises StitchError."""
    if not clips:
        raise StitchError("no clips to join")
    shapes = [shape_of(clip) for clip in clips]
    seconds = sum(s.seconds for s in shapes)
    tmp = dst.with_name(f".{dst.name}.part")
    copied = len({(s.video, s.audio) for s in shapes}) == 1
    try:
        if copied:
            try:
                _copy(clips, shapes, tmp)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("copying the streams of %s failed (%s); re-encoding", dst.name, exc)
                copied = False
        if not copied:
            encode_clips(clips, [s.seconds for s in shapes], tmp)
        os.replace(tmp, dst)
    except (av.error.FFmpegError, OSError) as exc:
        raise StitchError(f"cannot write {dst.name}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return Stitched(dst, seconds, copied)


def shape_of(clip: Path) -> Shape:
    """A clip's stream parameters and length. Raises StitchError."""
    try:
        with av.open(str(clip)) as container:
            assert isinstance(container, InputContainer)
            if not container.streams.video:
                raise StitchError(f"{clip.name} has no video")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            vshape = (video.codec_context.name, video.codec_context.width,
                      video.codec_context.height, video.average_rate, video.time_base,
                      video.codec_context.pix_fmt)
            ashape = None if audio is None else (
                audio.codec_context.name, audio.codec_context.sample_rate,
                audio.codec_context.layout.name, audio.time_base)
            return Shape(vshape, ashape, _length_s(container))
    except (av.error.FFmpegError, OSError) as exc:
        raise StitchError(f"{clip.name} cannot be read: {exc}") from exc


def duration_s(clip: Path) -> float:
    """How long a clip's video lasts (what `stitch` adds up)."""
    return shape_of(clip).seconds


def _length_s(container: InputContainer) -> float:
    """The video stream's length: from its packets (end of the last frame) when the header
    does not say."""
    video = container.streams.video[0]
    tb = video.time_base or Fraction(1, 1)
    if video.duration:
        return float(video.duration * tb)
    end = start = None
    for packet in container.demux(video):
        if packet.pts is None:
            continue
        stop = packet.pts + (packet.duration or 0)
        end = stop if end is None else max(end, stop)
        start = packet.pts if start is None else min(start, packet.pts)
    return float((end - start) * tb) if end is not None and start is not None else 0.0


def _copy(clips: Sequence[Path], shapes: Sequence[Shape], dst: Path) -> None:
    """Packets copied, each clip's timestamps moved to where the previous clip ended."""
    with av.open(str(clips[0])) as first, av.open(str(dst), "w", format="mp4") as out:
        assert isinstance(first, InputContainer) and isinstance(out, OutputContainer)
        templates = [first.streams.video[0], *first.streams.audio[:1]]
        streams = [out.add_stream_from_template(t) for t in templates]
        last_dts: list[int | None] = [None] * len(streams)
        offset_s = 0.0
        for clip, shape in zip(clips, shapes, strict=True):
            _copy_one(clip, streams, offset_s, shape.seconds, last_dts, out)
            offset_s += shape.seconds


def _copy_one(clip: Path, streams: list[av.stream.Stream], offset_s: float, length_s: float,
              last_dts: list[int | None], out: OutputContainer) -> None:
    with av.open(str(clip)) as src:
        assert isinstance(src, InputContainer)
        inputs = [src.streams.video[0], *src.streams.audio[:1]]
        starts = [s.start_time or 0 for s in inputs]
        for packet in src.demux(*inputs):
            if packet.dts is None or packet.pts is None:
                continue  # the demuxer's flush packet
            i = inputs.index(packet.stream)
            tb = packet.stream.time_base
            local = packet.pts - starts[i]
            if i > 0 and float(local * tb) >= length_s:
                continue  # sound past the clip's picture would overlap the next clip
            shift = round(offset_s / tb) - starts[i]
            packet.pts += shift
            packet.dts += shift
            if last_dts[i] is not None and packet.dts <= last_dts[i]:  # type: ignore[operator]
                if i > 0:
                    continue  # an encoder's priming sound before the clip's start: overlaps
                raise ValueError(f"{clip.name}: timestamps go backwards at the join")
            last_dts[i] = packet.dts
            packet.stream = streams[i]
            out.mux(packet)
