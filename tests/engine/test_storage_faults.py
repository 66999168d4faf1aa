"""Storage faults are loud and safe: a database that cannot be written or was swapped under
the engine stops it with one clear error; a video that cannot be written fails its job after
retries; no background failure goes unretrieved (this package runs in asyncio debug mode)."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3

import pytest

from bot.engine import Engine, JobState, Store
from bot.errors import StorageError, describe
from tests.engine_support import kf2v_request, settings_for

DONE = (JobState.DELIVERED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED)


async def stopped_by_storage(engine: Engine) -> StorageError:
    """Wait for the engine's guard to report a storage failure; the error."""
    failed = asyncio.Event()
    engine.guard.on_failure(failed.set)
    await asyncio.wait_for(failed.wait(), 20)
    assert engine.guard.failure is not None
    return engine.guard.failure


# --- the database ------------------------------------------------------------------------


async def test_a_corrupt_database_is_a_storage_error_naming_the_file(tmp_path):
    """Opening a file that is not a database raises StorageError with the path and advice."""
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(b"this is not sqlite" * 512)
    with pytest.raises(StorageError) as caught:
        await Store.open(path)
    assert str(path) in str(caught.value) and "restore a backup" in str(caught.value)


async def test_a_database_that_cannot_be_written_stops_the_engine(rig):
    """A write refused mid-run (the file became read-only) stops the engine: nothing is
    sent, and the guard holds one clear error."""
    async with rig.engine(start=False) as engine:
        await engine.submit(kf2v_request(rig.sim))
        await engine.store.db.execute("PRAGMA query_only = 1")  # SQLite refuses every write
        await engine.start()
        error = await stopped_by_storage(engine)
    assert "readonly" in str(error) and "may be written" in str(error)
    assert not [r for r in rig.sim.requests if r.route == "create"]


async def test_a_request_the_database_cannot_take_stops_the_engine(rig):
    """Queueing a job into a database that refuses writes: the caller gets StorageError and
    the engine stops."""
    async with rig.engine() as engine:
        await engine.store.db.execute("PRAGMA query_only = 1")
        with pytest.raises(StorageError):
            await engine.submit(kf2v_request(rig.sim))
        error = await stopped_by_storage(engine)
    assert "readonly" in str(error)


@pytest.mark.parametrize("how", ["removed", "replaced"])
async def test_a_database_file_swapped_under_the_engine_is_detected(rig, how):
    """The file removed, or another put in its place, while the engine runs: it stops."""
    async with rig.engine() as engine:
        if how == "removed":
            rig.db_path.unlink()
        else:
            with sqlite3.connect(rig.db_path.with_name("other.sqlite3")) as other:
                other.execute("CREATE TABLE t (x)")
            os.replace(rig.db_path.with_name("other.sqlite3"), rig.db_path)
        error = await stopped_by_storage(engine)
    assert how in str(error) and str(rig.db_path) in str(error)


# --- videos and background work -----------------------------------------------------------


async def test_a_video_that_cannot_be_written_fails_its_job_after_retries(rig, tmp_path):
    """The video folder cannot be made (a file is in the way): retried with back-off, then
    the job fails with a message the front ends show."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    rig.settings = settings_for(rig.sim, tmp_path, video_dir=blocker / "videos")
    async with rig.engine() as engine:
        update = await engine.submit(kf2v_request(rig.sim))
        job = await engine.watcher.state(update.job.id, *DONE, timeout_s=30)
    assert (job.state, job.error_code) == (JobState.FAILED, "StorageError")
    assert "disk" in describe(job.error_code)
    downloads = [r for r in rig.sim.requests if r.route == "result"]
    assert downloads == []  # the file could not even be opened: nothing was fetched twice


async def test_a_failed_background_task_is_logged_not_left_unretrieved(rig, caplog):
    """A bug in engine background work is logged with its traceback and retrieved."""

    async def broken() -> None:
        raise RuntimeError("a bug")

    async with rig.engine() as engine:
        with caplog.at_level(logging.ERROR, logger="bot.engine.guard"):
            task = engine.guard.start(broken(), name="broken")
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0)  # done-callbacks run on the next turn of the loop
    assert "background task broken failed" in caplog.text and "a bug" in caplog.text
    assert engine.guard.failure is None
