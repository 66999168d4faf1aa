"""Clips whose streams differ, re-encoded into one video (`bot.media.stitch` decides when).

Every frame is scaled to the first clip's size and placed on the first clip's frame rate
(repeated or dropped), so each clip keeps its length; sound is resampled to one format, cut or
padded with silence to its clip's length, and silence fills clips without any.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream

AUDIO_RATE = 48_000
AUDIO_LAYOUT = "stereo"
AUDIO_FORMAT = "s16"  # packed: one plane of bytes, no numpy needed
SAMPLE_BYTES = 4  # 16-bit stereo
CHUNK_SAMPLES = 4096
CRF = "18"  # near-transparent: the chain is a copy of what people already saw
PRESET = "veryfast"


def encode_clips(clips: Sequence[Path], lengths: Sequence[float], dst: Path) -> None:
    """Re-encode `clips` (each `lengths[i]` seconds) one after the other into `dst`."""
    width, height, rate, sound = _target(clips)
    with av.open(str(dst), "w", format="mp4") as out:
        assert isinstance(out, OutputContainer)
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": CRF, "preset": PRESET}
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout=AUDIO_LAYOUT) if sound else None
        frames = samples = 0
        for clip, length in zip(clips, lengths, strict=True):
            frames = _video(clip, length, video, out, frames)
            if audio is not None:
                samples = _audio(clip, length, audio, out, samples)
        out.mux(video.encode(None))
        if audio is not None:
            out.mux(audio.encode(None))


def _target(clips: Sequence[Path]) -> tuple[int, int, Fraction, bool]:
    """The first clip's size (even, as H.264 wants) and frame rate; whether any clip has sound."""
    sound = False
    for i, clip in enumerate(clips):
        with av.open(str(clip)) as src:
            assert isinstance(src, InputContainer)
            if i == 0:
                first = src.streams.video[0]
                width, height = first.codec_context.width, first.codec_context.height
                rate = Fraction(first.average_rate or 24)
            sound = sound or bool(src.streams.audio)
    return width // 2 * 2, height // 2 * 2, rate, sound


def _video(clip: Path, length: float, stream: VideoStream, out: OutputContainer,
           done: int) -> int:
    """Encode one clip's frames onto the output's frame grid; the frames written so far."""
    rate = Fraction(stream.average_rate or stream.rate or 24)
    wanted = round(length * rate)
    slot = 0
    last = None
    for frame, at_s in _frames(clip):
        while slot < wanted and slot <= round(at_s * rate):
            done = _put(frame, stream, out, done)
            slot += 1
        last = frame
    while last is not None and slot < wanted:  # a short tail: hold the last picture
        done = _put(last, stream, out, done)
        slot += 1
    return done


def _frames(clip: Path) -> Iterator[tuple[av.VideoFrame, float]]:
    """Each frame of the clip with its time from the clip's start, in seconds."""
    with av.open(str(clip)) as src:
        assert isinstance(src, InputContainer)
        first = None
        for frame in src.decode(src.streams.video[0]):
            at = frame.time or 0.0
            first = at if first is None else first
            yield frame, at - first


def _put(frame: av.VideoFrame, stream: VideoStream, out: OutputContainer, index: int) -> int:
    scaled = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
    scaled.pts = index
    scaled.time_base = Fraction(1) / Fraction(stream.average_rate or stream.rate or 24)
    out.mux(stream.encode(scaled))
    return index + 1


def _audio(clip: Path, length: float, stream: AudioStream, out: OutputContainer,
           done: int) -> int:
    """One clip's sound, exactly `length` seconds of it (cut, or padded with silence)."""
    wanted = round(length * AUDIO_RATE)
    pcm = _pcm(clip, wanted * SAMPLE_BYTES)
    pcm += bytes(wanted * SAMPLE_BYTES - len(pcm))
    step = CHUNK_SAMPLES * SAMPLE_BYTES
    for start in range(0, len(pcm), step):
        chunk = pcm[start:start + step]
        frame = av.AudioFrame(format=AUDIO_FORMAT, layout=AUDIO_LAYOUT,
                              samples=len(chunk) // SAMPLE_BYTES)
        frame.planes[0].update(chunk)
        frame.sample_rate = AUDIO_RATE
        frame.pts = done + start // SAMPLE_BYTES
        frame.time_base = Fraction(1, AUDIO_RATE)
        out.mux(stream.encode(frame))  # the encoder regroups samples into its own frames
    return done + wanted


def _pcm(clip: Path, most: int) -> bytes:
    """Up to `most` bytes of the clip's sound as packed 16-bit stereo at AUDIO_RATE."""
    parts: list[bytes] = []
    have = 0
    with av.open(str(clip)) as src:
        assert isinstance(src, InputContainer)
        if not src.streams.audio:
            return b""
        resampler = av.AudioResampler(format=AUDIO_FORMAT, layout=AUDIO_LAYOUT, rate=AUDIO_RATE)
        for frame in src.decode(src.streams.audio[0]):
            for chunk in resampler.resample(frame):
                data = bytes(chunk.planes[0])[:chunk.samples * SAMPLE_BYTES]
                parts.append(data)
                have += len(data)
            if have >= most:
                break
    return b"".join(parts)[:most]
