"""A local fake of Discord (gateway + REST) that a real discord.py 2.7 client can talk to.

Start it with ``run_fake_discord()``, run a bot against it with ``connected_bot(fake, factory)``,
inject interactions (``slash``, ``click``, ``submit_modal``) and assert on what the bot did:
``fake.messages`` (per channel), ``fake.requests`` (every HTTP call), ``InteractionRecord``.
Real behaviours emulated: the 3 s ack deadline (10062), 15 min interaction tokens (50027),
double acknowledgement (40060), upload limits (413 / 40005), injected 429s / 5xx and, opt-in
(``rate_limits=RateLimits(...)``), Discord's per-route and global rate limits.

Modules, one job each: ``model`` (Discord's objects), ``wire`` (HTTP plumbing, faults),
``records`` (what was seen, waiters), ``state`` (in-memory store), ``gateway`` (websocket),
``interactions`` (injected interactions and their webhooks), ``rest`` (bot-token routes),
``limits`` (rate limits), ``server`` (the app and ``connected_bot``).
"""

from tests.fakediscord.limits import RateLimits
from tests.fakediscord.model import (
    ACK_DEADLINE_S,
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    API_PREFIX,
    DEFAULT_TOKEN,
    DEFAULT_UPLOAD_LIMIT,
    DEFAULT_WAIT_S,
    EPHEMERAL,
    EVERYONE_PERMISSIONS,
    LOADING,
    MANAGE_GUILD,
    TOKEN_TTL_S,
    FakeChannel,
    FakeFile,
    FakeGuild,
    FakeMessage,
    FakeRole,
    FakeUpload,
    FakeUser,
    Json,
    default_members,
    new_snowflake,
    snowflake_time_s,
)
from tests.fakediscord.records import (
    CallbackRecord,
    CommandSync,
    GatewaySession,
    InteractionRecord,
)
from tests.fakediscord.server import (
    FakeDiscord,
    connected_bot,
    discord_pointed_at,
    run_fake_discord,
)
from tests.fakediscord.wire import ApiError, Fault, RecordedRequest, json_response

__all__ = [
    "ACK_DEADLINE_S",
    "ADMINISTRATOR",
    "ALL_PERMISSIONS",
    "API_PREFIX",
    "DEFAULT_TOKEN",
    "DEFAULT_UPLOAD_LIMIT",
    "DEFAULT_WAIT_S",
    "EPHEMERAL",
    "EVERYONE_PERMISSIONS",
    "LOADING",
    "MANAGE_GUILD",
    "TOKEN_TTL_S",
    "ApiError",
    "CallbackRecord",
    "CommandSync",
    "FakeChannel",
    "FakeDiscord",
    "FakeFile",
    "FakeGuild",
    "FakeMessage",
    "FakeRole",
    "FakeUpload",
    "FakeUser",
    "Fault",
    "GatewaySession",
    "InteractionRecord",
    "Json",
    "RateLimits",
    "RecordedRequest",
    "connected_bot",
    "default_members",
    "discord_pointed_at",
    "json_response",
    "new_snowflake",
    "run_fake_discord",
    "snowflake_time_s",
]
