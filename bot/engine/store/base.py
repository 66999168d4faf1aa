"""The store's one interface: every query the engine and front ends make, written once.

A backend (SQLite, PostgreSQL) supplies the connection, migrations and four primitives
(`_rows`, `_row`, `_write`, `_json_number`); the SQL here uses `?` placeholders, which the
PostgreSQL backend numbers. Times are unix seconds. A job's state is written before the side
effect that follows it, so a crash at any line leaves a row that says what to do next.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from bot.engine.jobs import FIELDS, JSON_COLUMNS, Job, JobState, QueuedJob
from bot.engine.poll_policy import history_key
from bot.engine.records import Record
from bot.engine.store.schema import TERMINAL_SQL

MAX_CHAIN = 200  # clips a chain is walked up at most (a loop in bad data ends there)

Row = Any  # a backend's row: indexable by position and by column name
UNKNOWN = -1  # _write's count when a connection blip hid whether the write happened


class Store:
    """Jobs, settings and facts about the bot. Every write commits before returning; storage
    that cannot be used raises StorageError (which the engine treats as fatal)."""

    backend = "?"
    shared = False  # True when several processes may use the same store at once

    _backends: ClassVar[list[type[Store]]] = []  # every backend class, as it is defined

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Store._backends.insert(0, cls)  # the most specific first; SQLite (any path) last

    @classmethod
    def handles(cls, target: str) -> bool:
        """Whether this backend opens `target`."""
        return False

    @classmethod
    async def open(cls, target: str | Path) -> Store:
        """Open (creating and migrating) the store at `target`: a postgresql:// URL or the
        path of a SQLite file. Raises StorageError saying what to do when it cannot be used."""
        backend = next(b for b in Store._backends if b.handles(str(target)))
        return await backend.open(target)

    async def close(self) -> None:
        raise NotImplementedError

    async def check_file(self) -> None:
        """Raise StorageError if the storage opened is no longer the one in use."""

    async def schema_version(self) -> int:
        raise NotImplementedError

    # --- what a backend supplies -------------------------------------------------------------

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def _row(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    async def _write(self, sql: str, params: Iterable[Any]) -> int:
        """Run one write and commit it; the number of rows changed (or UNKNOWN)."""
        raise NotImplementedError

    async def _write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one write for each row, committed together."""
        raise NotImplementedError

    def _json_number(self, column: str, key: str) -> str:
        """SQL for a number at `key` of a JSON text column."""
        raise NotImplementedError

    def _json_text(self, column: str, key: str) -> str:
        """SQL for a string at `key` of a JSON text column."""
        raise NotImplementedError

    # --- jobs ----------------------------------------------------------------------------------

    async def insert_job(self, job: Job) -> Job:
        values = _to_columns(job.__dict__)
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        await self._write(f"INSERT INTO jobs ({names}) VALUES ({marks})", values.values())
        return job

    async def insert_jobs(self, jobs: Iterable[Job]) -> None:
        """Many jobs in one transaction (imports, benchmarks): all or none."""
        rows = (_to_columns(job.__dict__) for job in jobs)
        first = next(rows, None)
        if first is None:
            return
        sql = (f"INSERT INTO jobs ({', '.join(first)})"
               f" VALUES ({', '.join('?' for _ in first)})")
        await self._write_many(sql, (tuple(r.values()) for r in itertools.chain([first], rows)))

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._row("SELECT * FROM jobs WHERE id = ?", (job_id,))
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
        written = await self._write(sql, params)
        if written == 0:
            return None
        job = await self.get_job(job_id)
        if written == UNKNOWN and job is not None and not _holds(job, values):
            return None  # the retry found the job moved, and not by our first attempt
        return job

    async def _select(self, where: str = "1 = 1", params: Iterable[Any] = (), *,
                      order: str = "created_at", limit: int | None = None) -> list[Job]:
        sql = f"SELECT * FROM jobs WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Job.from_row(row) for row in await self._rows(sql, tuple(params))]

    async def jobs(self) -> list[Job]:
        """Every job, oldest first (tests, benchmarks and small tools)."""
        return await self._select()

    async def user_jobs(self, platform: str, team_id: str, user_id: str, limit: int) -> list[Job]:
        """A person's newest jobs in one team, newest first."""
        return await self._select(
            "platform = ? AND team_id = ? AND user_id = ?", [platform, team_id, user_id],
            order="created_at DESC, id DESC", limit=limit)

    async def changed_since(self, since: float) -> list[Job]:
        return await self._select("updated_at >= ?", [float(since)])

    async def old_videos(self, before: float) -> list[Job]:
        """Ended jobs whose video file is still on disk and older than `before`."""
        return await self._select(
            f"video_path IS NOT NULL AND state IN {TERMINAL_SQL}"
            " AND COALESCE(delivered_at, finished_at, updated_at) < ?", [float(before)])

    async def chain_of(self, job_id: str) -> list[Job]:
        """The job and every job it extends, root first (one query, however long)."""
        sql = (
            "WITH RECURSIVE up(id, depth) AS (SELECT ?, 0 UNION ALL"
            " SELECT jobs.parent_id, up.depth + 1 FROM jobs JOIN up ON jobs.id = up.id"
            f" WHERE jobs.parent_id IS NOT NULL AND up.depth < {MAX_CHAIN})"
            " SELECT jobs.* FROM jobs JOIN up ON jobs.id = up.id ORDER BY up.depth DESC"
        )
        return [Job.from_row(row) for row in await self._rows(sql, (job_id,))]

    async def chains_due(self) -> list[Job]:
        """Delivered extensions whose chain video is not posted yet (nor given up)."""
        return await self._select(
            "parent_id IS NOT NULL AND state = 'delivered' AND (chain IS NULL OR"
            f" {self._json_text('chain', 'state')} NOT IN ('posted', 'failed'))")

    async def usage_totals(self, team_id: str, since: float,
                           user_id: str | None = None) -> tuple[float, float, int]:
        """Video-seconds made (the provider's usage) and still on their way (expected), and
        the number of jobs, in a team (or of one person) since `since`."""
        where = "team_id = ? AND created_at >= ?"
        params: list[Any] = [team_id, float(since)]
        if user_id is not None:
            where += " AND user_id = ?"
            params.append(user_id)
        sql = (
            "SELECT COALESCE(SUM(CASE WHEN usage IS NOT NULL"
            f" THEN {self._json_number('usage', 'video_duration')} END), 0),"
            " COALESCE(SUM(CASE WHEN usage IS NULL AND state NOT IN"
            f" {TERMINAL_SQL} THEN expected_seconds END), 0),"
            f" COUNT(*) FROM jobs WHERE {where}"
        )
        made, pending, count = await self._row(sql, params)  # type: ignore[misc]
        return float(made), float(pending), int(count)

    async def unfinished_count(self, team_id: str, user_id: str) -> int:
        sql = (
            "SELECT COUNT(*) FROM jobs WHERE team_id = ? AND user_id = ?"
            f" AND state NOT IN {TERMINAL_SQL}"
        )
        row = await self._row(sql, (team_id, user_id))
        return int(row[0]) if row else 0

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
        return [QueuedJob(*row) for row in await self._rows(sql, (model,))]

    async def progress_refs(self, state: JobState) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, model, progress reference) of the jobs in `state` that have one, read light."""
        sql = ("SELECT id, model, progress_ref FROM jobs"
               " WHERE state = ? AND progress_ref IS NOT NULL ORDER BY created_at")
        return [(str(r[0]), str(r[1]), json.loads(r[2]))
                for r in await self._rows(sql, (str(state),))]

    async def count_in(self, states: Iterable[JobState], model: str) -> int:
        states = [str(s) for s in states]
        sql = (f"SELECT COUNT(*) FROM jobs WHERE state IN ({', '.join('?' for _ in states)})"
               " AND model = ?")
        row = await self._row(sql, (*states, model))
        return int(row[0]) if row else 0

    async def count_by_key(self, states: Iterable[JobState], model: str
                           ) -> dict[str | None, int]:
        """How many of a model's jobs are in `states`, by the API key that has them."""
        states = [str(s) for s in states]
        sql = (f"SELECT api_key_id, COUNT(*) FROM jobs WHERE state IN"
               f" ({', '.join('?' for _ in states)}) AND model = ? GROUP BY api_key_id")
        return {r[0]: int(r[1]) for r in await self._rows(sql, (*states, model))}

    async def models_in(self, state: JobState) -> list[str]:
        sql = "SELECT DISTINCT model FROM jobs WHERE state = ? ORDER BY model"
        return [str(r[0]) for r in await self._rows(sql, (str(state),))]

    async def durations(self, model: str, limit: int = 200) -> list[float]:
        """The provider's own submit-to-end seconds of this model's latest finished tasks."""
        sql = (
            "SELECT provider_seconds FROM jobs WHERE model = ? AND provider_seconds IS NOT NULL"
            " ORDER BY finished_at DESC LIMIT ?"
        )
        return [float(r[0]) for r in await self._rows(sql, (model, limit))]

    async def durations_by_key(self, model: str, limit: int = 1000) -> dict[str, list[float]]:
        """A model's latest durations (newest first) grouped by what drives them: its history
        keys (resolution or size, video length, mode; see `history_key`)."""
        sql = (
            "SELECT options, provider_seconds FROM jobs WHERE model = ?"
            " AND provider_seconds IS NOT NULL ORDER BY finished_at DESC LIMIT ?"
        )
        grouped: dict[str, list[float]] = {}
        for options, seconds in await self._rows(sql, (model, limit)):
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
        return {str(r[0]): float(r[1]) for r in await self._rows(sql, (model,))}

    async def claimed_task_ids(self) -> set[str]:
        rows = await self._rows("SELECT task_id FROM jobs WHERE task_id IS NOT NULL")
        return {str(r[0]) for r in rows}

    # --- meta and team settings --------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        row = await self._row("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._write(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def get_team_settings(self, team_id: str) -> dict[str, Any]:
        row = await self._row("SELECT settings FROM team_settings WHERE team_id = ?", (team_id,))
        return json.loads(row[0]) if row else {}

    async def set_team_settings(self, team_id: str, settings: Mapping[str, Any]) -> None:
        await self._write(
            "INSERT INTO team_settings (team_id, settings) VALUES (?, ?)"
            " ON CONFLICT (team_id) DO UPDATE SET settings = excluded.settings",
            (team_id, json.dumps(dict(settings))),
        )


def _to_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values to column ones: JSON for structures, ints for flags, text for states."""
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


def _holds(job: Job, values: Mapping[str, Any]) -> bool:
    """Whether the job's row already holds these column values (our own earlier write)."""
    now = _to_columns({name: getattr(job, name) for name in values})
    return all(now[name] == value for name, value in values.items())
