"""Extend on Discord, end to end against the simulator and the fake Discord: the button's form
and /extend, the last frame as the next job's first frame (the pixels the provider received),
the chain posted as one video as long as its clips, who may, budgets, and a clip gone from disk.

The simulator's results are real clips made with PyAV (`tests.clip_support`), a different one
for each stage, so each frame the provider receives can be told apart from the others."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bot.engine import ChainVideo, Job, JobState, Post, Store
from bot.frontends.common.texts import ONLY_REQUESTER
from bot.media.stitch import duration_s
from tests.clip_support import clip, last_image, mean_difference, received_image
from tests.discord_stack import Stack, image, labels, reply
from tests.fakediscord import FakeMessage, InteractionRecord
from tests.frontends.discord.test_buttons import followup, prefilled, refusal

SAME_PICTURE = 1.0  # mean difference per channel value: the PNG is lossless
OTHER_PICTURE = 10.0  # two stages' clips differ by far more


async def delivered_i2v(stack: Stack, user: str = "alice", **options: object) -> Job:
    """/i2v at 480P (5 s), delivered."""
    record = await stack.fake.slash("i2v", {"prompt": "a cat", "resolution": "480P", **options},
                                    attachments={"image": image("cat.png")}, user=user)
    job_id = (await reply(record)).content.split("`")[1]
    return await stack.wait_id(job_id, lambda j: j.state is JobState.DELIVERED)


async def queued_from(record: InteractionRecord, stack: Stack) -> Job:
    text = await followup(record)
    assert text.startswith("Queued as job `"), text
    return await stack.job(text.split("`")[1])


async def sent_body(stack: Stack, job: Job) -> dict[str, object]:
    """The create body the provider received for `job` (once it was sent)."""
    await stack.wait_id(job.id, lambda j: j.task_id is not None, what="sent")
    count = len([j for j in await stack.running.store.jobs() if j.task_id is not None])
    return stack.creates()[count - 1].body  # type: ignore[no-any-return]


async def chain_post(stack: Stack, job: Job) -> FakeMessage:
    return await stack.fake.wait_for_message(
        stack.channel_id, lambda m: f"Chain of job `{job.id}`" in m.content)


def saved(message: FakeMessage, path: Path) -> Path:
    [file] = message.files
    path.write_bytes(file.data)
    return path


async def extend_by_button(stack: Stack, parent: Job, prompt: str, user: str = "alice") -> Job:
    result = stack.message(parent.delivery)
    opened = await (await stack.fake.click(labels(result)["Extend"], result.id,
                                           user=user)).responded()
    assert opened.type == 9  # the form
    form = stack.fake.opened_modal(f"wan:extendform:{parent.id}")
    assert form is not None and prefilled(form) == {"prompt": parent.prompt or ""}
    return await queued_from(
        await stack.fake.submit_modal(f"wan:extendform:{parent.id}", {"prompt": prompt}), stack)


async def test_extend_twice_posts_each_clip_and_the_whole_chain(wan: Stack, tmp_path: Path):
    """5 s -> 10 s -> 15 s: each new job starts from the last frame of the clip before it,
    and the chain video after each new clip lasts the sum of the clips."""
    clips = [clip(seconds=1.0, seed=n) for n in range(3)]
    wan.sim.config.result_video = clips[0]
    first = await delivered_i2v(wan)

    wan.sim.config.result_video = clips[1]
    second = await extend_by_button(wan, first, "it runs")
    assert (second.parent_id, second.command, second.model) == (first.id, "i2v", first.model)
    assert second.options["resolution"] == "480P" and second.prompt == "it runs"
    frame = received_image(wan.sim, await sent_body(wan, second), "img_url")
    assert mean_difference(frame, last_image(Path(first.video_path or ""))) < SAME_PICTURE
    second = await wan.wait_id(second.id, lambda j: j.state is JobState.DELIVERED)
    post = await chain_post(wan, second)
    assert "2 clips, 2 s" in post.content
    assert duration_s(saved(post, tmp_path / "two.mp4")) == pytest.approx(2.0, abs=0.01)

    wan.sim.config.result_video = clips[2]
    record = await wan.fake.slash("extend", {"job": second.id})
    third = await queued_from(record, wan)
    assert third.prompt == "it runs"  # the clip's own prompt when none is given
    frame = received_image(wan.sim, await sent_body(wan, third), "img_url")
    assert mean_difference(frame, last_image(Path(second.video_path or ""))) < SAME_PICTURE
    assert mean_difference(frame, last_image(Path(first.video_path or ""))) > OTHER_PICTURE
    third = await wan.wait_id(third.id, lambda j: j.state is JobState.DELIVERED)
    post = await chain_post(wan, third)
    assert duration_s(saved(post, tmp_path / "three.mp4")) == pytest.approx(3.0, abs=0.01)
    done = await wan.wait_id(third.id, lambda j: j.chain is not None and j.chain.done)
    assert done.chain is not None and done.chain.state == "posted" and done.chain.clips == 3
    assert not (wan.running.settings.video_dir / f"{third.id}.chain.mp4").exists()

    shown = await (await wan.fake.slash("job", {"id": third.id})).responded()
    [embed] = shown.data["embeds"]
    [chain] = [f["value"] for f in embed["fields"] if f["name"] == "Chain"]
    assert chain.startswith("3 clips:") and first.id in chain and second.id in chain
    assert "The whole chain" in chain


async def test_extend_with_a_last_frame_makes_first_last_frame(wan: Stack) -> None:
    wan.sim.config.result_video = clip(seconds=1.0)
    first = await delivered_i2v(wan, model="wan2.2-i2v-flash")
    record = await wan.fake.slash("extend", {"job": first.id, "prompt": "it lands"},
                                  attachments={"last_frame": image("end.png")})
    second = await queued_from(record, wan)
    assert (second.command, second.model) == ("kf2v", "wan2.2-kf2v-flash")
    body = await sent_body(wan, second)
    frame = received_image(wan.sim, body, "first_frame_url")
    assert mean_difference(frame, last_image(Path(first.video_path or ""))) < SAME_PICTURE
    assert body["input"]["prompt"] == "it lands"  # type: ignore[index]


async def test_extend_is_refused_to_who_may_not_and_spends_nothing(wan: Stack) -> None:
    """A private job is its requester's alone: bob's click gets no form, /extend refuses him
    too; nothing is decoded, uploaded or sent."""
    wan.sim.config.result_video = clip(seconds=1.0)
    private = await delivered_i2v(wan, private=True)
    [dm] = [m for m in wan.dms("alice") if "Extend" in labels(m)]
    uploads = len(wan.sim.uploads.objects)
    # bob cannot click a button in alice's DM; a forged click on the same custom_id is refused
    assert await refusal(await wan.fake.click(labels(dm)["Extend"], dm.id,
                                              user="bob")) == ONLY_REQUESTER
    assert await followup(await wan.fake.slash("extend", {"job": private.id},
                                               user="bob")) == ONLY_REQUESTER
    submitted = await wan.fake.submit_modal(f"wan:extendform:{private.id}", {"prompt": "x"},
                                            user="bob")
    assert await followup(submitted) == ONLY_REQUESTER
    assert len(wan.creates()) == 1 and len(wan.sim.uploads.objects) == uploads
    assert len(await wan.running.store.jobs()) == 1


async def test_every_clip_counts_toward_the_budget(wan: Stack) -> None:
    """10 s a day: the clip and one extension fit; the next extension is refused, with what
    is left, before anything is uploaded."""
    await wan.set_team(user_daily_seconds=10)
    wan.sim.config.result_video = clip(seconds=1.0)
    first = await delivered_i2v(wan)
    second = await extend_by_button(wan, first, "more")
    second = await wan.wait_id(second.id, lambda j: j.state is JobState.DELIVERED)
    uploads = len(wan.sim.uploads.objects)
    answer = await followup(await wan.fake.slash("extend", {"job": second.id}))
    assert answer.startswith("This job makes 5 s of video but your daily budget has 0 s left "
                             "of 10 s.") and answer.endswith("Nothing was submitted.")
    assert len(wan.creates()) == 2 and len(wan.sim.uploads.objects) == uploads


async def test_a_clip_gone_from_disk_posts_the_new_clip_and_says_why(wan: Stack) -> None:
    """The chain needs every clip's file: when one was deleted, the new clip is posted alone
    and a note says why."""
    wan.sim.config.result_video = clip(seconds=1.0)
    first = await delivered_i2v(wan)
    wan.sim.config.running_s = 3600.0
    second = await extend_by_button(wan, first, "more")
    await wan.wait_id(second.id, lambda j: j.state is JobState.RUNNING)
    os.unlink(first.video_path or "")  # as the sweep does once a video is old enough
    wan.clock.advance(3600.0)
    second = await wan.wait_id(second.id, lambda j: j.state is JobState.DELIVERED)
    note = await chain_post(wan, second)
    assert not note.files and f"the video of `{first.id}` is no longer kept here" in note.content
    assert len(wan.deliveries()) == 2  # both clips were posted


async def test_a_chain_too_large_for_the_channel_is_reencoded_to_fit(wan: Stack,
                                                                    tmp_path: Path) -> None:
    """Each clip fits the upload limit, the two together do not: the chain video is
    re-encoded to fit (h12fit's `fit_video`), and still lasts the sum of the clips."""
    wan.sim.config.result_video = clip(seconds=1.0)
    first = await delivered_i2v(wan)
    limit = len(clip(seconds=1.0)) * 3 // 2
    record = await wan.fake.slash("extend", {"job": first.id}, attachment_size_limit=limit)
    second = await queued_from(record, wan)
    second = await wan.wait_id(second.id, lambda j: j.chain is not None and j.chain.done)
    post = await chain_post(wan, second)
    assert "re-encoded to fit here" in post.content
    fitted = saved(post, tmp_path / "fitted.mp4")
    assert fitted.stat().st_size <= limit
    assert duration_s(fitted) == pytest.approx(2.0, abs=0.15)
    assert not list((wan.running.settings.video_dir).glob("*.chain*"))  # nothing left behind


async def test_a_restart_after_the_chain_was_posted_does_not_post_it_again(
        stack: Stack) -> None:
    """Killed right after the chain video went out, before that was written down: the next
    bot finds the post (its text names the job) and posts nothing more."""
    stack.sim.config.result_video = clip(seconds=1.0)
    async with stack.start() as bot:
        first = await delivered_i2v(stack)
        posted = asyncio.Event()
        post = bot.chains.poster.post_chain

        async def post_then_die(job: Job, chain: ChainVideo) -> Post:
            await post(job, chain)
            posted.set()
            await asyncio.Event().wait()  # the kill comes before the post is recorded
            raise AssertionError("unreachable")

        bot.chains.poster.post_chain = post_then_die  # type: ignore[method-assign]
        second = await queued_from(await stack.fake.slash("extend", {"job": first.id}), stack)
        await asyncio.wait_for(posted.wait(), 10)
        await stack.crash()
    assert (await stack_job(stack, second.id)).chain.state == "posting"  # type: ignore[union-attr]
    stack.updates.clear()
    async with stack.start():
        done = await stack.wait_id(second.id, lambda j: j.chain is not None and j.chain.done)
    assert done.chain is not None and done.chain.state == "posted"
    chain_posts = [m for m in stack.fake.messages[stack.channel_id]
                   if f"Chain of job `{second.id}`" in m.content]
    assert len(chain_posts) == 1 and done.chain.post is not None
    assert done.chain.post.message_id == str(chain_posts[0].id)


async def stack_job(stack: Stack, job_id: str) -> Job:
    """A job as stored, with no bot running."""
    store = await Store.open(stack.settings.database_path)
    try:
        found = await store.get_job(job_id)
    finally:
        await store.close()
    assert found is not None
    return found
