"""A job as the engine keeps it: its states, the request a front end makes, and its life.

`Job` extends `JobRequest`, so a request becomes a job by adding what happens to it; both are
frozen, and every change goes through the store.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, NamedTuple

from bot.engine.records import ChainVideo, Delivery, Display, Fit, ProgressRef, Record


class JobState(StrEnum):
    QUEUED = "queued"  # waiting in our queue for a slot of its model
    SUBMITTING = "submitting"  # the create request is (or may have been) sent; no task id yet
    PENDING = "pending"  # the provider holds the task, not started
    RUNNING = "running"  # the provider is generating
    SUCCEEDED = "succeeded"  # the provider finished; the video is being fetched
    FITTING = "fitting"  # the video is being re-encoded to fit where it goes (see `fit`)
    DELIVERING = "delivering"  # the front end is posting the result
    DELIVERED = "delivered"  # posted; done
    FAILED = "failed"  # the provider or our checks refused it; done
    CANCELED = "canceled"  # stopped by a person; done
    EXPIRED = "expired"  # the provider forgot the task or its result before we fetched it


TERMINAL = frozenset({JobState.DELIVERED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED})
AT_PROVIDER = frozenset({JobState.SUBMITTING, JobState.PENDING, JobState.RUNNING})

JSON_COLUMNS = (
    "media", "options", "notes", "usage", "progress_ref", "delivery", "display", "sends", "fit",
    "chain",
)


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """Everything a front end knows about a new job, already checked."""

    platform: str
    team_id: str
    channel_id: str
    user_id: str
    command: str
    model: str
    media: dict[str, Any] = field(default_factory=dict)  # body field -> URL or list of URLs
    options: dict[str, Any] = field(default_factory=dict)  # the resolved parameters
    prompt: str | None = None
    negative_prompt: str | None = None
    oss: bool = False  # the inputs include oss:// uploads
    notes: list[str] = field(default_factory=list)  # repairs made to the input
    display: Display = field(default_factory=Display)  # front-end facts (file names ...)
    private: bool = False
    expected_seconds: float = 0.0  # video-seconds this job will produce
    parent_id: str | None = None  # Extend: the job whose last frame this one starts from
    # The id (never the secret) of the API key whose account has the job: set when its
    # inputs were uploaded there (a rerun reuses them, so it stays there), else at admission.
    # Polling, cancel, reconciliation and downloads of its task all use that key.
    api_key_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Job(JobRequest):
    """A request and its life so far: one row of `jobs`."""

    id: str
    state: JobState
    created_at: float
    task_id: str | None = None
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    delivered_at: float | None = None
    provider_seconds: float | None = None  # provider submit -> end, for the poll policy
    attempts: int = 0
    # When each create of this job was sent (epoch s), written before it was sent: where
    # reconciliation looks for a task whose answer was lost.
    sends: list[float] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    result_url: str | None = None
    usage: dict[str, Any] | None = None
    actual_prompt: str | None = None
    video_path: str | None = None
    progress_ref: ProgressRef | None = None  # where the front end shows progress
    delivery: Delivery | None = None  # where the front end posted the result
    fit: Fit | None = None  # the video re-encoded to fit the destination's upload limit
    cancel_requested: bool = False
    updated_at: float = 0.0
    chain: ChainVideo | None = None  # an extension's whole chain as one video (chains.py)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        data = dict(row)
        for name in JSON_COLUMNS:
            if data.get(name) is not None:
                data[name] = json.loads(data[name])
        for name, record in RECORDS.items():
            if data.get(name) is not None:
                data[name] = record.from_dict(data[name])
        data["state"] = JobState(data["state"])
        for name in ("oss", "private", "cancel_requested"):
            data[name] = bool(data[name])
        return cls(**{k: v for k, v in data.items() if k in FIELDS})

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def post_path(self) -> str | None:
        """The video file to post: the one re-encoded to fit, when made, else the original."""
        return self.fit.path if self.fit is not None and self.fit.path else self.video_path

    @property
    def seed(self) -> int | None:
        return self.options.get("seed")


FIELDS = frozenset(f.name for f in fields(Job))
RECORDS: dict[str, type[Record]] = {
    "progress_ref": ProgressRef, "delivery": Delivery, "display": Display, "fit": Fit,
    "chain": ChainVideo}


@dataclass(frozen=True)
class JobUpdate:
    """What a front end shows about a job."""

    job: Job
    position: int | None  # 1-based place in its model's queue while queued
    elapsed_s: float
    eta_s: float | None  # seconds until the video is expected, when history allows a guess


class CancelOutcome(StrEnum):
    DROPPED = "dropped"  # it was still queued: nothing was spent
    CANCELED = "canceled"  # the provider canceled the pending task: nothing was spent
    WILL_NOT_DELIVER = "will_not_deliver"  # already running: it cannot be stopped or refunded
    REQUESTED = "requested"  # being sent: canceled as soon as the provider has it
    TOO_LATE = "too_late"  # already finished
    UNKNOWN = "unknown"  # no such job


class QueuedJob(NamedTuple):
    """Just what admission order needs, read without decoding whole rows."""

    id: str
    team_id: str
    user_id: str
    created_at: float


def new_job_id() -> str:
    """Short, unguessable, safe in a Discord custom_id and easy to read aloud."""
    return secrets.token_hex(4)
