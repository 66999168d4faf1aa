"""Which unclaimed task is which job's: the windows around each create attempt, and the
fingerprint the provider shows (the prompt, once a task has finished)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.engine import Job, JobState
from bot.engine.task_match import Matcher, Verdict, windows
from bot.provider.tasks import Task, TaskStatus
from tests.engine.test_store import make_job

TIMEOUT_S = 30.0
T0 = 1_760_000_000.0


def task(task_id: str, created: float, status: TaskStatus = TaskStatus.PENDING,
         prompt: str | None = None) -> Task:
    return Task(task_id, status, submit_time=datetime.fromtimestamp(created, UTC),
                orig_prompt=prompt)


def job(job_id: str, sends: list[float], prompt: str = "a cat") -> Job:
    return make_job(job_id, state=JobState.SUBMITTING, prompt=prompt, sends=sends)


async def decide(jobs: list[Job], tasks: list[Task], busy: list[Job] | None = None
                 ) -> dict[str, tuple[Verdict, str | None]]:
    """What the matcher says, asking about each task as the list described it."""
    by_id = {t.task_id: t for t in tasks}

    async def get_task(task_id: str) -> Task:
        return by_id[task_id]

    matcher = Matcher(jobs, tasks, TIMEOUT_S, busy)
    await matcher.inspect(get_task)
    return {k: (m.verdict, m.task and m.task.task_id) for k, m in matcher.decide().items()}


def test_every_attempt_has_its_window() -> None:
    """A job sent three times is looked for around each send, not only the first."""
    spans = windows(job("a", [T0, T0 + 100, T0 + 200]), TIMEOUT_S)
    assert len(spans) == 3 and spans[2][0] < T0 + 200 < spans[2][1]


async def test_a_task_made_by_the_last_of_many_attempts_is_found() -> None:
    """Three refused sends, then one whose answer was lost: its task is found."""
    found = await decide([job("a", [T0, T0 + 100, T0 + 200, T0 + 300])], [task("x", T0 + 301)])
    assert found == {"a": (Verdict.FOUND, "x")}


async def test_a_task_outside_every_window_is_not_the_jobs() -> None:
    """A task made long after the last attempt belongs to someone else."""
    assert await decide([job("a", [T0])], [task("x", T0 + 3600)]) == {"a": (Verdict.NONE, None)}


async def test_the_prompt_decides_over_the_time() -> None:
    """Finished tasks show their prompt: each job gets its own, not the nearest."""
    jobs = [job("a", [T0], "a cat"), job("b", [T0 + 1], "a dog")]
    tasks = [task("x", T0 + 0.5, TaskStatus.SUCCEEDED, "a dog"),
             task("y", T0 + 2, TaskStatus.SUCCEEDED, "a cat")]
    assert await decide(jobs, tasks) == {"a": (Verdict.FOUND, "y"), "b": (Verdict.FOUND, "x")}


async def test_a_task_two_jobs_could_own_waits_until_it_shows_its_prompt() -> None:
    """Two running tasks, two jobs, no prompt shown yet: neither is guessed."""
    jobs = [job("a", [T0], "a cat"), job("b", [T0 + 1], "a dog")]
    tasks = [task("x", T0 + 0.5, TaskStatus.RUNNING), task("y", T0 + 2, TaskStatus.RUNNING)]
    assert {v for v, _ in (await decide(jobs, tasks)).values()} == {Verdict.UNDECIDED}


async def test_a_task_only_one_job_could_own_is_taken_before_it_finishes() -> None:
    """One pending task in one job's window, no rival: it is that job's."""
    assert await decide([job("a", [T0])], [task("x", T0 + 1)]) == {"a": (Verdict.FOUND, "x")}


async def test_a_task_a_create_on_its_way_could_own_is_held() -> None:
    """A job with a create on its way may have made the task: the other job waits."""
    result = await decide([job("a", [T0])], [task("x", T0 + 1)], busy=[job("b", [T0])])
    assert result == {"a": (Verdict.UNDECIDED, None)}


async def test_someone_elses_finished_task_is_not_taken() -> None:
    """A finished task with another prompt is never the job's, however near in time."""
    found = await decide([job("a", [T0], "a cat")],
                         [task("x", T0 + 1, TaskStatus.SUCCEEDED, "a dog")])
    assert found == {"a": (Verdict.NONE, None)}
