"""Fixtures for the Discord tests: ``stack`` (simulator, fake Discord, media server, a
database path; no bot; offered by tests/frontends/conftest.py) and ``wan`` (the same with a
connected `WanBot`; offered by tests/frontends/discord/conftest.py only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.discord_stack import Stack, open_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The simulator, the fake Discord and a media server; no bot yet (``stack.start()``)."""
    async with open_stack(tmp_path) as built:
        yield built


@pytest.fixture
async def wan(stack: Stack) -> AsyncIterator[Stack]:
    """``stack`` with a connected WanBot."""
    async with stack.start():
        yield stack
