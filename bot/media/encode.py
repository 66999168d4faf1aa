"""A finished video re-encoded to fit an upload limit (libx264 + AAC, same frame rate and audio).

The aim is a playable file that uses most of the limit (at least 90% when the content needs it)
and never crosses it: the bitrate is computed from the clip's duration, the first result is
measured, and the bitrate is corrected once when that result is over the limit or far under it.
The resolution is kept while the bitrate still gives good quality, else it steps down
(1080 -> 720 -> 480 lines). When even the lowest step cannot carry the clip, nothing is made.

`fit_video` blocks for seconds (CPU-bound, x264 on every core): callers run it on an
`EncodePool`. It writes `dst` + ".part" and renames it only when done, so a failed or canceled
encode never leaves a file that could be posted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import av

log = logging.getLogger(__name__)
T = TypeVar("T")

LADDER = (1080, 720, 480)  # the heights a video may step down to, largest first
AIM = 0.97  # of the limit: the rest is for the container (moov index) and the encoder's error
CEILING = 0.995  # a result above this share of the limit is too close: encoded again, smaller
FLOOR = 0.90  # a result below this share is encoded again, larger (if the content needs it)
GOOD_BPP = 0.05  # video bits per pixel and frame that x264 still shows well: below, step down
LEAST_BPP = 0.012  # below this even the lowest step is a smear: give up, post the link
AUDIO_BPS = 128_000
TIGHT_AUDIO_BPS = 64_000  # when 128 kbit/s would take over a tenth of the budget
ENCODES = 3  # at most per step: the first, its correction, and one more if that overshot
MAX_CORRECTION = 3.0  # a second encode asks at most this many times the first's bitrate
PRESET = "veryfast"  # on 2 cores: ~1.5x the clip's duration for 1080P, within 1 dB of "medium"


class EncodeCanceled(Exception):
    """The encode was asked to stop (shutdown); its partial file is gone."""


@dataclass(frozen=True)
class Fitted:
    """A video that fits: the file to post and what it is."""

    path: Path  # dst when re-encoded; else src itself
    size_bytes: int
    height: int  # lines
    bitrate: int  # the whole file's average, bits per second
    reencoded: bool


@dataclass(frozen=True)
class _Source:
    width: int
    height: int
    fps: Fraction
    seconds: float
    audio: bool


@dataclass(frozen=True)
class _Steer:
    """What the caller reaches into a running encode with: stop it, hear how far it is."""

    cancel: threading.Event | None
    progress: Callable[[float], None] | None

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise EncodeCanceled()

    def frame(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(min(1.0, done / max(1, total)))


@dataclass(frozen=True)
class _Plan:
    width: int
    height: int
    video_bps: int
    audio_bps: int


def fit_video(src: Path, dst: Path, limit_bytes: int, *, ladder: tuple[int, ...] = LADDER,
              cancel: threading.Event | None = None,
              progress: Callable[[float], None] | None = None) -> Fitted | None:
    """`src` as a file of at most `limit_bytes`: `src` itself when it fits already, else
    re-encoded into `dst`; None when even the lowest step cannot fit (post the link instead).

    Blocks (run it on an `EncodePool`). `progress` is told the share of frames encoded (of
    each attempt) as it goes. Raises av.FFmpegError for a file that is not a video,
    EncodeCanceled when `cancel` is set while it works."""
    steer = _Steer(cancel, progress)
    size = os.path.getsize(src)
    source = _probe(src)
    if size <= limit_bytes:
        return Fitted(src, size, source.height, _bitrate(size, source.seconds), reencoded=False)
    steps = _steps(source.height, ladder)
    for plan in filter(None, (_plan(source, height, limit_bytes, i == len(steps) - 1)
                              for i, height in enumerate(steps))):
        fitted = _encode_fitting(src, dst, source, plan, limit_bytes, steer)
        if fitted is not None:
            return fitted
    log.info("%s: %d bytes cannot fit %d bytes even at %d lines", src.name, size, limit_bytes,
             steps[-1])
    return None


def _encode_fitting(src: Path, dst: Path, source: _Source, plan: _Plan, limit_bytes: int,
                    steer: _Steer) -> Fitted | None:
    """Encode at `plan`, measure, and correct the bitrate once if the result is over the
    ceiling or under the floor; once more only if the correction overshot. None if the last
    is still too big (the caller steps down)."""
    sizes: list[int] = []
    for attempt in range(ENCODES):
        size = _encode(src, dst, source, plan, steer)
        sizes.append(size)
        if size <= CEILING * limit_bytes and (attempt > 0 or size >= FLOOR * limit_bytes):
            break
        plan = _corrected(plan, size, source.seconds, limit_bytes)
    log.info("%s at %dp: %s bytes (limit %d)", src.name, plan.height, sizes, limit_bytes)
    if sizes[-1] <= CEILING * limit_bytes:
        return _fitted(dst, sizes[-1], source, plan)
    dst.unlink(missing_ok=True)
    return None


def _corrected(plan: _Plan, size: int, seconds: float, limit_bytes: int) -> _Plan:
    """The plan with its video bitrate scaled by how far the last result missed the aim."""
    audio_bytes = plan.audio_bps * seconds / 8
    wanted = AIM * limit_bytes - audio_bytes
    scale = min(MAX_CORRECTION, wanted / max(1.0, size - audio_bytes))
    return _Plan(plan.width, plan.height, int(plan.video_bps * scale), plan.audio_bps)


def _fitted(dst: Path, size: int, source: _Source, plan: _Plan) -> Fitted:
    return Fitted(dst, size, plan.height, _bitrate(size, source.seconds), reencoded=True)


def _bitrate(size: int, seconds: float) -> int:
    return int(size * 8 / seconds) if seconds > 0 else 0


def _steps(height: int, ladder: tuple[int, ...]) -> list[int]:
    """The heights to try, largest first: the source's (at most the ladder's top), then every
    lower step of the ladder."""
    top = min(height, ladder[0])
    return [top, *(h for h in ladder if h < top)]


def _plan(source: _Source, height: int, limit_bytes: int, last: bool) -> _Plan | None:
    """The bitrates for `height`, or None when they are too low to look good there (or, for
    the last step, to be watchable at all)."""
    total_bps = AIM * limit_bytes * 8 / max(source.seconds, 0.1)
    audio_bps = 0
    if source.audio:
        audio_bps = AUDIO_BPS if total_bps / 10 >= AUDIO_BPS else TIGHT_AUDIO_BPS
    video_bps = total_bps - audio_bps
    width = max(2, round(source.width * height / source.height / 2) * 2)
    bpp = video_bps / (width * height * float(source.fps))
    if bpp < (LEAST_BPP if last else GOOD_BPP):
        return None
    return _Plan(width, height, int(video_bps), audio_bps)


def _probe(src: Path) -> _Source:
    with av.open(str(src)) as container:
        video = container.streams.video[0]
        fps = video.average_rate or video.guessed_rate or Fraction(24)
        if video.duration is not None and video.time_base is not None:
            seconds = float(video.duration * video.time_base)
        else:
            seconds = (container.duration or 0) / av.time_base
        return _Source(video.codec_context.width, video.codec_context.height, Fraction(fps),
                       seconds, bool(container.streams.audio))


def _encode(src: Path, dst: Path, source: _Source, plan: _Plan,
            steer: _Steer) -> int:
    """One encode of `src` at `plan` into `dst` (through a .part file); its size in bytes."""
    part = dst.with_name(dst.name + ".part")
    try:
        with av.open(str(src)) as inp, av.open(str(part), "w", format="mp4") as out:
            _transcode(inp, out, source, plan, steer)
        os.replace(part, dst)
    finally:
        part.unlink(missing_ok=True)
    return os.path.getsize(dst)


def _transcode(inp: Any, out: Any, source: _Source, plan: _Plan,
               steer: _Steer) -> None:
    v_in = inp.streams.video[0]
    v_in.thread_type = "AUTO"
    v_out = out.add_stream("libx264", rate=source.fps)
    v_out.width, v_out.height, v_out.pix_fmt = plan.width, plan.height, "yuv420p"
    v_out.bit_rate = plan.video_bps
    v_out.options = {"preset": PRESET, "maxrate": str(plan.video_bps * 2),
                     "bufsize": str(plan.video_bps * 2)}
    streams = [v_in]
    a_out = None
    if source.audio:
        a_in = inp.streams.audio[0]
        a_out = out.add_stream("aac", rate=a_in.codec_context.sample_rate or 48000)
        a_out.bit_rate = plan.audio_bps
        streams.append(a_in)
    scale = _scaler(source, plan)
    total, done = round(source.seconds * source.fps), 0
    for packet in inp.demux(*streams):
        steer.check()
        for frame in packet.decode():
            if packet.stream is v_in:
                out.mux(v_out.encode(scale(frame)))
                done += 1
                steer.frame(done, total)
            elif a_out is not None:
                frame.pts = None  # the encoder numbers its own samples
                out.mux(a_out.encode(frame))
    out.mux(v_out.encode(None))
    if a_out is not None:
        out.mux(a_out.encode(None))


def _scaler(source: _Source, plan: _Plan) -> Callable[[Any], Any]:
    """Each decoded frame at the plan's size, timed in frames at the source's rate (a frame
    that lands on an earlier one's time is pushed one on: the encoder needs rising times)."""
    last = [-1]
    resize = (plan.width, plan.height) != (source.width, source.height)

    def scale(frame: Any) -> Any:
        pts = round(frame.time * source.fps) if frame.time is not None else last[0] + 1
        pts = max(pts, last[0] + 1)
        last[0] = pts
        made = frame.reformat(width=plan.width, height=plan.height, format="yuv420p",
                              interpolation="AREA" if resize else None)
        made.pts, made.time_base = pts, 1 / source.fps
        return made

    return scale


class EncodePool:
    """At most `workers` encodes at once, on threads of their own (`ENCODE_WORKERS`); each
    already uses every core, so one is the default."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("an encode pool needs at least one worker")
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None  # made at first use, again after close

    async def fit(self, src: Path, dst: Path, limit_bytes: int, *,
                  ladder: tuple[int, ...] = LADDER,
                  progress: Callable[[float], None] | None = None) -> Fitted | None:
        """`fit_video` on the pool; `progress` is called on the event loop. Canceled, it stops
        the encode within a frame and returns only once its partial file is gone (then raises
        CancelledError)."""
        cancel = threading.Event()
        told = None
        if progress is not None:
            loop = asyncio.get_running_loop()
            told = functools.partial(loop.call_soon_threadsafe, progress)
        job = functools.partial(fit_video, src, dst, limit_bytes, ladder=ladder, cancel=cancel,
                                progress=told)
        return await self._run(job, cancel)

    async def run(self, fn: Callable[..., T], /, *args: object) -> T:
        """Any other blocking media work (a poster frame) in turn with the encodes."""
        return await self._run(functools.partial(fn, *args), threading.Event())

    async def _run(self, job: Callable[[], T], cancel: threading.Event) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="wanbot-encode")
        future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.wait([future])  # the thread stops and cleans up before we go on
            if not future.cancelled():
                future.exception()  # looked at: EncodeCanceled is expected here
            raise

    def close(self) -> None:
        """Let the idle threads go; what is queued is dropped (callers canceled their encodes
        first, which stops the running ones within a frame)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
