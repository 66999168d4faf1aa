"""The store on both backends (SQLite and PostgreSQL): migrations, round trips, guarded
transitions. SQLite's upgrade of old files is tested on SQLite alone."""

from __future__ import annotations

import sqlite3

import pytest

from bot.engine import ChainVideo, Fit, Job, JobState, Store
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


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path) -> str:
    """Where a store opens: a SQLite file, or a PostgreSQL database (a schema of its own)."""
    if request.param == "sqlite":
        return str(tmp_path / "a.db")
    return request.getfixturevalue("pg_url")


async def test_migrates_a_new_file_to_the_latest_version(target):
    """A new file gets every migration and the version says so."""
    store = await Store.open(target)
    assert await store.schema_version() == len(MIGRATIONS)
    await store.close()


async def test_reopening_does_not_migrate_twice(target):
    """Opening an up-to-date file again keeps its rows."""
    store = await Store.open(target)
    await store.insert_job(make_job())
    await store.close()
    store = await Store.open(target)
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


async def test_job_round_trips_with_json_and_flags(target):
    """Structures, flags and states come back as they went in."""
    store = await Store.open(target)
    job = make_job(notes=["scaled"], private=True, usage={"video_duration": 5})
    await store.insert_job(job)
    assert await store.get_job("j1") == job
    await store.close()


async def test_guarded_update_refuses_a_moved_job(target):
    """An update that expects a state the job has left changes nothing."""
    store = await Store.open(target)
    await store.insert_job(make_job())
    moved = await store.update_job("j1", expect=[JobState.QUEUED], state=JobState.CANCELED)
    assert moved is not None and moved.state is JobState.CANCELED
    again = await store.update_job("j1", expect=[JobState.QUEUED], state=JobState.SUBMITTING)
    assert again is None
    assert (await store.get_job("j1")).state is JobState.CANCELED
    await store.close()


async def test_durations_newest_first_and_fairness_facts(target):
    """History and last-admitted times come from the rows."""
    store = await Store.open(target)
    for i, secs in enumerate([100.0, 110.0, 120.0]):
        await store.insert_job(make_job(f"j{i}", user_id=f"u{i}", submitted_at=10.0 + i,
                                        finished_at=20.0 + i, provider_seconds=secs))
    assert await store.durations("wan2.2-kf2v-flash") == [120.0, 110.0, 100.0]
    assert await store.last_admitted("wan2.2-kf2v-flash", "user_id") == {
        "u0": 10.0, "u1": 11.0, "u2": 12.0}
    await store.close()


async def test_durations_grouped_by_what_drives_them(target):
    """Durations come back per history key, newest first; a seed does not split them."""
    store = await Store.open(target)
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


async def test_meta_upserts(target):
    store = await Store.open(target)
    assert await store.get_meta("k") is None
    await store.set_meta("k", "1")
    await store.set_meta("k", "2")
    assert await store.get_meta("k") == "2"
    await store.close()


async def test_a_fit_is_kept_with_its_job(target):
    """Migration 5: the re-encoded file's record is written and read back whole."""
    store = await Store.open(target)
    await store.insert_job(make_job())
    fit = Fit(limit_bytes=10 * 1024 * 1024, path="/v/j1-fit.mp4", size_bytes=10_000_000,
              height=720)
    saved = await store.update_job("j1", state=JobState.DELIVERING, fit=fit)
    assert saved is not None and saved.fit == fit and saved.post_path == "/v/j1-fit.mp4"
    none_fit = await store.update_job("j1", fit=Fit(limit_bytes=5, poster="/v/j1.jpg"))
    assert none_fit is not None and not none_fit.fit.made and none_fit.post_path is None
    await store.close()


async def test_every_reader_answers_alike(target):
    """Usage (a number inside JSON), queues, counts, progress refs, task ids, settings and a
    person's jobs read the same on either backend."""
    store = await Store.open(target)
    try:
        await store.insert_job(make_job("a", created_at=10.0, usage={"video_duration": 5}))
        await store.insert_job(make_job("b", created_at=11.0, expected_seconds=3.0,
                                        state=JobState.RUNNING, task_id="task-b"))
        await store.insert_job(make_job("c", created_at=12.0, user_id="v"))
        await store.update_job("c", progress_ref={"channel_id": "1", "message_id": "2"})
        model = "wan2.2-kf2v-flash"
        assert await store.usage_totals("t", 0.0) == (5.0, 3.0, 3)
        assert await store.usage_totals("t", 0.0, "v") == (0.0, 0.0, 1)
        assert [q.id for q in await store.queued(model)] == ["a", "c"]
        assert await store.count_in([JobState.RUNNING], model) == 1
        assert await store.models_in(JobState.QUEUED) == [model]
        assert [r[0] for r in await store.progress_refs(JobState.QUEUED)] == ["c"]
        assert await store.claimed_task_ids() == {"task-b"}
        assert await store.unfinished_count("t", "u") == 2
        assert [j.id for j in await store.user_jobs("cli", "t", "u", 5)] == ["b", "a"]
        assert [j.id for j in await store.jobs_in([JobState.QUEUED], model)] == ["a", "c"]
        await store.set_team_settings("t", {"limit": 2})
        await store.set_team_settings("t", {"limit": 3})
        assert await store.get_team_settings("t") == {"limit": 3}
    finally:
        await store.close()


async def test_many_jobs_go_in_together(target):
    """insert_jobs writes every job in one go; nothing for an empty list."""
    store = await Store.open(target)
    try:
        await store.insert_jobs([])
        await store.insert_jobs(make_job(f"j{i}", created_at=float(i)) for i in range(50))
        assert [j.id for j in await store.jobs()] == [f"j{i}" for i in range(50)]
    finally:
        await store.close()


async def test_chains_and_keys_read_alike(target):
    """Migrations 6 and 7 on either backend: a chain walked up root first, the extensions
    whose chain video is due (a JSON string inside a column), tasks counted by API key."""
    store = await Store.open(target)
    try:
        await store.insert_job(make_job("root", created_at=1.0, state=JobState.DELIVERED))
        await store.insert_job(make_job("mid", created_at=2.0, parent_id="root",
                                        state=JobState.DELIVERED))
        await store.insert_job(make_job("tip", created_at=3.0, parent_id="mid",
                                        state=JobState.DELIVERED, api_key_id="key-b"))
        assert [j.id for j in await store.chain_of("tip")] == ["root", "mid", "tip"]
        assert {j.id for j in await store.chains_due()} == {"mid", "tip"}
        await store.update_job("mid", chain=ChainVideo(state="posted"))
        assert [j.id for j in await store.chains_due()] == ["tip"]
        counts = await store.count_by_key([JobState.DELIVERED], "wan2.2-kf2v-flash")
        assert counts == {None: 2, "key-b": 1}
    finally:
        await store.close()
