"""Typed records kept in a job's row: they round-trip through the store, and rows written as
plain dicts before the records existed read back the same."""

from __future__ import annotations

import json
from pathlib import Path

from bot.engine import Delivery, Display, Post, ProgressRef, Store
from tests.engine.test_store import make_job


def test_a_delivery_round_trips_with_its_nested_posts() -> None:
    """shared and gallery come back as Posts; unset fields are not stored."""
    made = Delivery(channel_id="1", message_id="2", mode="file", place="dm",
                    gallery=Post(channel_id="3", message_id="4"), deleted=True)
    data = made.to_dict()
    assert data == {"platform": "discord", "channel_id": "1", "message_id": "2", "mode": "file",
                    "place": "dm", "gallery": {"platform": "discord", "channel_id": "3",
                                               "message_id": "4"}, "deleted": True}
    assert Delivery.from_dict(json.loads(json.dumps(data))) == made


def test_a_slack_progress_ref_keeps_its_platform_and_ts() -> None:
    """Slack keeps a channel and a ts in the same fields."""
    ref = ProgressRef(platform="slack", channel_id="C123", message_id="1712345678.000100")
    assert ProgressRef.from_dict(ref.to_dict()) == ref and not ref.is_interaction


def test_unknown_keys_are_ignored() -> None:
    """A newer process's fields do not stop an older one reading the row."""
    assert Display.from_dict({"inputs": {"image": "a.png"}, "later": 1}).inputs == {
        "image": "a.png"}


async def test_rows_written_as_dicts_read_as_records(tmp_path: Path) -> None:
    """A row stored before the records existed (plain dicts, no platform) reads back typed."""
    store = await Store.open(tmp_path / "r.db")
    try:
        job = await store.insert_job(make_job())
        await store.db.execute(
            "UPDATE jobs SET progress_ref = ?, delivery = ?, display = ? WHERE id = ?",
            (json.dumps({"kind": "interaction", "token": "t", "application_id": "9",
                         "message_id": "5", "channel_id": "6", "expires_at": 12.5}),
             json.dumps({"channel_id": "6", "message_id": "7", "mode": "link",
                         "shared": {"channel_id": "6", "message_id": "8", "mode": "file"}}),
             json.dumps({"upload_limit": 10, "inputs": {"image": "a.png"}}), job.id))
        await store.db.commit()
        read = await store.get_job(job.id)
    finally:
        await store.close()
    assert read is not None and read.progress_ref is not None and read.delivery is not None
    assert read.progress_ref.is_interaction and read.progress_ref.expires_at == 12.5
    assert read.delivery.shared == Post(channel_id="6", message_id="8", mode="file")
    assert read.display == Display(upload_limit=10, inputs={"image": "a.png"})
