"""One log format; secrets never reach the output."""

from __future__ import annotations

import logging

import pytest

from bot.logs import setup_logging
from tests.log_support import logging_restored


@pytest.fixture
def restore_root():
    with logging_restored():
        yield


def test_secrets_are_masked(capsys, restore_root):
    setup_logging("INFO", ["sk-secret-value"])
    logging.getLogger("bot.test").info("calling with key %s", "sk-secret-value")
    err = capsys.readouterr().err
    assert "sk-secret-value" not in err and "calling with key ***" in err
    assert " INFO    bot.test: " in err


def test_interaction_tokens_in_discord_urls_are_masked(capsys, restore_root):
    """A Discord URL with a token (discord.py names the URL in its webhook debug lines) reaches
    the output with the token masked, whichever logger or handler it passes."""
    setup_logging("INFO", [])
    url = "https://discord.com/api/v10/webhooks/123/itoken-abc_DEF-9/messages/@original"
    logging.getLogger("bot.test").warning("PATCH %s failed", url)
    logging.getLogger("discord.webhook.async_").warning("Webhook with %s", url)
    err = capsys.readouterr().err
    assert "itoken-abc_DEF-9" not in err
    assert err.count("/webhooks/123/***/messages/@original") == 2
