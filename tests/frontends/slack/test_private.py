"""Private jobs on Slack (`private=yes`, or the modal's checkbox): progress and video go to the
requester's DM with the app; the channel sees nothing until Share, which posts the video there
once, also when a share was posted but not recorded before a restart."""

from __future__ import annotations

from bot.engine import Job, JobState
from bot.frontends.slack.app import SlackFront
from tests.discord_stack import png
from tests.slack_stack import SlackStack
from tests.slack_steps import answer, message_with, queue_kf2v, restartable


async def private_delivered(stack: SlackStack) -> Job:
    job = await queue_kf2v(stack, options="private=yes")
    await message_with(stack, f"wan:share:{job.id}")
    return await stack.wait_job(lambda j: j.id == job.id and j.state is JobState.DELIVERED)


def shares_in_general(stack: SlackStack, job: Job) -> list[str]:
    """The messages in #general (thread replies too) that carry the job's video."""
    channel = stack.fake.channel("general")
    return [m.ts for m in stack.fake.messages[channel.id]
            if not m.deleted and (f"`{job.id}`" in m.text or m.files)]


async def share(stack: SlackStack, job: Job, user: str = "alice") -> str:
    message = await message_with(stack, f"wan:share:{job.id}")
    record = await stack.fake.click(message, f"wan:share:{job.id}", user=user)
    return await answer(stack.fake, record)


async def test_private_by_text_goes_to_the_dm(wan: SlackStack) -> None:
    """private=yes: the progress message and the video are in alice's DM, not in #general."""
    job = await private_delivered(wan)
    dm = wan.fake.dm_channel("alice")
    assert job.progress_ref is not None and job.progress_ref.channel_id == dm.id
    assert [c.params["users"] for c in wan.fake.calls("conversations.open")] == [job.user_id]
    [upload] = wan.fake.uploads_titled(f"wan-{job.id}.mp4")
    assert [m.channel_id for m in upload.shares] == [dm.id]
    assert upload.shares[0].thread_ts == job.progress_ref.message_id
    assert wan.fake.messages_in("general") == []


async def test_private_by_checkbox_goes_to_the_dm(wan: SlackStack) -> None:
    """The modal's Private box: the same, progress and video in the DM only."""
    await (await wan.fake.slash("/kf2v")).acked()
    await wan.fake.wait_for(lambda: wan.fake.open_views("wan:new:kf2v") or None)
    a, b = wan.fake.user_file("a.png", png()), wan.fake.user_file("b.png", png())
    await (await wan.fake.submit_view("wan:new:kf2v", {
        "first_frame": a, "last_frame": b, "prompt": "a cat",
        "flags": ["private", "prompt_extend"]})).acked()
    job = await wan.wait_state(JobState.DELIVERED)
    dm = wan.fake.dm_channel("alice")
    assert job.private and job.progress_ref is not None and job.progress_ref.channel_id == dm.id
    [upload] = await wan.fake.wait_for(
        lambda: wan.fake.uploads_titled(f"wan-{job.id}.mp4") or None)
    assert [m.channel_id for m in upload.shares] == [dm.id]
    assert shares_in_general(wan, job) == []


async def test_share_posts_to_the_channel_once(wan: SlackStack) -> None:
    """Share clicked twice in a row: the video is in #general once; the button goes away."""
    job = await private_delivered(wan)
    assert shares_in_general(wan, job) == []
    message = await message_with(wan, f"wan:share:{job.id}")
    clicks = [await wan.fake.click(message, f"wan:share:{job.id}") for _ in range(2)]
    for record in clicks:
        assert await answer(wan.fake, record) == "Shared in the job's channel."
    [shared] = shares_in_general(wan, job)
    assert wan.fake.messages_in("general")[0].files[0].title == f"wan-{job.id}.mp4"
    await wan.fake.wait_for(lambda: f"wan:share:{job.id}" not in message.action_ids or None,
                            what="the Share button gone")
    assert shares_in_general(wan, job) == [shared]


def post_then_fail(front: SlackFront) -> None:
    """The next share is posted, then the process dies before recording it."""
    post = front.deliverer.share

    async def share_then_die(job: Job) -> object:
        await post(job)
        raise RuntimeError("killed before the share was recorded")

    front.deliverer.share = share_then_die  # type: ignore[method-assign]


async def test_a_share_posted_before_a_restart_is_not_posted_again(slack: SlackStack) -> None:
    """Share posted but not recorded (the click still acked, the person told), then a
    restart and Share again: the post is found, not repeated."""
    async with restartable(slack) as restarted:
        job = await private_delivered(slack)
        post_then_fail(slack.running)
        message = await message_with(slack, f"wan:share:{job.id}")
        first = await slack.fake.click(message, f"wan:share:{job.id}")
        assert (await first.acked()).late is False
        assert (await answer(slack.fake, first)).startswith("Sorry, something went wrong")
        [posted] = await slack.fake.wait_for(lambda: shares_in_general(slack, job) or None)
        await restarted()
        assert await share(slack, job) == "Shared in the job's channel."
        after = await slack.running.services.store.get_job(job.id)
    assert shares_in_general(slack, job) == [posted]
    assert after is not None and after.delivery is not None
    assert after.delivery.shared is not None and after.delivery.shared.message_id == posted
