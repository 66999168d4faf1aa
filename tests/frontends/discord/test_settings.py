"""Team settings applied by the bot through discord.py, each written to the store with
`teams.save` and taking effect without a restart: roles that may generate, default model
and resolution, limits at admission (and their messages), and the gallery channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Job, JobState, Post
from bot.frontends.common.teams import DAY_S, day_start
from tests.discord_stack import Stack, image, labels, png, reply
from tests.fakediscord import FakeMessage

FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}
LONG_S = 3600.0


async def kf2v(stack: Stack, user: str = "alice", **options: Any) -> str:
    """/kf2v as `user`; the text of its answer."""
    record = await stack.fake.slash("kf2v", {"prompt": "a cat turns", **options},
                                    attachments=FRAMES, user=user)
    return (await reply(record)).content


def job_id(answer: str) -> str:
    """The id in a command's answer (public: "Queued as job `id`", private: "Job `id` ...")."""
    assert answer.startswith(("Queued as job `", "Job `")), answer
    return answer.split("`")[1]


@pytest.fixture
async def early(stack: Stack) -> AsyncIterator[Stack]:
    """The stack at the start of a UTC day (by the shared clock), so no test crosses midnight;
    alice holds the role "Animators"; a #gallery channel exists; the bot running."""
    stack.clock.advance(day_start(stack.clock.now()) + DAY_S + 60 - stack.clock.now())
    stack.add_role("Animators", "alice")
    stack.add_channel("gallery")
    async with stack.start():
        yield stack


def role_id(stack: Stack, name: str) -> str:
    return str(next(r.id for r in stack.fake.guild.roles if r.name == name))


# --------------------------------------------------------------------------- roles


async def test_roles_refuse_others_kindly_and_a_change_applies_at_once(early: Stack) -> None:
    """bob lacks the role: refused by name before anything is fetched; carol (Manage Server)
    and alice may; clearing the roles lets bob in without a restart."""
    await early.set_team(generate_role_ids=(role_id(early, "Animators"),))
    answer = await kf2v(early, "bob")
    assert answer == ("Only members with the role **Animators** can make videos here; ask a "
                      "server admin.")
    assert early.fake.requests_to("GET", r"^/attachments/") == [] and early.creates() == []
    job_id(await kf2v(early, "alice"))
    job_id(await kf2v(early, "carol"))
    await early.set_team()
    job_id(await kf2v(early, "bob"))
    assert len(await early.running.store.jobs()) == 3


# --------------------------------------------------------------------------- defaults


async def test_default_model_and_resolution_apply_when_none_is_given(early: Stack) -> None:
    """The team's /i2v defaults fill what the person left out, not what they chose."""
    await early.set_team(defaults={"i2v": {"model": "wan2.2-i2v-flash", "resolution": "480P"}})
    for options in ({}, {"resolution": "720P"}):
        record = await early.fake.slash("i2v", options, attachments={"image": image()})
        job_id((await reply(record)).content)
    await early.fake.wait_for(lambda: early.creates() if len(early.creates()) == 2 else None,
                              what="two creates")
    bodies = sorted((c.body for c in early.creates()), key=lambda b: b["parameters"]["resolution"])
    assert [b["model"] for b in bodies] == ["wan2.2-i2v-flash"] * 2
    assert [b["parameters"]["resolution"] for b in bodies] == ["480P", "720P"]


# --------------------------------------------------------------------------- limits

LIMITS = {
    "concurrent jobs": (
        {"user_max_concurrent": 1}, "alice",
        "You already have 1 unfinished job(s); the limit is 1. Try again when one finishes."),
    "user daily seconds": (
        {"user_daily_seconds": 7}, "alice",
        "This job makes 5 s of video but your daily budget has 2 s left of 7 s."),
    "server daily seconds": (
        {"team_daily_seconds": 7}, "bob",
        "This job makes 5 s of video but this server's daily budget has 2 s left of 7 s."),
}


@pytest.mark.parametrize("case", list(LIMITS))
async def test_a_limit_refuses_before_queueing_and_says_what_is_left(
    early: Stack, case: str
) -> None:
    """The second job is refused with what is left and when it resets (a Discord timestamp);
    raising the limit lets it through at once."""
    limits, second, reason = LIMITS[case]
    early.sim.config.running_s = LONG_S  # the first stays unfinished
    await early.set_team(**limits)
    first = job_id(await kf2v(early))
    answer = await kf2v(early, second)
    resets = int(day_start(early.clock.now()) + DAY_S)
    tail = "" if case == "concurrent jobs" else f" It resets <t:{resets}:R> (<t:{resets}:t>)."
    assert answer == f"{reason}{tail}\nNothing was submitted."
    assert [j.id for j in await early.running.store.jobs()] == [first]
    await early.set_team(**{k: v * 2 for k, v in limits.items()})
    job_id(await kf2v(early, second))


async def test_sixty_commands_over_a_limit_of_two_fetch_only_two(early: Stack) -> None:
    """Sixty /i2v at once against 2 unfinished jobs: 58 are refused before their image is
    fetched, so only two are ever downloaded and uploaded."""
    early.sim.config.running_s = LONG_S
    await early.set_team(user_max_concurrent=2, user_daily_seconds=None)
    links = [early.media.add(f"{n}.png", png()) for n in range(60)]
    records = await asyncio.gather(*(early.fake.slash("i2v", {"image_url": link})
                                     for link in links))
    answers = [(await reply(record)).content for record in records]
    assert sum(a.startswith("Queued as job") for a in answers) == 2
    assert sum(a.startswith("You already have 2 unfinished job(s); the limit is 2.")
               for a in answers) == 58
    assert len(early.media.served) == 2
    assert len([r for r in early.sim.requests if r.route == "upload"]) == 2


async def test_a_rerun_goes_through_the_limits(early: Stack) -> None:
    """Rerun over the daily budget is refused like a command, and queues nothing."""
    answer = await kf2v(early)
    done = await early.wait_id(job_id(answer), lambda j: j.state is JobState.DELIVERED)
    await early.set_team(user_daily_seconds=7)
    result = early.message(done.delivery)
    click = await early.fake.click(labels(result)["Rerun"], result.id)
    [note] = await click.wait_followups(1)
    assert note.content.startswith("This job makes 5 s of video but your daily budget has 2 s")
    assert len(await early.running.store.jobs()) == 1


# --------------------------------------------------------------------------- gallery


def gallery_posts(stack: Stack) -> list[FakeMessage]:
    return list(stack.fake.messages[stack.fake.channel("gallery").id])


def fields(message: FakeMessage) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message.embeds[0]["fields"]}


async def test_every_finished_video_is_also_posted_to_the_gallery(early: Stack) -> None:
    """Set without a restart: the next public video goes to the gallery too, once, with its
    prompt, options, requester and a link to its message; private ones stay out."""
    first = await early.wait_id(job_id(await kf2v(early)), lambda j: j.terminal)
    await early.set_team(gallery_channel_id=str(early.fake.channel("gallery").id))
    second = await early.wait_id(job_id(await kf2v(early, seed=3)), lambda j: j.terminal)
    private = job_id(await kf2v(early, private=True))
    await early.wait_id(private, lambda j: j.terminal)
    [post] = gallery_posts(early)
    assert first.delivery is not None and first.delivery.gallery is None
    assert second.delivery is not None and second.delivery.gallery.message_id == str(
        post.id)
    embed, shown = post.embeds[0], fields(post)
    assert embed["description"] == "> a cat turns" and "seed=3" in shown["Options"]
    assert shown["By"] == f"<@{early.fake.user('alice').id}>"
    link = (f"https://discord.com/channels/{early.team_id}/{early.channel_id}/"
            f"{second.delivery.message_id}")
    assert shown["Job"] == f"[{second.id}]({link})"
    assert embed["footer"]["text"] == f"Gallery · job {second.id}"
    assert post.files and list(labels(post)) == ["Rerun", "Edit and rerun", "Extend",
                                                   "Delete"]
    [sent] = early.fake.requests_to("POST", rf"^/channels/{post.channel_id}/messages$")
    assert sent.json["allowed_mentions"]["parse"] == []  # names the requester, pings nobody


@pytest.mark.parametrize("dies", ["before the gallery post", "after the gallery post"])
async def test_the_gallery_post_is_made_once_across_a_crash(stack: Stack, dies: str) -> None:
    """Killed between the channel post and the gallery post, or after both before anything
    was written: the next bot posts what is missing, and nothing twice."""
    stack.add_channel("gallery")
    posted = asyncio.Event()
    async with stack.start() as bot:
        await stack.set_team(gallery_channel_id=str(stack.fake.channel("gallery").id))
        ensure = bot.deliverer.gallery.ensure

        async def die(job: Job, where: Post, *, look_first: bool) -> Post | None:
            if dies == "after the gallery post":
                await ensure(job, where, look_first=look_first)
            posted.set()
            await asyncio.Event().wait()  # the kill comes first
            raise AssertionError("unreachable")

        bot.deliverer.gallery.ensure = die  # type: ignore[method-assign]
        answer = await kf2v(stack)
        await asyncio.wait_for(posted.wait(), 10)
        await stack.crash()
    assert len(stack.deliveries()) == 1
    async with stack.start():
        done = await stack.wait_id(job_id(answer), lambda j: j.state is JobState.DELIVERED)
    [post] = gallery_posts(stack)
    assert done.delivery is not None and done.delivery.gallery.message_id == str(post.id)
    assert len(stack.deliveries()) == 1 and len(stack.creates()) == 1


async def test_a_gallery_the_bot_may_not_post_in_does_not_fail_the_job(
    early: Stack, tmp_path: Path
) -> None:
    """Discord refusing the gallery post (403): the job is still delivered in its channel."""
    gallery = early.fake.channel("gallery").id
    await early.set_team(gallery_channel_id=str(gallery))
    early.fake.fail_next("POST", rf"^/channels/{gallery}/messages$", status=403)
    done = await early.wait_id(job_id(await kf2v(early)), lambda j: j.terminal)
    assert done.state is JobState.DELIVERED and done.delivery is not None
    assert done.delivery.gallery is None
    assert gallery_posts(early) == [] and len(early.deliveries()) == 1
