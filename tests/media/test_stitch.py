"""Joining clips: copied when their streams match, re-encoded when not; always the sum of their
lengths. Real clips made with PyAV (tests.clip_support)."""

from __future__ import annotations

from io import BytesIO

import av
import pytest
from PIL import Image

from bot.media.frames import NoFrame, last_frame_png
from bot.media.stitch import StitchError, duration_s, stitch
from tests.clip_support import frames_of, last_image, mean_difference, write_clip


def test_matching_clips_are_copied_end_to_end(tmp_path):
    """Same codec, size, rate and time base (B-frames too): packets copied, length summed."""
    medium = {"preset": "medium"}  # B-frames: timestamps that must stay in order at the joins
    a = write_clip(tmp_path / "a.mp4", seconds=1.0, options=medium)
    b = write_clip(tmp_path / "b.mp4", seconds=1.5, seed=1, options=medium)
    made = stitch([a, b, a], tmp_path / "chain.mp4")
    assert made.copied and made.seconds == pytest.approx(3.5)
    assert duration_s(made.path) == pytest.approx(3.5, abs=0.01)
    assert frames_of(made.path) == 8 + 12 + 8
    # copied, not re-encoded: the last picture is bit for bit the last clip's
    assert mean_difference(last_image(made.path), last_image(a)) == 0


def test_matching_clips_with_sound_are_copied_with_their_sound(tmp_path):
    """Sound copied too, each clip's cut to its picture (AAC's priming overlaps the join)."""
    a = write_clip(tmp_path / "a.mp4", seconds=1.0, audio=True)
    b = write_clip(tmp_path / "b.mp4", seconds=1.5, audio=True, seed=2)
    made = stitch([a, b, a], tmp_path / "chain.mp4")
    assert made.copied and duration_s(made.path) == pytest.approx(3.5, abs=0.01)
    with av.open(str(made.path)) as out:
        audio = out.streams.audio[0]
        assert float(audio.duration * audio.time_base) == pytest.approx(3.5, abs=0.05)


def test_clips_that_differ_are_reencoded_to_the_first(tmp_path):
    """Another size, frame rate and codec, and sound in one clip only: re-encoded at the first
    clip's size and rate, each clip keeping its length, sound throughout."""
    a = write_clip(tmp_path / "a.mp4", size=(320, 240), seconds=1.0, fps=8)
    b = write_clip(tmp_path / "b.mp4", size=(480, 368), seconds=1.5, fps=12, codec="mpeg4",
                   audio=True)
    made = stitch([a, b], tmp_path / "chain.mp4")
    assert not made.copied and made.seconds == pytest.approx(2.5)
    with av.open(str(made.path)) as out:
        video, audio = out.streams.video[0], out.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 240)
        assert video.average_rate == 8
        assert float(audio.duration * audio.time_base) == pytest.approx(2.5, abs=0.05)
    assert duration_s(made.path) == pytest.approx(2.5, abs=0.01)
    assert frames_of(made.path) == 20  # 8 + 1.5 s at 8 fps


def test_a_clip_that_cannot_be_read_is_a_stitch_error(tmp_path):
    a = write_clip(tmp_path / "a.mp4")
    broken = tmp_path / "b.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(StitchError, match=r"b\.mp4"):
        stitch([a, broken], tmp_path / "chain.mp4")
    assert not list(tmp_path.glob("*chain*"))  # no half file left behind


def test_the_last_frame_is_the_videos_last_picture(tmp_path):
    """Taken from the tail (a seek), it is the same picture as decoding the whole clip."""
    video = write_clip(tmp_path / "a.mp4", seconds=5.0, options={"preset": "medium"})
    frame = Image.open(BytesIO(last_frame_png(video)))
    assert frame.format == "PNG" and frame.size == (480, 368)
    assert mean_difference(frame, last_image(video)) == 0
    with pytest.raises(NoFrame):
        last_frame_png(tmp_path / "gone.mp4")
