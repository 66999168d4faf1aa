"""The engine's own scenarios (tests/engine/test_engine.py) on PostgreSQL: one process on a
shared store leads, holds the leases of its jobs, and after a restart (a new engine on the
same database) picks up what the last one left, exactly as on SQLite."""

from __future__ import annotations

import pytest

from tests.engine import test_engine as on_sqlite
from tests.engine_support import Rig, settings_for


@pytest.fixture
async def rig(sim, session, tmp_path, clock, pg_url) -> Rig:
    return Rig(sim, tmp_path / "jobs.sqlite3", clock, settings_for(sim, tmp_path), session,
               db_url=pg_url)


test_a_job_walks_every_state_to_delivery = on_sqlite.test_a_job_walks_every_state_to_delivery
test_cancel_a_queued_job = on_sqlite.test_cancel_a_queued_job_spends_nothing
test_restart_with_a_queued_job = on_sqlite.test_restart_with_a_queued_job
test_restart_while_at_the_provider = on_sqlite.test_restart_while_at_the_provider
test_restart_while_fetching = on_sqlite.test_restart_while_fetching_the_result
test_restart_mid_delivery = on_sqlite.test_restart_mid_delivery_posts_exactly_once
test_restart_in_submitting = on_sqlite.test_restart_in_submitting_reconciles_before_resubmitting
test_a_lost_create_answer = on_sqlite.test_a_create_whose_answer_was_lost_is_not_paid_twice
