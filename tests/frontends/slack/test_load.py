"""Slack under load: twenty commands at once are all acked in time and delivered once, and
progress edits keep within the workspace's chat.update budget (no 429) by coalescing."""

from __future__ import annotations

import asyncio

from bot.engine import JobState
from tests.fakeslack.wire import Rate
from tests.slack_stack import SlackStack


async def test_twenty_commands_at_once(wan: SlackStack) -> None:
    """Twenty commands from three people: every ack in time, twenty tasks, twenty uploads."""
    a, b = wan.frames()
    users = ["alice", "bob", "carol"]
    records = await asyncio.gather(*(
        wan.fake.slash("/kf2v", f"<{a}> <{b}> clip {n}", user=users[n % 3]) for n in range(20)))
    await asyncio.gather(*(r.acked() for r in records))
    assert wan.fake.ack_failures() == []
    done = await wan.fake.wait_for(
        lambda: {u.job.id for u in wan.updates if u.job.state is JobState.DELIVERED}
        if len({u.job.id for u in wan.updates if u.job.state is JobState.DELIVERED}) == 20
        else None, what="twenty deliveries", timeout_s=60)
    assert len(wan.creates()) == 20
    assert all(len(wan.fake.uploads_titled(f"wan-{job_id}.mp4")) == 1 for job_id in done)


async def test_progress_edits_keep_within_the_budget(slack: SlackStack) -> None:
    """With Slack's rate tiers enforced (time compressed: 10 edits per 2 s) and edits paced at
    80% of that, eight jobs moving through every state draw no 429, and coalescing makes fewer
    edits than there were state changes."""
    limiter = slack.fake.limiter
    limiter.rates["chat.update"] = Rate(10, 2.0)
    limiter.rates["chat.postMessage"] = Rate(100, 2.0, "channel")
    slack.fake.rate_limits_enabled = True
    async with slack.start() as front:
        front.progress.pace_s = 0.25  # 8 edits per 2 s
        a, b = slack.frames()
        records = [await slack.fake.slash("/kf2v", f"<{a}> <{b}> clip {n}") for n in range(8)]
        await asyncio.gather(*(r.acked() for r in records))
        await slack.fake.wait_for(
            lambda: len({u.job.id for u in slack.updates if u.job.state is JobState.DELIVERED})
            == 8 or None, what="eight deliveries", timeout_s=60)
        await front.progress.settle()
    assert limiter.refusals == []
    changes = len({(u.job.id, u.job.state) for u in slack.updates})
    edits = len(slack.fake.calls("chat.update"))
    assert 8 <= edits < changes
