"""Reconciliation: whether a create whose answer was lost reached the provider, found out
before anything is sent again (resending blindly could pay twice).

A job in `submitting` (after a crash, a timeout or a dropped connection) is matched against the
provider's task list. Each create attempt's send time is in the job's row (written before it
was sent), so the search covers a window around every attempt ever made for the job, however
long refusals and back-offs stretched them. Within those windows a task is the job's only if
its fingerprint fits: same model (the list is asked per model), and, once the provider shows
it, the same prompt. A task that could be one of several jobs', and cannot tell yet (it has
not finished, so its prompt is not shown), is left until it can. A match is recorded as the
job's task; a job goes back to the queue only when every window has closed with no task in
it. A job whose create is on its way in this process is never reconciled: its answer will
tell. If the provider cannot list tasks now, the jobs wait and it is tried again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.engine.jobs import Job, JobState
from bot.engine.poller import LIST_MARGIN_S, Poller
from bot.engine.store import Store
from bot.engine.task_match import Match, Matcher, Verdict, windows
from bot.errors import ApiError
from bot.provider import catalog
from bot.provider.tasks import Task

log = logging.getLogger(__name__)

RECONCILE_RETRY_S = 60.0
LIST_REACH_S = 24 * 3600 - LIST_MARGIN_S - 60  # the task list reaches back at most a day

Found = Callable[[Job, Task], Awaitable[None]]  # the job's task was found: record it
NotSent = Callable[[Job], Awaitable[None]]  # the provider never got the job: queue it again
Lost = Callable[[Job], Awaitable[None]]  # too old to find out: end it, never send it again
Spawn = Callable[[Coroutine[Any, Any, Any]], None]
Sending = Callable[[str], bool]  # is this job's create on its way now?


class Reconciler:
    def __init__(self, store: Store, poller: Poller, settings: Settings, clock: Clock, *,
                 found: Found, not_sent: NotSent, lost: Lost, spawn: Spawn,
                 sending: Sending) -> None:
        self.store = store
        self.lost = lost
        self.poller = poller
        self.settings = settings
        self.clock = clock
        self.found = found
        self.not_sent = not_sent
        self.spawn = spawn
        self.sending = sending
        self._locks: dict[str, asyncio.Lock] = {}
        self._due: dict[str, float] = {}  # model -> when a later reconciliation is due

    async def reconcile(self, model_name: str) -> None:
        """Match a model's jobs stuck in `submitting` to tasks the provider has, each key's
        jobs in that key's task list (an account sees only its own tasks)."""
        async with self._locks.setdefault(model_name, asyncio.Lock()):
            everyone = await self.store.jobs_in([JobState.SUBMITTING], model_name)
            for key in {self.poller.keys.of(j).id for j in everyone}:
                theirs = [j for j in everyone if self.poller.keys.of(j).id == key]
                jobs = [j for j in theirs if not self.sending(j.id)]
                if jobs:
                    busy = [j for j in theirs if self.sending(j.id)]
                    await self._reconcile(model_name, jobs, busy, key)

    async def _reconcile(self, model_name: str, jobs: list[Job], busy: list[Job], key: str
                         ) -> None:
        model = catalog.get_model(model_name)
        now = self.clock.now()
        timeout_s = self.settings.http_timeout_s
        starts = [w[0] for j in [*jobs, *busy] for w in windows(j, timeout_s)]
        start = max(min(starts), now - LIST_REACH_S)
        region = self.poller.keys.get(key).region
        try:
            listed = await self.poller.list_tasks(start, now, model.api_name(region), key)
            claimed = await self.store.claimed_task_ids()
            free = [t for t in listed if t.task_id not in claimed]
            matcher = Matcher(jobs, free, timeout_s, busy)
            await matcher.inspect(functools.partial(self.poller.get_task, key=key))
        except ApiError as exc:
            log.warning("cannot list %s tasks (%s); reconciling again in %.0fs",
                        model_name, exc.code, RECONCILE_RETRY_S)
            self._later(model_name, now + RECONCILE_RETRY_S)
            return
        matches = matcher.decide()
        for job in matcher.jobs:
            await self._settle(model_name, job, matches[job.id], now)

    async def _settle(self, model_name: str, job: Job, match: Match, now: float) -> None:
        """Act on what the matcher said about one job."""
        closes = max(end for _, end in windows(job, self.settings.http_timeout_s))
        if match.task is not None:
            log.info("job %s: found its task %s at the provider", job.id, match.task.task_id)
            await self.found(job, match.task)
        elif match.verdict is Verdict.UNDECIDED:
            log.info("job %s: a task may be its; looking again once it shows more", job.id)
            self._later(model_name, now + RECONCILE_RETRY_S)
        elif closes > now:
            self._later(model_name, closes)  # a create sent lately may yet show up
        elif closes < now - LIST_REACH_S:
            log.warning("job %s: its sends are older than the task list reaches; not sending it "
                        "again", job.id)
            await self.lost(job)
        else:
            log.info("job %s: the provider never got it; queueing again", job.id)
            await self.not_sent(job)

    def _later(self, model_name: str, at: float) -> None:
        """Reconcile the model again at `at` (once, however many jobs asked for it)."""
        due = self._due.get(model_name)
        if due is not None and due <= at:
            return
        self._due[model_name] = at
        self.spawn(self._again(model_name, at))

    async def _again(self, model_name: str, at: float) -> None:
        await self.clock.sleep(at - self.clock.now())
        if self._due.get(model_name) == at:
            del self._due[model_name]
        await self.reconcile(model_name)
