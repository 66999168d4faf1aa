"""Progress messages and delivery through discord.py: edits with the bot token after the
interaction token died, throttling, 429s, the video as a file or a link, the final summary."""

from __future__ import annotations

import asyncio
import io
import itertools
import re
from dataclasses import replace
from typing import Any

import aiohttp
import av
from PIL import Image

from bot.engine import Delivery, Display, Job, JobState, Store
from bot.frontends.discord.delivery import DM_UPLOAD_LIMIT
from bot.units import MiB
from tests.discord_stack import (
    EDITS,
    MESSAGES,
    PROGRESS_INTERVAL_S,
    Stack,
    expired_id_time,
    image,
    reply,
)
from tests.fakediscord import FakeMessage, InteractionRecord

FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}


LONG_S = 3600.0  # a provider run that lasts until the test moves the clock on


def fields(message: FakeMessage) -> dict[str, str]:
    embeds = message.embeds
    return {f["name"]: f["value"] for f in embeds[0]["fields"]} if embeds else {}


async def generating(stack: Stack) -> FakeMessage:
    """The progress message once an edit shows the provider at work."""
    return await stack.fake.wait_for_edit(
        stack.channel_id, lambda m: fields(m).get("Status") == "Generating")


async def kf2v(stack: Stack, options: dict[str, Any] | None = None) -> InteractionRecord:
    """/kf2v with two good frames, answered."""
    record = await stack.fake.slash("kf2v", {"prompt": "a cat turns", **(options or {})},
                                    attachments=FRAMES)
    await reply(record)
    return record


async def delivered(stack: Stack) -> tuple[Job, FakeMessage]:
    """The delivered job and its delivery message."""
    job = await stack.wait_state(JobState.DELIVERED)
    assert job.delivery is not None
    message = await stack.fake.wait_for_message(
        stack.channel_id, lambda m: m.id == int(job.delivery.message_id))  # type: ignore[index]
    return job, message


async def summary(stack: Stack, job: Job) -> FakeMessage:
    """The progress message once it shows the finished job."""
    return await stack.fake.wait_for_edit(
        stack.channel_id, lambda m: fields(m).get("Status") == "Done",
        message_id=int(job.progress_ref.message_id))  # type: ignore[index]


async def test_video_is_posted_as_a_reply_with_the_providers_bytes(wan: Stack) -> None:
    """The mp4 is attached to a reply to the progress message that mentions the requester."""
    record = await kf2v(wan)
    job, message = await delivered(wan)
    progress_id = int(job.progress_ref.message_id)  # type: ignore[index]
    assert int(message.data["message_reference"]["message_id"]) == progress_id
    assert f"<@{record.user.id}>" in message.content
    assert [u["id"] for u in message.data["mentions"]] == [str(record.user.id)]
    async with aiohttp.ClientSession() as http, http.get(job.result_url or "") as answer:
        provider_bytes = await answer.read()
    [video] = message.files
    assert video.filename == f"wan-{job.id}.mp4" and video.data == provider_bytes
    assert job.delivery == Delivery(channel_id=str(wan.channel_id), message_id=str(message.id),
                                    mode="file")


async def test_progress_message_becomes_the_summary(wan: Stack) -> None:
    """Done: model, options, seed, the rewritten prompt, video length, time taken."""
    record = await kf2v(wan, options={"seed": 7, "resolution": "480P"})
    job, _ = await delivered(wan)
    message = await summary(wan, job)
    shown = fields(message)
    assert message.embeds[0]["title"] == "/kf2v · wan2.2-kf2v-flash"
    assert message.embeds[0]["description"] == "> a cat turns"
    assert "resolution=480P" in shown["Options"] and "seed=7" in shown["Options"]
    assert shown["Seed"] == "7" and shown["Video"] == "5 s"
    assert shown["Rewritten prompt"].startswith("> a cat turns Cinematic lighting")
    assert shown["Took"].endswith("s")
    assert message.content == f"<@{record.user.id}> started job `{job.id}`."
    assert message.embeds[0]["footer"]["text"] == f"Job {job.id}"


async def test_small_channel_limit_posts_the_link(wan: Stack) -> None:
    """A video over the channel's limit (the interaction's attachment_size_limit) that no
    re-encode fits goes out as its 24-hour link with a poster frame, never uploaded."""
    wan.fake.channel("general").upload_limit = 1000
    await kf2v(wan)
    job, message = await delivered(wan)
    [poster] = message.files
    assert poster.filename == f"wan-{job.id}.jpg" and poster.content_type == "image/jpeg"
    with Image.open(io.BytesIO(poster.data)) as still:
        assert still.size == (160, 96)  # the simulator's video's own frame
    assert job.result_url and job.result_url in message.content
    assert "expires 24 hours" in message.content
    assert job.delivery is not None and job.delivery.mode == "link"
    uploads = [name for r in wan.fake.requests_to("POST", MESSAGES) for name, _ in r.files]
    assert uploads == [f"wan-{job.id}.jpg"]


async def test_413_from_discord_falls_back_to_the_link(wan: Stack) -> None:
    """Discord refusing the upload (413, 40005) gets the link instead, with a fresh request."""
    await kf2v(wan)
    await wan.wait_state(JobState.RUNNING)
    fault = wan.fake.fail_next("POST", MESSAGES, status=413)
    job, message = await delivered(wan)
    posts = wan.fake.requests_to("POST", MESSAGES)[1:]  # after the progress message
    assert [(r.status, bool(r.files)) for r in posts] == [(413, False), (200, False)]
    assert fault.hits == 1  # the refused request was the upload (answered before its body)
    assert message.files == [] and job.result_url in message.content
    assert len(wan.deliveries()) == 1


async def test_guild_limit_applies_without_one_from_the_interaction(wan: Stack) -> None:
    """Jobs that carry no limit use the guild's filesize_limit, not a constant."""
    bot = wan.running
    guild = bot.get_guild(wan.fake.guild.id)
    assert guild is not None
    job = Job(id="j", platform="discord", team_id=str(guild.id), channel_id="1", user_id="2",
              command="kf2v", model="wan2.2-kf2v-flash", state=JobState.SUCCEEDED, created_at=0)
    assert bot.deliverer.upload_limit(job) == guild.filesize_limit
    assert bot.deliverer.upload_limit(replace(job, display=Display(upload_limit=5))) == 5
    assert bot.deliverer.upload_limit(replace(job, private=True)) == DM_UPLOAD_LIMIT


async def test_edits_use_the_bot_token_after_the_interaction_token_died(wan: Stack) -> None:
    """With a 16-minute-old interaction, every progress edit is a channel PATCH that works."""
    wan.sim.config.running_s = LONG_S
    record = await wan.fake.slash("kf2v", {"prompt": "late"}, attachments=FRAMES,
                                  id_time=expired_id_time())
    await generating(wan)
    wan.clock.advance(LONG_S)
    job, _ = await delivered(wan)
    await summary(wan, job)
    assert record.token_expired()
    progress = f"/channels/{wan.channel_id}/messages/{job.progress_ref.message_id}"  # type: ignore[index]
    edits = wan.fake.requests_to("PATCH", EDITS)
    assert len(edits) >= 2 and {(r.path, r.status) for r in edits} == {(progress, 200)}
    hooks = [(r.method, r.status) for r in wan.fake.requests if r.path.startswith("/webhooks/")]
    assert hooks == [("POST", 401)]  # only the command's own answer tried the dead token


async def test_edits_are_throttled_and_coalesced(wan: Stack) -> None:
    """Edits of one message are at least the interval apart; quick changes merge into one."""
    wan.sim.config.running_s = LONG_S
    await kf2v(wan)
    await generating(wan)
    wan.clock.advance(LONG_S)
    job, _ = await delivered(wan)
    await summary(wan, job)
    post = wan.fake.requests_to("POST", MESSAGES)[0]
    edits = wan.fake.requests_to("PATCH", EDITS)
    times = [post.at, *(r.at for r in edits)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps and min(gaps) >= PROGRESS_INTERVAL_S * 0.99
    states = {u.job.state for u in wan.updates if u.job.id == job.id}
    assert len(edits) < len(states)


async def test_an_unchanged_update_is_not_sent(wan: Stack) -> None:
    """Showing the same thing again costs no request."""
    wan.sim.config.running_s = LONG_S
    await kf2v(wan)
    job = await wan.wait_state(JobState.RUNNING)
    await generating(wan)
    board, engine = wan.running.progress, wan.running.engine
    await board.settle()
    before = len(wan.fake.requests_to("PATCH", EDITS))
    current = await engine.update_for(await wan.job(job.id))
    await board.on_update(current)
    await board.settle()
    assert len(wan.fake.requests_to("PATCH", EDITS)) == before


async def test_a_429_on_an_edit_is_waited_out(wan: Stack) -> None:
    """A rate-limited edit is retried after Retry-After and lands."""
    wan.fake.fail_next("PATCH", EDITS, status=429, retry_after=0.05)
    await kf2v(wan)
    job, _ = await delivered(wan)
    await summary(wan, job)
    statuses = [r.status for r in wan.fake.requests_to("PATCH", EDITS)]
    assert statuses[:2] == [429, 200] and set(statuses[1:]) == {200}


async def test_queue_position_is_shown_and_kept_current(stack: Stack) -> None:
    """With one slot, the third job shows its place in line and moves up."""
    stack.sim.config.running_s = LONG_S
    async with stack.start(concurrency={"wan2.2-kf2v-flash": 1}):
        await kf2v(stack)
        await stack.wait_state(JobState.RUNNING)
        for user in ("bob", "carol"):
            await reply(await stack.fake.slash("kf2v", {"prompt": user}, attachments=FRAMES,
                                               user=user))
        third = stack.fake.messages[stack.channel_id][2]
        assert fields(third)["Status"] == "Queued: 2nd in line"
        stack.clock.advance(LONG_S)  # the first finishes, the second starts
        await stack.fake.wait_for_edit(
            stack.channel_id, lambda m: fields(m).get("Status") == "Queued: 1st in line",
            message_id=third.id)


async def test_running_job_shows_an_eta_and_a_progress_bar(stack: Stack) -> None:
    """With a history of the model's durations, the message has an ETA and a bar."""
    store = await Store.open(stack.settings.database_path)
    for n in range(6):
        await store.insert_job(Job(
            id=f"old{n}", platform="discord", team_id="0", channel_id="0", user_id="0",
            command="kf2v", model="wan2.2-kf2v-flash", state=JobState.DELIVERED,
            created_at=1.0, finished_at=100.0 + n, provider_seconds=LONG_S + n))
    await store.close()
    stack.sim.config.running_s = LONG_S
    async with stack.start():
        await kf2v(stack)
        message = await generating(stack)
    shown = fields(message)
    assert shown["Status"] == "Generating" and shown["Expected"].startswith("<t:")
    assert re.fullmatch(r"`[█░]{12} \d+%`", shown["Progress"])


async def test_a_1080p_video_over_10_mib_arrives_as_a_file_that_fits(wan: Stack,
                                                                      clip_1080p) -> None:
    """A 1080P result of ~18 MiB in a channel of 10 MiB (the interaction's
    attachment_size_limit): re-encoded under it and attached, playable, with the original's
    link beside it for the full quality."""
    wan.sim.config.result_video = await asyncio.to_thread(clip_1080p.read_bytes)
    limit = 10 * MiB
    assert wan.fake.channel("general").upload_limit == limit
    await kf2v(wan)
    job, message = await delivered(wan)
    [video] = message.files
    assert video.filename == f"wan-{job.id}.mp4" and 0.9 * limit <= len(video.data) <= limit
    with av.open(io.BytesIO(video.data)) as played:
        assert [s.codec_context.name for s in played.streams] == ["h264", "aac"]
        assert played.streams.video[0].codec_context.height == 1080
    assert job.result_url and f"<{job.result_url}>" in message.content
    assert "Re-encoded to 1080p to fit" in message.content
    assert job.delivery is not None and job.delivery.mode == "file"
    assert job.fit is not None and job.fit.size_bytes == len(video.data)
    assert len(wan.deliveries()) == 1
