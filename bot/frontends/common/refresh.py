"""Which jobs a front end's progress board re-renders: at start every job whose message may be
stale (the last process may have stopped before its final edit), then the ones whose bar and
ETA move without a state change."""

from __future__ import annotations

from collections.abc import Callable

from bot.engine import AT_PROVIDER, Job, JobState, Store

ACTIVE = (JobState.QUEUED, *AT_PROVIDER)
RECENT_S = 3600.0  # at start, jobs changed this recently are re-rendered too


async def to_refresh(store: Store, platform: str, since: float | None,
                     mine: Callable[[str], bool] = lambda job_id: True) -> list[Job]:
    """The platform's jobs with a progress message that are active, or changed since `since`;
    of those, the ones this process shows (`mine`: with several processes, the engine's
    `coord.speaks_for`, so each job's message is edited by one process)."""
    jobs = await store.jobs_in(ACTIVE)
    if since is not None:
        jobs += await store.changed_since(since)
    return list({j.id: j for j in jobs
                 if j.platform == platform and j.progress_ref and mine(j.id)}.values())
