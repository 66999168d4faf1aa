"""Discord shards split over processes: the fake gateway gives a shard only its guilds, and a
bot running some shards delivers and edits progress only for jobs of its own guilds."""

from __future__ import annotations

from bot.engine import Job, JobRequest, JobState
from bot.frontends.discord.shards import Shards, shard_of
from tests.discord_stack import Stack, image, reply
from tests.fakediscord import FakeChannel
from tests.fakediscord.model import FakeGuild

FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}


def job_in(team_id: str, platform: str = "discord") -> Job:
    return Job(id="j1", state=JobState.QUEUED, created_at=0.0, platform=platform,
               team_id=team_id, channel_id="1", user_id="u", command="kf2v",
               model="wan2.2-kf2v-flash")


def test_a_guild_belongs_to_the_shard_discord_gives_it() -> None:
    """(guild_id >> 22) % shard_count; no guild (a DM) is shard 0; without shard settings, or
    on another platform, a process owns every job."""
    guild = (12345 << 22) + 999  # shard 12345 % 4 == 1
    assert shard_of(guild, 4) == 1 and shard_of(None, 4) == 0
    assert Shards((1, 3), 4).owns(job_in(str(guild)))
    assert not Shards((0, 2), 4).owns(job_in(str(guild)))
    assert Shards((0,), 4).owns(job_in("not-a-guild"))  # counted nowhere: shard 0
    assert not Shards((1,), 4).owns(job_in("not-a-guild"))
    assert Shards(None, None).owns(job_in(str(guild)))
    assert Shards((0,), 4).owns(job_in(str(guild), platform="slack"))


def other_shard_guild(stack: Stack) -> FakeGuild:
    """A second guild on the other of two shards, known to the fake before the bot starts."""
    mine = shard_of(stack.fake.guild.id, 2)
    gid = ((stack.fake.guild.id >> 22) + 1) << 22
    assert shard_of(gid, 2) != mine
    other = FakeGuild("Other Guild", channels=[FakeChannel("elsewhere")], id=gid)
    stack.fake.guilds[gid] = other
    stack.fake.channels.update({c.id: c for c in other.channels})
    return other


async def test_a_shard_process_delivers_only_for_its_own_guilds(stack: Stack) -> None:
    """The bot runs one of two shards: it IDENTIFYs as that shard, sees only its guild, posts
    the video of a job there, and leaves a finished job of the other shard's guild alone."""
    other = other_shard_guild(stack)
    mine = shard_of(stack.fake.guild.id, 2)
    async with stack.start(shard_ids=(mine,), shard_count=2) as bot:
        [session] = [s for s in stack.fake.gateways if s.live]
        assert session.identify is not None and session.identify["shard"] == [mine, 2]
        assert [g.id for g in bot.guilds] == [stack.fake.guild.id]
        frames = {f"{n}_frame_url": stack.sim.add_file(f"{n}.png", image(f"{n}.png").data)
                  for n in ("first", "last")}
        theirs = JobRequest(platform="discord", team_id=str(other.id),
                            channel_id=str(other.channels[0].id), user_id="1", command="kf2v",
                            model="wan2.2-kf2v-flash", media=frames,
                            options={"resolution": "480P"}, prompt="a dog")
        assert not bot.owns((await bot.engine.submit(theirs)).job)
        await stack.wait_job(lambda j: j.team_id == str(other.id) and
                             j.state is JobState.SUCCEEDED, what="the other guild's job done")
        await reply(await stack.fake.slash("kf2v", {"prompt": "a cat"}, attachments=FRAMES))
        ours = await stack.wait_job(lambda j: j.team_id == str(stack.fake.guild.id) and
                                    j.state is JobState.DELIVERED, what="our job delivered")
        assert bot.owns(ours)
        left = [j for j in await bot.store.jobs() if j.team_id == str(other.id)]
    assert [j.state for j in left] == [JobState.SUCCEEDED] and left[0].video_path
    assert stack.fake.messages[other.channels[0].id] == []
