"""Fitting a video to an upload limit, with real clips made by PyAV and the real encoder.

Most cases scale the limits down with the clip: a 480x270 clip of 2 s against 10, 8 and 25 MiB
divided by 32 asks the encoder for the same bits per pixel as a 1080P clip against the real
ones. One case fits a real 1080P clip into a real 10 MiB.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest

from bot.media.encode import EncodePool, Fitted, fit_video
from bot.units import MiB
from tests.media_support import detailed_video

SCALE = 32  # the small clips' limits: the real ones divided by this


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """480x270 clips of 2 s at 24 fps, ~1.1 MiB each: with a tone, and silent."""
    folder = tmp_path_factory.mktemp("clips")
    return {
        "audio": detailed_video(folder / "audio.mp4", 480, 270, 2.0, audio=True, crf=8),
        "silent": detailed_video(folder / "silent.mp4", 480, 270, 2.0, crf=8),
    }


def streams(path: Path) -> dict[str, tuple[str, float, int]]:
    """Each stream's codec, duration in seconds and frames (counted by decoding them all)."""
    out = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            frames = sum(1 for _ in container.decode(stream)) if stream.type == "video" else 0
            container.seek(0)
            out[stream.type] = (stream.codec_context.name,
                                float(stream.duration * stream.time_base), frames)
    return out


def rate(path: Path) -> float:
    with av.open(str(path)) as container:
        return float(container.streams.video[0].average_rate)


def check_fitted(fitted: Fitted | None, src: Path, dst: Path, limit: int) -> None:
    """A playable H.264 file under the limit, using at least 90% of it, timed like `src`."""
    assert fitted is not None and fitted.reencoded and fitted.path == dst
    size = dst.stat().st_size
    assert fitted.size_bytes == size
    assert 0.90 * limit <= size <= limit
    before, after = streams(src), streams(dst)
    assert after["video"][0] == "h264"
    assert after["video"][2] == before["video"][2]  # every frame, none dropped or doubled
    assert after["video"][1] == pytest.approx(before["video"][1], abs=0.05)
    assert rate(dst) == rate(src)
    assert ("audio" in after) == ("audio" in before)
    if "audio" in before:
        assert after["audio"][0] == "aac"
        assert after["audio"][1] == pytest.approx(before["audio"][1], abs=0.1)
    assert not dst.with_name(dst.name + ".part").exists()


@pytest.mark.parametrize("limit_mib", [10, 8, 25])
@pytest.mark.parametrize("kind", ["audio", "silent"])
def test_fits_under_the_limit_using_most_of_it(clips, tmp_path, limit_mib, kind):
    """Re-encoded under 10, 8 and 25 MiB (scaled), with and without audio: >= 90% of it."""
    limit = limit_mib * MiB // SCALE
    dst = tmp_path / "fit.mp4"
    fitted = fit_video(clips[kind], dst, limit)
    check_fitted(fitted, clips[kind], dst, limit)
    assert fitted is not None and fitted.height == 270  # enough bits: the resolution is kept


def test_a_1080p_clip_fits_into_10_mib(clip_1080p, tmp_path):
    """The real case: 5 s of 1080P with sound, ~18 MiB, into Discord's 10 MiB, still 1080P."""
    assert clip_1080p.stat().st_size > 15 * MiB
    dst = tmp_path / "fit.mp4"
    fitted = fit_video(clip_1080p, dst, 10 * MiB)
    check_fitted(fitted, clip_1080p, dst, 10 * MiB)
    assert fitted is not None and fitted.height == 1080


def test_steps_down_when_the_bits_are_too_few(clips, tmp_path):
    """Too few bits for 270 lines to look good: the next step of the ladder (180)."""
    limit = 40_000  # 0.03 bits per pixel and frame at 270 lines, 0.07 at 180
    dst = tmp_path / "fit.mp4"
    fitted = fit_video(clips["silent"], dst, limit, ladder=(270, 180, 120))
    assert fitted is not None and fitted.height == 180
    assert dst.stat().st_size <= limit
    with av.open(str(dst)) as container:
        assert container.streams.video[0].codec_context.height == 180


def test_nothing_when_even_the_lowest_step_cannot_fit(clips, tmp_path):
    """A limit no watchable encode can meet: None, and no file left behind."""
    dst = tmp_path / "fit.mp4"
    assert fit_video(clips["audio"], dst, 4_000, ladder=(270, 180, 120)) is None
    assert list(tmp_path.iterdir()) == []


def test_a_video_that_fits_is_left_alone(clips, tmp_path):
    """Under the limit already: the original itself, not re-encoded, nothing written."""
    dst = tmp_path / "fit.mp4"
    fitted = fit_video(clips["audio"], dst, 25 * MiB)
    assert fitted is not None and not fitted.reencoded
    assert fitted.path == clips["audio"] and fitted.size_bytes == clips["audio"].stat().st_size
    assert not dst.exists()


def test_not_a_video_raises(tmp_path):
    """A file PyAV cannot read raises its error (the engine then posts the link)."""
    src = tmp_path / "junk.mp4"
    src.write_bytes(b"not a video" * 1000)
    with pytest.raises(av.FFmpegError):
        fit_video(src, tmp_path / "fit.mp4", 100)


async def test_a_canceled_encode_leaves_no_file(clips, tmp_path):
    """Canceled mid-encode (shutdown): the thread stops, and no file, whole or partial, is left."""
    pool = EncodePool(1)
    dst = tmp_path / "fit.mp4"
    part = dst.with_name(dst.name + ".part")
    encoding = asyncio.Event()
    task = asyncio.create_task(pool.fit(clips["audio"], dst, 8 * MiB // SCALE,
                                        progress=lambda done: done < 0.5 or encoding.set()))
    await asyncio.wait_for(encoding.wait(), 10)
    assert await asyncio.to_thread(part.exists)  # mid-encode: the partial file is there
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(tmp_path.iterdir()) == []
    pool.close()

