"""The store in PostgreSQL (asyncpg), for several bot processes sharing one queue.

Connection faults: a blip (the server restarting, a dropped connection, a failover) is retried
with back-off for up to RETRY_FOR_S; past that, or at once for a fault retrying cannot fix (disk
full, read-only, refused credentials, no such database), StorageError, which the engine treats
as fatal. A write retried after its connection dropped may already have happened: `_write`
then says UNKNOWN and the caller reads the row to tell (see `Store.update_job`).

Also the PostgreSQL-only pieces several processes need (leases, locks, wake-ups): see
`bot.engine.shared` for what uses them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bot.engine.jobs import Job
from bot.engine.store.base import UNKNOWN, Row, Store
from bot.engine.store.schema import (
    COORDINATION,
    MIGRATIONS,
    TERMINAL_SQL,
    for_postgres,
    numbered_params,
)
from bot.engine.store.session import Session
from bot.errors import StorageError

log = logging.getLogger(__name__)

RETRY_FOR_S = 30.0  # a connection blip longer than this stops the bot
FIRST_WAIT_S, LAST_WAIT_S = 0.1, 5.0
CONNECT_TIMEOUT_S = 10.0
MIGRATION_LOCK = 0x57A4B07  # advisory lock key: one process migrates at a time

# Faults retrying cannot fix, with what to do about each.
FAULTS: dict[type[BaseException], str] = {
    asyncpg.exceptions.DiskFullError: "the database server's disk is full; free some space",
    asyncpg.exceptions.ReadOnlySQLTransactionError: "the server is read-only (a standby?); "
                                                    "point DATABASE_URL at the primary",
    asyncpg.exceptions.InsufficientPrivilegeError: "the role may not do this; grant it the "
                                                   "database (see README)",
    asyncpg.exceptions.InvalidAuthorizationSpecificationError: "check the user and password "
                                                                "in DATABASE_URL",
    asyncpg.exceptions.InvalidCatalogNameError: "create the database first (see README)",
}
BLIPS = (OSError, asyncio.TimeoutError, asyncpg.exceptions.PostgresConnectionError,
         asyncpg.exceptions.OperatorInterventionError,
         asyncpg.exceptions.TooManyConnectionsError)


def redacted(url: str) -> str:
    """The URL without its password (it goes into logs and errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def is_blip(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.exceptions.InterfaceError):
        return "closed" in str(exc)  # a connection closed under us; else a bug of ours
    return isinstance(exc, BLIPS) and not isinstance(exc, tuple(FAULTS))


def storage_error(where: str, exc: BaseException, doing: str) -> StorageError:
    advice = next((text for kind, text in FAULTS.items() if isinstance(exc, kind)), None)
    return StorageError(where, f"cannot {doing} it ({type(exc).__name__}: {exc})"
                        + (f": {advice}" if advice else ""))


class PostgresStore(Store):
    backend = "postgresql"
    shared = True

    @classmethod
    def handles(cls, target: str) -> bool:
        return target.startswith(("postgresql://", "postgres://"))

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.where = redacted(url)
        self.retry_for_s = RETRY_FOR_S

    @classmethod
    async def open(cls, target: str | Any) -> PostgresStore:
        url = str(target)
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=10,
                                             timeout=CONNECT_TIMEOUT_S)
        except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
            raise storage_error(redacted(url), exc, "open") from exc
        store = cls(pool, url)
        try:
            await store._migrate()
            await store.set_meta("opened_at", str(time.time()))  # proves it can be written
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        await self.pool.close()

    async def session(self) -> Session:
        """A connection of its own (outside the pool) for a session-long lock or LISTEN."""
        conn = await self._retrying("connect", lambda: asyncpg.connect(
            self.url, timeout=CONNECT_TIMEOUT_S))
        return Session(conn)

    # --- migrations ----------------------------------------------------------------------------

    async def _migrate(self) -> None:
        """Apply what is missing, one migration per transaction, one process at a time."""
        async def run() -> None:
            async with self.pool.acquire() as conn:
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version"
                                   " (version INTEGER NOT NULL)")
                for number, script in enumerate(MIGRATIONS, start=1):
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                        if await _version(conn) >= number:
                            continue
                        await conn.execute(for_postgres(script))
                        await conn.execute("DELETE FROM schema_version")
                        await conn.execute("INSERT INTO schema_version VALUES ($1)", number)
                        log.info("database migrated to version %d", number)
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                    await conn.execute(COORDINATION)

        await self._retrying("migrate", run)

    async def schema_version(self) -> int:
        async def read() -> int:
            async with self.pool.acquire() as conn:
                return await _version(conn)

        return await self._retrying("read", read)

    # --- primitives ----------------------------------------------------------------------------

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        query = numbered_params(sql)
        return await self._retrying("read", lambda: self.pool.fetch(query, *params))

    async def _write(self, sql: str, params: Iterable[Any]) -> int:
        query, args = numbered_params(sql), tuple(params)
        tries = 0

        async def write() -> int:
            nonlocal tries
            tries += 1
            try:
                status = await self.pool.execute(query, *args)
            except asyncpg.exceptions.UniqueViolationError:
                if tries > 1:
                    return UNKNOWN  # our first attempt inserted it before its answer was lost
                raise
            count = int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0
            return UNKNOWN if tries > 1 and count == 0 else count

        return await self._retrying("write", write)

    async def _write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        query, batch = numbered_params(sql), list(rows)  # listed: a retry sends them again

        async def write() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.executemany(query, batch)

        await self._retrying("write", write)

    def _json_number(self, column: str, key: str) -> str:
        return f"{self._json_text(column, key)}::double precision"

    def _json_text(self, column: str, key: str) -> str:
        return f"(({column})::jsonb ->> '{key}')"

    async def _retrying(self, doing: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """Run `attempt`, again after connection blips (with back-off) up to retry_for_s."""
        deadline = time.monotonic() + self.retry_for_s
        wait = FIRST_WAIT_S
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if not is_blip(exc):
                    if isinstance(exc, tuple(FAULTS)):
                        raise storage_error(self.where, exc, doing) from exc
                    raise  # a bug in our SQL: the caller's problem, not the database's
                if time.monotonic() + wait > deadline:
                    raise StorageError(self.where, f"lost the connection for over "
                                       f"{self.retry_for_s:.0f} s ({exc}); stopping") from exc
                log.warning("database connection problem (%s); %s again in %.1f s",
                            type(exc).__name__, doing, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, LAST_WAIT_S)

    # --- for several processes (see bot.engine.shared) -----------------------------------------

    async def claim_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Take the job's lease unless another live process holds it (this process is kept
        alive ttl_s longer in the same step, so the lease never starts out dead)."""
        row = await self._row(
            "WITH me AS (" + _ALIVE + ")"
            " INSERT INTO leases (job_id, owner) SELECT ?, owner FROM me"
            " ON CONFLICT (job_id) DO UPDATE SET owner = excluded.owner"
            " WHERE leases.owner = excluded.owner OR NOT " + _LIVE.format(owner="leases.owner") +
            " RETURNING owner", (owner, float(ttl_s), job_id))
        return row is not None

    async def renew_leases(self, owner: str, ttl_s: float) -> set[str] | None:
        """This process lives ttl_s longer (its heartbeat: one row, however many leases).
        None when it was alive all along (nobody could take its leases); after a lapse, the
        jobs whose lease it still holds (one another process took meanwhile is not among
        them)."""
        row = await self._row(  # `old` reads the row as it was before this update
            "UPDATE processes p SET expires_at = " + _NOW + " + ? FROM processes old"
            " WHERE p.owner = ? AND old.owner = p.owner RETURNING old.expires_at >= " + _NOW,
            (float(ttl_s), owner))
        if row is not None and row[0]:
            return None
        if row is None:  # gone (a clean stop dropped it): alive again
            await self._row(_ALIVE, (owner, float(ttl_s)))
        rows = await self._rows("SELECT job_id FROM leases WHERE owner = ?", (owner,))
        return {str(r[0]) for r in rows}

    async def drop_ended_leases(self, owner: str) -> set[str]:
        """Leases of this process's jobs that have ended, gone; their ids."""
        rows = await self._rows(f"DELETE FROM leases WHERE owner = ? AND job_id IN (SELECT id"
                                f" FROM jobs WHERE state IN {TERMINAL_SQL}) RETURNING job_id",
                                (owner,))
        return {str(r[0]) for r in rows}

    async def drop_leases(self, owner: str) -> None:
        """Every lease of this process, gone (it stops): others take its jobs at once."""
        await self._write("DELETE FROM leases WHERE owner = ?", (owner,))
        await self._write("DELETE FROM processes WHERE owner = ?", (owner,))

    async def unleased(self, states: Iterable[str]) -> list[Job]:
        """Jobs in these states that no live process holds a lease on."""
        names = [str(s) for s in states]
        return await self._select(
            "state = ANY(?::text[]) AND NOT EXISTS (SELECT 1 FROM leases l WHERE"
            " l.job_id = jobs.id AND " + _LIVE.format(owner="l.owner") + ")", [names])

    async def leased(self, owner: str, states: Iterable[str]) -> list[Job]:
        """Jobs in these states whose lease this process holds."""
        return await self._select(
            "state = ANY(?::text[]) AND id IN (SELECT job_id FROM leases WHERE owner = ?)",
            [[str(s) for s in states], owner])

    @asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        """Hold the named lock (across processes, waiting for it) for the block."""
        async with self.pool.acquire() as conn:
            key = "SELECT hashtext(current_schema() || ':' || $1)"
            await conn.execute(f"SELECT pg_advisory_lock(({key}))", name)
            try:
                yield
            finally:
                await conn.execute(f"SELECT pg_advisory_unlock(({key}))", name)


_NOW = "extract(epoch from clock_timestamp())"  # the server's clock: one for every process
# this process (owner ?) alive for ? more seconds; answers its owner
_ALIVE = ("INSERT INTO processes (owner, expires_at) VALUES (?, " + _NOW + " + ?)"
          " ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at RETURNING owner")
_LIVE = ("EXISTS (SELECT 1 FROM processes p WHERE p.owner = {owner} AND p.expires_at >= "
         + _NOW + ")")


async def _version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
