"""The store in one SQLite file (aiosqlite, WAL): the default, for one process."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from bot.engine.store.base import Row, Store
from bot.engine.store.schema import MIGRATIONS
from bot.errors import StorageError

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


class SqliteStore(Store):
    """One SQLite file, for one process; a file that cannot be used raises StorageError."""

    backend = "sqlite"

    @classmethod
    def handles(cls, target: str) -> bool:
        return "://" not in target  # a path

    def __init__(self, db: aiosqlite.Connection, path: str | Path = "") -> None:
        self.db = db
        self.path = Path(path)
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened

    @classmethod
    async def open(cls, target: str | Path) -> SqliteStore:
        """Open (and create or migrate) the database, proving it can be written.

        Raises StorageError naming the file and what to do when it cannot be used."""
        path = Path(target)
        try:
            # Probed first with plain sqlite3: a failed aiosqlite connect leaves its thread
            # calling back into a loop that may be gone (a traceback at exit).
            await asyncio.to_thread(_probe, path)
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
            store._identity = await asyncio.to_thread(_identity, path)
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
        version = await self.schema_version()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self.db.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self.db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def _write(self, sql: str, params: Iterable[Any]) -> int:
        try:
            cur = await self.db.execute(sql, tuple(params))
            await self.db.commit()
        except (OSError, sqlite3.Error) as exc:
            if _advice(exc) is None:
                raise  # a busy database or a bug in our SQL, not a fault of the file
            raise storage_error(self.path, exc, "write") from exc
        return cur.rowcount

    async def _write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self.db.executemany(sql, rows)
            await self.db.commit()
        except (OSError, sqlite3.Error) as exc:
            if _advice(exc) is None:
                raise
            raise storage_error(self.path, exc, "write") from exc

    def _json_number(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    _json_text = _json_number  # json_extract answers a JSON string as text


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
