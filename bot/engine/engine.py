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
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.engine.fairness import fair_order
from bot.engine.poll_policy import HistoryPolicy, PollPolicy, QueryLimiter
from bot.engine.poller import Poller
from bot.engine.results import Deliverer, Results
from bot.engine.store import AT_PROVIDER, Job, JobRequest, JobState, QueuedJob, Store, new_job_id
from bot.errors import ApiError, InputError
from bot.provider import catalog
from bot.provider.client import DashScope, Task, TaskStatus

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 5.0  # how far the provider's clock may be from ours
SWEEP_EVERY_S = 3600.0
RECONCILE_RETRY_S = 60.0
MAX_UNEXPECTED = 5  # tries before an unexplained submit failure fails the job


@dataclass(frozen=True)
class JobUpdate:
    """What a front end shows about a job."""

    job: Job
    position: int | None  # 1-based place in its model's queue while queued
    elapsed_s: float
    eta_s: float | None  # seconds until the video is expected, when history allows a guess


Listener = Callable[[JobUpdate], Awaitable[None]]
Check = Callable[[JobRequest, float], Awaitable[None]]  # raises to refuse a request


class CancelOutcome(StrEnum):
    DROPPED = "dropped"  # it was still queued: nothing was spent
    CANCELED = "canceled"  # the provider canceled the pending task: nothing was spent
    WILL_NOT_DELIVER = "will_not_deliver"  # already running: it cannot be stopped or refunded
    REQUESTED = "requested"  # being sent: canceled as soon as the provider has it
    TOO_LATE = "too_late"  # already finished
    UNKNOWN = "unknown"  # no such job


class Engine:
    def __init__(
        self,
        store: Store,
        client: DashScope,
        settings: Settings,
        *,
        clock: Clock | None = None,
        policy: PollPolicy | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.clock = clock or Clock()
        self.policy = policy or HistoryPolicy()
        self.poller = Poller(store, client, self.policy, self.clock, settings.max_qps, self._apply)
        self.results = Results(store, client, settings, self.clock, self._set, self._spawn)
        self._listeners: list[Listener] = []
        self._blocked: dict[str, float] = {}  # model -> no submissions before this time
        self._backoff: dict[str, float] = {}  # model -> current 429 back-off
        self._admit_wake = asyncio.Event()
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

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        for model in catalog.MODELS:
            await self._learn(model)
        await self._recover()
        self._loops = [
            asyncio.create_task(self._admit_loop(), name="engine-admit"),
            asyncio.create_task(self.poller.run(), name="engine-poll"),
            asyncio.create_task(self._sweep_loop(), name="engine-sweep"),
        ]

    async def stop(self) -> None:
        """Stop at once. Whatever was in flight is in the store and resumes on the next start."""
        tasks = [*self._loops, *self._work]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.poller.close()
        self._loops.clear()
        self._work.clear()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def set_deliverer(self, platform: str, deliverer: Deliverer) -> None:
        """Register a front end's way to post results; results waiting for it go out now."""
        self.results.register(platform, deliverer)

    # --- what front ends call --------------------------------------------------------------

    async def submit(self, request: JobRequest, check: Check | None = None) -> JobUpdate:
        """Queue a job; returns at once with its id and place in the queue.

        `check` (a team's limits) runs under a lock with the insert, so requests made at the
        same moment cannot pass a limit together."""
        async with self._submit_lock:
            now = self.clock.now()
            if check is not None:
                await check(request, now)
            job = Job(id=new_job_id(), state=JobState.QUEUED, created_at=now, updated_at=now,
                      **request.__dict__)
            await self.store.insert_job(job)
        log.info("job %s queued: %s %s by %s", job.id, job.command, job.model, job.user_id)
        update = await self.update_for(job)
        await self._emit(job)
        self._admit_wake.set()
        return update

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Stop a job as far as the provider allows; says what that was."""
        job = await self.store.get_job(job_id)
        if job is None:
            return CancelOutcome.UNKNOWN
        if job.state is JobState.QUEUED and await self._set(
            job, JobState.CANCELED, expect=[JobState.QUEUED], error_code="Canceled",
            finished_at=self.clock.now(),
        ):
            await self._emit_queue(job.model)
            return CancelOutcome.DROPPED
        job = await self.store.get_job(job_id) or job
        if job.terminal or job.state is JobState.DELIVERING:
            return CancelOutcome.TOO_LATE
        # Written first: whatever happens next (a result, a restart) honours it.
        job = await self.store.update_job(job.id, cancel_requested=True) or job
        if job.state is JobState.SUCCEEDED:
            await self._mark_canceled(job)
            return CancelOutcome.WILL_NOT_DELIVER
        if job.state is JobState.PENDING and await self._cancel_at_provider(job):
            return CancelOutcome.CANCELED
        if job.state is JobState.SUBMITTING:
            return CancelOutcome.REQUESTED
        return CancelOutcome.WILL_NOT_DELIVER

    async def set_progress_ref(self, job_id: str, ref: dict[str, Any]) -> Job | None:
        return await self.store.update_job(job_id, progress_ref=ref)

    async def update_for(self, job: Job, order: list[QueuedJob] | None = None) -> JobUpdate:
        """The job as a front end shows it: place in the queue, elapsed time and ETA."""
        now = self.clock.now()
        position = eta = None
        if job.state is JobState.QUEUED:
            order = order if order is not None else await self._queue_order(job.model)
            ids = [j.id for j in order]
            position = ids.index(job.id) + 1 if job.id in ids else None
            eta = self._queued_eta(job.model, (position or 1) - 1)
        elif job.state in AT_PROVIDER and job.submitted_at:
            eta = self.policy_remaining(job.model, now - job.submitted_at)
        return JobUpdate(job, position, max(0.0, now - job.created_at), eta)

    async def updates_for(self, jobs: list[Job]) -> list[JobUpdate]:
        """`update_for` of many jobs, reading each model's queue order once."""
        orders: dict[str, list[QueuedJob]] = {}
        for model in {j.model for j in jobs if j.state is JobState.QUEUED}:
            orders[model] = await self._queue_order(model)
        return [await self.update_for(j, orders.get(j.model)) for j in jobs]

    async def queue(self) -> dict[str, list[JobUpdate]]:
        """What is waiting, by model, in admission order."""
        result: dict[str, list[JobUpdate]] = {}
        for model in await self.store.models_in(JobState.QUEUED):
            order, jobs = await self._queued_jobs(model)
            result[model] = [await self.update_for(j, order) for j in jobs]
        return result

    async def _queued_jobs(self, model: str) -> tuple[list[QueuedJob], list[Job]]:
        """A model's queue order, and its jobs in that order (one read of the rows)."""
        order = await self._queue_order(model)
        rows = {j.id: j for j in await self.store.jobs_in([JobState.QUEUED], model)}
        return order, [rows[q.id] for q in order if q.id in rows]

    def policy_remaining(self, model: str, elapsed_s: float) -> float | None:
        return self.policy.remaining(model, elapsed_s)

    async def _sweep_loop(self) -> None:
        """Now and then, delete videos nobody needs any more (disks are not infinite)."""
        while True:
            try:
                if removed := await self.results.sweep():
                    log.info("deleted %d old videos", removed)
            except Exception:
                log.exception("video clean-up failed")
            await self.clock.sleep(SWEEP_EVERY_S)

    # --- admission -------------------------------------------------------------------------

    async def _admit_loop(self) -> None:
        while True:
            self._admit_wake.clear()
            try:
                await self._admit_all()
            except Exception:
                log.exception("admission failed; retrying")
            await self.clock.wait(self._admit_wake, self._next_unblock())

    def _next_unblock(self) -> float | None:
        now = self.clock.now()
        waits = [t - now for t in self._blocked.values() if t > now]
        return min(waits) if waits else None

    async def _admit_all(self) -> None:
        for model in await self.store.models_in(JobState.QUEUED):
            if self._blocked.get(model, 0) > self.clock.now():
                continue
            free = self.settings.slots(model) - await self.store.count_in(AT_PROVIDER, model)
            if free <= 0:
                continue
            for queued in (await self._queue_order(model))[:free]:
                await self._admit(queued.id)
            self._spawn(self._emit_queue(model))  # places moved; off the admission path

    async def _queue_order(self, model: str) -> list[QueuedJob]:
        queued = await self.store.queued(model)
        if not queued:
            return []
        teams = await self.store.last_admitted(model, "team_id")
        users = await self.store.last_admitted(model, "user_id")
        return fair_order(queued, teams, users)

    async def _admit(self, job_id: str) -> None:
        job = await self.store.get_job(job_id)
        if job is None:
            return
        admitted = await self._set(
            job,
            JobState.SUBMITTING,
            expect=[JobState.QUEUED],
            submitted_at=self.clock.now(),
            attempts=job.attempts + 1,
        )
        if admitted:
            self._spawn(self._submit(admitted))

    async def _submit(self, job: Job) -> None:
        model = catalog.get_model(job.model)
        try:
            body = catalog.build_body(
                model, self.settings.region, job.media, job.prompt, job.negative_prompt,
                job.options,
            )
            task = await self.client.create_task(model.endpoint, body, oss_resolve=job.oss)
        except InputError as exc:
            await self._fail(job, "InvalidParameter", str(exc))
        except ApiError as exc:
            await self._submit_failed(job, exc)
        except Exception as exc:  # a bug: the request may or may not have gone out
            log.exception("job %s: submitting failed unexpectedly", job.id)
            if job.attempts >= MAX_UNEXPECTED:
                await self._fail(job, "InternalError", str(exc)[:200])
                return
            await self._submit_failed(job, ApiError("InternalError", str(exc),
                                                    retryable=True, maybe_created=True))
        else:
            await self._record_task(job, task)

    async def _submit_failed(self, job: Job, exc: ApiError) -> None:
        if exc.maybe_created:
            # The request may have reached the provider: find out before sending it again.
            log.warning("job %s: create may have succeeded (%s); reconciling", job.id, exc.code)
            await self.clock.sleep(5)
            await self._reconcile(job.model)
        elif exc.retryable:
            await self._requeue(job, exc)
        else:
            await self._fail(job, exc.code, exc.message)

    async def _requeue(self, job: Job, exc: ApiError) -> None:
        """The model's slots are full at the provider (or it is busy): wait, then retry."""
        backoff = min(max(self._backoff.get(job.model, 5.0) * 2, 10.0), 300.0)
        if exc.retry_after_s:
            backoff = max(exc.retry_after_s, 1.0)
        self._backoff[job.model] = backoff
        self._blocked[job.model] = self.clock.now() + backoff
        log.info("job %s: %s; model %s paused %.0fs", job.id, exc.code, job.model, backoff)
        await self._set(job, JobState.QUEUED, expect=[JobState.SUBMITTING], submitted_at=None)
        self._admit_wake.set()

    async def _record_task(self, job: Job, task: Task) -> None:
        self._backoff.pop(job.model, None)
        state = JobState.RUNNING if task.status is TaskStatus.RUNNING else JobState.PENDING
        saved = await self._set(job, state, expect=[JobState.SUBMITTING], task_id=task.task_id)
        if saved is None:
            return
        log.info("job %s: task %s %s", job.id, task.task_id, task.status)
        if saved.cancel_requested:
            await self._cancel_at_provider(saved)
        self.poller.schedule(saved, first=True)

    # --- reconciliation after a crash or an ambiguous create ------------------------------

    async def _reconcile(self, model_name: str) -> None:
        """Match jobs stuck in `submitting` to tasks the provider has, before any resubmit.
        If the provider cannot list them now, the jobs wait: resending blindly could pay
        twice."""
        jobs = await self.store.jobs_in([JobState.SUBMITTING], model_name)
        if not jobs:
            return
        model = catalog.get_model(model_name)
        start = min(j.submitted_at or j.created_at for j in jobs)
        try:
            listed = await self.poller.list_tasks(start, self.clock.now(),
                                                  model.api_name(self.settings.region))
        except ApiError as exc:
            log.warning("cannot list %s tasks (%s); reconciling again in %.0fs",
                        model_name, exc.code, RECONCILE_RETRY_S)
            self._spawn(self._reconcile_later(model_name))
            return
        claimed = await self.store.claimed_task_ids()
        free = [t for t in listed if t.task_id not in claimed]
        for job in sorted(jobs, key=lambda j: j.submitted_at or 0):
            match = await self._match(job, free)
            if match is not None:
                free.remove(match)
                log.info("job %s: found its task %s at the provider", job.id, match.task_id)
                await self._record_task(job, await self.poller.get_task(match.task_id))
            else:
                log.info("job %s: the provider never got it; queueing again", job.id)
                await self._set(job, JobState.QUEUED, expect=[JobState.SUBMITTING])
        self._admit_wake.set()

    async def _reconcile_later(self, model_name: str) -> None:
        await self.clock.sleep(RECONCILE_RETRY_S)
        await self._reconcile(model_name)

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

    # --- what the provider says ---------------------------------------------------------

    async def _apply(self, job: Job, task: Task) -> None:
        """Write what the provider said, then act on it."""
        handler = {
            TaskStatus.PENDING: self._on_waiting,
            TaskStatus.RUNNING: self._on_waiting,
            TaskStatus.SUCCEEDED: self._on_succeeded,
            TaskStatus.FAILED: self._on_failed,
            TaskStatus.CANCELED: self._on_canceled,
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
            provider_seconds=_provider_seconds(task),
        )
        self._slot_freed(model.name)
        if saved is not None and saved.cancel_requested:
            await self._mark_canceled(saved)
        elif saved is not None:
            self._spawn(self.results.finish(saved))
        await self._learn(model.name)

    async def _on_failed(self, job: Job, task: Task) -> None:
        await self._fail(job, task.code or "InternalError", task.message or "")
        self._slot_freed(job.model)

    async def _on_canceled(self, job: Job, task: Task) -> None:
        await self._mark_canceled(job)
        self._slot_freed(job.model)

    async def _on_unknown(self, job: Job, task: Task) -> None:
        await self._set(job, JobState.EXPIRED, expect=AT_PROVIDER, error_code="UNKNOWN",
                        error_message="The provider no longer knows this task.",
                        finished_at=self.clock.now())
        self._slot_freed(job.model)

    def _slot_freed(self, model: str) -> None:
        self._blocked.pop(model, None)
        self._admit_wake.set()

    async def _learn(self, model: str) -> None:
        self.policy.learn(model, await self.store.durations(model))
        for key, durations in (await self.store.durations_by_key(model)).items():
            self.policy.learn(key, durations)  # by resolution, length and mode; else the model's

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

    async def _cancel_at_provider(self, job: Job) -> bool:
        try:
            await self.client.cancel_task(job.task_id or "")
        except ApiError as exc:
            log.info("job %s: provider would not cancel (%s)", job.id, exc.code)
            return False
        self.poller.forget(job.id)
        await self._mark_canceled(job)
        self._slot_freed(job.model)
        return True

    async def _mark_canceled(self, job: Job) -> None:
        await self._set(job, JobState.CANCELED, expect=[*AT_PROVIDER, JobState.SUCCEEDED],
                        error_code="Canceled", finished_at=self.clock.now())

    async def _fail(self, job: Job, code: str, message: str) -> None:
        log.info("job %s failed: %s %s", job.id, code, message)
        await self._set(job, JobState.FAILED, expect=[*AT_PROVIDER, JobState.QUEUED],
                        error_code=code, error_message=message, finished_at=self.clock.now())

    async def _set(self, job: Job, state: JobState, *, expect: Any, **changes: Any) -> Job | None:
        """Move a job to `state` if it is still in `expect`; tell the listeners."""
        saved = await self.store.update_job(
            job.id, expect=expect, state=state, updated_at=self.clock.now(), **changes
        )
        if saved is not None:
            await self._emit(saved)
        return saved

    async def _emit(self, job: Job, order: list[QueuedJob] | None = None) -> None:
        if not self._listeners:
            return
        update = await self.update_for(job, order)
        for listener in list(self._listeners):
            try:
                await listener(update)
            except Exception:
                log.exception("listener failed on job %s", job.id)

    async def _emit_queue(self, model: str) -> None:
        """Tell every queued job of a model its new place."""
        if not self._listeners:
            return
        order, jobs = await self._queued_jobs(model)
        for job in jobs:
            await self._emit(job, order)

    def _queued_eta(self, model: str, ahead: int) -> float | None:
        typical = self.policy.typical(model)
        if typical is None:
            return None
        slots = self.settings.slots(model)
        return (ahead // slots) * typical + typical / 2 + typical

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._work.add(task)
        task.add_done_callback(self._work.discard)


def _created(task: Task) -> float:
    return task.submit_time.timestamp() if task.submit_time else 0.0


def _provider_seconds(task: Task) -> float | None:
    if task.submit_time and task.end_time:
        return max(0.0, (task.end_time - task.submit_time).total_seconds())
    return None
