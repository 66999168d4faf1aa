"""The job buttons through discord.py: Cancel, Rerun, Edit and rerun, Delete, each for a person
allowed and one refused, on the same bot and on a new bot started on the same database (the
old message's button clicked); which buttons each state shows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.engine import Job, JobState
from bot.frontends.common.job_buttons import Action
from bot.frontends.common.reruns import UPLOAD_KEEP_S
from bot.frontends.common.texts import NOT_YOURS
from bot.frontends.discord.components import progress_actions, result_actions
from tests.discord_stack import Stack, image, labels, reply
from tests.fakediscord import EPHEMERAL, FakeMessage, InteractionRecord

FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}
LONG_S = 3600.0
RESTART = pytest.mark.parametrize("restart", [False, True], ids=["same bot", "after restart"])
ROLE_REFUSAL = ("Only members with the role **Animators** can make videos here; ask a server "
                "admin.")

Check = Callable[[Stack, Job, FakeMessage], Awaitable[None]]


async def started(stack: Stack, user: str = "alice", **options: Any) -> Job:
    """/kf2v with a prompt (and `options`), queued and its progress message posted."""
    record = await stack.fake.slash("kf2v", {"prompt": "a cat turns", **options},
                                    attachments=FRAMES, user=user)
    job = await stack.job((await reply(record)).content.split("`")[1])
    assert job.progress_ref is not None  # written before the answer
    return job


async def delivered(stack: Stack, **options: Any) -> tuple[Job, FakeMessage]:
    """A delivered job of alice's and its result message."""
    job = await started(stack, **options)
    done = await stack.wait_id(job.id, lambda j: j.state is JobState.DELIVERED)
    return done, stack.message(done.delivery)


async def before_or_after_restart(stack: Stack, restart: bool, make: Callable[[Stack], Awaitable[
        tuple[Job, FakeMessage]]], check: Check) -> None:
    """Make a job and its message, then run `check` on this bot or on a new one."""
    async with stack.start():
        job, message = await make(stack)
        if not restart:
            await check(stack, job, message)
    if restart:
        stack.updates.clear()
        async with stack.start():
            await check(stack, job, message)


async def followup(record: InteractionRecord) -> str:
    """The text of a deferred click's (ephemeral) answer."""
    [message] = await record.wait_followups(1)
    assert message.ephemeral
    return message.content


async def refusal(record: InteractionRecord) -> str:
    """The text of an immediate ephemeral refusal."""
    callback = await record.responded()
    assert callback.accepted and callback.type == 4 and callback.data["flags"] & EPHEMERAL
    return str(callback.data["content"])


@pytest.fixture
async def animators(stack: Stack) -> AsyncIterator[str]:
    """A role "Animators" that alice holds and bob does not (the bot not started yet)."""
    yield stack.add_role("Animators", "alice")


# --------------------------------------------------------------------------- which buttons


def test_each_state_shows_only_the_buttons_that_make_sense() -> None:
    """Cancel while it can matter; Rerun/Edit after a failure; the result's own buttons."""
    def job(state: JobState, **changes: Any) -> Job:
        values: dict[str, Any] = dict(
            id="ab12", platform="discord", team_id="1", channel_id="2", user_id="3",
            command="kf2v", model="wan2.2-kf2v-flash", state=state, created_at=0)
        return Job(**{**values, **changes})

    assert progress_actions(job(JobState.QUEUED)) == [Action.CANCEL]
    assert progress_actions(job(JobState.RUNNING)) == [Action.CANCEL]
    assert progress_actions(job(JobState.RUNNING, cancel_requested=True)) == []
    assert progress_actions(job(JobState.DELIVERING)) == []
    assert progress_actions(job(JobState.DELIVERED)) == []
    assert progress_actions(job(JobState.FAILED)) == [Action.RERUN, Action.EDIT]
    assert result_actions(job(JobState.DELIVERED)) == [Action.RERUN, Action.EDIT, Action.EXTEND,
                                                    Action.DELETE]
    assert result_actions(job(JobState.DELIVERED), share=True)[0] is Action.SHARE
    animate = job(JobState.FAILED, command="animate", model="wan2.2-animate-mix")
    assert progress_actions(animate) == [Action.RERUN]  # no prompt: nothing to edit


async def test_progress_and_result_messages_carry_their_buttons(wan: Stack) -> None:
    """Cancel on the progress message until it is done; the video has Rerun, Edit, Extend,
    Delete."""
    job, progress = await running(wan)
    assert list(labels(progress)) == ["Cancel"] and labels(progress)["Cancel"] == (
        f"wan:cancel:{job.id}")
    wan.clock.advance(LONG_S)
    done = await wan.wait_id(job.id, lambda j: j.state is JobState.DELIVERED)
    result = wan.message(done.delivery)
    assert labels(result) == {"Rerun": f"wan:rerun:{job.id}",
                              "Edit and rerun": f"wan:edit:{job.id}",
                              "Extend": f"wan:extend:{job.id}",
                              "Delete": f"wan:delete:{job.id}"}
    await wan.fake.wait_for_edit(wan.channel_id, lambda m: "Done" in str(m.embeds) and not
                                 m.components, message_id=progress.id)


# --------------------------------------------------------------------------- cancel


async def running(stack: Stack) -> tuple[Job, FakeMessage]:
    stack.sim.config.running_s = LONG_S
    job = await started(stack)
    await stack.wait_id(job.id, lambda j: j.state is JobState.RUNNING)
    return job, stack.message(job.progress_ref)


async def check_cancel(stack: Stack, job: Job, progress: FakeMessage) -> None:
    cancel = labels(progress)["Cancel"]
    assert await refusal(await stack.fake.click(cancel, progress.id, user="bob")) == NOT_YOURS
    assert not (await stack.job(job.id)).cancel_requested
    text = await followup(await stack.fake.click(cancel, progress.id, user="alice"))
    assert text == (f"Job `{job.id}` is already being made and cannot be stopped (it still "
                    "counts as used), but its result will not be posted.")
    await stack.fake.wait_for_edit(stack.channel_id, lambda m: "will not be posted" in str(
        m.embeds) and not m.components, message_id=progress.id)
    stack.clock.advance(LONG_S)
    await stack.wait_id(job.id, lambda j: j.state is JobState.CANCELED)
    assert stack.deliveries() == []


@RESTART
async def test_cancel_a_running_job(stack: Stack, restart: bool) -> None:
    """bob may not; alice learns it cannot be stopped and that nothing will be posted."""
    await before_or_after_restart(stack, restart, running, check_cancel)


async def test_cancel_says_what_it_meant(stack: Stack) -> None:
    """A queued job is dropped (carol, an admin, may cancel anyone's); a pending one is
    canceled at the provider; neither costs anything."""
    stack.sim.config.pending_s = LONG_S
    async with stack.start(concurrency={"wan2.2-kf2v-flash": 1}):
        pending = await started(stack)
        await stack.wait_id(pending.id, lambda j: j.state is JobState.PENDING)
        queued = await started(stack, user="bob")
        progress = stack.message(queued.progress_ref)
        text = await followup(await stack.fake.click(labels(progress)["Cancel"], progress.id,
                                                     user="carol"))
        assert text == f"Canceled job `{queued.id}`: it was still waiting, so nothing was spent."
        progress = stack.message(pending.progress_ref)
        text = await followup(await stack.fake.click(labels(progress)["Cancel"], progress.id))
        assert text == (f"Canceled job `{pending.id}` at the provider before it started: "
                        "nothing was spent.")
        states = {j.id: j.state for j in await stack.running.store.jobs()}
    assert states == {pending.id: JobState.CANCELED, queued.id: JobState.CANCELED}
    [task] = stack.sim.tasks.values()
    assert len(stack.creates()) == 1 and task.canceled_at is not None


# --------------------------------------------------------------------------- rerun


async def check_rerun(stack: Stack, job: Job, result: FakeMessage) -> None:
    rerun = labels(result)["Rerun"]
    assert await followup(await stack.fake.click(rerun, result.id, user="bob")) == ROLE_REFUSAL
    assert len(await stack.running.store.jobs()) == 1
    text = await followup(await stack.fake.click(rerun, result.id, user="alice"))
    assert text.startswith("Queued as job `")
    again = await stack.job(text.split("`")[1])
    assert again.display.rerun_of == job.id and again.user_id == job.user_id
    assert again.media == job.media and again.prompt == job.prompt
    assert again.options["seed"] != job.options["seed"]
    assert {k: v for k, v in again.options.items() if k != "seed"} == {
        k: v for k, v in job.options.items() if k != "seed"}
    done = await stack.wait_id(again.id, lambda j: j.state is JobState.DELIVERED)
    progress = stack.message(done.progress_ref)
    assert progress.id != int(job.progress_ref.message_id)
    assert progress.content == f"<@{stack.fake.user('alice').id}> started job `{again.id}`."
    first, second = stack.creates()
    assert first.body["input"] == second.body["input"]
    assert second.body["parameters"]["seed"] == again.options["seed"]


@RESTART
async def test_rerun_makes_the_same_again_with_a_new_seed(
    stack: Stack, animators: str, restart: bool
) -> None:
    """bob lacks the role that may generate; alice gets a new job with its own message."""
    async def make(stack: Stack) -> tuple[Job, FakeMessage]:
        made = await delivered(stack, seed=7)
        await stack.set_team(generate_role_ids=(animators,))
        return made

    await before_or_after_restart(stack, restart, make, check_rerun)


async def test_rerun_after_the_uploads_expired_is_refused_kindly(wan: Stack) -> None:
    """The provider keeps uploads 48 h: later, a rerun says so and queues nothing."""
    job, result = await delivered(wan)
    assert job.oss
    wan.clock.advance(UPLOAD_KEEP_S)
    text = await followup(await wan.fake.click(labels(result)["Rerun"], result.id))
    assert text.startswith("The provider keeps uploaded files for 48 hours")
    assert len(await wan.running.store.jobs()) == 1 and len(wan.creates()) == 1


# --------------------------------------------------------------------------- edit and rerun


async def check_edit(stack: Stack, job: Job, result: FakeMessage) -> None:
    edit = labels(result)["Edit and rerun"]
    assert await refusal(await stack.fake.click(edit, result.id, user="bob")) == ROLE_REFUSAL
    opened = await (await stack.fake.click(edit, result.id, user="alice")).responded()
    assert opened.type == 9
    form = stack.fake.opened_modal(f"wan:editform:{job.id}")
    assert form is not None and form["title"] == f"Edit and rerun job {job.id}"
    assert prefilled(form) == {"prompt": "a cat turns", "negative_prompt": "blur", "seed": "7"}
    submitted = await stack.fake.submit_modal(
        f"wan:editform:{job.id}", {"prompt": "a dog turns", "negative_prompt": "", "seed": "42"})
    text = await followup(submitted)
    assert text.startswith("Queued as job `")
    again = await stack.wait_id(text.split("`")[1], lambda j: j.state is JobState.DELIVERED)
    assert (again.prompt, again.negative_prompt, again.seed) == ("a dog turns", None, 42)
    assert again.user_id == job.user_id and again.media == job.media
    body = stack.creates()[-1].body
    assert body["input"]["prompt"] == "a dog turns" and "negative_prompt" not in body["input"]
    assert body["parameters"]["seed"] == 42


def prefilled(form: dict[str, Any]) -> dict[str, str]:
    """The form's inputs and the values they start with."""
    inputs = [c for row in form["components"] for c in row.get("components", [row.get(
        "component", {})])]
    return {c["custom_id"]: c.get("value", "") for c in inputs if c.get("type") == 4}


@RESTART
async def test_edit_and_rerun_opens_a_filled_form_and_queues_what_was_typed(
    stack: Stack, animators: str, restart: bool
) -> None:
    """bob is refused before any form; alice's form starts from the job and makes a new one."""
    async def make(stack: Stack) -> tuple[Job, FakeMessage]:
        made = await delivered(stack, seed=7, negative_prompt="blur")
        await stack.set_team(generate_role_ids=(animators,))
        return made

    await before_or_after_restart(stack, restart, make, check_edit)


async def test_a_form_opened_before_a_restart_is_taken_after_it(stack: Stack) -> None:
    """The form's custom_id names the job: a new bot takes the submission."""
    async with stack.start():
        job, result = await delivered(stack)
        await (await stack.fake.click(labels(result)["Edit and rerun"], result.id)).responded()
    async with stack.start():
        submitted = await stack.fake.submit_modal(f"wan:editform:{job.id}",
                                                  {"prompt": "later", "seed": "x"})
        assert await followup(submitted) == (
            "**seed**: must be a whole number from 0 to 2147483647, or empty for a random one."
            "\nNothing was submitted.")
        submitted = await stack.fake.submit_modal(f"wan:editform:{job.id}", {"prompt": "later"})
        again = await stack.job((await followup(submitted)).split("`")[1])
    assert again.prompt == "later" and again.seed is not None


# --------------------------------------------------------------------------- delete


async def check_delete(stack: Stack, job: Job, result: FakeMessage) -> None:
    delete = labels(result)["Delete"]
    assert await refusal(await stack.fake.click(delete, result.id, user="bob")) == NOT_YOURS
    assert not result.deleted
    text = await refusal(await stack.fake.click(delete, result.id, user="alice"))
    assert text == f"Deleted the video of job `{job.id}`."
    assert result.deleted and stack.deliveries() == []
    assert (await stack.job(job.id)).delivery.deleted is True  # type: ignore[index]


@RESTART
async def test_delete_removes_the_result_message(stack: Stack, restart: bool) -> None:
    """bob may not; alice, who asked for it, may."""
    await before_or_after_restart(stack, restart, delivered, check_delete)
