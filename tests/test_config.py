"""Settings: defaults, overrides, and every problem reported at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from bot.config import REGION_URLS, load_settings
from bot.errors import ConfigError
from bot.provider import catalog

BASE = {"DASHSCOPE_API_KEY": "sk-test-123456", "DISCORD_TOKEN": "token"}


def test_defaults():
    s = load_settings(BASE)
    assert s.region == "singapore" and s.base_url == REGION_URLS["singapore"]
    assert s.database_path == Path("data/wanbot.sqlite3") and s.video_dir == Path("data/videos")
    assert s.concurrency == {}  # the engine then takes each model's default from the catalog
    assert catalog.get_model("wan2.2-animate-mix").default_concurrency == 1
    assert catalog.get_model("wan2.5-i2v-preview").default_concurrency == 5


def test_region_and_base_url_override():
    assert load_settings({**BASE, "DASHSCOPE_REGION": "Beijing"}).base_url == REGION_URLS["beijing"]
    s = load_settings({**BASE, "DASHSCOPE_BASE_URL": "http://127.0.0.1:8700/api/v1/"})
    assert s.base_url == "http://127.0.0.1:8700/api/v1"


def test_every_problem_is_listed_together():
    with pytest.raises(ConfigError) as caught:
        load_settings({"DASHSCOPE_REGION": "mars", "MAX_QPS": "fast",
                       "MODEL_CONCURRENCY": "nope=2", "DISCORD_GUILD_IDS": "abc"},
                      known_models=catalog.MODELS)
    text = "\n".join(caught.value.problems)
    for name in ("DASHSCOPE_API_KEY", "DISCORD_TOKEN", "DASHSCOPE_REGION", "MAX_QPS",
                 "MODEL_CONCURRENCY", "DISCORD_GUILD_IDS"):
        assert name in text
    assert len(caught.value.problems) == 6


def test_the_terminal_does_not_need_a_discord_token():
    assert load_settings({"DASHSCOPE_API_KEY": "k"}, need_chat=False).discord_token == ""


def test_the_account_query_limit_is_a_ceiling():
    with pytest.raises(ConfigError, match="MAX_QPS"):
        load_settings({**BASE, "MAX_QPS": "25"})


def test_concurrency_overrides_and_guilds():
    s = load_settings({**BASE, "MODEL_CONCURRENCY": "wan2.2-animate-mix=3",
                       "DISCORD_GUILD_IDS": "1, 2"})
    assert s.concurrency == {"wan2.2-animate-mix": 3} and s.guild_ids == (1, 2)


def test_secrets_stay_out_of_repr():
    text = repr(load_settings(BASE))
    assert "sk-test-123456" not in text and "token" not in text.replace("discord_token", "")


def test_env_file_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("DASHSCOPE_API_KEY=from-file\nDASHSCOPE_REGION=beijing\n")
    monkeypatch.setenv("DASHSCOPE_REGION", "virginia")
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    s = load_settings(need_chat=False, env_file=env)
    assert s.dashscope_api_key == "from-file" and s.region == "virginia"


@pytest.mark.parametrize(("name", "field", "default"), [
    ("MEDIA_WORKERS", "media_workers", 2), ("ENCODE_WORKERS", "encode_workers", 1)])
def test_worker_counts_have_defaults_and_can_be_set(name, field, default):
    """MEDIA_WORKERS sizes the media pool (2 unless set), ENCODE_WORKERS the encodes (1)."""
    assert getattr(load_settings(BASE), field) == default
    assert getattr(load_settings({**BASE, name: "4"}), field) == 4


@pytest.mark.parametrize("name", ["MEDIA_WORKERS", "ENCODE_WORKERS"])
@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_worker_counts_must_be_whole_positive_numbers(name, raw):
    """No worker, or a fraction of one, is a configuration error."""
    with pytest.raises(ConfigError, match=name):
        load_settings({**BASE, name: raw})


def test_dms_are_off_unless_allowed_with_a_home_server():
    """DMs default off; on, they need the home server's id (else a listed problem)."""
    assert load_settings(BASE).allow_dms is False
    s = load_settings({**BASE, "DISCORD_ALLOW_DMS": "true", "DISCORD_DM_HOME_GUILD": "42"})
    assert s.allow_dms is True and s.dm_home_guild == 42
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "DISCORD_ALLOW_DMS": "yes"})
    assert ["DISCORD_DM_HOME_GUILD" in p for p in caught.value.problems] == [True]


def test_slack_alone_is_enough():
    """Slack's two tokens and no Discord token: no problem; the API base can be moved."""
    s = load_settings({"DASHSCOPE_API_KEY": "k", "SLACK_BOT_TOKEN": "xoxb-1",
                       "SLACK_APP_TOKEN": "xapp-1", "SLACK_API_URL": "http://127.0.0.1:9/api"})
    assert s.discord_token == "" and s.slack_api_url == "http://127.0.0.1:9/api/"


def test_no_chat_front_end_names_both():
    """Neither Discord nor Slack set: one problem naming both ways."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"DASHSCOPE_API_KEY": "k"})
    [problem] = caught.value.problems
    assert "DISCORD_TOKEN" in problem and "SLACK_BOT_TOKEN" in problem


def test_slack_tokens_must_be_the_right_kinds():
    """A bot token that is not xoxb-, or a missing app token, is named with where to get it."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"DASHSCOPE_API_KEY": "k", "SLACK_BOT_TOKEN": "xapp-wrong"})
    text = "\n".join(caught.value.problems)
    assert "SLACK_BOT_TOKEN must be" in text and "SLACK_APP_TOKEN must be" in text


def test_slack_tokens_stay_out_of_the_repr():
    """Secrets never show in a repr (and so in logs)."""
    s = load_settings({"DASHSCOPE_API_KEY": "k", "SLACK_BOT_TOKEN": "xoxb-secret-1",
                       "SLACK_APP_TOKEN": "xapp-secret-2"})
    assert "secret" not in repr(s)


def test_a_pool_of_keys_each_with_its_region_and_slots():
    """DASHSCOPE_API_KEYS: each key with its region (default DASHSCOPE_REGION) and its own
    per-model slots; DASHSCOPE_API_KEY, set too, is the first; ids are stable, not the keys."""
    s = load_settings({**BASE, "DASHSCOPE_API_KEYS":
                       "sk-b@beijing:wan2.2-kf2v-flash=2:wan2.5-i2v-preview=1, sk-c"},
                      known_models=catalog.MODELS)
    first, second, third = s.keys
    assert first.secret == "sk-test-123456" and s.dashscope_api_key == first.secret
    assert (second.region, second.base_url) == ("beijing", REGION_URLS["beijing"])
    assert second.concurrency == {"wan2.2-kf2v-flash": 2, "wan2.5-i2v-preview": 1}
    assert (third.region, third.concurrency) == ("singapore", {})
    assert len({k.id for k in s.keys}) == 3 and all("sk-" not in k.id for k in s.keys)
    assert first.id == load_settings(BASE).keys[0].id
    assert "sk-b" not in repr(s) and all(k.secret in s.secrets for k in s.keys)


def test_a_pool_alone_needs_no_single_key_and_bad_entries_are_named():
    s = load_settings({"DISCORD_TOKEN": "t", "DASHSCOPE_API_KEYS": "sk-a,sk-b",
                       "DASHSCOPE_BASE_URL": "http://127.0.0.1:8700/api/v1"})
    assert [k.secret for k in s.keys] == ["sk-a", "sk-b"]
    assert {k.base_url for k in s.keys} == {"http://127.0.0.1:8700/api/v1"}
    for bad in ("sk-a@mars", "sk-a:nope=2", "sk-a,sk-a", "@beijing"):
        with pytest.raises(ConfigError) as caught:
            load_settings({"DISCORD_TOKEN": "t", "DASHSCOPE_API_KEYS": bad},
                          known_models=catalog.MODELS)
        assert "DASHSCOPE_API_KEYS" in "\n".join(caught.value.problems)


def test_shards_and_the_health_port():
    s = load_settings({**BASE, "DISCORD_SHARD_IDS": "1,3", "DISCORD_SHARD_COUNT": "4",
                       "HEALTH_PORT": "9100"})
    assert (s.shard_ids, s.shard_count, s.health_port, s.health_host) == \
        ((1, 3), 4, 9100, "127.0.0.1")
    assert load_settings(BASE).health_port is None and load_settings(BASE).shard_ids is None
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "DISCORD_SHARD_IDS": "4", "HEALTH_PORT": "0"})
    assert len(caught.value.problems) == 2


def test_database_url_selects_postgresql_and_stays_out_of_repr():
    """DATABASE_URL is used over DATABASE_PATH; empty, the SQLite file stays; another scheme
    is refused; the password never shows in the settings' repr."""
    url = "postgresql://bot:s3cret@db:5432/wanbot"
    s = load_settings({**BASE, "DATABASE_URL": url})
    assert s.database == url and "s3cret" not in repr(s)
    assert load_settings(BASE).database == Path("data/wanbot.sqlite3")
    with pytest.raises(ConfigError, match="DATABASE_URL must start with postgresql://"):
        load_settings({**BASE, "DATABASE_URL": "mysql://x/y"})


def test_the_example_env_keeps_the_docker_image_in_its_volume():
    """`docker run --env-file .env` with .env copied from .env.example: the file's settings
    override the image's ENV (as Docker does), and the database and videos must still be in
    /data, the volume the image's user may write (it may not write its working folder)."""
    root = Path(__file__).resolve().parent.parent
    image = dict(re.findall(r"(\w+)=(\S+)", (root / "Dockerfile").read_text().split("ENV", 1)[1]
                            .split("\n\n", 1)[0]))
    example = {k: v for k, v in dotenv_values(root / ".env.example").items() if v}
    s = load_settings({**image, **example, **BASE})
    assert s.database_path == Path("/data/wanbot.sqlite3")
    assert s.video_dir == Path("/data/videos")
