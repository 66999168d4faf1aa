"""`python -m bot`: every chat front end whose credentials are set (Discord, Slack or both), in
one process over one engine and one store. `python -m bot check` checks them too.

The process owns the engine: it starts it before the front ends connect and, on SIGTERM or
SIGINT, lets every front end finish the commands it is running, stops the engine (its state is
in the store), then lets each make its last progress edits and disconnect.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Protocol

import aiohttp
import discord
from slack_sdk.errors import SlackApiError

from bot.config import Settings, settings_or_exit
from bot.engine import Engine, KeyPool, Store
from bot.errors import ConfigError, StorageError
from bot.frontends.cli import check as check_provider
from bot.frontends.discord.client import DiscordFront
from bot.frontends.slack.app import SlackFront, web_client
from bot.logs import setup_logging
from bot.ops import HealthServer
from bot.provider import catalog

log = logging.getLogger(__name__)


class FrontEnd(Protocol):
    name: str  # "discord", "slack": how /healthz names it

    async def run(self) -> None: ...  # connected until closed (or it fails)

    async def connected(self) -> bool: ...  # for /healthz

    async def drain(self) -> None: ...  # stop taking commands; let running ones finish

    async def close(self) -> None: ...  # last edits, then disconnect


def front_ends(settings: Settings, engine: Engine, store: Store,
               http: aiohttp.ClientSession) -> list[FrontEnd]:
    fronts: list[FrontEnd] = []
    if settings.discord_token:
        fronts.append(DiscordFront(settings, engine, store, http))
    if settings.slack_bot_token:
        fronts.append(SlackRun(SlackFront(settings, engine, store, http)))
    return fronts


class SlackRun:
    """Slack's front end as a long-running task (Socket Mode reconnects by itself)."""

    name = "slack"

    def __init__(self, front: SlackFront) -> None:
        self.front = front

    async def connected(self) -> bool:
        handler = self.front.handler
        return handler is not None and bool(await handler.client.is_connected())

    async def run(self) -> None:
        await self.front.start()
        await asyncio.Event().wait()

    async def drain(self) -> None:
        await self.front.drain()

    async def close(self) -> None:
        await self.front.close()


async def run(settings: Settings) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.http_timeout_s,
                                    sock_read=settings.http_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        store = await Store.open(settings.database)
        try:
            engine = Engine(store, KeyPool.build(settings, http), settings)
            fronts: list[FrontEnd] = []  # the health port first: one in use stops the start
            health = await health_server(settings, engine, fronts)  # before anything connects
            fronts += front_ends(settings, engine, store, http)
            try:
                await serve(engine, fronts)
            finally:
                if health is not None:
                    await health.close()
        finally:
            await store.close()


async def health_server(settings: Settings, engine: Engine, fronts: list[FrontEnd]
                        ) -> HealthServer | None:
    """/healthz and /metrics, when HEALTH_PORT is set."""
    if settings.health_port is None:
        return None

    async def chat() -> dict[str, bool]:
        return {f.name: await f.connected() for f in fronts}

    def leader() -> bool | None:  # alone on SQLite there is nobody to lead
        return engine.coord.leader if engine.coord.shared else None

    server = HealthServer(engine, host=settings.health_host, port=settings.health_port,
                          chat=chat, leader=leader)
    try:
        await server.start()
    except OSError as exc:  # most often: another process on this machine has the port
        raise ConfigError([f"HEALTH_PORT={settings.health_port} cannot be served at "
                           f"{settings.health_host} ({exc.strerror or exc}): give each process "
                           "on a machine a port of its own."]) from exc
    return server


async def serve(engine: Engine, fronts: list[FrontEnd]) -> None:
    """Run until a signal, a storage fault (StorageError, raised after shutdown), or a front
    end failing (its error is raised after shutdown)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fault = asyncio.Event()
    engine.guard.on_failure(fault.set)
    await engine.start()
    tasks = [asyncio.create_task(f.run(), name=type(f).__name__) for f in fronts]
    stopping = asyncio.create_task(stop.wait())
    faulted = asyncio.create_task(fault.wait())
    try:
        await asyncio.wait([*tasks, stopping, faulted], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await asyncio.gather(*(f.drain() for f in fronts), return_exceptions=True)
        await engine.stop()
        await asyncio.gather(*(f.close() for f in fronts), return_exceptions=True)
        for task in [*tasks, stopping, faulted]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    if engine.guard.failure is not None:
        raise engine.guard.failure
    failed = [r for r in results if isinstance(r, Exception)]
    if failed and not stop.is_set():
        raise failed[0]


def main(argv: list[str]) -> int:
    settings = settings_or_exit(known_models=catalog.MODELS)
    setup_logging(settings.log_level, settings.secrets)
    try:
        asyncio.run(run(settings))
    except discord.LoginFailure:
        log.error("Discord refused DISCORD_TOKEN: copy a fresh token from the developer portal.")
        return 2
    except discord.PrivilegedIntentsRequired:
        log.error("Discord asked for privileged intents; wanbot needs none. Check the token.")
        return 2
    except SlackApiError as exc:
        log.error("Slack refused the tokens (%s): check SLACK_BOT_TOKEN and SLACK_APP_TOKEN.",
                  exc.response.get("error"))
        return 2
    except StorageError as exc:
        log.error("wanbot cannot use its database %s", exc)
        return 1
    except ConfigError as exc:
        log.error("wanbot cannot start: %s", exc)
        return 2
    except (aiohttp.ClientError, OSError) as exc:
        log.error("Could not reach a chat service (%s). Check the network and try again.", exc)
        return 1
    return 0


def migrate(argv: list[str]) -> int:
    """`python -m bot migrate`: bring the database (DATABASE_URL, else DATABASE_PATH) to the
    latest schema and say which version it is at. Every start migrates too; this lets an
    operator do it once, before starting several processes or after a backup."""
    settings = settings_or_exit(need_chat=False, need_key=False, known_models=catalog.MODELS)
    setup_logging("INFO", [settings.database_url])

    async def run_migrations() -> tuple[str, int]:
        store = await Store.open(settings.database)
        try:
            return store.backend, await store.schema_version()
        finally:
            await store.close()

    try:
        backend, version = asyncio.run(run_migrations())
    except StorageError as exc:
        print(f"error: wanbot cannot use its database {exc}", file=sys.stderr)
        return 1
    print(f"ok: the {backend} database is at schema version {version}")
    return 0


def check(argv: list[str]) -> int:
    """`python -m bot check`: the API key (one cheap call), and the Slack token when set."""
    settings = settings_or_exit(need_chat=False, known_models=catalog.MODELS)
    setup_logging("WARNING", settings.secrets)
    try:
        status = asyncio.run(check_provider(settings))
    except StorageError as exc:
        print(f"error: wanbot cannot use its database {exc}", file=sys.stderr)
        return 1
    problem = asyncio.run(check_slack(settings))
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if settings.slack_bot_token:
        print(f"ok: the Slack bot token works at {settings.slack_api_url}")
    return status


async def check_slack(settings: Settings) -> str | None:
    """One cheap call with the bot token (auth.test); the problem, or None."""
    if not settings.slack_bot_token:
        return None
    try:
        answer = await web_client(settings).auth_test()
    except SlackApiError as exc:
        return f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')})"
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return f"could not reach Slack at {settings.slack_api_url} ({exc})"
    log.info("Slack: the bot token works for workspace %s", answer.get("team"))
    return None



