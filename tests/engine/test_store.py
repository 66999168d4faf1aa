"""The SQLite store: migrations, round trips, guarded transitions."""

from __future__ import annotations

import sqlite3

from bot.engine import Fit, Job, JobState, Store
from bot.engine.poll_policy import history_key
from bot.engine.store import MIGRATIONS


def make_job(job_id: str = "j1", **changes: object) -> Job:
    base = dict(
        id=job_id, platform="cli", team_id="t", channel_id="c", user_id="u", command="kf2v",
        model="wan2.2-kf2v-flash", state=JobState.QUEUED, created_at=1.0,
        media={"first_frame_url": "https://x/a.png"}, options={"resolution": "480P"},
    )
    base.update(changes)
    return Job(**base)  # type: ignore[arg-type]


async def test_migrates_a_new_file_to_the_latest_version(tmp_path):
    """A new file gets every migration and the version says so."""
    store = await Store.open(tmp_path / "a.db")
    assert await store.schema_version() == len(MIGRATIONS)
    await store.close()


async def test_reopening_does_not_migrate_twice(tmp_path):
    """Opening an up-to-date file again keeps its rows."""
    store = await Store.open(tmp_path / "a.db")
    await store.insert_job(make_job())
    await store.close()
    store = await Store.open(tmp_path / "a.db")
    assert (await store.get_job("j1")) is not None
    await store.close()


async def test_upgrades_a_version_one_file(tmp_path):
    """A file written by the first schema gains the later tables."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0] + "; PRAGMA user_version=1;")
    store = await Store.open(path)
    await store.set_team_settings("g", {"gallery": 5})
    assert await store.get_team_settings("g") == {"gallery": 5}
    await store.close()


async def test_a_version_two_job_keeps_its_row_and_gains_empty_sends(tmp_path):
    """Migration 3 adds the create send times; a job written before it reads as none sent."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0] + MIGRATIONS[1] + "; PRAGMA user_version=2;")
        db.execute("INSERT INTO jobs (id, platform, team_id, channel_id, user_id, command,"
                   " model, state, created_at) VALUES ('j1', 'cli', 't', 'c', 'u', 'kf2v',"
                   " 'wan2.2-kf2v-flash', 'submitting', 1.0)")
    store = await Store.open(path)
    assert (await store.get_job("j1")).sends == []
    saved = await store.update_job("j1", sends=[5.0, 17.5])
    assert saved is not None and saved.sends == [5.0, 17.5]
    await store.close()


async def test_job_round_trips_with_json_and_flags(tmp_path):
    """Structures, flags and states come back as they went in."""
    store = await Store.open(tmp_path / "a.db")
    job = make_job(notes=["scaled"], private=True, usage={"video_duration": 5})
    await store.insert_job(job)
    assert await store.get_job("j1") == job
    await store.close()


async def test_guarded_update_refuses_a_moved_job(tmp_path):
    """An update that expects a state the job has left changes nothing."""
    store = await Store.open(tmp_path / "a.db")
    await store.insert_job(make_job())
    moved = await store.update_job("j1", expect=[JobState.QUEUED], state=JobState.CANCELED)
    assert moved is not None and moved.state is JobState.CANCELED
    again = await store.update_job("j1", expect=[JobState.QUEUED], state=JobState.SUBMITTING)
    assert again is None
    assert (await store.get_job("j1")).state is JobState.CANCELED
    await store.close()


async def test_durations_newest_first_and_fairness_facts(tmp_path):
    """History and last-admitted times come from the rows."""
    store = await Store.open(tmp_path / "a.db")
    for i, secs in enumerate([100.0, 110.0, 120.0]):
        await store.insert_job(make_job(f"j{i}", user_id=f"u{i}", submitted_at=10.0 + i,
                                        finished_at=20.0 + i, provider_seconds=secs))
    assert await store.durations("wan2.2-kf2v-flash") == [120.0, 110.0, 100.0]
    assert await store.last_admitted("wan2.2-kf2v-flash", "user_id") == {
        "u0": 10.0, "u1": 11.0, "u2": 12.0}
    await store.close()


async def test_durations_grouped_by_what_drives_them(tmp_path):
    """Durations come back per history key, newest first; a seed does not split them."""
    store = await Store.open(tmp_path / "a.db")
    rows = [("480P", 1, 30.0), ("1080P", 2, 90.0), ("480P", 3, 31.0), ("1080P", 4, 95.0)]
    for i, (resolution, seed, secs) in enumerate(rows):
        await store.insert_job(make_job(f"j{i}", options={"resolution": resolution, "seed": seed},
                                        finished_at=20.0 + i, provider_seconds=secs))
    await store.insert_job(make_job("running", options={"resolution": "480P"}))
    model = "wan2.2-kf2v-flash"
    assert await store.durations_by_key(model) == {
        history_key(model, {"resolution": "1080P"}): [95.0, 90.0],
        history_key(model, {"resolution": "480P"}): [31.0, 30.0],
    }
    await store.close()


async def test_meta_upserts(tmp_path):
    store = await Store.open(tmp_path / "a.db")
    assert await store.get_meta("k") is None
    await store.set_meta("k", "1")
    await store.set_meta("k", "2")
    assert await store.get_meta("k") == "2"
    await store.close()


async def test_a_fit_is_kept_with_its_job(tmp_path):
    """Migration 5: the re-encoded file's record is written and read back whole."""
    store = await Store.open(tmp_path / "a.db")
    await store.insert_job(make_job())
    fit = Fit(limit_bytes=10 * 1024 * 1024, path="/v/j1-fit.mp4", size_bytes=10_000_000,
              height=720)
    saved = await store.update_job("j1", state=JobState.DELIVERING, fit=fit)
    assert saved is not None and saved.fit == fit and saved.post_path == "/v/j1-fit.mp4"
    none_fit = await store.update_job("j1", fit=Fit(limit_bytes=5, poster="/v/j1.jpg"))
    assert none_fit is not None and not none_fit.fit.made and none_fit.post_path is None
    await store.close()
