"""Jobs and settings in SQLite (aiosqlite, WAL): the engine's memory across restarts.

Times are unix seconds (REAL). A job's state is written before the side effect that follows it,
so a crash at any line leaves a row that says what to do next.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite

from bot.engine.poll_policy import history_key


class JobState(StrEnum):
    QUEUED = "queued"  # waiting in our queue for a slot of its model
    SUBMITTING = "submitting"  # the create request is (or may have been) sent; no task id yet
    PENDING = "pending"  # the provider holds the task, not started
    RUNNING = "running"  # the provider is generating
    SUCCEEDED = "succeeded"  # the provider finished; the video is being fetched
    DELIVERING = "delivering"  # the front end is posting the result
    DELIVERED = "delivered"  # posted; done
    FAILED = "failed"  # the provider or our checks refused it; done
    CANCELED = "canceled"  # stopped by a person; done
    EXPIRED = "expired"  # the provider forgot the task or its result before we fetched it


TERMINAL = frozenset({JobState.DELIVERED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED})
AT_PROVIDER = frozenset({JobState.SUBMITTING, JobState.PENDING, JobState.RUNNING})
TERMINAL_SQL = "(" + ", ".join(f"'{s}'" for s in sorted(TERMINAL)) + ")"  # for IN clauses

JSON_COLUMNS = ("media", "options", "notes", "usage", "progress_ref", "delivery", "display")


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
    display: dict[str, Any] = field(default_factory=dict)  # front-end facts (file names ...)
    private: bool = False
    expected_seconds: float = 0.0  # video-seconds this job will produce


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
    error_code: str | None = None
    error_message: str | None = None
    result_url: str | None = None
    usage: dict[str, Any] | None = None
    actual_prompt: str | None = None
    video_path: str | None = None
    progress_ref: dict[str, Any] | None = None  # where the front end shows progress
    delivery: dict[str, Any] | None = None  # where the front end posted the result
    cancel_requested: bool = False
    updated_at: float = 0.0

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Job:
        data = dict(row)
        for name in JSON_COLUMNS:
            if data.get(name) is not None:
                data[name] = json.loads(data[name])
        data["state"] = JobState(data["state"])
        for name in ("oss", "private", "cancel_requested"):
            data[name] = bool(data[name])
        return cls(**{k: v for k, v in data.items() if k in _FIELDS})

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def seed(self) -> int | None:
        return self.options.get("seed")


_FIELDS = {f.name for f in fields(Job)}

MIGRATIONS: tuple[str, ...] = (
    # 1: jobs and a key-value table for facts about the bot itself (command tree hash).
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        platform TEXT NOT NULL,
        team_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        command TEXT NOT NULL,
        model TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        prompt TEXT,
        negative_prompt TEXT,
        media TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}',
        oss INTEGER NOT NULL DEFAULT 0,
        notes TEXT NOT NULL DEFAULT '[]',
        display TEXT NOT NULL DEFAULT '{}',
        private INTEGER NOT NULL DEFAULT 0,
        expected_seconds REAL NOT NULL DEFAULT 0,
        task_id TEXT UNIQUE,
        submitted_at REAL,
        started_at REAL,
        finished_at REAL,
        delivered_at REAL,
        provider_seconds REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error_code TEXT,
        error_message TEXT,
        result_url TEXT,
        usage TEXT,
        actual_prompt TEXT,
        video_path TEXT,
        progress_ref TEXT,
        delivery TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_by_state ON jobs (state, model);
    CREATE INDEX jobs_by_owner ON jobs (team_id, user_id, created_at);
    CREATE INDEX jobs_history ON jobs (model, finished_at) WHERE provider_seconds IS NOT NULL;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: per-team settings (gallery channel, roles, limits, defaults) as one JSON document.
    """
    CREATE TABLE team_settings (team_id TEXT PRIMARY KEY, settings TEXT NOT NULL);
    """,
)


class QueuedJob(NamedTuple):
    """Just what admission order needs, read without decoding whole rows."""

    id: str
    team_id: str
    user_id: str
    created_at: float


def new_job_id() -> str:
    """Short, unguessable, safe in a Discord custom_id and easy to read aloud."""
    return secrets.token_hex(4)


class Store:
    """One SQLite file. All writes go through here; every write commits before returning."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives process crashes
        await db.execute("PRAGMA busy_timeout=5000")
        store = cls(db)
        await store._migrate()
        return store

    async def close(self) -> None:
        await self.db.close()

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cur:
            (version,) = await cur.fetchone()  # type: ignore[misc]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self.db.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # --- jobs -------------------------------------------------------------------------------

    async def insert_job(self, job: Job) -> Job:
        values = _to_columns(job.__dict__)
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        sql = f"INSERT INTO jobs ({names}) VALUES ({marks})"
        await self.db.execute(sql, tuple(values.values()))
        await self.db.commit()
        return job

    async def get_job(self, job_id: str) -> Job | None:
        async with self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        return Job.from_row(row) if row else None

    async def update_job(
        self, job_id: str, *, expect: Iterable[JobState] | None = None, **changes: Any
    ) -> Job | None:
        """Write `changes`; with `expect`, only if the job is still in one of those states.

        Returns the job as written, or None when the expectation no longer held (someone else,
        e.g. a cancel, moved it first)."""
        values = _to_columns(changes)
        sets = ", ".join(f"{name} = ?" for name in values)
        sql = f"UPDATE jobs SET {sets} WHERE id = ?"
        params: list[Any] = [*values.values(), job_id]
        if expect is not None:
            states = list(expect)
            sql += f" AND state IN ({', '.join('?' for _ in states)})"
            params += [str(s) for s in states]
        cur = await self.db.execute(sql, params)
        await self.db.commit()
        if cur.rowcount == 0:
            return None
        return await self.get_job(job_id)

    async def jobs(self, where: str = "1", params: Iterable[Any] = (), *, order: str = "created_at",
                   limit: int | None = None) -> list[Job]:
        sql = f"SELECT * FROM jobs WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        async with self.db.execute(sql, tuple(params)) as cur:
            return [Job.from_row(row) for row in await cur.fetchall()]

    async def jobs_in(self, states: Iterable[JobState], model: str | None = None) -> list[Job]:
        states = [str(s) for s in states]
        where = f"state IN ({', '.join('?' for _ in states)})"
        if model is not None:
            where += " AND model = ?"
            states.append(model)
        return await self.jobs(where, states)

    async def queued(self, model: str) -> list[QueuedJob]:
        sql = ("SELECT id, team_id, user_id, created_at FROM jobs"
               " WHERE state = 'queued' AND model = ? ORDER BY created_at")
        async with self.db.execute(sql, (model,)) as cur:
            return [QueuedJob(*row) for row in await cur.fetchall()]

    async def count_in(self, states: Iterable[JobState], model: str) -> int:
        states = [str(s) for s in states]
        sql = (f"SELECT COUNT(*) FROM jobs WHERE state IN ({', '.join('?' for _ in states)})"
               " AND model = ?")
        async with self.db.execute(sql, (*states, model)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def models_in(self, state: JobState) -> list[str]:
        sql = "SELECT DISTINCT model FROM jobs WHERE state = ? ORDER BY model"
        async with self.db.execute(sql, (str(state),)) as cur:
            return [str(r[0]) for r in await cur.fetchall()]

    async def durations(self, model: str, limit: int = 200) -> list[float]:
        """The provider's own submit-to-end seconds of this model's latest finished tasks."""
        sql = (
            "SELECT provider_seconds FROM jobs WHERE model = ? AND provider_seconds IS NOT NULL"
            " ORDER BY finished_at DESC LIMIT ?"
        )
        async with self.db.execute(sql, (model, limit)) as cur:
            return [float(r[0]) for r in await cur.fetchall()]

    async def durations_by_key(self, model: str, limit: int = 1000) -> dict[str, list[float]]:
        """A model's latest durations (newest first) grouped by what drives them: its history
        keys (resolution or size, video length, mode; see `history_key`)."""
        sql = (
            "SELECT options, provider_seconds FROM jobs WHERE model = ?"
            " AND provider_seconds IS NOT NULL ORDER BY finished_at DESC LIMIT ?"
        )
        grouped: dict[str, list[float]] = {}
        async with self.db.execute(sql, (model, limit)) as cur:
            for options, seconds in await cur.fetchall():
                key = history_key(model, json.loads(options))
                grouped.setdefault(key, []).append(float(seconds))
        return grouped

    async def last_admitted(self, model: str, column: str) -> dict[str, float]:
        """When each user (or team) last had a job of this model sent to the provider."""
        assert column in ("user_id", "team_id")
        sql = (
            f"SELECT {column}, MAX(submitted_at) FROM jobs"
            " WHERE model = ? AND submitted_at IS NOT NULL GROUP BY 1"
        )
        async with self.db.execute(sql, (model,)) as cur:
            return {str(r[0]): float(r[1]) for r in await cur.fetchall()}

    async def claimed_task_ids(self) -> set[str]:
        async with self.db.execute("SELECT task_id FROM jobs WHERE task_id IS NOT NULL") as cur:
            return {str(r[0]) for r in await cur.fetchall()}

    # --- meta and team settings --------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        async with self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        await self.db.commit()

    async def get_team_settings(self, team_id: str) -> dict[str, Any]:
        sql = "SELECT settings FROM team_settings WHERE team_id = ?"
        async with self.db.execute(sql, (team_id,)) as cur:
            row = await cur.fetchone()
        return json.loads(row[0]) if row else {}

    async def set_team_settings(self, team_id: str, settings: Mapping[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO team_settings (team_id, settings) VALUES (?, ?)"
            " ON CONFLICT (team_id) DO UPDATE SET settings = excluded.settings",
            (team_id, json.dumps(dict(settings))),
        )
        await self.db.commit()


def _to_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values to SQLite ones: JSON for structures, ints for flags, text for states."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in _FIELDS:
            raise KeyError(f"jobs has no column {name}")
        if name in JSON_COLUMNS and value is not None:
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        elif isinstance(value, StrEnum):
            value = str(value)
        out[name] = value
    return out
