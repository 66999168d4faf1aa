"""Settings, read once from the environment and `.env`; every problem reported together."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from bot.errors import ConfigError
from bot.units import MiB

REGIONS = ("singapore", "beijing", "virginia")
REGION_URLS = {
    "singapore": "https://dashscope-intl.aliyuncs.com/api/v1",
    "beijing": "https://dashscope.aliyuncs.com/api/v1",
    "virginia": "https://dashscope-us.aliyuncs.com/api/v1",
}
HANDOFFS = ("auto", "url", "data", "oss")
LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ApiKey:
    """One DashScope account's key: its region, its address, and its own per-model slots."""

    secret: str = field(repr=False)
    region: str = "singapore"
    base_url: str = REGION_URLS["singapore"]
    concurrency: Mapping[str, int] = field(default_factory=dict)  # overrides for this key

    @property
    def id(self) -> str:
        """A stable name for the key that is not the key: stored with jobs, shown in logs."""
        return "key-" + hashlib.sha256(self.secret.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Settings:
    dashscope_api_key: str = field(repr=False)
    api_keys: tuple[ApiKey, ...] = ()  # a pool of accounts (DASHSCOPE_API_KEYS); () is just one
    discord_token: str = field(default="", repr=False)
    slack_bot_token: str = field(default="", repr=False)  # xoxb-
    slack_app_token: str = field(default="", repr=False)  # xapp-, for Socket Mode
    slack_api_url: str = "https://slack.com/api/"  # the base of every Slack Web API call
    region: str = "singapore"
    base_url: str = REGION_URLS["singapore"]
    database_path: Path = Path("data/wanbot.sqlite3")
    database_url: str = field(default="", repr=False)  # postgresql://...: used over the path
    video_dir: Path = Path("data/videos")
    guild_ids: tuple[int, ...] = ()
    allow_dms: bool = False  # video commands in direct messages, under dm_home_guild's rules
    dm_home_guild: int | None = None  # the server whose roles, limits and usage DMs count in
    media_handoff: str = "auto"  # how input reaches the provider: see .env.example
    trusted_hosts: frozenset[str] = frozenset()  # fetched even if private (tests, local files)
    max_qps: float = 10.0  # our cap on task queries; the account's limit is 20/s
    concurrency: Mapping[str, int] = field(default_factory=dict)  # per-model slot overrides
    http_timeout_s: float = 30.0
    fetch_timeout_s: float = 30.0
    fetch_max_bytes: int = 200 * MiB
    progress_interval_s: float = 5.0
    video_keep_s: float = 48 * 3600  # finished videos are deleted from disk after this long
    media_workers: int = 2  # threads that probe and repair media: bounds their memory and CPU
    encode_workers: int = 1  # videos re-encoded at once to fit an upload limit (each: all cores)
    on_deck: int = 1  # tasks per model sent beyond its slots, held PENDING by the provider
    log_level: str = "INFO"
    # Discord shards this process runs (None: all, discord.py picks the count) of shard_count.
    shard_ids: tuple[int, ...] | None = None
    shard_count: int | None = None
    health_host: str = "127.0.0.1"
    health_port: int | None = None  # /healthz and /metrics served here when set (opt-in)

    @property
    def keys(self) -> tuple[ApiKey, ...]:
        """Every API key the engine may use; the first takes jobs from before pooling."""
        return self.api_keys or (ApiKey(self.dashscope_api_key, self.region, self.base_url,
                                        self.concurrency),)

    @property
    def secrets(self) -> list[str]:
        """Every secret, for the log filter that masks them."""
        return [self.dashscope_api_key, *(k.secret for k in self.api_keys), self.database_url,
                self.discord_token, self.slack_bot_token, self.slack_app_token]

    @property
    def database(self) -> str | Path:
        """Where the store is: DATABASE_URL (PostgreSQL) when set, else the SQLite file."""
        return self.database_url or self.database_path


def _read_env(env: Mapping[str, str] | None, env_file: str | Path | None) -> dict[str, str]:
    if env is not None:
        return dict(env)
    merged = {k: v for k, v in dotenv_values(env_file or ".env").items() if v is not None}
    merged.update(os.environ)  # the real environment wins over the file
    return merged


class _Reader:
    """Collects problems instead of stopping at the first one."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, default: str = "") -> str:
        return self.env.get(name, default).strip()

    def parse(self, name: str, default: Any, convert: Callable[[str], Any], hint: str) -> Any:
        raw = self.get(name)
        if not raw:
            return default
        try:
            return convert(raw)
        except (ValueError, KeyError):
            self.problems.append(f"{name}={raw!r} is not valid: {hint}.")
            return default

    def need(self, name: str, hint: str) -> str:
        value = self.get(name)
        if not value:
            self.problems.append(f"{name} is not set: {hint}.")
        return value


def _positive(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def _whole(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def _ids(raw: str) -> tuple[int, ...]:
    return tuple(int(part) for part in raw.replace(" ", "").split(",") if part)


def _flag(raw: str) -> bool:
    return {"1": True, "true": True, "yes": True, "on": True,
            "0": False, "false": False, "no": False, "off": False}[raw.lower()]


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw.lower() not in options:
            raise ValueError(raw)
        return raw.lower()

    return convert


def _concurrency(known: Collection[str] | None) -> Callable[[str], dict[str, int]]:
    """`model=slots,model=slots`: overrides of the catalog's per-account defaults; names are
    checked against `known` (the catalog's, passed in: settings sit below the catalog)."""

    def convert(raw: str) -> dict[str, int]:
        result: dict[str, int] = {}
        for part in filter(None, raw.replace(" ", "").split(",")):
            name, _, slots = part.partition("=")
            if (known is not None and name not in known) or int(slots) < 1:
                raise ValueError(part)
            result[name] = int(slots)
        return result

    return convert


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    need_chat: bool = True,
    need_key: bool = True,
    env_file: str | Path | None = None,
    known_models: Collection[str] | None = None,
) -> Settings:
    """Settings from `env` (default: the process environment over `.env`); ConfigError lists all
    problems with how to fix each."""
    r = _Reader(_read_env(env, env_file))
    places = _places(r)
    settings = Settings(**_secrets(r, places, known_models, need_key), **_chat(r, need_chat),
                        **places,
                        **_tuning(r, known_models), **_operations(r))
    if settings.max_qps > 20:
        r.problems.append("MAX_QPS must be at most 20: the account allows 20 task queries/s.")
    if r.problems:
        raise ConfigError(r.problems)
    return settings


def _secrets(r: _Reader, places: Mapping[str, Any], known: Collection[str] | None,
             need_key: bool) -> dict[str, Any]:
    """DASHSCOPE_API_KEY, and DASHSCOPE_API_KEYS for a pool (DASHSCOPE_API_KEY, when set too,
    is the pool's first key)."""
    custom = places["base_url"] if r.get("DASHSCOPE_BASE_URL") else None
    pooled = r.parse("DASHSCOPE_API_KEYS", [], _key_pool(places["region"], custom, known),
                     "KEY[@REGION][:MODEL=SLOTS]..., comma-separated (README, Settings)")
    if not pooled and not need_key:
        return {"dashscope_api_key": r.get("DASHSCOPE_API_KEY")}
    if not pooled:
        key = r.need("DASHSCOPE_API_KEY", "create one in Alibaba Cloud Model Studio (API keys)")
        return {"dashscope_api_key": key}
    if first := r.get("DASHSCOPE_API_KEY"):
        pooled = [ApiKey(first, places["region"], places["base_url"]),
                  *(k for k in pooled if k.secret != first)]
    if len({k.secret for k in pooled}) < len(pooled):
        r.problems.append("DASHSCOPE_API_KEYS names the same key twice.")
    return {"dashscope_api_key": pooled[0].secret, "api_keys": tuple(pooled)}


def _key_pool(default_region: str, custom_url: str | None, known: Collection[str] | None
              ) -> Callable[[str], list[ApiKey]]:
    """`sk-a@singapore,sk-b@beijing:wan2.2-kf2v-flash=2`: each key with its region (default
    DASHSCOPE_REGION) and, after colons, its own per-model slots. DASHSCOPE_BASE_URL, when
    set, is every key's address (the simulator); else each region's."""
    slots = _concurrency(known)

    def convert(raw: str) -> list[ApiKey]:
        keys = []
        for entry in raw.replace("\n", ",").replace(" ", ",").split(","):
            if not entry:
                continue
            head, *models = entry.split(":")
            secret, _, region = head.partition("@")
            region = _choice(REGIONS)(region or default_region)
            base = custom_url or REGION_URLS[region]
            if not secret:
                raise ValueError(entry)
            keys.append(ApiKey(secret, region, base, slots(",".join(models))))
        return keys

    return convert


def _chat(r: _Reader, need_chat: bool) -> dict[str, Any]:
    """The chat front ends: every one whose credentials are set runs; at least one must."""
    discord, bot, app = r.get("DISCORD_TOKEN"), r.get("SLACK_BOT_TOKEN"), r.get("SLACK_APP_TOKEN")
    if need_chat and not (discord or bot or app):
        r.problems.append(
            "DISCORD_TOKEN is not set: copy the bot token from the Discord developer portal "
            "(your application > Bot > Reset Token); or, for Slack, set SLACK_BOT_TOKEN and "
            "SLACK_APP_TOKEN (README, section Slack). Set either or both."
        )
    if (bot or app) and not bot.startswith("xoxb-"):
        r.problems.append("SLACK_BOT_TOKEN must be the app's bot token (xoxb-...): OAuth & "
                          "Permissions > Bot User OAuth Token.")
    if (bot or app) and not app.startswith("xapp-"):
        r.problems.append("SLACK_APP_TOKEN must be an app-level token (xapp-...) with "
                          "connections:write: Basic Information > App-Level Tokens.")
    api = r.get("SLACK_API_URL") or "https://slack.com/api/"
    if not api.startswith(("http://", "https://")):
        r.problems.append(f"SLACK_API_URL={api!r} must start with http:// or https://.")
    return {"discord_token": discord, "slack_bot_token": bot, "slack_app_token": app,
            "slack_api_url": api.rstrip("/") + "/"}


def _places(r: _Reader) -> dict[str, Any]:
    """Where things are: the provider's region and address, the database, the videos."""
    region = r.parse("DASHSCOPE_REGION", "singapore", _choice(REGIONS), ", ".join(REGIONS))
    base_url = r.get("DASHSCOPE_BASE_URL") or REGION_URLS[region]
    if not base_url.startswith(("http://", "https://")):
        r.problems.append(f"DASHSCOPE_BASE_URL={base_url!r} must start with http:// or https://.")
    db = Path(r.get("DATABASE_PATH") or "data/wanbot.sqlite3")
    url = r.get("DATABASE_URL")
    if url and not url.startswith(("postgresql://", "postgres://")):
        r.problems.append("DATABASE_URL must start with postgresql:// (leave it empty to use "
                          "the SQLite file at DATABASE_PATH).")
    return {
        "database_url": url,
        "region": region,
        "base_url": base_url.rstrip("/"),
        "database_path": db,
        "video_dir": Path(r.get("VIDEO_DIR") or db.parent / "videos"),
        "guild_ids": r.parse("DISCORD_GUILD_IDS", (), _ids, "comma-separated numeric guild ids"),
        "trusted_hosts": frozenset(filter(None, r.get("TRUSTED_MEDIA_HOSTS").split(","))),
        **_direct_messages(r),
    }


def _direct_messages(r: _Reader) -> dict[str, Any]:
    """Video commands in DMs: off unless allowed, and then counted in one home server (a DM
    belongs to no server, so its roles, limits and usage must come from somewhere)."""
    allow = r.parse("DISCORD_ALLOW_DMS", False, _flag, "true or false")
    home = r.parse("DISCORD_DM_HOME_GUILD", None, int, "a numeric guild id")
    if allow and home is None:
        r.problems.append("DISCORD_DM_HOME_GUILD is not set: with DISCORD_ALLOW_DMS on, give the "
                          "id of the server whose roles, limits and usage DMs count in.")
    return {"allow_dms": allow, "dm_home_guild": home}


def _tuning(r: _Reader, known_models: Collection[str] | None) -> dict[str, Any]:
    """How the bot behaves: hand-off, rates, slots, timeouts, clean-up, logging."""
    return {
        "media_handoff": r.parse("MEDIA_HANDOFF", "auto", _choice(HANDOFFS), ", ".join(HANDOFFS)),
        "max_qps": r.parse("MAX_QPS", 10.0, _positive, "a positive number of queries per second"),
        "concurrency": r.parse("MODEL_CONCURRENCY", {}, _concurrency(known_models),
                               "model=slots,model=slots"),
        "http_timeout_s": r.parse("HTTP_TIMEOUT_S", 30.0, _positive, "seconds, > 0"),
        "fetch_timeout_s": r.parse("FETCH_TIMEOUT_S", 30.0, _positive, "seconds, > 0"),
        "progress_interval_s": r.parse("PROGRESS_INTERVAL_S", 5.0, _positive, "seconds, > 0"),
        "video_keep_s": 3600 * r.parse("VIDEO_KEEP_HOURS", 48.0, _positive, "hours, > 0"),
        "media_workers": r.parse("MEDIA_WORKERS", 2, _count, "a whole number of threads, >= 1"),
        "encode_workers": r.parse("ENCODE_WORKERS", 1, _count, "a whole number of encodes, >= 1"),
        "on_deck": r.parse("ON_DECK", 1, _whole, "a whole number of tasks per model, >= 0"),
        "log_level": r.parse(
            "LOG_LEVEL", "INFO", lambda s: _choice(LEVELS)(s).upper(), ", ".join(LEVELS)
        ),
    }


def _operations(r: _Reader) -> dict[str, Any]:
    """Discord shards, and the opt-in health and metrics port."""
    ids = r.parse("DISCORD_SHARD_IDS", None, _ids, "comma-separated shard numbers, e.g. 0,1")
    count = r.parse("DISCORD_SHARD_COUNT", None, _count, "a whole number of shards, >= 1")
    if ids is not None and count is None:
        r.problems.append("DISCORD_SHARD_COUNT is not set: with DISCORD_SHARD_IDS, give the total "
                          "number of shards across every process.")
    if ids is not None and count is not None and not all(0 <= i < count for i in ids):
        r.problems.append(f"DISCORD_SHARD_IDS must be numbers from 0 to {count - 1}.")
    port = r.parse("HEALTH_PORT", None, _port, "a TCP port number, 1-65535")
    host = r.get("HEALTH_HOST") or "127.0.0.1"
    return {"shard_ids": ids, "shard_count": count, "health_port": port, "health_host": host}


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError(raw)
    return value


def settings_or_exit(**kwargs: Any) -> Settings:
    """Settings, or every problem printed plainly and exit status 2 (no traceback)."""
    try:
        return load_settings(**kwargs)
    except ConfigError as exc:
        print("wanbot cannot start; fix these settings (in .env or the environment):",
              file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("See .env.example for every setting.", file=sys.stderr)
        raise SystemExit(2) from None
