"""One log format; secrets never reach the output."""

from __future__ import annotations

import logging

import pytest

from bot.logs import setup_logging


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_secrets_are_masked(capsys, restore_root):
    setup_logging("INFO", ["sk-secret-value"])
    logging.getLogger("bot.test").info("calling with key %s", "sk-secret-value")
    err = capsys.readouterr().err
    assert "sk-secret-value" not in err and "calling with key ***" in err
    assert " INFO    bot.test: " in err
