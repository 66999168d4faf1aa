"""Admission: each model's free slots, key by key, go to the first jobs of its fair queue, and
a model an account refused is paused there (back-off, Retry-After; no task on deck after a
429).

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
from bot.engine.keys import KeyPool
from bot.engine.queue import Queues
from bot.engine.slot_gate import SlotGate
from bot.engine.store import Store
from bot.engine.submitter import Submitter
from bot.errors import ApiError, StorageError

log = logging.getLogger(__name__)

SCAN_BEHIND = 32  # queued jobs looked at past one that waits for its own key's slot


class Admission:
    def __init__(self, store: Store, queues: Queues, coord: Coordination, clock: Clock,
                 settings: Settings, keys: KeyPool, *,
                 transition: Callable[..., Awaitable[Job | None]], submitter: Submitter,
                 send: Callable[[Job], None], fail: Callable[[Job, str, str], Awaitable[None]]
                 ) -> None:
        self.store = store
        self.queues = queues
        self.coord = coord
        self.clock = clock
        self.settings = settings
        self.keys = keys
        self.transition = transition  # the engine's guarded write + notify
        self.submitter = submitter
        self.send = send  # starts sending an admitted job's create
        self.fail = fail
        self.gate = SlotGate(settings, clock)  # pauses after refusals, the deck
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something changed (a job queued, a slot freed): admit again now."""
        self._wake.set()

    def freed(self, job: Job) -> None:
        """A task ended: its slot is free, whatever pause its key had is over."""
        self.gate.freed(self._paused(job))
        self._wake.set()

    def accepted(self, job: Job) -> None:
        """The provider took a task: the key's next refusal starts its back-off afresh."""
        self.gate.created(self._paused(job))

    def pause(self, job: Job, exc: ApiError) -> None:
        """The model's slots are full at the key's account (or it is busy): wait a while."""
        pause = self._paused(job)
        backoff = self.gate.refused(pause, job.model, exc)
        log.info("job %s: %s; model %s paused %.0fs", job.id, exc.code, pause, backoff)

    def wanted(self, model: str) -> bool:
        """A job waits for one of the model's slots and none is on deck (poll its tasks
        sooner: the moment one ends matters)."""
        return self.gate.wanted(model, self.queues.get(model).peek() is not None)

    def _paused(self, job: Job) -> str:
        return f"{job.model}@{self.keys.of(job).id}"

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.admit_all()
            except StorageError:
                raise  # fatal: the guard stops the engine
            except Exception:
                log.exception("admission failed; retrying")
            await self.clock.wait(self._wake, self.gate.next_unblock())

    async def admit_all(self) -> None:
        """Give each model's free slots, key by key, to the first jobs in its queue."""
        for model in self.queues.waiting():
            async with self.coord.admission(model):  # counted and claimed as one step
                free = self.keys.free(
                    model, await self.store.count_by_key(AT_PROVIDER, model),
                    self.gate.deck(model), lambda key, m=model: self.gate.blocked(f"{m}@{key}"))
                queue = self.queues.get(model)
                while any(free.values()) and (job_id := queue.peek()) is not None:
                    job = await self.store.get_job(job_id)
                    if job is not None and not await self._admit(job, free):
                        await self._admit_behind(model, free)
                        break
                    queue.remove(job_id)  # if it was no longer queued in the store after all

    async def _admit_behind(self, model: str, free: dict[str, int]) -> None:
        """The first job waits for its own key's slot; jobs behind it other keys can take go."""
        for job_id in self.queues.get(model).front(SCAN_BEHIND)[1:]:
            job = await self.store.get_job(job_id)
            if job is not None and any(free.values()) and await self._admit(job, free):
                self.queues.get(model).remove(job_id)

    async def _admit(self, job: Job, free: dict[str, int]) -> bool:
        """Send the job with a key that has room (taking it from `free`); False: none has."""
        if self.keys.stranded(job):  # its inputs live with a refused key: nobody else reads them
            await self.fail(job, "InvalidApiKey", f"its inputs were uploaded with API key "
                            f"{job.api_key_id}, which the provider refused; ask again")
            return True
        if (key := self.keys.place(job, free)) is None:
            return False
        free[key] -= 1
        # Counted as on its way from before the write: a reconciliation running meanwhile
        # must not take the new attempt for an old, lost one and queue the job again.
        self.submitter.reserve(job.id)
        admitted = await self.transition(job, JobState.SUBMITTING, expect=[JobState.QUEUED],
                                         submitted_at=self.clock.now(),
                                         attempts=job.attempts + 1, api_key_id=key)
        if admitted is None:
            self.submitter.sent(job.id)  # nothing goes out
        else:
            self.send(admitted)
        return True
