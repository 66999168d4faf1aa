"""One poll loop for every task at the provider, under one query-rate cap.

Each job's next query comes from the poll policy. When the policy allows it and several tasks
are active, one list query answers for all of them, and only tasks that the list shows finished
get a detail query. Every query, list or detail, passes through the limiter of the API key
that has the task (each key is its own account, with its own cap and its own task list).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from bot.clock import Clock
from bot.engine.jobs import AT_PROVIDER, Job, JobState
from bot.engine.keys import KeyPool
from bot.engine.poll_policy import PollPolicy, QueryLimiter, history_key
from bot.engine.store import Store
from bot.errors import ApiError, StorageError
from bot.provider.tasks import Task, TaskStatus

log = logging.getLogger(__name__)

LIST_WINDOW_S = 24 * 3600.0 - 60  # the task list refuses windows over a day
LIST_MARGIN_S = 120  # the listed window reaches this far beyond the tasks it must cover
RETRY_S = 5.0
LIST_GIVE_UP = 5

OnTask = Callable[[Job, Task], Awaitable[None]]
SlotWanted = Callable[[str], bool]  # model -> a queued job waits for one of its slots
Start = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


def list_windows(start: float, end: float) -> list[tuple[float, float]]:
    """[start, end] cut into windows the task list accepts (each at most LIST_WINDOW_S)."""
    windows = []
    while start < end:
        windows.append((start, min(end, start + LIST_WINDOW_S)))
        start += LIST_WINDOW_S
    return windows or [(start, end)]


def as_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Poller:
    def __init__(self, store: Store, keys: KeyPool, policy: PollPolicy, clock: Clock,
                 on_task: OnTask, *, start: Start = asyncio.create_task,
                 slot_wanted: SlotWanted = lambda model: False) -> None:
        self.store = store
        self.keys = keys
        self.policy = policy
        self.clock = clock
        self.on_task = on_task
        self.slot_wanted = slot_wanted
        self._create = start  # runs a query in the background (the engine's looks at failures)
        self.queries = 0  # status queries sent (details and lists), for benchmarks
        self._due: dict[str, float] = {}  # job id -> when to ask about its task next
        self._polls: dict[str, int] = {}  # job id -> queries about it so far
        self._jobs: dict[str, Job] = {}  # job id -> the job as last scheduled
        self._list_failures = 0  # in a row; past LIST_GIVE_UP this process stops listing
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()

    # --- what the engine calls -------------------------------------------------------------

    def schedule(self, job: Job, *, first: bool = False) -> None:
        """Ask about this job's task when the policy says."""
        if first:
            self._polls[job.id] = 0
        self._jobs[job.id] = job
        now = self.clock.now()
        elapsed = now - (job.submitted_at or now)
        key = history_key(job.model, job.options)
        delay = self.policy.next_delay(key, elapsed, self._polls.get(job.id, 0),
                                       slot_wanted=self.slot_wanted(job.model))
        self._due[job.id] = now + delay
        self._wake.set()

    def hurry(self, model: str) -> None:
        """A job now waits for one of this model's slots: ask about its tasks as soon as that
        warrants, if sooner than planned."""
        for job_id, job in list(self._jobs.items()):
            due = self._due.get(job_id)
            if job.model == model and due is not None:
                self.schedule(job)
                self._due[job_id] = min(due, self._due[job_id])

    def now(self, job: Job) -> None:
        """Ask about this job's task at once (after a restart)."""
        self._polls.setdefault(job.id, 1)
        self._due[job.id] = self.clock.now()
        self._wake.set()

    def next_query(self, job_id: str) -> float | None:
        """When this job's task is to be asked about next (None: not planned)."""
        return self._due.get(job_id)

    def forget(self, job_id: str) -> None:
        self._due.pop(job_id, None)
        self._polls.pop(job_id, None)
        self._jobs.pop(job_id, None)

    @property
    def limiter(self) -> QueryLimiter:
        """The first key's query limiter (benchmarks read its peak)."""
        return self.keys.first.limiter

    async def get_task(self, task_id: str, key: str | None = None) -> Task:
        """Ask about a task with the key that created it (None: the first)."""
        self.queries += 1
        return await self.keys.get(key).get_task(task_id)

    async def list_tasks(self, start: float, end: float, model: str | None = None,
                         key: str | None = None) -> list[Task]:
        """The key's tasks created from `start` to `end` (with a margin), asked in windows of
        at most a day: the provider refuses longer ones."""
        found: dict[str, Task] = {}
        for window_start, window_end in list_windows(start - LIST_MARGIN_S, end + LIST_MARGIN_S):
            self.queries += 1
            listed = await self.keys.get(key).list_tasks(model, as_datetime(window_start),
                                                         as_datetime(window_end))
            found.update((t.task_id, t) for t in listed)
        return list(found.values())

    async def close(self) -> None:
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock.now()
            due = [job_id for job_id, at in self._due.items() if at <= now]
            if not due:
                soonest = min(self._due.values(), default=None)
                await self.clock.wait(self._wake, None if soonest is None else soonest - now)
                continue
            try:
                await self._poll(due)
            except StorageError:
                raise  # fatal: the engine's guard stops it
            except Exception:
                log.exception("polling failed; will retry")
                for job_id in due:
                    self._due[job_id] = self.clock.now() + RETRY_S

    async def _poll(self, due: list[str]) -> None:
        if self.policy.batch and len(self._due) > 1 and self._list_failures < LIST_GIVE_UP:
            try:
                await self._poll_by_list()
                self._list_failures = 0
                return
            except ApiError as exc:
                # Listing is an optimisation: when it fails, ask about each task instead.
                self._list_failures += 1
                log.warning("task list failed (%s); querying tasks one by one", exc.code)
        jobs = [await self.store.get_job(job_id) for job_id in due]
        await asyncio.gather(*(self._ask(job) for job in jobs if job))

    async def _poll_by_list(self) -> None:
        """One list query for every active task; a detail query only for finished ones."""
        jobs = [j for j in await self.store.jobs_in([JobState.PENDING, JobState.RUNNING])
                if j.task_id and j.id in self._due]
        if not jobs:
            self._due.clear()
            return
        listed: dict[str, Task] = {}
        for key in {self.keys.of(j).id for j in jobs}:  # each account lists its own tasks
            start = min(j.submitted_at or j.created_at for j in jobs if self.keys.of(j).id == key)
            listed.update((t.task_id, t) for t in await self.list_tasks(start, self.clock.now(),
                                                                        key=key))
        for job in jobs:
            self._polls[job.id] = self._polls.get(job.id, 0) + 1
            seen = listed.get(job.task_id or "")
            if seen is not None and seen.status in (TaskStatus.PENDING, TaskStatus.RUNNING):
                await self.on_task(job, seen)  # the engine notes the state and reschedules
            else:  # finished, or not listed (yet): ask about it directly
                self._due.pop(job.id, None)
                self._start(self._ask(job, counted=True))

    async def _ask(self, job: Job, *, counted: bool = False) -> None:
        self._due.pop(job.id, None)
        if job.task_id is None or job.state not in AT_PROVIDER:
            return
        if not counted:
            self._polls[job.id] = self._polls.get(job.id, 0) + 1
        try:
            task = await self.get_task(job.task_id, job.api_key_id)
        except ApiError as exc:
            log.warning("job %s: status query failed: %s", job.id, exc)
            self._due[job.id] = self.clock.now() + (exc.retry_after_s or RETRY_S)
            self._wake.set()
            return
        await self.on_task(job, task)

    def _start(self, coro: Any) -> None:
        task = self._create(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
