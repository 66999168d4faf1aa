"""The fake Discord's opt-in rate limits answer like Discord's: per route and channel, and
globally for the bot token, with the 429s and headers discord.py acts on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakediscord import FakeDiscord, RateLimits, run_fake_discord


@pytest.fixture
async def limited() -> AsyncIterator[FakeDiscord]:
    limits = RateLimits(route_window_s=60.0, global_window_s=60.0)
    async with run_fake_discord(rate_limits=limits) as fake:
        yield fake


async def edit_six_times(fake: FakeDiscord, channel: str) -> list[aiohttp.ClientResponse]:
    message = fake.bot_message(channel, "v0")
    url = f"{fake.api_base}/channels/{message.channel_id}/messages/{message.id}"
    replies = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http:
        for n in range(6):
            async with http.patch(url, json={"content": f"v{n + 1}"}) as reply:
                await reply.read()
                replies.append(reply)
    return replies


async def test_a_sixth_edit_in_a_channels_window_gets_a_retryable_429(
        limited: FakeDiscord) -> None:
    """Five edits pass (the fifth says none are left); the sixth gets 429 with Via."""
    replies = await edit_six_times(limited, "general")
    assert [r.status for r in replies] == [200] * 5 + [429]
    assert replies[4].headers["X-RateLimit-Remaining"] == "0"
    refused = replies[5].headers
    assert refused["Via"] and int(refused["Retry-After"]) >= 1
    assert refused["X-RateLimit-Scope"] == "user"


async def test_the_global_limit_spans_routes() -> None:
    """Four requests to different routes pass a global limit of four; the fifth is refused."""
    async with run_fake_discord(rate_limits=RateLimits(global_limit=4,
                                                       global_window_s=60.0)) as fake:
        channel = fake.channel("general").id
        paths = ["/users/@me", f"/channels/{channel}", f"/guilds/{fake.guild.id}",
                 "/users/@me", f"/channels/{channel}"]
        statuses, last = [], None
        async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http:
            for path in paths:
                async with http.get(fake.api_base + path) as reply:
                    statuses.append(reply.status)
                    last = reply.headers
    assert statuses == [200] * 4 + [429]
    assert last is not None and last["X-RateLimit-Global"] == "true"


async def test_without_the_knob_nothing_is_limited() -> None:
    """The default fake refuses nothing, as the other tests expect."""
    async with run_fake_discord() as fake:
        replies = await edit_six_times(fake, "general")
    assert [r.status for r in replies] == [200] * 6
