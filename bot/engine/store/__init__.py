"""The engine's memory across restarts: jobs, team settings and facts about the bot.

`Store.open(target)` opens SQLite (a file path, the default) or PostgreSQL (a postgresql://
URL, for several processes on one queue); both have the same interface and migrations.
"""

from bot.engine.store.base import Store
from bot.engine.store.postgres import PostgresStore
from bot.engine.store.schema import MIGRATIONS, TERMINAL_SQL
from bot.engine.store.sqlite import SqliteStore

__all__ = ["MIGRATIONS", "TERMINAL_SQL", "PostgresStore", "SqliteStore", "Store"]
