"""Canceling a job: dropped from the queue, canceled at the provider while it is still pending,
or, once it runs (it cannot be stopped there), kept from being delivered."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.clock import Clock
from bot.engine.jobs import AT_PROVIDER, CancelOutcome, Job, JobState
from bot.engine.keys import KeyPool
from bot.engine.poller import Poller
from bot.engine.store import Store
from bot.errors import ApiError

log = logging.getLogger(__name__)

Transition = Callable[..., Awaitable[Job | None]]  # the engine's write + notify


class Cancels:
    def __init__(self, store: Store, keys: KeyPool, poller: Poller, clock: Clock,
                 transition: Transition, slot_freed: Callable[[Job], Any]) -> None:
        self.store = store
        self.keys = keys
        self.poller = poller
        self.clock = clock
        self.transition = transition
        self.slot_freed = slot_freed

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Stop a job as far as the provider allows; says what that was."""
        job = await self.store.get_job(job_id)
        if job is None:
            return CancelOutcome.UNKNOWN
        if job.state is JobState.QUEUED and await self.transition(
            job, JobState.CANCELED, expect=[JobState.QUEUED], error_code="Canceled",
            finished_at=self.clock.now(),
        ):
            return CancelOutcome.DROPPED
        job = await self.store.get_job(job_id) or job
        if job.terminal or job.state is JobState.DELIVERING:
            return CancelOutcome.TOO_LATE
        # Written first: whatever happens next (a result, a restart) honours it.
        job = await self.store.update_job(job.id, cancel_requested=True) or job
        if job.state in (JobState.SUCCEEDED, JobState.FITTING):
            await self.mark(job)
            return CancelOutcome.WILL_NOT_DELIVER
        if job.state is JobState.PENDING and await self.at_provider(job):
            return CancelOutcome.CANCELED
        if job.state is JobState.SUBMITTING:
            return CancelOutcome.REQUESTED
        return CancelOutcome.WILL_NOT_DELIVER

    async def at_provider(self, job: Job) -> bool:
        """Cancel the job's pending task, with the key that created it."""
        try:
            await self.keys.of(job).cancel_task(job.task_id or "")
        except ApiError as exc:
            log.info("job %s: provider would not cancel (%s)", job.id, exc.code)
            return False
        self.poller.forget(job.id)
        await self.mark(job)
        self.slot_freed(job)
        return True

    async def mark(self, job: Job) -> None:
        await self.transition(job, JobState.CANCELED,
                              expect=[*AT_PROVIDER, JobState.SUCCEEDED, JobState.FITTING],
                              error_code="Canceled", finished_at=self.clock.now())
