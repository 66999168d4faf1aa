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
        self._blocked: dict[str, float] = {}  # "model@key" -> no submissions before this time
        self._backoff: dict[str, float] = {}  # "model@key" -> current 429 back-off
        self._deck: dict[str, int] = {}  # model -> tasks on deck beyond its slots (0: refused)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something changed (a job queued, a slot freed): admit again now."""
        self._wake.set()

    def freed(self, job: Job) -> None:
        """A task ended: its slot is free, whatever pause its key had is over."""
        self._blocked.pop(self._paused(job), None)
        self._wake.set()

    def accepted(self, job: Job) -> None:
        """The provider took a task: the key's next refusal starts its back-off afresh."""
        self._backoff.pop(self._paused(job), None)

    def pause(self, job: Job, exc: ApiError) -> None:
        """The model's slots are full at the key's account (or it is busy): wait a while."""
        pause = self._paused(job)
        backoff = min(max(self._backoff.get(pause, 5.0) * 2, 10.0), 300.0)
        if exc.retry_after_s:
            backoff = min(max(exc.retry_after_s, 1.0), 3600.0)  # an absurd one: not for ever
        self._backoff[pause] = backoff
        if exc.status == 429 and self._deck.get(job.model, self.settings.on_deck):
            log.info("model %s: the provider refuses tasks beyond its slots; none on deck",
                     job.model)
            self._deck[job.model] = 0
        self._blocked[pause] = self.clock.now() + backoff
        log.info("job %s: %s; model %s paused %.0fs", job.id, exc.code, pause, backoff)

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
            await self.clock.wait(self._wake, self._next_unblock())

    def _next_unblock(self) -> float | None:
        now = self.clock.now()
        waits = [t - now for t in self._blocked.values() if t > now]
        return min(waits) if waits else None

    async def admit_all(self) -> None:
        """Give each model's free slots, key by key, to the first jobs in its queue."""
        now = self.clock.now()
        for model in self.queues.waiting():
            async with self.coord.admission(model):  # counted and claimed as one step
                free = self.keys.free(
                    model, await self.store.count_by_key(AT_PROVIDER, model),
                    self._deck.get(model, self.settings.on_deck),
                    lambda key, m=model: self._blocked.get(f"{m}@{key}", 0) > now)
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
