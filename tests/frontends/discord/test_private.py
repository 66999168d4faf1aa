"""Private jobs through discord.py: progress on the command's ephemeral answer while its token
lives, the video by direct message with a Share button, closed DMs, and exactly-once delivery
across a crash."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.engine import Job, JobState
from tests.discord_stack import Stack, die_after_posting, image, labels
from tests.fakediscord import FakeMessage, InteractionRecord

FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}
LONG_S = 3600.0


async def private_job(stack: Stack, user: str = "alice") -> tuple[InteractionRecord, Job]:
    """/kf2v private:true, queued; its record and job."""
    record = await stack.fake.slash("kf2v", {"prompt": "a secret cat", "private": True},
                                    attachments=FRAMES, user=user)
    [answer] = await record.wait_followups(1)
    job = await stack.wait_job(lambda j: j.private and j.progress_ref is not None)
    assert answer.ephemeral and f"Job `{job.id}` is private" in answer.content
    return record, job


async def dm_of(stack: Stack, user: str = "alice") -> FakeMessage:
    return await stack.fake.wait_for_message(stack.fake.dm_channel(user).id)


async def test_private_progress_is_ephemeral_and_the_video_comes_by_dm(wan: Stack) -> None:
    """Nothing public in the channel; the answer shows the progress; the DM has the video."""
    record, job = await private_job(wan)
    done = await wan.wait_id(job.id, lambda j: j.state is JobState.DELIVERED)
    answer = await wan.fake.wait_for(
        lambda: record.original if "Done" in str(record.original.embeds) else None,  # type: ignore[union-attr]
        what="the final edit of the private answer")
    assert answer.ephemeral and answer.embeds[0]["footer"]["text"] == f"Job {job.id}"
    assert wan.fake.messages[wan.channel_id] == []
    dm = await dm_of(wan)
    assert dm.content == f"Your video is ready. Job `{job.id}`"
    assert dm.files[0].filename == f"wan-{job.id}.mp4"
    assert list(labels(dm)) == ["Share", "Rerun", "Edit and rerun", "Extend",
                                 "Delete"]
    assert done.delivery is not None and done.delivery.place == "dm"
    assert wan.fake.requests_to("PATCH", r"^/channels/") == []  # only the token edited it


@pytest.mark.parametrize("restart", [False, True], ids=["same bot", "after restart"])
async def test_share_posts_to_the_channel_once(stack: Stack, restart: bool) -> None:
    """Only the requester may share; it lands in the job's channel once, with only Delete;
    the button goes."""
    async with stack.start():
        _, job = await private_job(stack)
        await stack.wait_id(job.id, lambda j: j.state is JobState.DELIVERED)
        dm = await dm_of(stack)
        if not restart:
            await check_share(stack, job, dm)
    if restart:
        async with stack.start():
            await check_share(stack, job, dm)


async def check_share(stack: Stack, job: Job, dm: FakeMessage) -> None:
    share = labels(dm)["Share"]
    refused = await stack.fake.click(share, dm.id, user="bob")
    assert "Only the person who started this job" in (await refused.responded()).data["content"]
    assert stack.fake.messages[stack.channel_id] == [] and "Share" in labels(dm)
    click = await stack.fake.click(share, dm.id, user="alice")
    assert (await click.responded()).type == 7  # the button goes at once
    [note] = await click.wait_followups(1)
    [posted] = stack.fake.messages[stack.channel_id]
    assert posted.content == f"<@{stack.fake.user('alice').id}> shared this video. Job `{job.id}`"
    assert posted.files and list(labels(posted)) == ["Delete"]  # the prompt stays private
    assert note.ephemeral and note.content.startswith("Shared in the job's channel: ")
    assert str(posted.id) in note.content and "Share" not in labels(dm)
    shared = (await stack.job(job.id)).delivery
    assert shared is not None and shared.shared is not None
    assert shared.shared.message_id == str(posted.id)


async def test_closed_dms_put_the_video_on_the_private_answer(wan: Stack) -> None:
    """DMs closed (403) while the token lives: the ephemeral answer carries the video and a
    Share button, which works."""
    wan.fake.user("alice").dms_open = False
    record, job = await private_job(wan)
    done = await wan.wait_id(job.id, lambda j: j.state is JobState.DELIVERED)
    answer = record.original
    assert answer is not None and done.delivery is not None
    assert done.delivery.place == "ephemeral" and answer.ephemeral
    assert answer.content.startswith("I could not send you a DM") and answer.files
    assert wan.dms("alice") == []
    await wan.fake.wait_for(lambda: answer if "Share" in labels(answer) else None,
                            what="Share on the answer")
    click = await wan.fake.click(labels(answer)["Share"], answer.id)
    await click.wait_followups(1)
    [posted] = wan.fake.messages[wan.channel_id]
    assert "shared this video" in posted.content and posted.files


async def test_closed_dms_after_the_token_died_make_the_job_undeliverable(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """No DM and no live token: the job fails as undeliverable; edits stop without errors."""
    stack.sim.config.running_s = LONG_S
    stack.fake.user("alice").dms_open = False
    async with stack.start() as bot:
        record, job = await private_job(stack)
        await stack.wait_id(job.id, lambda j: j.state is JobState.RUNNING)
        await bot.progress.settle()
        record.expire()  # 15 minutes pass for Discord...
        assert job.progress_ref is not None
        ref = replace(job.progress_ref, expires_at=0.0)  # ...and for the bot
        await bot.store.update_job(job.id, progress_ref=ref)
        hooks = len([r for r in stack.fake.requests if r.path.startswith("/webhooks/")])
        stack.clock.advance(LONG_S)
        failed = await stack.wait_id(job.id, lambda j: j.state is JobState.FAILED)
        await bot.progress.settle()
    assert failed.error_code == "Undeliverable"
    assert len([r for r in stack.fake.requests if r.path.startswith("/webhooks/")]) == hooks
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_a_crash_after_the_dm_does_not_send_it_twice(stack: Stack) -> None:
    """Killed right after the DM went out: the next bot finds it and sends nothing more."""
    async with stack.start() as bot:
        posted = die_after_posting(bot)
        _, job = await private_job(stack)
        await asyncio.wait_for(posted.wait(), 10)
        await stack.crash()
    [dm] = stack.dms("alice")
    async with stack.start():
        done = await stack.wait_id(job.id, lambda j: j.state is JobState.DELIVERED)
    assert done.delivery is not None and done.delivery.message_id == str(dm.id)
    assert len(stack.dms("alice")) == 1 and len(stack.creates()) == 1


async def test_rerun_from_the_dm_stays_private(stack: Stack) -> None:
    """Rerun in the DM checks the roles through the server (the click carries no member) and
    makes a new private job whose progress is the click's own ephemeral answer."""
    animators = stack.add_role("Animators", "alice")
    async with stack.start():
        _, job = await private_job(stack)
        await stack.wait_id(job.id, lambda j: j.state is JobState.DELIVERED)
        await stack.set_team(generate_role_ids=(animators,))
        dm = await dm_of(stack)
        click = await stack.fake.click(labels(dm)["Rerun"], dm.id)
        [answer] = await click.wait_followups(1)
        again = await stack.wait_job(lambda j: j.display.rerun_of == job.id)
        done = await stack.wait_id(again.id, lambda j: j.state is JobState.DELIVERED)
    assert answer.ephemeral and f"Job `{again.id}` is private" in answer.content
    assert done.private and done.channel_id == job.channel_id
    assert done.progress_ref is not None and done.progress_ref.kind == "interaction"
    assert stack.fake.requests_to("GET", r"^/guilds/\d+/members/\d+$")
    assert len(stack.dms("alice")) == 2 and stack.fake.messages[stack.channel_id] == []


async def shared(stack: Stack) -> tuple[Job, FakeMessage, FakeMessage]:
    """alice's private job, delivered and shared: the job, her DM and the shared post."""
    _, job = await private_job(stack)
    await stack.wait_id(job.id, lambda j: j.state is JobState.DELIVERED)
    dm = await dm_of(stack)
    click = await stack.fake.click(labels(dm)["Share"], dm.id)
    await click.wait_followups(1)
    [posted] = stack.fake.messages[stack.channel_id]
    return job, dm, posted


def seen_by(stack: Stack, user: str) -> str:
    """Everything the bot answered `user`'s interactions with, as one text."""
    records = [r for r in stack.fake.interactions if r.user is stack.fake.user(user)]
    return repr([(a.data, [(m.content, m.embeds) for m in r.followups]) for r in records
                 for a in r.attempts])


async def test_a_shared_private_job_shows_others_only_its_video(wan: Stack) -> None:
    """After Share the post has no Rerun or Edit; bob's Rerun, Edit and /job on the job (the
    buttons of an older post) are refused, no form opens, and its prompt never reaches him."""
    job, dm, posted = await shared(wan)
    assert list(labels(posted)) == ["Delete"] and not posted.embeds
    rerun = await wan.fake.click(labels(dm)["Rerun"], dm.id, user="bob")
    await rerun.wait_followups(1)
    edit = await wan.fake.click(labels(dm)["Edit and rerun"], dm.id, user="bob")
    assert (await edit.responded()).type == 4  # a note, not the form
    lookup = await wan.fake.slash("job", {"id": job.id}, user="bob")
    assert "can't find a job" in (await lookup.responded()).data["content"]
    assert wan.fake.opened_modal(f"wan:editform:{job.id}") is None
    assert len(await wan.running.store.jobs()) == 1
    assert "a secret cat" not in seen_by(wan, "bob") and "Only the person" in seen_by(wan, "bob")


async def test_a_forged_edit_form_cannot_rerun_someone_elses_private_job(wan: Stack) -> None:
    """bob submits an edit form for alice's private job that was never opened for him:
    refused, and nothing is queued."""
    _, job = await private_job(wan)
    await wan.wait_id(job.id, lambda j: j.state is JobState.DELIVERED)
    record = await wan.fake.submit_modal(f"wan:editform:{job.id}",
                                         {"prompt": "mine now", "seed": ""}, user="bob")
    [note] = await record.wait_followups(1)
    assert note.content == "Only the person who started this job can do that."
    assert len(await wan.running.store.jobs()) == 1 and len(wan.creates()) == 1
