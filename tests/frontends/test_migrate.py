"""`python -m bot migrate` brings either backend to the latest schema, without an API key or a
chat token (an operator runs it before starting several processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.engine.store import MIGRATIONS


def migrate(env: dict[str, str], cwd: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DATABASE_", "DASHSCOPE_", "DISCORD_", "SLACK_"))}
    return subprocess.run([sys.executable, "-m", "bot", "migrate"], env={**clean, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_reports_the_latest_version(request, tmp_path, backend):
    if backend == "sqlite":
        env = {"DATABASE_PATH": str(tmp_path / "db" / "jobs.sqlite3")}
    else:
        env = {"DATABASE_URL": request.getfixturevalue("pg_url")}
    done = migrate(env, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"{backend} database is at schema version {len(MIGRATIONS)}" in done.stdout
    assert "wanbot:wanbot@" not in done.stdout + done.stderr  # the password stays out


def test_migrate_explains_a_database_it_cannot_reach(tmp_path):
    done = migrate({"DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/none"}, str(tmp_path))
    assert done.returncode == 1 and "cannot use its database" in done.stderr
    assert "secret" not in done.stderr
