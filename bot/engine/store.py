"""Jobs and settings in SQLite (aiosqlite, WAL): the engine's memory across restarts.

Times are unix seconds (REAL). A job's state is written before the side effect that follows it,
so a crash at any line leaves a row that says what to do next.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiosqlite

from bot.engine.jobs import (
    FIELDS,
    JSON_COLUMNS,
    TERMINAL,
    Job,
    JobState,
    QueuedJob,
)
from bot.engine.poll_policy import history_key
from bot.engine.records import Record
from bot.errors import StorageError

MAX_CHAIN = 200  # clips a chain is walked up at most (a loop in bad data ends there)
TERMINAL_SQL = "(" + ", ".join(f"'{s}'" for s in sorted(TERMINAL)) + ")"  # for IN clauses

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
    # 3: the send time of every create attempt, written before it is sent (a JSON list).
    """
    ALTER TABLE jobs ADD COLUMN sends TEXT NOT NULL DEFAULT '[]';
    """,
    # 4: an index for every query on the admission and submit paths, so their cost does not
    # grow with history: when each team and user was last served (read at start), a team's
    # usage today, and a person's unfinished jobs.
    f"""
    CREATE INDEX jobs_user_served ON jobs (model, user_id, submitted_at)
        WHERE submitted_at IS NOT NULL;
    CREATE INDEX jobs_team_served ON jobs (model, team_id, submitted_at)
        WHERE submitted_at IS NOT NULL;
    CREATE INDEX jobs_team_day ON jobs (team_id, created_at);
    CREATE INDEX jobs_unfinished ON jobs (team_id, user_id) WHERE state NOT IN {TERMINAL_SQL};
    """,
    # 5: the video re-encoded to fit the destination's upload limit (a JSON `Fit` record).
    """
    ALTER TABLE jobs ADD COLUMN fit TEXT;
    """,
    # 6: Extend: a job made from another's last frame names it (its chain, root first, is
    # walked up by id); the chain stitched into one video, a record like `delivery`; an index
    # for the delivered extensions whose chain video is still to be made or posted.
    """
    ALTER TABLE jobs ADD COLUMN parent_id TEXT;
    ALTER TABLE jobs ADD COLUMN chain TEXT;
    CREATE INDEX jobs_chain_due ON jobs (state) WHERE parent_id IS NOT NULL;
    """,
    # 7: the API key whose account holds each job's task (its id, never the secret);
    # NULL means the first key.
    """
    ALTER TABLE jobs ADD COLUMN api_key_id TEXT;
    """,
)


# SQLite's names for a file that cannot be used (as opposed to a busy one or a bug in our SQL).
FAULTS = {
    "SQLITE_FULL": "the disk is full; free some space",
    "SQLITE_READONLY": "check that the file and its folder may be written",
    "SQLITE_PERM": "check that the file and its folder may be written",
    "SQLITE_CANTOPEN": "check that its folder exists and may be written",
    "SQLITE_IOERR": "the disk reported an error; check it",
    "SQLITE_CORRUPT": "the file is damaged; restore a backup, or move it away to start empty",
    "SQLITE_NOTADB": "this is not a wanbot database; restore a backup, or move it away",
}


class Store:
    """One SQLite file. All writes go through here; every write commits before returning, and
    a file that cannot be used raises StorageError (which the engine treats as fatal)."""

    def __init__(self, db: aiosqlite.Connection, path: str | Path = "") -> None:
        self.db = db
        self.path = Path(path)
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        """Open (and create or migrate) the database, proving it can be written.

        Raises StorageError naming the file and what to do when it cannot be used."""
        try:
            # Probed first with plain sqlite3: a failed aiosqlite connect leaves its thread
            # calling back into a loop that may be gone (a traceback at exit).
            await asyncio.to_thread(_probe, Path(path))
            db = await aiosqlite.connect(path)
        except (OSError, sqlite3.Error) as exc:
            raise storage_error(path, exc, "open") from exc
        store = cls(db, path)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives crashes
            await db.execute("PRAGMA busy_timeout=5000")
            await store._migrate()
            await store.set_meta("opened_at", str(time.time()))  # proves it can be written
            store._identity = await asyncio.to_thread(_identity, Path(path))
        except (OSError, sqlite3.Error) as exc:
            await db.close()  # its thread would otherwise keep the process alive
            raise storage_error(path, exc, "open") from exc
        return store

    async def check_file(self) -> None:
        """Raise StorageError if the file at our path is no longer the one we opened (it was
        removed or replaced): our writes would go to a file nobody will read again."""
        if self._identity is None:
            return
        try:
            now = await asyncio.to_thread(_identity, self.path)
        except FileNotFoundError:
            raise StorageError(self.path, "the database file was removed while the bot ran; "
                               "stopping before more work is lost") from None
        if now != self._identity:
            raise StorageError(self.path, "the database file was replaced while the bot ran; "
                               "stopping (restart to use the new file)")

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

    async def _write(self, sql: str, params: Iterable[Any]) -> int:
        """Run one write and commit it; the number of rows changed."""
        try:
            cur = await self.db.execute(sql, tuple(params))
            await self.db.commit()
        except (OSError, sqlite3.Error) as exc:
            if _advice(exc) is None:
                raise  # a busy database or a bug in our SQL, not a fault of the file
            raise storage_error(self.path, exc, "write") from exc
        return cur.rowcount

    async def insert_job(self, job: Job) -> Job:
        values = _to_columns(job.__dict__)
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        await self._write(f"INSERT INTO jobs ({names}) VALUES ({marks})", values.values())
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
        if await self._write(sql, params) == 0:
            return None
        return await self.get_job(job_id)

    async def _select(self, where: str = "1", params: Iterable[Any] = (), *,
                      order: str = "created_at", limit: int | None = None) -> list[Job]:
        sql = f"SELECT * FROM jobs WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        async with self.db.execute(sql, tuple(params)) as cur:
            return [Job.from_row(row) for row in await cur.fetchall()]

    async def jobs(self) -> list[Job]:
        """Every job, oldest first (tests, benchmarks and small tools)."""
        return await self._select()

    async def user_jobs(self, platform: str, team_id: str, user_id: str, limit: int) -> list[Job]:
        """A person's newest jobs in one team, newest first."""
        return await self._select(
            "platform = ? AND team_id = ? AND user_id = ?", [platform, team_id, user_id],
            order="created_at DESC, id DESC", limit=limit)

    async def changed_since(self, since: float) -> list[Job]:
        return await self._select("updated_at >= ?", [since])

    async def old_videos(self, before: float) -> list[Job]:
        """Ended jobs whose video file is still on disk and older than `before`."""
        return await self._select(
            f"video_path IS NOT NULL AND state IN {TERMINAL_SQL}"
            " AND COALESCE(delivered_at, finished_at, updated_at) < ?", [before])

    async def chain_of(self, job_id: str) -> list[Job]:
        """The job and every job it extends, root first (one query, however long)."""
        sql = (
            "WITH RECURSIVE up(id, depth) AS (SELECT ?, 0 UNION ALL"
            " SELECT jobs.parent_id, up.depth + 1 FROM jobs JOIN up ON jobs.id = up.id"
            f" WHERE jobs.parent_id IS NOT NULL AND up.depth < {MAX_CHAIN})"
            " SELECT jobs.* FROM jobs JOIN up ON jobs.id = up.id ORDER BY up.depth DESC"
        )
        async with self.db.execute(sql, (job_id,)) as cur:
            return [Job.from_row(row) for row in await cur.fetchall()]

    async def chains_due(self) -> list[Job]:
        """Delivered extensions whose chain video is not posted yet (nor given up)."""
        return await self._select(
            "parent_id IS NOT NULL AND state = 'delivered' AND (chain IS NULL OR"
            " json_extract(chain, '$.state') NOT IN ('posted', 'failed'))")

    async def usage_totals(self, team_id: str, since: float,
                           user_id: str | None = None) -> tuple[float, float, int]:
        """Video-seconds made (the provider's usage) and still on their way (expected), and
        the number of jobs, in a team (or of one person) since `since`."""
        where = "team_id = ? AND created_at >= ?"
        params: list[Any] = [team_id, since]
        if user_id is not None:
            where += " AND user_id = ?"
            params.append(user_id)
        sql = (
            "SELECT COALESCE(SUM(CASE WHEN usage IS NOT NULL"
            " THEN json_extract(usage, '$.video_duration') END), 0),"
            " COALESCE(SUM(CASE WHEN usage IS NULL AND state NOT IN"
            f" {TERMINAL_SQL} THEN expected_seconds END), 0),"
            f" COUNT(*) FROM jobs WHERE {where}"
        )
        async with self.db.execute(sql, params) as cur:
            made, pending, count = await cur.fetchone()  # type: ignore[misc]
        return float(made), float(pending), int(count)

    async def unfinished_count(self, team_id: str, user_id: str) -> int:
        sql = (
            "SELECT COUNT(*) FROM jobs WHERE team_id = ? AND user_id = ?"
            f" AND state NOT IN {TERMINAL_SQL}"
        )
        async with self.db.execute(sql, (team_id, user_id)) as cur:
            (count,) = await cur.fetchone()  # type: ignore[misc]
        return int(count)

    async def jobs_in(self, states: Iterable[JobState], model: str | None = None) -> list[Job]:
        states = [str(s) for s in states]
        where = f"state IN ({', '.join('?' for _ in states)})"
        if model is not None:
            where += " AND model = ?"
            states.append(model)
        return await self._select(where, states)

    async def queued(self, model: str) -> list[QueuedJob]:
        sql = ("SELECT id, team_id, user_id, created_at FROM jobs"
               " WHERE state = 'queued' AND model = ? ORDER BY created_at")
        async with self.db.execute(sql, (model,)) as cur:
            return [QueuedJob(*row) for row in await cur.fetchall()]

    async def progress_refs(self, state: JobState) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, model, progress reference) of the jobs in `state` that have one, read light."""
        sql = ("SELECT id, model, progress_ref FROM jobs"
               " WHERE state = ? AND progress_ref IS NOT NULL ORDER BY created_at")
        async with self.db.execute(sql, (str(state),)) as cur:
            return [(str(r[0]), str(r[1]), json.loads(r[2])) for r in await cur.fetchall()]

    async def count_in(self, states: Iterable[JobState], model: str) -> int:
        states = [str(s) for s in states]
        sql = (f"SELECT COUNT(*) FROM jobs WHERE state IN ({', '.join('?' for _ in states)})"
               " AND model = ?")
        async with self.db.execute(sql, (*states, model)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def count_by_key(self, states: Iterable[JobState], model: str
                           ) -> dict[str | None, int]:
        """How many of a model's jobs are in `states`, by the API key that has them."""
        states = [str(s) for s in states]
        sql = (f"SELECT api_key_id, COUNT(*) FROM jobs WHERE state IN"
               f" ({', '.join('?' for _ in states)}) AND model = ? GROUP BY api_key_id")
        async with self.db.execute(sql, (*states, model)) as cur:
            return {r[0]: int(r[1]) for r in await cur.fetchall()}

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
        await self._write(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def get_team_settings(self, team_id: str) -> dict[str, Any]:
        sql = "SELECT settings FROM team_settings WHERE team_id = ?"
        async with self.db.execute(sql, (team_id,)) as cur:
            row = await cur.fetchone()
        return json.loads(row[0]) if row else {}

    async def set_team_settings(self, team_id: str, settings: Mapping[str, Any]) -> None:
        await self._write(
            "INSERT INTO team_settings (team_id, settings) VALUES (?, ?)"
            " ON CONFLICT (team_id) DO UPDATE SET settings = excluded.settings",
            (team_id, json.dumps(dict(settings))),
        )


def _to_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values to SQLite ones: JSON for structures, ints for flags, text for states."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in FIELDS:
            raise KeyError(f"jobs has no column {name}")
        if isinstance(value, Record):
            value = json.dumps(value.to_dict())
        elif name in JSON_COLUMNS and value is not None:
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        elif isinstance(value, StrEnum):
            value = str(value)
        out[name] = value
    return out


def storage_error(path: str | Path, exc: BaseException, doing: str) -> StorageError:
    """A StorageError saying what went wrong with the file and what to do about it."""
    advice = _advice(exc)
    return StorageError(path, f"cannot {doing} it ({exc})" + (f": {advice}" if advice else ""))


def _advice(exc: BaseException) -> str | None:
    """What to do about a fault of the file itself; None for anything else."""
    if isinstance(exc, OSError):
        return "check that its folder exists and may be written"
    name = getattr(exc, "sqlite_errorname", "") or ""
    return next((text for prefix, text in FAULTS.items() if name.startswith(prefix)), None)


def _probe(path: Path) -> None:
    """Make the folder, then open the file and read its header (raises what SQLite says)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    probe = sqlite3.connect(path)
    try:
        probe.execute("PRAGMA user_version").fetchone()
    finally:
        probe.close()


def _identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino
