"""Team settings and the limits they set, on a real SQLite file."""

from __future__ import annotations

import asyncio

import pytest

from bot.engine import JobRequest, JobState, Store
from bot.frontends.common import teams
from bot.frontends.common.teams import LimitError, TeamSettings
from tests.engine.test_store import make_job

NOON = 1_763_726_400.0 + 12 * 3600  # 2025-11-21 12:00 UTC


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(tmp_path / "t.db")
    yield store
    await store.close()


def request(user: str = "alice", seconds: float = 5.0) -> JobRequest:
    return JobRequest(platform="discord", team_id="g", channel_id="c", user_id=user,
                      command="kf2v", model="wan2.2-kf2v-flash", media={}, options={},
                      expected_seconds=seconds)


async def test_settings_round_trip_and_unknown_keys_are_ignored(store):
    saved = TeamSettings(gallery_channel_id="5", generate_role_ids=("1",),
                         defaults={"kf2v": {"resolution": "480P"}})
    await teams.save(store, "g", saved)
    assert await teams.load(store, "g") == saved
    await store.set_team_settings("g", {**saved.to_dict(), "retired_option": 1})
    assert await teams.load(store, "g") == saved
    assert saved.default_for("kf2v", "resolution") == "480P"


async def test_a_new_team_has_the_defaults_and_a_removed_limit_stays_removed(store):
    """Unset limits (never saved, or None in a row saved before defaults) are the defaults;
    a limit an admin removed reads back as no limit."""
    assert await teams.load(store, "new") == TeamSettings(user_max_concurrent=3,
                                                          user_daily_seconds=300)
    await store.set_team_settings("old", {"user_max_concurrent": None, "gallery_channel_id": "5"})
    assert (await teams.load(store, "old")).user_max_concurrent == teams.DEFAULT_USER_JOBS
    lifted = TeamSettings(user_max_concurrent=None, user_daily_seconds=None)
    await teams.save(store, "g", lifted)
    assert await teams.load(store, "g") == lifted


async def test_usage_counts_the_providers_seconds_and_whats_on_its_way(store):
    await store.insert_job(make_job("a", team_id="g", created_at=NOON, state=JobState.DELIVERED,
                                    usage={"video_duration": 10}, expected_seconds=10))
    await store.insert_job(make_job("b", team_id="g", created_at=NOON, state=JobState.RUNNING,
                                    expected_seconds=5))
    await store.insert_job(make_job("c", team_id="g", created_at=NOON, state=JobState.FAILED,
                                    expected_seconds=5))
    await store.insert_job(make_job("d", team_id="g", created_at=NOON - 86_400,
                                    state=JobState.DELIVERED, usage={"video_duration": 5}))
    used = await teams.usage(store, "g", teams.day_start(NOON))
    assert (used.made_s, used.pending_s, used.jobs) == (10, 5, 3)


async def test_daily_user_budget_refuses_with_whats_left_and_when(store):
    await teams.save(store, "g", TeamSettings(user_daily_seconds=12))
    await store.insert_job(make_job("a", team_id="g", user_id="alice", created_at=NOON,
                                    state=JobState.DELIVERED, usage={"video_duration": 10}))
    with pytest.raises(LimitError) as caught:
        await teams.check_admission(store, request("alice"), NOON)
    assert "2 s left of 12 s" in caught.value.message and "00:00 UTC" in caught.value.message
    assert caught.value.resets_at == teams.day_start(NOON) + 86_400
    await teams.check_admission(store, request("bob"), NOON)  # bob has his own budget


async def test_team_budget_covers_everyone(store):
    await teams.save(store, "g", TeamSettings(team_daily_seconds=10))
    await store.insert_job(make_job("a", team_id="g", user_id="alice", created_at=NOON,
                                    state=JobState.QUEUED, expected_seconds=10))
    with pytest.raises(LimitError, match="this server's daily budget has 0 s left"):
        await teams.check_admission(store, request("bob"), NOON)


async def test_concurrent_jobs_per_user(store):
    await teams.save(store, "g", TeamSettings(user_max_concurrent=1))
    await store.insert_job(make_job("a", team_id="g", user_id="alice", state=JobState.RUNNING))
    with pytest.raises(LimitError, match="1 unfinished"):
        await teams.check_admission(store, request("alice"), NOON)


async def test_simultaneous_requests_cannot_pass_a_limit_together(tmp_path, sim, session):
    """Ten requests at once against a budget for two: exactly two are queued."""
    from bot.clock import ScaledClock
    from bot.engine.engine import Engine
    from bot.provider.client import DashScope
    from tests.engine_support import settings_for

    store = await Store.open(tmp_path / "e.db")
    await teams.save(store, "g", TeamSettings(user_daily_seconds=10))
    engine = Engine(store, DashScope(session, sim.base_url, sim.api_key),
                    settings_for(sim, tmp_path), clock=ScaledClock(1))

    async def check(req: JobRequest, now: float) -> None:
        await teams.check_admission(store, req, now)

    results = await asyncio.gather(*(engine.submit(request(), check) for _ in range(10)),
                                   return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, LimitError)) == 8
    await store.close()
