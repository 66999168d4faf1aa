"""What the bot writes where others read it, through discord.py: debug logs with no interaction
token, prompt or SQL parameter, and prompts in embeds shown as typed (no markdown, no masked
links, no mass mentions)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot.engine import JobState
from bot.logs import setup_logging
from tests.discord_stack import Stack, image, reply
from tests.log_support import logging_restored

FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}
PROMPT = "a lighthouse keeper whispers zq7-private"
NEGATIVE = "no gulls zq7-negative"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Logging set up as `python -m bot` does with LOG_LEVEL=debug, caplog still listening;
    everything put back afterwards."""
    with logging_restored():
        setup_logging("DEBUG", ["sk-not-used-here"])
        logging.getLogger().addHandler(caplog.handler)
        yield caplog


async def test_debug_logs_carry_no_token_prompt_or_sql_parameter(
    stack: Stack, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A private job from command to DM, logged at DEBUG: no interaction token, no prompt or
    negative prompt, nothing from aiosqlite (which logs SQL parameters)."""
    async with stack.start():
        record = await stack.fake.slash(
            "kf2v", {"prompt": PROMPT, "negative_prompt": NEGATIVE, "private": True},
            attachments=FRAMES)
        await stack.wait_state(JobState.DELIVERED)
    logged = "\n".join(r.getMessage() for r in debug_logs.records)
    assert any(r.levelno == logging.DEBUG for r in debug_logs.records)  # DEBUG was on
    assert record.token not in logged
    assert "zq7-private" not in logged and "zq7-negative" not in logged
    assert not [r for r in debug_logs.records if r.name.startswith("aiosqlite")]


async def test_a_prompt_shows_as_typed_in_the_public_embed(wan: Stack) -> None:
    """A markdown link, bold and @everyone in a prompt are escaped in the progress embed: the
    link does not become clickable text, nothing turns bold, nobody is pinged."""
    prompt = "[free nitro](https://evil.example) **now** @everyone"
    record = await wan.fake.slash("kf2v", {"prompt": prompt}, attachments=FRAMES)
    await reply(record)
    [progress] = wan.fake.messages[wan.channel_id]
    assert progress.embeds[0]["description"] == (
        "> \\[free nitro](https://evil.example) \\*\\*now\\*\\* @\u200beveryone")
