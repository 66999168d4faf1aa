"""Extend on Slack through slack-bolt against the fake Slack and the simulator: the button's
modal (prefilled with the prompt, with an optional last frame), the last frame as the next
job's first frame, the chain uploaded into the clip's thread, `/wan job` showing the chain, and
a private job extended by its requester alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine import Job, JobState
from bot.media.stitch import duration_s
from tests.clip_support import clip, last_image, mean_difference, received_image
from tests.frontends.slack.test_buttons import click, delivered
from tests.frontends.slack.test_wan import wan_says
from tests.slack_stack import SlackStack
from tests.slack_steps import message_with


async def extend(stack: SlackStack, parent: Job, values: dict[str, object]) -> Job:
    """alice clicks Extend and submits the modal: the new job, once it is delivered."""
    message = await message_with(stack, f"wan:extend:{parent.id}")
    await (await stack.fake.click(message, f"wan:extend:{parent.id}")).acked()
    [view] = await stack.fake.wait_for(
        lambda: stack.fake.open_views(f"wan:extendform:{parent.id}") or None)
    assert view.block("prompt")["element"]["initial_value"] == parent.prompt
    ack = await (await stack.fake.submit_view(view.id, values)).acked()
    assert ack.errors == {}
    return await stack.wait_job(lambda j: j.parent_id == parent.id
                                and j.state is JobState.DELIVERED, what="the extension")


async def test_extend_posts_the_clip_and_the_chain_in_its_thread(slack: SlackStack,
                                                                 tmp_path: Path) -> None:
    slack.sim.config.result_video = clip(seconds=1.0)
    async with slack.start():
        first = await delivered(slack)
        slack.sim.config.result_video = clip(seconds=1.0, seed=1)
        second = await extend(slack, first, {"prompt": "it runs"})
        assert (second.command, second.model, second.prompt) == (
            "i2v", "wan2.2-i2v-flash", "it runs")  # the kf2v-flash clip's family
        body = slack.creates()[-1].body
        frame = received_image(slack.sim, body, "img_url")
        assert mean_difference(frame, last_image(Path(first.video_path or ""))) < 1.0
        [chain] = await slack.fake.wait_for(
            lambda: slack.fake.uploads_titled(f"wan-{second.id}-chain.mp4") or None)
        path = tmp_path / "chain.mp4"
        path.write_bytes(chain.data)
        assert duration_s(path) == pytest.approx(2.0, abs=0.01)
        done = await slack.wait_job(lambda j: j.id == second.id and j.chain is not None
                                    and j.chain.done)
        assert done.chain is not None and done.chain.state == "posted"
        text = await wan_says(slack, f"job {second.id}")
        assert f"Chain (2 clips): `{first.id}` → *`{second.id}`*" in text
        assert "the whole chain 2 s, in the job's thread" in text


async def test_a_private_job_is_extended_by_its_requester_alone(slack: SlackStack) -> None:
    slack.sim.config.result_video = clip(seconds=1.0)
    async with slack.start():
        job = await delivered(slack, "private=yes")
        text = await click(slack, job, "extend", "bob")
    assert "Only the person who started this job" in text
    assert slack.fake.open_views() == [] and len(slack.creates()) == 1
