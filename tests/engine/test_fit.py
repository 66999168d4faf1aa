"""A result larger than where it goes is re-encoded to fit before delivery, across restarts.

The simulator returns a real detailed clip; the deliverer reports a limit below its size.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.engine import CancelOutcome, JobState, Store
from tests.engine_support import Recorder, kf2v_request
from tests.media_support import detailed_video

DONE = (JobState.DELIVERED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED)
LIMIT = 320 * 1024  # Discord's 10 MiB scaled down like the clip (480x270, 2 s)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """480x270, 2 s at 24 fps with sound: ~1.1 MiB."""
    path = tmp_path_factory.mktemp("clip") / "result.mp4"
    return detailed_video(path, 480, 270, 2.0, audio=True, crf=8).read_bytes()


def height(path: Path) -> int:
    with av.open(str(path)) as container:
        return int(container.streams.video[0].codec_context.height)


async def test_a_result_over_the_limit_is_fitted_then_delivered_once(rig, clip):
    """succeeded -> fitting -> delivering -> delivered; the file posted fits, the original stays."""
    rig.sim.config.result_video = clip
    recorder = Recorder()
    recorder.limit = LIMIT
    async with rig.engine(recorder) as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        job = await engine.watcher.state(update.job.id, *DONE, timeout_s=30)
    assert job.state is JobState.DELIVERED
    assert engine.watcher.states(job.id)[-4:] == [
        JobState.SUCCEEDED, JobState.FITTING, JobState.DELIVERING, JobState.DELIVERED]
    assert [job_id for job_id, _ in recorder.posts] == [job.id]
    posted = recorder.posts[0][1]
    assert 0.9 * LIMIT <= len(posted) <= LIMIT
    assert job.fit is not None and job.fit.path == str(recorder.videos[0])
    assert (job.fit.limit_bytes, job.fit.size_bytes, job.fit.height) == (LIMIT, len(posted), 270)
    assert await asyncio.to_thread(Path(job.video_path or "").read_bytes) == clip  # kept


async def test_when_nothing_fits_the_original_goes_to_the_front_end(rig, clip):
    """Even the lowest step is too big: no fitted file; the front end gets the original (and
    posts the link, as for any video over its limit) and a poster frame to show with it."""
    rig.sim.config.result_video = clip
    recorder = Recorder()
    recorder.limit = 2_000
    async with rig.engine(recorder) as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        job = await engine.watcher.state(update.job.id, *DONE, timeout_s=30)
    assert job.state is JobState.DELIVERED
    assert job.fit is not None and not job.fit.made and job.fit.limit_bytes == 2_000
    assert recorder.posts == [(job.id, clip)]
    names = sorted(p.name for p in rig.settings.video_dir.iterdir())
    assert names == [f"{job.id}.jpg", f"{job.id}.mp4"]
    assert job.fit.poster == str(rig.settings.video_dir / f"{job.id}.jpg")
    with Image.open(job.fit.poster) as poster:
        assert poster.size == (480, 270) and poster.format == "JPEG"


async def test_a_result_within_the_limit_is_not_touched(rig, clip):
    rig.sim.config.result_video = clip
    recorder = Recorder()
    recorder.limit = 10 * len(clip)
    async with rig.engine(recorder) as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        job = await engine.watcher.state(update.job.id, *DONE, timeout_s=30)
    assert JobState.FITTING not in engine.watcher.states(job.id)
    assert job.fit is None and recorder.posts == [(job.id, clip)]


async def test_a_restart_mid_encode_encodes_again_and_delivers_once(rig, tmp_path):
    """Stopped mid-encode: no file, whole or partial, is left to post; the next process
    encodes again from the original and delivers once."""
    made = await asyncio.to_thread(detailed_video, tmp_path / "r.mp4", 1280, 720, 3.0, fps=16,
                                   crf=8)
    rig.sim.config.result_video = await asyncio.to_thread(made.read_bytes)
    recorder = Recorder()
    recorder.limit = 1024 * 1024
    async with rig.engine(recorder) as engine:
        encoding = asyncio.Event()
        engine.results.fit_listeners.append(lambda job_id, done: done < 0.5 or encoding.set())
        update = await engine.submit(kf2v_request(rig.sim))
        await asyncio.wait_for(encoding.wait(), 30)  # half the frames are encoded
        part = rig.settings.video_dir / f"{update.job.id}-fit.mp4.part"
        assert await asyncio.to_thread(part.exists)  # the encoder is writing
    # Leaving the block stopped the engine (and the encode) at once.
    store = await Store.open(rig.db_path)
    stopped = await store.get_job(update.job.id)
    await store.close()
    assert stopped is not None and stopped.state is JobState.FITTING and stopped.fit is None
    names = sorted(p.name for p in rig.settings.video_dir.iterdir())
    assert names == [f"{update.job.id}.mp4"] and recorder.posts == []
    async with rig.engine(recorder) as engine:
        job = await engine.watcher.state(update.job.id, *DONE, timeout_s=30)
    assert job.state is JobState.DELIVERED
    assert [job_id for job_id, _ in recorder.posts] == [job.id]
    assert len(recorder.posts[0][1]) <= 1024 * 1024 and height(recorder.videos[0]) == 720


async def test_a_cancel_mid_encode_stops_it_and_leaves_nothing(rig, tmp_path):
    """Canceled while its video is re-encoded: the encode stops part way (no further
    progress), nothing is posted, no file but the original is left, the job ends canceled."""
    made = await asyncio.to_thread(detailed_video, tmp_path / "c.mp4", 1280, 720, 3.0, fps=16,
                                   crf=8)
    rig.sim.config.result_video = await asyncio.to_thread(made.read_bytes)
    recorder = Recorder()
    recorder.limit = 1024 * 1024
    async with rig.engine(recorder) as engine:
        progress: list[float] = []
        started = asyncio.Event()
        engine.results.fit_listeners.append(
            lambda job_id, done: (progress.append(done), done < 0.2 or started.set()))
        update = await engine.submit(kf2v_request(rig.sim))
        await asyncio.wait_for(started.wait(), 30)
        assert await engine.cancel(update.job.id) is CancelOutcome.WILL_NOT_DELIVER
        job = await engine.watcher.state(update.job.id, *DONE, timeout_s=30)
        # the pool's one worker takes this only once the stopped encode has left
        await asyncio.wait_for(engine.results.encoder.run(int), 30)
    assert job.state is JobState.CANCELED and recorder.posts == []
    assert max(progress) < 1.0  # stopped, not run to the end
    names = sorted(p.name for p in rig.settings.video_dir.iterdir())
    assert names == [f"{update.job.id}.mp4"]


async def test_old_fitted_videos_and_posters_are_deleted_with_the_original(rig, clip):
    """The clean-up takes the re-encode and the poster frame too."""
    rig.sim.config.result_video = clip
    recorder = Recorder()
    recorder.limit = LIMIT
    async with rig.engine(recorder) as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        await engine.watcher.state(update.job.id, JobState.DELIVERED, timeout_s=30)
        recorder.limit = 2_000
        other = await engine.submit(kf2v_request(rig.sim))
        await engine.watcher.state(other.job.id, JobState.DELIVERED, timeout_s=30)
        assert len(await asyncio.to_thread(list, rig.settings.video_dir.iterdir())) == 4
        rig.clock.advance(rig.settings.video_keep_s + 1)
        assert await engine.results.sweep() == 2
    assert await asyncio.to_thread(list, rig.settings.video_dir.iterdir()) == []
