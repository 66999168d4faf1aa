"""Admission: each model's free slots go to the first jobs of its fair queue, and a model the
provider refused is paused (back-off, Retry-After; no task on deck after a 429).

Free slots are counted in the store (every task at the provider, whoever sent it) under the
coordination's per-model lock, so the count and the claims made on it are one step even while
leadership passes between processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.clock import Clock
from bot.config import Settings
from bot.engine.coordination import Coordination
from bot.engine.jobs import AT_PROVIDER, Job, JobState
from bot.engine.queue import Queues
from bot.engine.store import Store
from bot.engine.submitter import Submitter
from bot.errors import ApiError, StorageError

log = logging.getLogger(__name__)


class Admission:
    def __init__(self, store: Store, queues: Queues, coord: Coordination, clock: Clock,
                 settings: Settings, slots: Callable[[str], int], *,
                 transition: Callable[..., Awaitable[Job | None]], submitter: Submitter,
                 send: Callable[[Job], None]) -> None:
        self.store = store
        self.queues = queues
        self.coord = coord
        self.clock = clock
        self.settings = settings
        self.slots = slots
        self.transition = transition  # the engine's guarded write + notify
        self.submitter = submitter
        self.send = send  # starts sending an admitted job's create
        self._blocked: dict[str, float] = {}  # model -> no submissions before this time
        self._backoff: dict[str, float] = {}  # model -> current 429 back-off
        self._deck: dict[str, int] = {}  # model -> tasks on deck beyond its slots (0: refused)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something changed (a job queued, a slot freed): admit again now."""
        self._wake.set()

    def freed(self, model: str) -> None:
        """A task of the model ended: its slot is free, whatever pause there was is over."""
        self._blocked.pop(model, None)
        self._wake.set()

    def accepted(self, model: str) -> None:
        """The provider took a task: the next refusal starts its back-off afresh."""
        self._backoff.pop(model, None)

    def pause(self, job: Job, exc: ApiError) -> None:
        """The model's slots are full at the provider (or it is busy): wait before the next."""
        backoff = min(max(self._backoff.get(job.model, 5.0) * 2, 10.0), 300.0)
        if exc.retry_after_s:
            backoff = min(max(exc.retry_after_s, 1.0), 3600.0)  # an absurd one: not for ever
        self._backoff[job.model] = backoff
        if exc.status == 429 and self._deck.get(job.model, self.settings.on_deck):
            log.info("model %s: the provider refuses tasks beyond its slots; none on deck",
                     job.model)
            self._deck[job.model] = 0
        self._blocked[job.model] = self.clock.now() + backoff
        log.info("job %s: %s; model %s paused %.0fs", job.id, exc.code, job.model, backoff)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.admit_all()
            except StorageError:
                raise  # fatal: the guard stops the engine
            except Exception:
                log.exception("admission failed; retrying")
            await self.clock.wait(self._wake, self._next_unblock())

    def _next_unblock(self) -> float | None:
        now = self.clock.now()
        waits = [t - now for t in self._blocked.values() if t > now]
        return min(waits) if waits else None

    async def admit_all(self) -> None:
        """Give each model's free slots to the first jobs in its queue (a few heap steps each)."""
        for model in self.queues.waiting():
            if self._blocked.get(model, 0) > self.clock.now():
                continue
            async with self.coord.admission(model):  # counted and claimed as one step
                sent = await self.store.count_in(AT_PROVIDER, model)
                free = self.slots(model) + self._deck.get(model, self.settings.on_deck) - sent
                queue = self.queues.get(model)
                for _ in range(max(0, free)):
                    job_id = queue.peek()
                    if job_id is None:
                        break
                    await self._admit(job_id)
                    queue.remove(job_id)  # if it was no longer queued in the store after all

    async def _admit(self, job_id: str) -> None:
        """Move a queued job to `submitting` and start sending it."""
        job = await self.store.get_job(job_id)
        if job is None:
            return
        # Counted as on its way from before the write: a reconciliation running meanwhile
        # must not take the new attempt for an old, lost one and queue the job again.
        self.submitter.reserve(job_id)
        admitted = await self.transition(job, JobState.SUBMITTING, expect=[JobState.QUEUED],
                                         submitted_at=self.clock.now(),
                                         attempts=job.attempts + 1)
        if admitted is None:
            self.submitter.sent(job_id)  # nothing goes out
        else:
            self.send(admitted)
