"""The bot as a whole through discord.py: start-up, command sync, shutdown, restarts in the
middle of a job, twenty commands at once, and `python -m bot` without settings."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import discord
import pytest

from bot.engine import JobState
from bot.frontends.launch import run
from bot.provider.catalog import Command, option_values
from tests.discord_stack import Stack, die_after_posting, image, reply
from tests.fakediscord import EPHEMERAL, discord_pointed_at

ROOT = Path(__file__).resolve().parents[3]
FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}
OPTIONS = {
    "kf2v": ["first_frame", "first_frame_url", "last_frame", "last_frame_url", "prompt",
             "negative_prompt", "model", "resolution", "prompt_extend", "watermark", "seed",
             "private"],
    "i2v": ["image", "image_url", "prompt", "audio", "audio_url", "model", "resolution",
            "duration", "negative_prompt", "prompt_extend", "watermark", "seed", "private"],
    "animate": ["image", "image_url", "video", "video_url", "mode", "model", "watermark",
                "private"],
    "reference": ["prompt", "image1", "image2", "image3", "image_urls", "roles", "size",
                  "negative_prompt", "prompt_extend", "watermark", "seed", "private"],
}


# --------------------------------------------------------------------------- start-up and sync


async def test_needs_no_privileged_intents(wan: Stack) -> None:
    """IDENTIFY asks for guilds only: no members, presences or message content."""
    intents = discord.Intents._from_value(wan.fake.gateways[-1].intents)
    assert intents == discord.Intents(guilds=True)
    assert not (intents.members or intents.presences or intents.message_content)


async def test_commands_have_the_documented_options(wan: Stack) -> None:
    """Option names in order; choices from the catalog; attachments say which types they take."""
    for name, expected in OPTIONS.items():
        command = wan.fake.find_command(name, wan.fake.guild.id)
        assert command is not None
        assert [o["name"] for o in command["options"]] == expected
    kf2v = {o["name"]: o for o in wan.fake.find_command("kf2v", wan.fake.guild.id)["options"]}
    assert [c["value"] for c in kf2v["resolution"]["choices"]] == ["480P", "720P", "1080P"]
    assert kf2v["first_frame"]["type"] == 11 and "JPEG, PNG, BMP or WEBP" in (
        kf2v["first_frame"]["description"])
    animate = {o["name"]: o for o in wan.fake.find_command("animate", wan.fake.guild.id)["options"]}
    assert [c["value"] for c in animate["mode"]["choices"]] == ["wan-std", "wan-pro"]
    assert [c["value"] for c in animate["model"]["choices"]] == ["wan2.2-animate-mix",
                                                                 "wan2.2-animate-move"]
    reference = wan.fake.find_command("reference", wan.fake.guild.id)["options"]
    size = next(o for o in reference if o["name"] == "size")
    assert [c["value"] for c in size["choices"]] == option_values(Command.REFERENCE, "size")


async def test_syncs_only_when_the_tree_changed(stack: Stack) -> None:
    """Two starts on one database sync once; a different stored hash syncs again."""
    async with stack.start():
        pass
    async with stack.start() as bot:
        assert [s.guild_id for s in stack.fake.command_syncs] == [stack.fake.guild.id]
        key = f"commands:{bot.application_id}:{stack.fake.guild.id}"
        await bot.store.set_meta(key, "an older tree")
    async with stack.start():
        assert len(stack.fake.command_syncs) == 2


async def test_syncs_globally_without_guild_ids(stack: Stack) -> None:
    """No DISCORD_GUILD_IDS: one global sync of every command, once."""
    for _ in range(2):
        async with stack.start(guild_ids=()):
            pass
    [sync] = stack.fake.command_syncs
    assert sync.guild_id is None
    assert sorted(sync.names) == ["animate", "extend", "i2v", "job", "jobs", "kf2v", "queue",
                                  "reference", "settings", "usage"]


# --------------------------------------------------------------------------- shutdown


async def test_shutdown_lets_a_running_command_finish(wan: Stack) -> None:
    """Closing refuses new commands but waits for one that is queueing a job."""
    bot = wan.running
    wan.media.gate.clear()
    link = wan.media.add("slow.png", image().data)
    first = await wan.fake.slash("kf2v", {"first_frame_url": link, "last_frame_url": link})
    await first.responded()
    await asyncio.wait_for(wan.media.asked.wait(), 5)
    closing = asyncio.create_task(bot.close())  # starts before the next command arrives
    late = await wan.fake.slash("kf2v", {}, attachments=FRAMES)
    refused = await late.responded()
    assert bot.closing
    assert refused.data["content"].startswith("The bot is restarting")
    assert refused.data["flags"] & EPHEMERAL and not closing.done()
    wan.media.gate.set()
    await asyncio.wait_for(closing, 10)
    assert (await reply(first)).content.startswith("Queued as job")
    [job] = await bot.store.jobs()
    assert job.progress_ref is not None and bot.is_closed()


async def test_sigterm_stops_the_bot_cleanly(stack: Stack) -> None:
    """`run()` as `python -m bot` runs it: SIGTERM closes the bot and returns."""
    with discord_pointed_at(stack.fake):
        runner = asyncio.create_task(run(stack.settings))
        await stack.fake.wait_for(lambda: next((g for g in stack.fake.gateways if g.identify),
                                               None), what="IDENTIFY")
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(runner, 10)
    assert [g.closed for g in stack.fake.gateways] == [True]
    assert len(stack.fake.command_syncs) == 1


async def test_a_refused_token_stops_before_connecting(stack: Stack) -> None:
    """Discord answering 401 to the token ends `run()` with LoginFailure (`main` exits 2)."""
    settings = dataclasses.replace(stack.settings, discord_token="not-the-token")
    with discord_pointed_at(stack.fake), pytest.raises(discord.LoginFailure):
        await run(settings)
    assert stack.fake.gateways == [] and stack.fake.command_syncs == []


# --------------------------------------------------------------------------- restarts


async def test_restart_in_the_middle_of_a_job(stack: Stack) -> None:
    """Killed while the provider runs the task: the next bot polls it, delivers it once."""
    stack.sim.config.running_s = 3600.0  # runs until the clock is moved on
    async with stack.start():
        await reply(await stack.fake.slash("kf2v", {"prompt": "p"}, attachments=FRAMES))
        running = await stack.wait_state(JobState.RUNNING)
        await stack.crash()
    stack.updates.clear()
    async with stack.start() as bot:
        stack.clock.advance(3600.0)
        done = await stack.wait_state(JobState.DELIVERED)
        await stack.fake.wait_for_edit(stack.channel_id, lambda m: "Done" in str(m.embeds))
        [job] = await bot.store.jobs()
    assert done.id == running.id == job.id and job.state is JobState.DELIVERED
    assert len(stack.creates()) == 1 and len(stack.deliveries()) == 1


async def test_restart_after_posting_but_before_recording(stack: Stack) -> None:
    """Killed right after the video was posted: the next bot finds the post, posts nothing."""
    async with stack.start() as bot:
        posted = die_after_posting(bot)
        await reply(await stack.fake.slash("kf2v", {}, attachments=FRAMES))
        await asyncio.wait_for(posted.wait(), 10)
        await stack.crash()
    [message] = stack.deliveries()
    async with stack.start():
        job = await stack.wait_state(JobState.DELIVERED)
    assert job.delivery is not None and job.delivery.message_id == str(message.id)
    assert len(stack.deliveries()) == 1 and len(stack.creates()) == 1


async def test_a_final_edit_lost_in_a_crash_is_made_after_restart(stack: Stack) -> None:
    """Killed while the summary edit waited for its turn: the next bot shows it."""
    async with stack.start(progress_interval_s=60.0):  # every edit after the post waits
        await reply(await stack.fake.slash("kf2v", {}, attachments=FRAMES))
        job = await stack.wait_state(JobState.DELIVERED)
        await stack.crash()
    [progress] = [m for m in stack.fake.messages[stack.channel_id] if m.embeds]
    assert progress.edits == 0
    async with stack.start():
        await stack.fake.wait_for_edit(stack.channel_id, lambda m: "Done" in str(m.embeds),
                                       message_id=progress.id)
    assert f"Job {job.id}" in str(progress.embeds) and len(stack.deliveries()) == 1


# --------------------------------------------------------------------------- load


async def test_twenty_commands_at_once(wan: Stack) -> None:
    """Twenty commands from three people (the default limits lifted): all acknowledged in
    time, all delivered once."""
    await wan.set_team(user_max_concurrent=None, user_daily_seconds=None)
    users = ["alice", "bob", "carol"]
    slashes = [
        wan.fake.slash("kf2v", {"prompt": f"clip {n}"}, attachments=FRAMES, user=users[n % 3])
        if n % 2 else
        wan.fake.slash("i2v", {"prompt": f"clip {n}", "model": "wan2.5-i2v-preview"},
                       attachments={"image": image()}, user=users[n % 3])
        for n in range(20)
    ]
    records = await asyncio.gather(*slashes)
    callbacks = await asyncio.gather(*(r.responded() for r in records))
    assert all(c.accepted and c.latency_s < 3.0 for c in callbacks)
    answers = await asyncio.gather(*(reply(r) for r in records))
    assert all(a.content.startswith("Queued as job") for a in answers)
    await wan.wait_delivered(20, timeout_s=30)
    delivered = wan.deliveries()
    jobs = await wan.running.store.jobs()
    assert len(jobs) == 20 and {j.state for j in jobs} == {JobState.DELIVERED}
    assert sorted(m.content.rsplit("`", 2)[1] for m in delivered) == sorted(j.id for j in jobs)
    assert len(wan.creates()) == 20


# --------------------------------------------------------------------------- python -m bot


def test_python_m_bot_without_settings_exits_2(tmp_path: Path) -> None:
    """No settings: exit status 2 and the list of what is missing, no traceback."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DASHSCOPE_", "DISCORD_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "DASHSCOPE_API_KEY is not set" in done.stderr
    assert "DISCORD_TOKEN is not set" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_python_m_bot_with_a_corrupt_database_exits_1(tmp_path: Path) -> None:
    """A corrupt database: one error line naming it and exit status 1, promptly (no hang)."""
    db = tmp_path / "wanbot.sqlite3"
    db.write_bytes(b"not a database" * 1000)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DASHSCOPE_", "DISCORD_"))}
    env.update(PYTHONPATH=str(ROOT), DASHSCOPE_API_KEY="sk-x", DISCORD_TOKEN="t",
               DATABASE_PATH=str(db), DASHSCOPE_BASE_URL="http://127.0.0.1:9/api/v1")
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert done.returncode == 1 and len(errors) == 1
    assert "cannot use its database" in errors[0] and str(db) in errors[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_an_unreachable_discord_is_a_plain_error(monkeypatch, tmp_path, caplog) -> None:
    """No network to Discord: one clear line and exit status 1, not a traceback."""
    import socket

    from bot.frontends import launch

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    for name, value in {"DISCORD_TOKEN": "t", "DASHSCOPE_API_KEY": "k",
                        "DATABASE_PATH": str(tmp_path / "db.sqlite3")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(launch, "setup_logging", lambda *a, **k: None)
    assert launch.main([]) == 1
    assert "Could not reach a chat service" in caplog.text
