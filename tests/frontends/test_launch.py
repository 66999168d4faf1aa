"""`python -m bot` runs every front end whose credentials are set over one engine: Discord and
Slack in one process share the queue fairly, and SIGTERM stops both cleanly."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.engine import Engine, JobState, JobUpdate, Store
from bot.frontends.common import teams
from bot.frontends.launch import front_ends, health_server, serve
from bot.provider.client import DashScope
from tests.bot_process import bot_command
from tests.discord_stack import Stack, image, png
from tests.fakediscord import discord_pointed_at
from tests.fakeslack import FakeSlack, FakeWorkspace, run_fake_slack
from tests.slack_stack import NO_LIMITS, manifest_scopes

MODEL = "wan2.2-kf2v-flash"
FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with run_fake_slack(FakeWorkspace(scopes=manifest_scopes())) as fake:
        yield fake


async def test_discord_and_slack_share_one_engine(stack: Stack, fake_slack: FakeSlack) -> None:
    """Two Discord and two Slack jobs on a one-slot model: all delivered on their own platform,
    admitted alternately (the teams take turns), one process, one SIGTERM."""
    settings = dataclasses.replace(
        stack.settings, slack_bot_token=fake_slack.bot_token,
        slack_app_token=fake_slack.app_token, slack_api_url=fake_slack.api_url,
        concurrency={MODEL: 1})
    store = await Store.open(settings.database)
    for team in (str(stack.fake.guild.id), f"slack:{fake_slack.team_id}"):
        await teams.save(store, team, NO_LIMITS)
    client = DashScope(stack.session, settings.base_url, settings.dashscope_api_key, timeout_s=5)
    engine = Engine(store, client, settings, clock=stack.clock)
    states: dict[str, JobState] = {}

    async def seen(update: JobUpdate) -> None:
        states[update.job.id] = update.job.state
        stack.fake.notify()

    engine.subscribe(seen)
    stack.sim.config.running_s = 600.0  # nothing finishes before all four are queued
    with discord_pointed_at(stack.fake):
        runner = asyncio.create_task(
            serve(engine, front_ends(settings, engine, store, stack.session)))
        await stack.fake.wait_for(lambda: next((g for g in stack.fake.gateways if g.identify),
                                               None), what="IDENTIFY")
        await fake_slack.wait_connected(1)
        await _ask_both(stack, fake_slack)
        await stack.fake.wait_for(lambda: len(states) == 4 or None, what="four jobs")
        stack.sim.config.running_s = 1.0
        stack.clock.advance(600.0)
        await stack.fake.wait_for(lambda: list(states.values()).count(JobState.DELIVERED) == 4
                                  or None, what="four deliveries", timeout_s=30)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(runner, 15)
    jobs = sorted(await store.jobs(), key=lambda j: j.submitted_at or 0)
    await store.close()
    assert [j.platform for j in jobs] == ["slack", "discord"] * 2
    [slack_job, *_] = jobs
    assert len(fake_slack.uploads_titled(f"wan-{slack_job.id}.mp4")) == 1
    assert [g.closed for g in stack.fake.gateways] == [True]


async def _ask_both(stack: Stack, fake: FakeSlack) -> None:
    """Both Slack jobs first, then both Discord ones: in order of arrival the queue would run
    Slack's twice before Discord's; fairness alternates the teams instead."""
    a = stack.media.add("a.png", png())
    for n in range(2):
        await (await fake.slash("/kf2v", f"<{a}> <{a}> model={MODEL} slack {n}")).acked()
        await fake.wait_for(lambda n=n: len(fake.calls("chat.postMessage")) > n or None)
    for n in range(2):
        record = await stack.fake.slash("kf2v", {"prompt": f"discord {n}", "model": MODEL},
                                        attachments=FRAMES)
        await record.wait_followups(1)


async def test_the_health_port_reports_each_chat_front_end(stack: Stack,
                                                           fake_slack: FakeSlack) -> None:
    """HEALTH_PORT set: /healthz names Discord and Slack connected while both run, and the
    engine running; /metrics answers in Prometheus's format."""
    settings = dataclasses.replace(
        stack.settings, slack_bot_token=fake_slack.bot_token,
        slack_app_token=fake_slack.app_token, slack_api_url=fake_slack.api_url, health_port=0)
    store = await Store.open(settings.database_path)
    engine = Engine(store, DashScope(stack.session, settings.base_url,
                                     settings.dashscope_api_key), settings, clock=stack.clock)
    with discord_pointed_at(stack.fake):
        fronts = front_ends(settings, engine, store, stack.session)
        health = await health_server(settings, engine, fronts)
        assert health is not None
        runner = asyncio.create_task(serve(engine, fronts))
        try:
            await stack.fake.wait_for(lambda: next(
                (g for g in stack.fake.gateways if g.identify), None), what="IDENTIFY")
            await asyncio.wait_for(fronts[0].bot.wait_until_ready(), 10)  # type: ignore[attr-defined]
            await fake_slack.wait_connected(1)
            async with stack.session.get(health.url + "/healthz") as answer:
                status, report = answer.status, await answer.json()
            async with stack.session.get(health.url + "/metrics") as answer:
                metrics = await answer.text()
        finally:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(runner, 15)
            await health.close()
            await store.close()
    assert status == 200 and report["chat"] == {"discord": True, "slack": True}
    assert report["leader"] is None  # alone on SQLite: nobody to lead
    assert report["engine"] == "running" and report["storage"] == "ok"
    assert "wanbot_queue_length" in metrics


def test_a_health_port_in_use_stops_the_start_saying_so(tmp_path: Path) -> None:
    """Two processes on one machine with one HEALTH_PORT: the second stops at once with status
    2, naming the setting, before anything connected (no chat service is reachable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1",
               "SLACK_API_URL": "http://127.0.0.1:9/api/", "DASHSCOPE_API_KEY": "sk-1",
               "DASHSCOPE_BASE_URL": "http://127.0.0.1:9/api/v1",
               "HEALTH_PORT": str(taken.getsockname()[1])}
        done = bot_command(env=env, cwd=tmp_path, timeout_s=60)
    assert done.returncode == 2, done.stderr
    assert f"HEALTH_PORT={env['HEALTH_PORT']} cannot be served" in done.stderr
    assert "a port of its own" in done.stderr and "Unclosed" not in done.stderr
