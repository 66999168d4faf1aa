"""What the provider says about a task: its status and times, from a query or a list answer."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.provider.catalog import BEIJING


class TaskStatus(StrEnum):
    PENDING = "PENDING"  # accepted, waiting for a slot
    RUNNING = "RUNNING"  # being generated
    SUCCEEDED = "SUCCEEDED"  # video_url is set, valid 24 h
    FAILED = "FAILED"  # code and message say why
    CANCELED = "CANCELED"  # canceled while PENDING
    UNKNOWN = "UNKNOWN"  # no such task, or older than 24 h
    SUSPENDED = "SUSPENDED"  # paused by the provider; it may go on (the SDK knows it)
    OTHER = "OTHER"  # a status this bot does not know (yet): waited on for a while

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.UNKNOWN}
)


@dataclass(frozen=True)
class Task:
    """A task as the provider last described it; times are aware UTC datetimes."""

    task_id: str
    status: TaskStatus
    submit_time: datetime | None = None
    scheduled_time: datetime | None = None
    end_time: datetime | None = None
    video_url: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    code: str | None = None
    message: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    model: str | None = None  # only list answers name the model

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def seconds(self) -> float | None:
        """From the provider's submit to its end, once both are known (the poll policy
        learns from these)."""
        if self.submit_time and self.end_time:
            return max(0.0, (self.end_time - self.submit_time).total_seconds())
        return None

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> Task:
        """From a create or query answer: `{"output": {...}, "usage": {...}, "request_id"}`."""
        out = payload.get("output") or {}
        return cls(
            task_id=str(out.get("task_id") or ""),
            status=_status(out.get("task_status")),
            submit_time=parse_time(out.get("submit_time")),
            scheduled_time=parse_time(out.get("scheduled_time")),
            end_time=parse_time(out.get("end_time")),
            video_url=_video_url(out),
            orig_prompt=out.get("orig_prompt") or None,
            actual_prompt=out.get("actual_prompt") or None,
            code=out.get("code") or None,
            message=out.get("message") or None,
            usage=dict(payload.get("usage") or {}),
            request_id=payload.get("request_id"),
        )

    @classmethod
    def from_summary(cls, item: Mapping[str, Any]) -> Task:
        """From one entry of a `GET /tasks` list answer."""
        return cls(
            task_id=str(item.get("task_id") or ""),
            status=_status(item.get("status")),
            submit_time=parse_time(item.get("gmt_create")),
            scheduled_time=parse_time(item.get("start_time")),
            end_time=parse_time(item.get("end_time")),
            request_id=item.get("request_id"),
            model=item.get("model_name"),
        )


def _status(value: Any) -> TaskStatus:
    """A missing status is UNKNOWN (no such task); one we do not know is OTHER, not an end."""
    if not value:
        return TaskStatus.UNKNOWN
    try:
        return TaskStatus(str(value).upper())
    except ValueError:
        return TaskStatus.OTHER


def _video_url(out: Mapping[str, Any]) -> str | None:
    """Most models answer `output.video_url`; animate answers `output.results.video_url`."""
    results = out.get("results")
    if isinstance(results, list):
        results = results[0] if results else None
    nested = results.get("video_url") if isinstance(results, Mapping) else None
    return out.get("video_url") or nested or None


def parse_time(value: Any) -> datetime | None:
    """`YYYY-MM-DD HH:mm:ss[.SSS]` in UTC+8, or epoch milliseconds, as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) or str(value).isdigit():
        return datetime.fromtimestamp(float(value) / 1000, UTC)
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        with contextlib.suppress(ValueError):
            return datetime.strptime(str(value), fmt).replace(tzinfo=BEIJING).astimezone(UTC)
    return None
