"""Fixtures for the Slack front end's tests (offered by tests/frontends/slack/conftest.py):
``slack``, a stack with no front end running yet, and ``wan``, one with it running.
Override ``front_workspace`` to change people or channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakeslack import FakeWorkspace
from tests.slack_stack import SlackStack, manifest_scopes, open_slack_stack


@pytest.fixture
def front_workspace() -> FakeWorkspace:
    """The default people and channels, with the scopes the manifest asks for."""
    return FakeWorkspace(scopes=manifest_scopes())


@pytest.fixture
async def slack(tmp_path: Path, front_workspace: FakeWorkspace) -> AsyncIterator[SlackStack]:
    """A stack with no front end running yet (``slack.start()``)."""
    async with open_slack_stack(tmp_path, front_workspace) as stack:
        await stack.set_team()
        yield stack


@pytest.fixture
async def wan(slack: SlackStack) -> AsyncIterator[SlackStack]:
    """A stack with the Slack front end running."""
    async with slack.start():
        yield slack
