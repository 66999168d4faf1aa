"""Slack deliveries across restarts, and when the workspace forbids uploads: a job whose
front end restarted while the provider ran it is delivered once; an upload made just before a
crash is found by its title, not made again; without uploads, the link and its 24 h note."""

from __future__ import annotations

import asyncio

import pytest

from bot.engine import Job, JobState
from tests.discord_stack import die_after_posting
from tests.fakeslack import FakeWorkspace
from tests.slack_stack import SlackStack, manifest_scopes
from tests.slack_steps import queue_kf2v, restartable

LONG_S = 36_000.0  # the provider's run: longer than the test, until the clock is moved on


def video_replies(stack: SlackStack, job: Job) -> list[str]:
    """The replies in the job's thread that carry its video (a file or the link)."""
    ref = job.progress_ref
    assert ref is not None
    channel = stack.fake.channel(ref.channel_id)
    return [m.ts for m in stack.fake.thread(channel, ref.message_id)
            if m.files or f"`{job.id}`" in m.text]


async def test_restart_in_the_middle_of_a_job(slack: SlackStack) -> None:
    """Restarted while the provider runs the task: the new front end polls it, delivers once
    into the old message's thread and shows the summary there."""
    slack.sim.config.running_s = LONG_S
    async with restartable(slack) as restarted:
        job = await queue_kf2v(slack)
        await slack.wait_job(lambda j: j.id == job.id and j.state is JobState.RUNNING)
        await restarted()
        slack.clock.advance(LONG_S)
        done = await slack.wait_job(lambda j: j.id == job.id and j.state is JobState.DELIVERED)
        progress = slack.fake.messages_in("general")[0]
        await slack.fake.wait_for(lambda: "The video is in" in str(progress.blocks) or None,
                                  what="the summary")
    assert done.progress_ref == job.progress_ref
    assert len(slack.fake.uploads_titled(f"wan-{job.id}.mp4")) == 1
    assert len(video_replies(slack, done)) == 1 and len(slack.creates()) == 1


async def test_restart_after_the_upload_before_it_was_recorded(slack: SlackStack) -> None:
    """Killed right after the upload: the next front end finds it by title and uploads
    nothing more."""
    async with restartable(slack) as restarted:
        posted = die_after_posting(slack.running)
        job = await queue_kf2v(slack)
        await asyncio.wait_for(posted.wait(), 10)
        await restarted()
        done = await slack.wait_job(lambda j: j.id == job.id and j.state is JobState.DELIVERED)
    [upload] = slack.fake.uploads_titled(f"wan-{job.id}.mp4")
    assert done.delivery is not None and done.delivery.mode == "file"
    assert len(video_replies(slack, done)) == 1 and len(slack.fake.uploads) == 1
    assert upload.shares[0].thread_ts == job.progress_ref.message_id  # type: ignore[union-attr]


class TestUploadsForbidden:
    @pytest.fixture
    def front_workspace(self) -> FakeWorkspace:
        return FakeWorkspace(scopes=manifest_scopes(), file_uploads_disabled=True)

    async def test_the_link_goes_into_the_thread(self, wan: SlackStack) -> None:
        """The workspace forbids uploads: the provider's link in the thread, once, saying why
        and with its 24 h note."""
        job = await queue_kf2v(wan)
        done = await wan.wait_job(lambda j: j.id == job.id and j.state is JobState.DELIVERED)
        ref = done.progress_ref
        assert ref is not None and done.delivery is not None and done.delivery.mode == "link"
        [reply] = wan.fake.thread("general", ref.message_id)
        assert done.result_url and done.result_url in reply.text
        assert "This workspace does not allow uploads" in reply.text and not reply.files
        assert "The link expires 24 hours after the video was made." in reply.text
        assert wan.fake.uploads_titled(f"wan-{job.id}.mp4") == []
