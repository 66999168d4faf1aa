"""The jobs schema, written once for both backends.

Each migration is SQLite's dialect limited to what PostgreSQL also reads after `for_postgres`
(REAL becomes DOUBLE PRECISION; nothing else differs). To add one, append a script to
MIGRATIONS: both backends apply it, and the store tests run it on both.
"""

from __future__ import annotations

import re

from bot.engine.jobs import TERMINAL

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

# PostgreSQL only, applied after the migrations on every start (idempotent): what several
# processes on one database need to share a queue. Not job data, so not a numbered migration.
# A lease says which process acts for a job (progress edits, fetching and delivering its
# video); it lives while its process does: each process renews one row of `processes` (until
# when, in the server's clock), so a heartbeat costs the same however many jobs it holds;
# the trigger wakes the other processes on every new job and every change of state
# (payload: "<id> <state> <insert|update>").
COORDINATION = """
CREATE TABLE IF NOT EXISTS processes (
    owner TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    job_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL
);
ALTER TABLE leases DROP COLUMN IF EXISTS expires_at;
CREATE INDEX IF NOT EXISTS leases_by_owner ON leases (owner);
CREATE OR REPLACE FUNCTION wanbot_job_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        PERFORM pg_notify('wanbot_jobs', NEW.id || ' ' || NEW.state || ' ' || lower(TG_OP));
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS jobs_changed ON jobs;
CREATE TRIGGER jobs_changed AFTER INSERT OR UPDATE OF state ON jobs
    FOR EACH ROW EXECUTE FUNCTION wanbot_job_changed();
"""

_TYPES = {"REAL": "DOUBLE PRECISION"}  # SQLite's name -> PostgreSQL's


def for_postgres(script: str) -> str:
    """A migration in PostgreSQL's dialect."""
    return re.sub(r"\b(" + "|".join(_TYPES) + r")\b", lambda m: _TYPES[m.group(1)], script)


def numbered_params(sql: str) -> str:
    """`?` placeholders (SQLite, DB-API) as `$1, $2, ...` (PostgreSQL). Our SQL never has a
    `?` inside a string literal."""
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return re.sub(r"\?", number, sql)
