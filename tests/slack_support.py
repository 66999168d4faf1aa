"""Fixtures for the Slack tests, as a pytest plugin: ``pytest_plugins =
("tests.slack_support",)`` in a test module gives it ``fake_slack`` (a started fake Slack:
``.api_url`` for ``SLACK_API_URL``, ``.bot_token`` and ``.app_token`` for the settings) and
``slack_workspace`` (the workspace it serves; override the fixture to change users, channels,
scopes or upload rules).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakeslack import FakeSlack, FakeWorkspace, run_fake_slack


@pytest.fixture
def slack_workspace() -> FakeWorkspace:
    """alice, bob, admin carol, owner olive; #general (bot in), #random, private #secret."""
    return FakeWorkspace()


@pytest.fixture
async def fake_slack(slack_workspace: FakeWorkspace) -> AsyncIterator[FakeSlack]:
    """A started fake Slack on 127.0.0.1 (rate tiers off: ``fake_slack.rate_limits_enabled``)."""
    async with run_fake_slack(slack_workspace) as fake:
        yield fake
