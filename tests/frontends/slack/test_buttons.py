"""The job buttons `wan:<cancel|rerun|edit|share|delete>:<job id>` through slack-bolt against
the fake Slack, with Discord's rules: Cancel and Delete for the requester or a workspace admin
(carol), Rerun and Edit for anyone who may make videos (a private job: its requester only),
Share for the requester. Each works the same on a message posted before a restart."""

from __future__ import annotations

import dataclasses

import pytest

from bot.engine import Job, JobState
from bot.frontends.slack.access import NOT_ALLOWED
from bot.frontends.slack.job_actions import NOT_YOURS
from tests.slack_stack import NO_LIMITS, SlackStack
from tests.slack_steps import (
    answer,
    dm_text,
    message_with,
    queue_kf2v,
    restartable,
)

RESTART = pytest.mark.parametrize("restart", [False, True], ids=["same", "restarted"])
MANAGERS = pytest.mark.parametrize(("user", "allowed"),
                                   [("alice", True), ("carol", True), ("bob", False)])


async def delivered(stack: SlackStack, options: str = "") -> Job:
    """alice's job, delivered, its summary showing the result's buttons."""
    job = await queue_kf2v(stack, options=options)
    await message_with(stack, f"wan:rerun:{job.id}")
    return await stack.wait_job(lambda j: j.id == job.id and j.state is JobState.DELIVERED)


async def click(stack: SlackStack, job: Job, action: str, user: str) -> str:
    """`user` clicks `action` on the job's message; what they were told."""
    message = await message_with(stack, f"wan:{action}:{job.id}")
    record = await stack.fake.click(message, f"wan:{action}:{job.id}", user=user)
    assert (await record.acked()).late is False
    return await answer(stack.fake, record)


async def stored(stack: SlackStack, job_id: str) -> Job:
    job = await stack.running.services.store.get_job(job_id)
    assert job is not None
    return job


@RESTART
@MANAGERS
async def test_cancel(slack: SlackStack, restart: bool, user: str, allowed: bool) -> None:
    """Cancel on a running job: the requester or an admin stops it; anyone else is refused."""
    slack.sim.config.running_s = 1e6  # runs until the test ends
    async with restartable(slack) as restarted:
        job = await queue_kf2v(slack)
        await slack.wait_job(lambda j: j.id == job.id and j.state is JobState.RUNNING)
        if restart:
            await restarted()
        text = await click(slack, job, "cancel", user)
        after = await stored(slack, job.id)
    if allowed:
        assert f"`{job.id}`" in text and after.cancel_requested
    else:
        assert text == NOT_YOURS and not after.cancel_requested


@RESTART
@MANAGERS
async def test_delete(slack: SlackStack, restart: bool, user: str, allowed: bool) -> None:
    """Delete: the requester or an admin takes the video out of the thread; anyone else is
    refused and the video stays."""
    async with restartable(slack) as restarted:
        job = await delivered(slack)
        if restart:
            await restarted()
        text = await click(slack, job, "delete", user)
        after = await stored(slack, job.id)
    uploads = slack.fake.uploads_titled(f"wan-{job.id}.mp4")
    if allowed:
        assert "deleted" in text.lower() and uploads == []
        assert after.delivery is not None and after.delivery.deleted
    else:
        assert text == NOT_YOURS and len(uploads) == 1
        assert after.delivery is not None and not after.delivery.deleted


@RESTART
async def test_rerun_by_anyone_who_may_generate(slack: SlackStack, restart: bool) -> None:
    """Rerun by bob on alice's job: a new job of bob's with the same inputs, a new seed."""
    async with restartable(slack) as restarted:
        job = await delivered(slack, "seed=7")
        if restart:
            await restarted()
        text = await click(slack, job, "rerun", "bob")
        again = await slack.wait_job(lambda j: j.display.rerun_of == job.id
                                     and j.state is JobState.DELIVERED)
    assert text == f"Queued as job `{again.id}`."
    assert again.user_id == slack.fake.user("bob").id and again.media == job.media
    assert again.seed != 7 and len(slack.creates()) == 2


@RESTART
async def test_rerun_refused_outside_the_roles(slack: SlackStack, restart: bool) -> None:
    """Rerun by bob when only alice may make videos: refused, nothing sent."""
    async with restartable(slack) as restarted:
        job = await delivered(slack)
        alice = slack.fake.user("alice").id
        await slack.set_team(dataclasses.replace(NO_LIMITS, generate_role_ids=(alice,)))
        if restart:
            await restarted()
        text = await click(slack, job, "rerun", "bob")
    assert text == NOT_ALLOWED and len(slack.creates()) == 1


@RESTART
@pytest.mark.parametrize("action", ["rerun", "edit"])
async def test_private_job_is_made_again_only_by_its_requester(
    slack: SlackStack, restart: bool, action: str,
) -> None:
    """Rerun or Edit on alice's private job by bob (a forged click): refused, no form."""
    async with restartable(slack) as restarted:
        job = await delivered(slack, "private=yes")
        if restart:
            await restarted()
        text = await click(slack, job, action, "bob")
    assert "Only the person who started this job" in text
    assert slack.fake.open_views() == [] and len(slack.creates()) == 1


@RESTART
async def test_edit_opens_the_form_filled_from_the_job(slack: SlackStack,
                                                       restart: bool) -> None:
    """Edit and rerun: a modal with the job's prompt; its submission makes a new job with the
    edited prompt and the typed seed."""
    async with restartable(slack) as restarted:
        job = await delivered(slack)
        if restart:
            await restarted()
        message = await message_with(slack, f"wan:edit:{job.id}")
        await (await slack.fake.click(message, f"wan:edit:{job.id}", user="bob")).acked()
        [view] = await slack.fake.wait_for(
            lambda: slack.fake.open_views(f"wan:editform:{job.id}") or None)
        assert view.block("prompt")["element"]["initial_value"] == "a cat looks up"
        ack = await (await slack.fake.submit_view(view.id, {"prompt": "a dog looks down",
                                                            "seed": "42"})).acked()
        again = await slack.wait_job(lambda j: j.display.rerun_of == job.id)
    assert ack.errors == {} and again.prompt == "a dog looks down" and again.seed == 42
    assert again.user_id == slack.fake.user("bob").id


async def test_a_forged_edit_of_someone_elses_private_job_is_refused(slack: SlackStack) -> None:
    """bob submits the edit form of alice's private job (as a forged payload can): refused,
    nothing queued."""
    async with slack.start():
        job = await delivered(slack, "private=yes")
        message = await message_with(slack, f"wan:edit:{job.id}")
        await (await slack.fake.click(message, f"wan:edit:{job.id}")).acked()
        [view] = await slack.fake.wait_for(
            lambda: slack.fake.open_views(f"wan:editform:{job.id}") or None)
        await (await slack.fake.submit_view(view.id, {"prompt": "mine now"}, user="bob")).acked()
        text = await dm_text(slack.fake, "bob", "Only the person")
    assert "started this job" in text and len(slack.creates()) == 1


@RESTART
@pytest.mark.parametrize(("user", "allowed"), [("alice", True), ("carol", False)])
async def test_share(slack: SlackStack, restart: bool, user: str, allowed: bool) -> None:
    """Share on a private job: its requester posts the video to the channel; anyone else
    (an admin too) is refused and the channel sees nothing."""
    async with restartable(slack) as restarted:
        job = await delivered(slack, "private=yes")
        if restart:
            await restarted()
        text = await click(slack, job, "share", user)
    shared = [m for m in slack.fake.messages_in("general") if f"`{job.id}`" in m.text]
    if allowed:
        assert text == "Shared in the job's channel." and len(shared) == 1
        assert [f.title for f in shared[0].files] == [f"wan-{job.id}.mp4"]
    else:
        assert "Only the person who started this job" in text and shared == []
