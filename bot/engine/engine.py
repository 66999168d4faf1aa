"""The engine: turns requests into delivered videos without losing, doubling or overpaying.

It queues jobs in the store, admits them fairly into each model's few provider slots, submits,
polls under one query-rate cap, fetches results while their links live, hands them to the front
end that asked, and resumes all of it after a restart. It knows nothing of Discord: front ends
subscribe to updates and register a deliverer for their platform.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.engine.admission import Admission
from bot.engine.cancels import Cancels
from bot.engine.coordination import Coordination, Owns
from bot.engine.guard import StorageGuard
from bot.engine.jobs import (
    AT_PROVIDER,
    CancelOutcome,
    Job,
    JobRequest,
    JobState,
    JobUpdate,
    new_job_id,
)
from bot.engine.keys import Account, KeyPool, refused
from bot.engine.learning import Learning
from bot.engine.poll_policy import HistoryPolicy, PollPolicy, QueryLimiter
from bot.engine.poller import Poller
from bot.engine.queue import Queues
from bot.engine.records import ProgressRef
from bot.engine.recovery import Reconciler
from bot.engine.results import Deliverer, Results
from bot.engine.shared import SharedCoordination
from bot.engine.store import PostgresStore, Store
from bot.engine.submitter import Submitter
from bot.errors import ApiError, InputError, StorageError
from bot.provider import catalog
from bot.provider.client import DashScope
from bot.provider.tasks import Task, TaskStatus

log = logging.getLogger(__name__)

STRANGE_LIMIT_S = 6 * 3600.0  # a task stuck in a status we do not know ends here
SLOW_RETRIES = frozenset({"Throttling.AllocationQuota"})  # per-minute quota: a few tries only
SLOW_TRIES = 5
MAX_UNEXPECTED = 5  # tries before an unexplained submit failure fails the job


Listener = Callable[[JobUpdate], Awaitable[None]]
Check = Callable[[JobRequest, float], Awaitable[None]]  # raises to refuse a request


class Engine:
    def __init__(
        self,
        store: Store,
        client: DashScope | KeyPool,
        settings: Settings,
        *,
        clock: Clock | None = None,
        policy: PollPolicy | None = None,
        coordination: Coordination | None = None,
    ) -> None:
        self.store = store
        # Alone on SQLite; on a shared store, one leader among the processes (bot.engine.shared)
        self.coord = coordination or (SharedCoordination(store) if isinstance(
            store, PostgresStore) else Coordination())
        self.settings = settings
        self.clock = clock or Clock()
        self.keys = client if isinstance(client, KeyPool) else \
            KeyPool.single(client, settings, self.clock)  # keys.py: a job stays with its key
        self.keys.on_set_aside = lambda account: self._spawn(self._key_refused(account))
        self.metrics = self.keys.metrics
        self.policy = policy or HistoryPolicy()
        self.guard = StorageGuard(store, self.clock)  # front ends: guard.on_failure, .failure
        self.guard.on_failure(self._halt)
        self.poller = Poller(store, self.keys, self.policy, self.clock, self._apply,
                             start=self.guard.start, slot_wanted=self._slot_wanted)
        self.learning = Learning(store, self.policy)
        self.results = Results(store, self.keys, settings, self.clock, self._set, self._spawn,
                               claim=self.coord.claim)
        self.submitter = Submitter(store, self.keys, settings, self.clock)
        self.cancels = Cancels(store, self.keys, self.poller, self.clock, self._set,
                               self._slot_freed)
        self.reconciler = Reconciler(store, self.poller, settings, self.clock,
                                     found=self._record_task, not_sent=self._resend,
                                     lost=self._lost, spawn=self._spawn,
                                     sending=self.submitter.sending)
        self.queues = Queues()  # every model's queue, in memory, in fair order
        self._listeners: list[Listener] = []
        self.admission = Admission(store, self.queues, self.coord, self.clock, settings,
                                   self.keys, transition=self._set, submitter=self.submitter,
                                   send=lambda job: self._spawn(self._submit(job)),
                                   fail=self._fail)
        self._submit_lock = asyncio.Lock()
        self._loops: list[asyncio.Task[None]] = []
        self._work: set[asyncio.Task[Any]] = set()

    @property
    def queries(self) -> int:
        """Status queries sent (details and lists), for benchmarks."""
        return self.poller.queries

    @property
    def limiter(self) -> QueryLimiter:
        return self.poller.limiter

    @property
    def running(self) -> bool:  # started, not stopped, no loop ended (a storage fault does)
        return bool(self._loops) and not any(t.done() for t in self._loops)

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        for model in catalog.MODELS:
            await self.learning.learn(model)
        self._loop(self.results.sweep_loop())
        self._loop(self.guard.watch_file())
        await self.coord.start(self, self._loop)  # leads now, or when the leader goes

    async def lead(self) -> None:
        """Admit, submit and poll: alone, or as the leader of the processes sharing the store
        (which then reads the queue afresh: the last leader's admissions are in the store)."""
        await self.queues.load(self.store, catalog.MODELS, again=self.coord.shared)
        if self.coord.shared:
            self.limiter.fill()
        await self._recover()
        self._loop(self.admission.run())
        self._loop(self.poller.run())

    def _loop(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        self._loops.append(self.guard.start(coro, name=f"engine-{coro.__qualname__}"))
        return self._loops[-1]

    async def stop(self) -> None:
        """Stop at once. Whatever was in flight is in the store and resumes on the next start."""
        tasks = [*self._loops, *self._work]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.coord.stop()
        await self.poller.close()
        self.results.encoder.close()
        self._loops.clear()
        self._work.clear()

    def _halt(self) -> None:
        """Storage failed: stop every loop and piece of work now (nothing more is written);
        the front end, told by the guard, then stops the rest."""
        for task in [*self._loops, *self._work]:
            task.cancel()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def set_deliverer(self, platform: str, deliverer: Deliverer, owns: Owns | None = None
                      ) -> None:
        """Register a front end's way to post results; results waiting for it go out now.
        With several processes, `owns(job)` says which of the platform's jobs this process's
        front end serves (e.g. a Discord shard: its guilds'); default all."""
        self.results.register(platform, deliverer, owns)

    # --- several processes (bot.engine.shared) ----------------------------------------------

    async def heard(self, job: Job) -> None:
        """Another process created or moved this job: follow it here."""
        self.queues.update(job)
        if job.terminal:
            self.poller.forget(job.id)
            self.results.stop_fit(job.id)  # canceled by another process mid-encode
            self._slot_freed(job)
        elif job.state is JobState.QUEUED:
            self.admission.wake()
        if job.state in (JobState.SUCCEEDED, JobState.FITTING, JobState.DELIVERING):
            self._spawn(self.results.resume(job))
        await self.changed(job)

    def can_act(self, job: Job) -> bool:
        return self.results.serves(job)

    async def recount(self) -> None:
        if await self.queues.recount(self.store, catalog.MODELS):
            self.admission.wake()

    # --- what front ends call --------------------------------------------------------------

    async def submit(self, request: JobRequest, check: Check | None = None) -> JobUpdate:
        """Queue a job; returns at once with its id and place in the queue.

        `check` (a team's limits) runs under a lock with the insert (the team's, across
        processes), so requests made at the same moment cannot pass a limit together."""
        await self._queues_loaded()
        async with self._submit_lock, self.coord.intake(request.team_id):
            now = self.clock.now()
            if check is not None:
                await check(request, now)
            bound = request.api_key_id or self.keys.uploader_of(request.media)
            job = Job(id=new_job_id(), state=JobState.QUEUED, created_at=now, updated_at=now,
                      **{**request.__dict__, "api_key_id": bound})
            try:
                await self.coord.created(job)  # leased first: nobody takes it over meanwhile
                await self.store.insert_job(job)
            except StorageError as exc:
                self.guard.fail(exc)  # the front end hears it as well (raised to its caller)
                raise
            self.queues.update(job)
        log.info("job %s queued: %s %s by %s", job.id, job.command, job.model, job.user_id)
        update = await self.update_for(job)
        await self.changed(job)
        self.admission.wake()
        if len(self.queues.get(job.model)) == 1 and self._slot_wanted(job.model):
            self.poller.hurry(job.model)  # the first to wait: its tasks were polled at ease
        return update

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Stop a job as far as the provider allows; says what that was."""
        outcome = await self.cancels.cancel(job_id)
        self.results.stop_fit(job_id)  # a video being re-encoded for it: nobody needs it now
        return outcome

    async def set_progress_ref(self, job_id: str, ref: ProgressRef) -> Job | None:
        return await self.store.update_job(job_id, progress_ref=ref)

    async def update_for(self, job: Job) -> JobUpdate:
        """The job as a front end shows it: place in the queue, elapsed time and ETA."""
        await self._queues_loaded()
        position = self.queues.position(job) if job.state is JobState.QUEUED else None
        return self._update(job, position)

    async def updates_for(self, jobs: list[Job]) -> list[JobUpdate]:
        return [await self.update_for(j) for j in jobs]

    async def queue(self) -> dict[str, list[JobUpdate]]:
        """What is waiting, by model, in admission order."""
        await self._queues_loaded()
        result: dict[str, list[JobUpdate]] = {}
        for model in self.queues.waiting():
            rows = {j.id: j for j in await self.store.jobs_in([JobState.QUEUED], model)}
            order = [rows[i] for i in self.queues.get(model).front() if i in rows]
            result[model] = [self._update(j, place) for place, j in enumerate(order, start=1)]
        return result

    def _update(self, job: Job, position: int | None) -> JobUpdate:
        now = self.clock.now()
        eta = None
        if job.state is JobState.QUEUED:
            eta = self._queued_eta(job.model, (position or 1) - 1)
        elif job.state in AT_PROVIDER and job.submitted_at:
            eta = self.policy_remaining(job.model, now - job.submitted_at)
        return JobUpdate(job, position, max(0.0, now - job.created_at), eta)

    async def _queues_loaded(self) -> None:
        """Read the queues from the store once (an engine not started reads them on first use)."""
        await self.queues.load(self.store, catalog.MODELS)

    async def refresh_metrics(self) -> None:
        """Set the gauges (queue lengths, slots in use) just before a scrape."""
        await self.keys.refresh({m: len(self.queues.get(m)) for m in catalog.MODELS}, self.store)

    def slots(self, model: str) -> int:
        """How many tasks of a model may run at once, over every usable key."""
        return self.keys.total_slots(model)

    async def upload(self, model: str, filename: str, data: bytes | Path,
                     content_type: str) -> str:
        """Put an input in the provider's temporary storage (of the key, taken in turn, that
        the job will then use); its `oss://` URL."""
        found = catalog.model_for_api_name(model)
        account = self.keys.for_upload(found.name if found else model)
        name = found.api_name(account.region) if found else model
        url = await account.upload(name, filename, data, content_type)
        self.keys.uploaded(url, account)
        return url

    def policy_remaining(self, model: str, elapsed_s: float) -> float | None:
        return self.policy.remaining(model, elapsed_s)

    # --- admission -------------------------------------------------------------------------

    async def _submit(self, job: Job) -> None:
        try:
            task = await self.submitter.send(job)
        except InputError as exc:
            await self._fail(job, "InvalidParameter", str(exc))
        except ApiError as exc:
            await self._submit_failed(job, exc)
        except StorageError:
            raise  # the attempt could not be recorded, so it was not sent; the guard stops us
        except Exception as exc:  # a bug: the request may or may not have gone out
            log.exception("job %s: submitting failed unexpectedly", job.id)
            if job.attempts >= MAX_UNEXPECTED:
                await self._fail(job, "InternalError", str(exc)[:200])
                return
            await self._submit_failed(job, ApiError("InternalError", str(exc),
                                                    retryable=True, maybe_created=True))
        else:
            if task is not None:
                await self._record_task(job, task)
                self.submitter.sent(job.id)
                await self.learning.created(job.model)

    async def _submit_failed(self, job: Job, exc: ApiError) -> None:
        if refused(exc) and self.keys.of(job).aside:  # the others take it
            await self._set(job, JobState.QUEUED, expect=[JobState.SUBMITTING], submitted_at=None,
                            api_key_id=job.api_key_id if self.keys.bound(job) else None)
            self.admission.wake()
        elif exc.maybe_created:
            # The request may have reached the provider: find out before sending it again.
            log.warning("job %s: create may have succeeded (%s); reconciling", job.id, exc.code)
            await self._reconcile(job.model)
        elif exc.retryable and not (exc.code in SLOW_RETRIES and job.attempts >= SLOW_TRIES):
            await self._requeue(job, exc)
        else:
            await self._fail(job, exc.code, exc.message)

    async def _requeue(self, job: Job, exc: ApiError) -> None:
        """The model's slots are full at the key's account (or it is busy): wait, then retry."""
        self.admission.pause(job, exc)
        await self._set(job, JobState.QUEUED, expect=[JobState.SUBMITTING], submitted_at=None)
        self.admission.wake()

    async def _reconcile(self, model: str) -> None:
        await self.reconciler.reconcile(model)
        self.admission.wake()

    async def _resend(self, job: Job) -> None:
        """The provider never got this job: back to the queue, to be sent again."""
        await self._set(job, JobState.QUEUED, expect=[JobState.SUBMITTING])
        self.admission.wake()

    async def _lost(self, job: Job) -> None:
        await self._fail(job, "Unreconciled", "sent over a day ago; the task list no longer "
                                              "reaches that far")

    async def _record_task(self, job: Job, task: Task) -> None:
        self.admission.accepted(job)
        state = JobState.RUNNING if task.status is TaskStatus.RUNNING else JobState.PENDING
        saved = await self._set(job, state, expect=[JobState.SUBMITTING], task_id=task.task_id)
        if saved is None:
            return
        log.info("job %s: task %s %s", job.id, task.task_id, task.status)
        if saved.cancel_requested:
            await self.cancels.at_provider(saved)
        self.poller.schedule(saved, first=True)

    # --- what the provider says ---------------------------------------------------------

    async def _apply(self, job: Job, task: Task) -> None:
        """Write what the provider said, then act on it."""
        handler = {
            TaskStatus.PENDING: self._on_waiting,
            TaskStatus.RUNNING: self._on_waiting,
            TaskStatus.SUCCEEDED: self._on_succeeded,
            TaskStatus.FAILED: self._on_failed,
            TaskStatus.CANCELED: self._on_canceled,
            TaskStatus.SUSPENDED: self._on_strange,
            TaskStatus.OTHER: self._on_strange,
        }.get(task.status, self._on_unknown)
        if task.status.is_terminal:
            self.poller.forget(job.id)
        await handler(job, task)

    async def _on_waiting(self, job: Job, task: Task) -> None:
        if task.status is TaskStatus.RUNNING and job.state is not JobState.RUNNING:
            job = await self._set(job, JobState.RUNNING, expect=AT_PROVIDER,
                                  started_at=self.clock.now()) or job
        self.poller.schedule(job)

    async def _on_succeeded(self, job: Job, task: Task) -> None:
        model = catalog.get_model(job.model)
        url = task.video_url
        saved = await self._set(
            job,
            JobState.SUCCEEDED,
            expect=AT_PROVIDER,
            result_url=url,
            usage=task.usage,
            actual_prompt=task.actual_prompt,
            finished_at=self.clock.now(),
            provider_seconds=task.seconds,
        )
        self._slot_freed(job)
        if saved is not None and saved.cancel_requested:
            await self.cancels.mark(saved)
        elif saved is not None:
            self._spawn(self.results.finish(saved))
        await self.learning.finished(model.name, create_follows=self._slot_wanted(model.name))

    async def _on_failed(self, job: Job, task: Task) -> None:
        await self._fail(job, task.code or "InternalError", task.message or "")
        self._slot_freed(job)

    async def _on_canceled(self, job: Job, task: Task) -> None:
        await self.cancels.mark(job)
        self._slot_freed(job)

    async def _on_strange(self, job: Job, task: Task) -> None:
        """A status we do not act on: keep polling, but not for ever."""
        if self.clock.now() - (job.submitted_at or job.created_at) < STRANGE_LIMIT_S:
            self.poller.schedule(job)
            return
        self.poller.forget(job.id)
        await self._expire(job, f"The provider kept the task {task.status} for hours.")

    async def _on_unknown(self, job: Job, task: Task) -> None:
        await self._expire(job, "The provider no longer knows this task.")

    async def _expire(self, job: Job, message: str) -> None:
        await self._set(job, JobState.EXPIRED, expect=AT_PROVIDER, error_code="UNKNOWN",
                        error_message=message, finished_at=self.clock.now())
        self._slot_freed(job)

    def _slot_freed(self, job: Job) -> None:
        self.admission.freed(job)

    async def _key_refused(self, account: Account) -> None:
        """A key was set aside: its tasks can no longer be asked about, so they end here; so do
        creates it may have made (a lost answer): sent again elsewhere, one might be paid twice."""
        for job in await self.store.jobs_in(AT_PROVIDER):
            if self.keys.of(job) is not account or self.submitter.sending(job.id):
                continue  # a create on its way hears the refusal itself and goes elsewhere
            self.poller.forget(job.id)
            held = "which holds this task" if job.task_id else "with which it was sent"
            await self._fail(job, "InvalidApiKey", f"the provider refused API key {account.id}, "
                             f"{held}; it cannot be followed")
        self.admission.wake()

    def _slot_wanted(self, model: str) -> bool:
        return self.admission.wanted(model)

    # --- recovery --------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Pick up every job that was not finished when the last process stopped."""
        active = await self.store.jobs_in([JobState.SUBMITTING, JobState.PENDING,
                                           JobState.RUNNING, JobState.SUCCEEDED])
        for model in sorted({j.model for j in active if j.state is JobState.SUBMITTING}):
            await self._reconcile(model)
        for job in active:
            if job.state in (JobState.PENDING, JobState.RUNNING):
                self.poller.now(job)
            elif job.state is JobState.SUCCEEDED:
                self._spawn(self.results.finish(job))
        if active:
            log.info("resumed %d unfinished jobs", len(active))

    # --- small shared steps ----------------------------------------------------------------

    async def _fail(self, job: Job, code: str, message: str) -> None:
        log.info("job %s failed: %s %s", job.id, code, message)
        await self._set(job, JobState.FAILED, expect=[*AT_PROVIDER, JobState.QUEUED],
                        error_code=code, error_message=message, finished_at=self.clock.now())

    async def _set(self, job: Job, state: JobState, *, expect: Any, **changes: Any) -> Job | None:
        """Move a job to `state` if it is still in `expect`; tell the listeners."""
        self.coord.wrote(job.id, state)  # first: its wake-up may come back before the answer
        saved = await self.store.update_job(
            job.id, expect=expect, state=state, updated_at=self.clock.now(), **changes
        )
        if saved is None:
            self.coord.unwrote(job.id, state)
            return None
        self.queues.update(saved)
        self.metrics.moved(saved)
        await self.changed(saved)
        return saved

    async def changed(self, job: Job) -> None:
        """Tell listeners (also of a change made outside the engine: a chain video)."""
        if not self._listeners or not self.coord.speaks_for(job.id):
            return  # no front end here, or another process's job to show
        update = await self.update_for(job)
        for listener in list(self._listeners):
            try:
                await listener(update)
            except Exception:
                log.exception("listener failed on job %s", job.id)

    def _queued_eta(self, model: str, ahead: int) -> float | None:
        typical = self.policy.typical(model)
        if typical is None:
            return None
        slots = self.slots(model)
        return (ahead // slots) * typical + typical / 2 + typical

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.guard.start(coro)  # its exception, if any, is looked at
        self._work.add(task)
        task.add_done_callback(self._work.discard)
