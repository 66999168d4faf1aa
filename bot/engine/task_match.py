"""Which of the provider's unclaimed tasks is which job's: the windows a job's creates could
have made a task in, and its fingerprint (the model, asked for in the list, and the prompt,
which the provider shows once a task has finished)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.engine.jobs import Job
from bot.provider.tasks import Task

CLOCK_SKEW_S = 5.0  # how far the provider's clock may be from ours
LATE_S = 30.0  # a provider may still make a task this long after the client gave up waiting

Window = tuple[float, float]
GetTask = Callable[[str], Awaitable[Task]]


def sends_of(job: Job) -> list[float]:
    """When the job's creates were sent (a row from before they were kept: when admitted)."""
    return job.sends or [job.submitted_at or job.created_at]


def windows(job: Job, timeout_s: float) -> list[Window]:
    """Where a task made by each of the job's create attempts shows its creation time."""
    return [(t - CLOCK_SKEW_S, t + timeout_s + CLOCK_SKEW_S + LATE_S) for t in sends_of(job)]


class Verdict(StrEnum):
    FOUND = "found"  # this task is the job's
    UNDECIDED = "undecided"  # a task could be the job's, or another's; that cannot be told yet
    NONE = "none"  # no task the job could own


@dataclass(frozen=True)
class Match:
    verdict: Verdict
    task: Task | None = None


class Matcher:
    """Matches jobs in `submitting` to listed tasks nobody has claimed. `busy` jobs have a
    create on its way: they are matched by its answer, but a task that could be theirs is
    nobody else's until that answer is in."""

    def __init__(self, jobs: list[Job], free: list[Task], timeout_s: float,
                 busy: list[Job] | None = None) -> None:
        self.jobs = sorted(jobs, key=lambda j: max(sends_of(j)))
        self._busy = busy or []
        self._options = {j.id: [t for t in free if _inside(t, windows(j, timeout_s))]
                         for j in [*jobs, *self._busy]}

    async def inspect(self, get_task: GetTask) -> None:
        """Ask the provider about every task a job could own; drop those whose prompt shows
        they are someone else's."""
        details: dict[str, Task] = {}
        for options in self._options.values():
            for task in options:
                if task.task_id not in details:
                    details[task.task_id] = await get_task(task.task_id)
        for job in [*self.jobs, *self._busy]:
            known = [details[t.task_id] for t in self._options[job.id]]
            self._options[job.id] = [t for t in known if _fits(job, t)]

    def decide(self) -> dict[str, Match]:
        """Tasks whose prompt names their job first, then the rest where that is safe."""
        # What a create on its way could have made is held for its answer.
        taken = {t.task_id for job in self._busy for t in self._options[job.id]}
        held = set(taken)
        result: dict[str, Match] = {}
        for job in self.jobs:
            shown = [t for t in self._options[job.id]
                     if t.orig_prompt is not None and t.task_id not in taken]
            if shown:
                result[job.id] = self._take(job, shown, taken)
        for job in self.jobs:
            if job.id not in result:
                result[job.id] = self._guess(job, taken, held, result)
        return result

    def _guess(self, job: Job, taken: set[str], held: set[str],
               decided: dict[str, Match]) -> Match:
        """A task that does not show its prompt is the job's only when no other job could
        own it, or when it has ended (nothing more will show: the nearest is the best bet)."""
        if any(t.task_id in held for t in self._options[job.id]):
            return Match(Verdict.UNDECIDED)  # after the answer on its way, this is clearer
        options = [t for t in self._options[job.id] if t.task_id not in taken]
        if not options:
            return Match(Verdict.NONE)
        rivals = {t.task_id for other in self.jobs if other.id not in decided
                  and other.id != job.id for t in self._options[other.id]}
        alone = len(options) == 1 and options[0].task_id not in rivals
        if alone or all(t.status.is_terminal for t in options):
            return self._take(job, options, taken)
        return Match(Verdict.UNDECIDED)

    def _take(self, job: Job, options: list[Task], taken: set[str]) -> Match:
        sends = sends_of(job)
        best = min(options, key=lambda t: min(abs(_created(t) - s) for s in sends))
        taken.add(best.task_id)
        return Match(Verdict.FOUND, best)


def _fits(job: Job, task: Task) -> bool:
    """False when what the provider shows of the task is not what the job asked for."""
    return task.orig_prompt is None or task.orig_prompt == (job.prompt or "")


def _inside(task: Task, spans: list[Window]) -> bool:
    created = _created(task)
    return any(start <= created <= end for start, end in spans)


def _created(task: Task) -> float:
    return task.submit_time.timestamp() if task.submit_time else 0.0
