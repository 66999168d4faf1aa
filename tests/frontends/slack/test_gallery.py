"""The gallery on Slack: a finished public video is also posted to the team's gallery channel,
once; a private one is not."""

from __future__ import annotations

from bot.engine import JobState
from bot.frontends.common.teams import TeamSettings
from tests.slack_stack import NO_LIMITS, SlackStack
from tests.slack_steps import queue_kf2v


async def with_gallery(slack: SlackStack, channel: str) -> None:
    gallery = slack.fake.channel(channel).id
    await slack.set_team(TeamSettings(**{**NO_LIMITS.__dict__, "gallery_channel_id": gallery}))


async def test_a_public_video_is_copied_to_the_gallery_once(slack: SlackStack) -> None:
    """The video lands in its thread and, with who made it, in the gallery channel."""
    slack.fake.channel("random").bot_member = True
    await with_gallery(slack, "random")
    async with slack.start():
        job = await queue_kf2v(slack)
        done = await slack.wait_job(lambda j: j.id == job.id and j.state is JobState.DELIVERED)
    title = f"wan-{job.id}.mp4"
    assert len(slack.fake.uploads_titled(title)) == 2  # the thread and the gallery
    [post] = [m for m in slack.fake.messages_in("random") if job.id in m.text]
    assert f"<@{slack.fake.user('alice').id}>" in post.text
    assert done.delivery is not None and done.delivery.gallery is not None
    assert done.delivery.gallery.channel_id == slack.fake.channel("random").id


async def test_a_private_video_stays_out_of_the_gallery(slack: SlackStack) -> None:
    """private=yes: the DM only; the gallery sees nothing."""
    slack.fake.channel("random").bot_member = True
    await with_gallery(slack, "random")
    async with slack.start():
        job = await queue_kf2v(slack, options="private=yes")
        await slack.wait_job(lambda j: j.id == job.id and j.state is JobState.DELIVERED)
    assert [m for m in slack.fake.messages_in("random") if job.id in m.text] == []
