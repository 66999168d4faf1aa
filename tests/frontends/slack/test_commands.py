"""Slack commands through slack-bolt against the fake Slack: links in the text queue at once, no
links open the modal, files from the modal are fetched with the bot token, the video lands in
the progress message's thread; bad input is refused (in the ack where it can be) and nothing is
sent to the provider."""

from __future__ import annotations

import aiohttp

from bot.engine import JobState
from tests.discord_stack import png
from tests.slack_stack import SlackStack
from tests.slack_steps import hook_texts


async def test_links_in_the_text_queue_at_once_and_the_video_lands_in_the_thread(
    wan: SlackStack,
) -> None:
    """/kf2v <a> <b> resolution=480P seed=7 prompt: a progress message that mentions the
    person, edited as the job moves, and the provider's MP4 uploaded into its thread."""
    first, last = wan.frames()
    record = await wan.fake.slash("/kf2v", f"<{first}> <{last}|b.png> resolution=480P seed=7 "
                                  "a cat &amp; a dog look up")
    assert (await record.acked()).late is False
    done = await wan.wait_state(JobState.DELIVERED)
    assert done.options["resolution"] == "480P" and done.seed == 7
    assert done.prompt == "a cat & a dog look up"
    progress = wan.fake.messages_in("general")[0]
    alice = wan.fake.user("alice").id
    assert f"<@{alice}>" in str(progress.blocks) and progress.ts == done.progress_ref.message_id
    upload = await wan.fake.wait_for_upload(f"wan-{done.id}.mp4")
    async with aiohttp.ClientSession() as http, http.get(done.result_url or "") as answer:
        assert upload.data == await answer.read()
    [reply] = [m for m in wan.fake.thread("general", progress.ts) if m.files]
    assert reply.files[0].title == f"wan-{done.id}.mp4"
    await wan.fake.wait_for(lambda: "Done" in str(wan.fake.messages_in("general")[0].blocks)
                            or None, what="the summary")
    assert len(wan.creates()) == 1


async def test_no_links_open_the_modal(wan: SlackStack) -> None:
    """/kf2v alone: a modal with a file input per frame, a link box beside each, the options."""
    await (await wan.fake.slash("/kf2v")).acked()
    [view] = await wan.fake.wait_for(lambda: wan.fake.open_views("wan:new:kf2v") or None)
    blocks = [b["block_id"] for b in view.blocks]
    assert blocks[:4] == ["first_frame", "first_frame_url", "last_frame", "last_frame_url"]
    assert {"prompt", "negative_prompt", "model", "resolution", "flags"} <= set(blocks)
    element = view.block("first_frame")["element"]
    assert element["type"] == "file_input" and "png" in element["filetypes"]


async def test_files_from_the_modal_are_fetched_with_the_token(wan: SlackStack) -> None:
    """Two private files submitted in the modal: fetched with the bot token, handed over as
    uploads, and the job is delivered."""
    await (await wan.fake.slash("/kf2v")).acked()
    await wan.fake.wait_for(lambda: wan.fake.open_views("wan:new:kf2v") or None)
    a, b = wan.fake.user_file("a.png", png()), wan.fake.user_file("b.png", png())
    ack = await (await wan.fake.submit_view("wan:new:kf2v", {
        "first_frame": a, "last_frame": b, "prompt": "a cat looks up"})).acked()
    assert ack.errors == {}
    done = await wan.wait_state(JobState.DELIVERED)
    assert done.display.inputs == {"first_frame": "a.png", "last_frame": "b.png"}
    assert all(str(url).startswith("oss://") for url in done.media.values())
    assert done.oss


async def test_a_missing_frame_is_refused_in_the_ack(wan: SlackStack) -> None:
    """Cheap errors come back on the block that is wrong; nothing reaches the provider."""
    await (await wan.fake.slash("/kf2v")).acked()
    await wan.fake.wait_for(lambda: wan.fake.open_views("wan:new:kf2v") or None)
    a = wan.fake.user_file("a.png", png())
    ack = await (await wan.fake.submit_view("wan:new:kf2v", {"first_frame": a})).acked()
    assert ack.response_action == "errors" and "last_frame" in ack.errors
    assert [r for r in wan.sim.requests if r.route in ("create", "policy", "upload")] == []


async def test_a_private_address_is_refused_after_the_ack(wan: SlackStack) -> None:
    """A link to a private network address: a private note, nothing fetched or sent."""
    record = await wan.fake.slash("/i2v", "<http://10.0.0.1/a.png> a cat")
    await record.acked()
    texts = await wan.fake.wait_for(lambda: hook_texts(wan.fake, record) or None)
    assert "private network address" in texts[0] and "Nothing was submitted" in texts[0]
    assert wan.creates() == []


async def test_a_bad_option_is_named(wan: SlackStack) -> None:
    """An option a model does not support is refused naming it and what it supports."""
    first, last = wan.frames()
    record = await wan.fake.slash("/kf2v", f"<{first}> <{last}> resolution=4K a cat")
    await record.acked()
    [text] = await wan.fake.wait_for(lambda: hook_texts(wan.fake, record) or None)
    assert text.startswith("*resolution*") and wan.creates() == []


async def test_not_in_the_channel_says_how_to_invite(wan: SlackStack) -> None:
    """A private channel the bot is not in: the job stops and the person is told /invite."""
    first, last = wan.frames()
    record = await wan.fake.slash("/kf2v", f"<{first}> <{last}> a cat", channel="secret")
    await record.acked()
    texts = await wan.fake.wait_for(
        lambda: [t for t in hook_texts(wan.fake, record) if "/invite" in t] or None)
    assert "/invite @wanbot" in texts[0]
    job = await wan.wait_job(lambda j: j.state is JobState.CANCELED)
    assert job.progress_ref is None


async def test_a_public_channel_without_the_bot_gets_the_link(wan: SlackStack) -> None:
    """#random (public, bot not in it): the progress posts (chat:write.public) but files need
    membership, so the video comes as its link with the /invite hint, not as a failure."""
    first, last = wan.frames()
    await (await wan.fake.slash("/kf2v", f"<{first}> <{last}> a cat", channel="random")).acked()
    done = await wan.wait_job(lambda j: j.terminal)
    assert done.state is JobState.DELIVERED and done.delivery is not None
    assert done.delivery.mode == "link" and done.progress_ref is not None
    [reply] = wan.fake.thread("random", done.progress_ref.message_id)
    assert done.result_url and done.result_url in reply.text and "/invite @wanbot" in reply.text
