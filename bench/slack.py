"""Slack front-end benchmark, run by hand from the repository root: `python bench/slack.py`.

Everything on 127.0.0.1: the DashScope simulator (time compressed), the project's fake Slack
(Web API and Socket Mode, tests/fakeslack) and the real Slack front end over the real engine.

1. Ack latency: 20 slash commands sent at once, each with two links (so the front end goes on
   to download, check, upload and queue after its ack). p50/p99 of the time from the envelope
   leaving the fake to its ack arriving, against a baseline measured in the same run: a bare
   bolt app on the same fake whose listener only acks. Goal: p99 < 0.5 s.
2. Progress edits: chat.update calls per job against the job's state changes (a ratio under 1
   is coalescing at work), at the test harness's compressed pace (0.2 s per message).

Prints a table, or with --json one object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_bolt.async_app import AsyncApp

from bot.engine import JobState
from tests.fakeslack import FakeWorkspace, connected_app
from tests.slack_stack import SlackStack, manifest_scopes, open_slack_stack

COMMANDS = 20


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bare_acks(stack: SlackStack) -> list[float]:
    """The baseline: a bolt app that only acks, on the same fake and machine."""
    app = AsyncApp(client=stack.fake.client(), process_before_response=False)

    async def ack_only(ack: Any) -> None:
        await ack()

    app.command("/kf2v")(ack_only)
    async with connected_app(stack.fake, app):
        records = await asyncio.gather(*(stack.fake.slash("/kf2v", f"clip {n}")
                                         for n in range(COMMANDS)))
        acks = await asyncio.gather(*(r.acked() for r in records))
    return [a.latency_s for a in acks]


async def our_acks(stack: SlackStack) -> tuple[list[float], float, float]:
    """Ack latencies of the real front end, and chat.update calls and state changes per job."""
    async with stack.start():
        a, b = stack.frames()
        records = await asyncio.gather(*(stack.fake.slash("/kf2v", f"<{a}> <{b}> clip {n}")
                                         for n in range(COMMANDS)))
        acks = await asyncio.gather(*(r.acked() for r in records))
        await stack.fake.wait_for(
            lambda: len({u.job.id for u in stack.updates if u.job.state is JobState.DELIVERED})
            >= COMMANDS or None, what="every delivery", timeout_s=120)
        await stack.running.progress.settle()
    changes = len({(u.job.id, u.job.state) for u in stack.updates}) / COMMANDS
    edits = len(stack.fake.calls("chat.update")) / COMMANDS
    return [a.latency_s for a in acks], edits, changes


async def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = FakeWorkspace(scopes=manifest_scopes())
        async with open_slack_stack(Path(tmp) / "base", workspace) as stack:
            baseline = await bare_acks(stack)
        async with open_slack_stack(Path(tmp) / "ours", workspace) as stack:
            await stack.set_team()
            ours, edits, changes = await our_acks(stack)
    return {
        "ack_p50_s": {"ours": quantile(ours, 0.5), "bare_bolt": quantile(baseline, 0.5)},
        "ack_p99_s": {"ours": quantile(ours, 0.99), "bare_bolt": quantile(baseline, 0.99)},
        "ack_mean_ratio": statistics.mean(ours) / max(1e-9, statistics.mean(baseline)),
        "chat_update_per_job": edits,
        "state_changes_per_job": changes,
        "edits_per_change": edits / max(1e-9, changes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    result = asyncio.run(measure())
    if parser.parse_args().json:
        print(json.dumps(result))
        return
    p50, p99 = result["ack_p50_s"], result["ack_p99_s"]
    print(f"{COMMANDS} commands at once     ours    bare bolt   ours/bare")
    print(f"ack p50 (s)            {p50['ours']:7.3f}  {p50['bare_bolt']:9.3f}  "
          f"{p50['ours'] / max(1e-9, p50['bare_bolt']):9.2f}")
    print(f"ack p99 (s)            {p99['ours']:7.3f}  {p99['bare_bolt']:9.3f}  "
          f"{p99['ours'] / max(1e-9, p99['bare_bolt']):9.2f}   (goal < 0.5 s)")
    print(f"chat.update per job {result['chat_update_per_job']:.2f} for "
          f"{result['state_changes_per_job']:.2f} state changes "
          f"({result['edits_per_change']:.2f} edits per change)")


if __name__ == "__main__":
    main()
