"""Sending a job's create to the provider: each attempt written down before it leaves.

The client sends a create once and never repeats it. Whether there is another attempt is the
engine's call: after a refusal the job goes back to the queue (honouring Retry-After); after a
lost answer, reconciliation looks first. Every attempt's send time is in the job's row before
the request goes out, so reconciliation can look for a task around each of them, even after a
crash, and never mistakes a create still on its way for one that was never sent.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.config import Settings
from bot.engine.jobs import Job, JobState
from bot.engine.keys import KeyPool
from bot.engine.store import Store
from bot.provider import catalog
from bot.provider.tasks import Task

log = logging.getLogger(__name__)


class Submitter:
    def __init__(self, store: Store, keys: KeyPool, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.keys = keys
        self.settings = settings
        self.clock = clock
        self._sending: set[str] = set()  # jobs whose create is on its way now

    def sending(self, job_id: str) -> bool:
        """True from before the job's create is sent until its answer is recorded (`sent`)
        or it failed: reconciliation leaves such a job, and what it may have made, alone."""
        return job_id in self._sending

    def reserve(self, job_id: str) -> None:
        """The job is about to be admitted: `sending` from now on (see Admission)."""
        self._sending.add(job_id)

    def sent(self, job_id: str) -> None:
        """The answer to the job's create is recorded (its task id is in the store)."""
        self._sending.discard(job_id)

    async def send(self, job: Job) -> Task | None:
        """Record the attempt, then send the create once; on success, call `sent` once the
        task is recorded. None: the job left `submitting` before anything was sent. Raises
        InputError (nothing sent) or ApiError."""
        model = catalog.get_model(job.model)
        account = self.keys.of(job)  # the key admission gave it: its region names the model
        body = catalog.build_body(model, account.region, job.media, job.prompt,
                                  job.negative_prompt, job.options)
        self._sending.add(job.id)
        try:
            sends = [*job.sends, self.clock.now()]
            if await self.store.update_job(job.id, expect=[JobState.SUBMITTING],
                                           sends=sends) is None:
                self._sending.discard(job.id)
                return None
            log.debug("job %s: create attempt %d", job.id, len(sends))
            return await account.create_task(model, body, oss=job.oss)
        except BaseException:
            self._sending.discard(job.id)
            raise
