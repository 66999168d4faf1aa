"""Video commands in direct messages, through discord.py: off unless DISCORD_ALLOW_DMS; allowed,
a DM job counts in the home server (DISCORD_DM_HOME_GUILD) with its membership, roles, limits
and usage."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.engine import JobState
from bot.frontends.discord.job_messages import DMS_OFF, NOT_A_MEMBER
from tests.discord_stack import Stack, image, labels, reply
from tests.fakediscord import FakeUser
from tests.pages_support import fields, private_answer

FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}
LONG_S = 3600.0
GUILD, DM = 0, 1  # Discord's interaction contexts


async def dm_kf2v(stack: Stack, user: str = "alice") -> str:
    """/kf2v sent from `user`'s DM with the bot; the text of its answer."""
    record = await stack.fake.slash("kf2v", {"prompt": "a cat turns"}, attachments=FRAMES,
                                    user=user, channel_id=stack.fake.dm_channel(user).id)
    return (await reply(record)).content


def fetched(stack: Stack) -> int:
    """Attachments the bot downloaded."""
    return len(stack.fake.requests_to("GET", r"^/attachments/"))


@pytest.fixture
async def dms(stack: Stack) -> AsyncIterator[Stack]:
    """The bot with DMs allowed, counted in the test guild; mallory shares no server with it
    (she can still open a DM with a bot, as any user can who finds it)."""
    stack.fake.users["mallory"] = FakeUser("mallory")
    async with stack.start(allow_dms=True, dm_home_guild=stack.fake.guild.id):
        yield stack


async def test_a_dm_command_is_refused_by_default(wan: Stack) -> None:
    """Default settings: the commands are registered for servers only, and one sent from a DM
    anyway is refused before anything is fetched or stored."""
    command = wan.fake.find_command("kf2v", wan.fake.guild.id)
    assert command is not None and command["contexts"] == [GUILD]
    assert await dm_kf2v(wan) == DMS_OFF
    assert fetched(wan) == 0 and await wan.running.store.jobs() == []


async def test_an_allowed_dm_job_counts_in_the_home_server(dms: Stack) -> None:
    """DMs allowed: the commands are offered in DMs; a DM job is private, stored under the
    home server, that server's limit refuses the next one, and its /usage shows the job."""
    command = dms.fake.find_command("kf2v", dms.fake.guild.id)
    assert command is not None and command["contexts"] == [GUILD, DM]
    dms.sim.config.running_s = LONG_S  # the first stays unfinished
    await dms.set_team(user_max_concurrent=1)
    first = await dm_kf2v(dms)
    [job] = await dms.running.store.jobs()
    assert first.startswith(f"Job `{job.id}` is private") and job.private
    assert job.team_id == dms.team_id
    assert job.channel_id == str(dms.fake.dm_channel("alice").id)
    second = await dm_kf2v(dms)
    assert second.startswith("You already have 1 unfinished job(s); the limit is 1.")
    usage = fields(await private_answer(await dms.fake.slash("usage")))
    assert "1 job" in usage["You today"] and "1 job" in usage["This server today"]


async def test_an_allowed_dm_needs_membership_of_the_home_server(dms: Stack) -> None:
    """mallory, no member of the home server, is refused from her DM before anything is
    fetched; the member lookup went to the home server."""
    assert await dm_kf2v(dms, "mallory") == NOT_A_MEMBER
    mallory = dms.fake.user("mallory").id
    assert dms.fake.requests_to("GET", rf"^/guilds/{dms.team_id}/members/{mallory}$")
    assert fetched(dms) == 0 and await dms.running.store.jobs() == []


async def test_an_allowed_dm_follows_the_home_servers_roles(stack: Stack) -> None:
    """The home server lets only Animators make videos: bob (no role) is refused from his
    DM; alice (the role) gets her video in the DM, with no Share (it has no channel)."""
    animators = stack.add_role("Animators", "alice")
    async with stack.start(allow_dms=True, dm_home_guild=stack.fake.guild.id):
        await stack.set_team(generate_role_ids=(animators,))
        assert (await dm_kf2v(stack, "bob")).startswith("Only members with the role **Animators**")
        assert fetched(stack) == 0
        assert (await dm_kf2v(stack, "alice")).startswith("Job `")
        await stack.wait_state(JobState.DELIVERED)
    [delivery] = [m for m in stack.dms("alice") if m.files]
    assert list(labels(delivery)) == ["Rerun", "Edit and rerun", "Extend", "Delete"]  # no Share


async def test_a_dm_jobs_rerun_is_refused_once_dms_are_off(stack: Stack) -> None:
    """A job made in a DM while DMs were allowed: after a restart with DMs off, Rerun on its
    video in the DM is refused and queues nothing."""
    async with stack.start(allow_dms=True, dm_home_guild=stack.fake.guild.id):
        await dm_kf2v(stack)
        await stack.wait_state(JobState.DELIVERED)
    async with stack.start():
        [delivery] = [m for m in stack.dms("alice") if m.files]
        click = await stack.fake.click(labels(delivery)["Rerun"], delivery.id)
        [note] = await click.wait_followups(1)
        assert note.content == DMS_OFF
        assert len(await stack.running.store.jobs()) == 1
