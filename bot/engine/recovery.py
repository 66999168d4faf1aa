"""Reconciliation: whether a create whose answer was lost reached the provider, found out
before anything is sent again (resending blindly could pay twice).

A job in `submitting` (after a crash, a timeout or a dropped connection) is matched against the
provider's task list. A match is recorded as the job's task; a job the provider never got goes
back to the queue. If the provider cannot list tasks now, the jobs wait and it is tried again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.engine.jobs import Job, JobState
from bot.engine.poller import Poller
from bot.engine.store import Store
from bot.errors import ApiError
from bot.provider import catalog
from bot.provider.tasks import Task

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 5.0  # how far the provider's clock may be from ours
RECONCILE_RETRY_S = 60.0

Found = Callable[[Job, Task], Awaitable[None]]  # the job's task was found: record it
NotSent = Callable[[Job], Awaitable[None]]  # the provider never got the job: queue it again
Spawn = Callable[[Coroutine[Any, Any, Any]], None]


class Reconciler:
    def __init__(self, store: Store, poller: Poller, settings: Settings, clock: Clock, *,
                 found: Found, not_sent: NotSent, spawn: Spawn) -> None:
        self.store = store
        self.poller = poller
        self.settings = settings
        self.clock = clock
        self.found = found
        self.not_sent = not_sent
        self.spawn = spawn
        self._locks: dict[str, asyncio.Lock] = {}

    async def reconcile(self, model_name: str) -> None:
        """Match a model's jobs stuck in `submitting` to tasks the provider has."""
        async with self._locks.setdefault(model_name, asyncio.Lock()):
            jobs = await self.store.jobs_in([JobState.SUBMITTING], model_name)
            if jobs:
                await self._reconcile(model_name, jobs)

    async def _reconcile(self, model_name: str, jobs: list[Job]) -> None:
        model = catalog.get_model(model_name)
        start = min(j.submitted_at or j.created_at for j in jobs)
        try:
            listed = await self.poller.list_tasks(start, self.clock.now(),
                                                  model.api_name(self.settings.region))
        except ApiError as exc:
            log.warning("cannot list %s tasks (%s); reconciling again in %.0fs",
                        model_name, exc.code, RECONCILE_RETRY_S)
            self.spawn(self._later(model_name))
            return
        claimed = await self.store.claimed_task_ids()
        free = [t for t in listed if t.task_id not in claimed]
        for job in sorted(jobs, key=lambda j: j.submitted_at or 0):
            match = await self._match(job, free)
            if match is not None:
                free.remove(match)
                log.info("job %s: found its task %s at the provider", job.id, match.task_id)
                await self.found(job, await self.poller.get_task(match.task_id))
            else:
                log.info("job %s: the provider never got it; queueing again", job.id)
                await self.not_sent(job)

    async def _later(self, model_name: str) -> None:
        await self.clock.sleep(RECONCILE_RETRY_S)
        await self.reconcile(model_name)

    async def _match(self, job: Job, candidates: list[Task]) -> Task | None:
        """The listed task created nearest after the job was sent, unless its prompt (known
        once it finished) says it is someone else's."""
        sent = job.submitted_at or job.created_at
        latest = sent + self.settings.http_timeout_s + CLOCK_SKEW_S
        near = [c for c in candidates if sent - CLOCK_SKEW_S <= _created(c) <= latest]
        for cand in sorted(near, key=lambda c: abs(_created(c) - sent)):
            if not job.prompt:
                return cand
            task = await self.poller.get_task(cand.task_id)
            if task.orig_prompt in (None, job.prompt):
                return cand
        return None


def _created(task: Task) -> float:
    return task.submit_time.timestamp() if task.submit_time else 0.0
