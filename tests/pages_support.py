"""Helpers for the tests of /jobs, /job, /queue, /settings and /usage: jobs written straight to
the store, and reading private answers."""

from __future__ import annotations

from typing import Any

from bot.engine import Job, JobState, Store
from tests.fakediscord import EPHEMERAL, InteractionRecord

COGS = ("cogs.jobs", "cogs.admin")
CHANNEL, ROLE = 7, 8  # application command option types


async def private_answer(record: InteractionRecord) -> dict[str, Any]:
    """The command's answer (an immediate message); it must be ephemeral."""
    callback = await record.responded()
    assert callback.accepted and callback.type == 4, callback
    assert callback.data["flags"] & EPHEMERAL
    assert len(record.attempts) == 1 and record.followups == []  # answered exactly once
    return callback.data


def fields(data: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in data["embeds"][0].get("fields", [])}


def buttons(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by label."""
    return {b["label"]: b for row in data.get("components", []) for b in row["components"]}


async def add_job(store: Store, job_id: str, *, team_id: str, user_id: str, created_at: float,
                  **changes: Any) -> Job:
    """A finished Discord job, written straight to the store (the engine leaves it alone)."""
    values: dict[str, Any] = dict(
        id=job_id, platform="discord", team_id=team_id, channel_id="1", user_id=user_id,
        command="kf2v", model="wan2.2-kf2v-flash", state=JobState.DELIVERED,
        created_at=created_at, updated_at=created_at, options={"resolution": "480P"},
    )
    return await store.insert_job(Job(**{**values, **changes}))
