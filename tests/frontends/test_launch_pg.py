"""`python -m bot` with DATABASE_URL: Discord and Slack in one process on PostgreSQL (the
shared store's coordination, one process leading and holding every lease) run the same
scenario as on SQLite (tests/frontends/test_launch.py): both platforms' jobs delivered once,
fairly, and a clean SIGTERM."""

from __future__ import annotations

import dataclasses

import pytest

from tests.discord_stack import Stack
from tests.frontends import test_launch as on_sqlite

fake_slack = on_sqlite.fake_slack


@pytest.fixture
def stack(stack: Stack, pg_url: str) -> Stack:
    """The same stack, its jobs in PostgreSQL."""
    stack.settings = dataclasses.replace(stack.settings, database_url=pg_url)
    return stack


test_discord_and_slack_share_one_engine = on_sqlite.test_discord_and_slack_share_one_engine
