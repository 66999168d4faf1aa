"""/settings and /usage through discord.py against the fake Discord and the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from bot.engine import JobRequest, JobState
from bot.frontends.common import teams
from bot.frontends.common.teams import DAY_S, LimitError, TeamSettings
from bot.frontends.discord.command_pages import NOT_ALLOWED
from tests.discord_stack import Stack, image, reply
from tests.fakediscord import MANAGE_GUILD
from tests.pages_support import add_job, fields, private_answer

FRAMES = {"first_frame": image("a.png"), "last_frame": image("b.png")}
SAVED = "Saved. The new settings apply from the next request."


async def settings(stack: Stack, options: dict[str, Any] | None = None, *,
                   user: str = "carol") -> dict[str, Any]:
    """/settings as `user` (carol has Manage Server), answered."""
    return await private_answer(await stack.fake.slash("settings", options or {}, user=user))


async def stored(stack: Stack) -> TeamSettings:
    return await teams.load(stack.running.store, str(stack.fake.guild.id))


def moderators_id(stack: Stack) -> str:
    return str(next(r.id for r in stack.fake.guild.roles if r.name == "Moderators"))


# --------------------------------------------------------------------------- who may


@pytest.mark.parametrize("options", [{}, {"user_jobs": 1}], ids=["show", "change"])
async def test_settings_are_refused_without_manage_server(
    wan: Stack, options: dict[str, Any]
) -> None:
    """alice may neither see nor change them; nothing is written."""
    answer = await settings(wan, options, user="alice")
    assert answer["content"] == NOT_ALLOWED and not answer.get("embeds")
    assert await wan.running.store.get_team_settings(str(wan.fake.guild.id)) == {}


async def test_settings_are_offered_to_managers_only(wan: Stack) -> None:
    """Discord hides /settings from members without Manage Server; /usage is for everyone."""
    guild = wan.fake.guild.id
    assert int(wan.fake.find_command("settings", guild)["default_member_permissions"]) == (
        MANAGE_GUILD)
    assert wan.fake.find_command("usage", guild)["default_member_permissions"] is None


# --------------------------------------------------------------------------- what they store


async def test_each_setting_is_stored_and_shown(wan: Stack) -> None:
    """Every option lands in the store; /settings without options shows each one."""
    gallery, moderators = wan.channel_id, moderators_id(wan)
    answer = await settings(wan, {
        "gallery": str(gallery), "role1": moderators, "user_jobs": 2, "user_daily_seconds": 30,
        "server_daily_seconds": 120, "default_command": "i2v",
        "default_model": "wan2.2-i2v-flash", "default_resolution": "480P"})
    assert answer["content"] == SAVED
    assert await stored(wan) == TeamSettings(
        gallery_channel_id=str(gallery), generate_role_ids=(moderators,),
        user_max_concurrent=2, user_daily_seconds=30, team_daily_seconds=120,
        defaults={"i2v": {"model": "wan2.2-i2v-flash", "resolution": "480P"}})

    shown = await settings(wan)
    assert not shown.get("content")
    assert fields(shown) == {
        "Gallery channel": f"<#{gallery}>",
        "Who may make videos": f"<@&{moderators}> and admins",
        "Unfinished jobs per person": "2",
        "Video per person per day": "30 s",
        "Video for the server per day": "120 s",
        "Defaults": "/i2v: model wan2.2-i2v-flash, resolution 480P",
    }


async def test_a_new_server_starts_with_protective_limits(wan: Stack) -> None:
    """Nothing set: /settings shows 3 unfinished jobs and 300 s a day per person, and a
    fourth job while three run is refused."""
    wan.sim.config.running_s = 3600.0  # the first three stay unfinished
    shown = fields(await settings(wan))
    assert shown["Unfinished jobs per person"] == "3"
    assert shown["Video per person per day"] == "300 s"
    answers = [(await reply(await wan.fake.slash("kf2v", {"prompt": "a cat"},
                                                 attachments=FRAMES))).content
               for _ in range(4)]
    assert [a.startswith("Queued as job") for a in answers] == [True, True, True, False]
    assert answers[3].startswith("You already have 3 unfinished job(s); the limit is 3.")


async def test_clearing_brings_back_no_limits_and_no_defaults(wan: Stack) -> None:
    """clear_* and limits of 0 undo everything that was set, the default limits too."""
    await teams.save(wan.running.store, str(wan.fake.guild.id), TeamSettings(
        gallery_channel_id="5", generate_role_ids=("6",), user_max_concurrent=1,
        user_daily_seconds=10, team_daily_seconds=20,
        defaults={"kf2v": {"resolution": "480P"}, "reference": {"size": "960*960"}}))
    answer = await settings(wan, {
        "clear_gallery": True, "clear_roles": True, "user_jobs": 0, "user_daily_seconds": 0,
        "server_daily_seconds": 0, "clear_defaults": True})
    assert answer["content"] == SAVED
    assert await stored(wan) == TeamSettings(user_max_concurrent=None, user_daily_seconds=None)
    assert fields(answer)["Who may make videos"] == "everyone"


REFUSALS = {
    "a model of another command": (
        {"default_command": "kf2v", "default_model": "wan2.5-i2v-preview"},
        "**default_model**: `wan2.5-i2v-preview` is not a model /kf2v can use. "
        "Try: wan2.2-kf2v-flash, wan2.1-kf2v-plus."),
    "a resolution the default model lacks": (
        {"default_command": "i2v", "default_model": "wan2.2-i2v-plus",
         "default_resolution": "720P"},
        "**default_resolution**: wan2.2-i2v-plus supports 480P, 1080P (got 720P)."),
    "a resolution on a command without one": (
        {"default_command": "animate", "default_resolution": "720P"},
        "**default_resolution**: /animate has no resolution to choose."),
    "a default without its command": (
        {"default_model": "wan2.2-kf2v-flash"},
        "**default_command**: say which command these defaults are for."),
    "roles and clear_roles together": (
        {"role1": "ROLE", "clear_roles": True},
        "**clear_roles**: give roles or clear them, not both."),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
async def test_a_setting_the_catalog_refuses_changes_nothing(wan: Stack, case: str) -> None:
    """The answer names the option and what it can be; the stored settings stay as they were."""
    options, expected = REFUSALS[case]
    options = {k: moderators_id(wan) if v == "ROLE" else v for k, v in options.items()}
    answer = await settings(wan, {**options, "user_jobs": 3})
    assert answer["content"] == f"{expected}\nNothing was changed."
    assert await stored(wan) == TeamSettings()


# --------------------------------------------------------------------------- limits at work


def kf2v_request(stack: Stack, user: str) -> JobRequest:
    return JobRequest(platform="discord", team_id=str(stack.fake.guild.id),
                      channel_id=str(stack.channel_id), user_id=str(stack.fake.users[user].id),
                      command="kf2v", model="wan2.2-kf2v-flash", expected_seconds=5)


async def test_a_new_limit_applies_to_the_very_next_request(wan: Stack) -> None:
    """No restart: the admission check reads what /settings just wrote."""
    store, now = wan.running.store, wan.clock.now()
    await add_job(store, "r0000001", team_id=str(wan.fake.guild.id),
                  user_id=str(wan.fake.users["alice"].id), created_at=now,
                  state=JobState.RUNNING)
    await teams.check_admission(store, kf2v_request(wan, "alice"), now)  # no limits yet

    await settings(wan, {"user_jobs": 1})
    with pytest.raises(LimitError, match="1 unfinished job"):
        await teams.check_admission(store, kf2v_request(wan, "alice"), wan.clock.now())

    await settings(wan, {"user_jobs": 0, "server_daily_seconds": 3})
    with pytest.raises(LimitError, match="this server's daily budget has 3 s left"):
        await teams.check_admission(store, kf2v_request(wan, "bob"), wan.clock.now())


async def test_a_new_default_shapes_the_next_command(wan: Stack) -> None:
    """A default resolution set by /settings is what the next /kf2v asks the provider for."""
    await settings(wan, {"default_command": "kf2v", "default_resolution": "480P"})
    await reply(await wan.fake.slash("kf2v", {"prompt": "a cat"}, attachments=FRAMES))
    await wan.wait_state(JobState.PENDING)
    [create] = wan.creates()
    assert create.body["parameters"]["resolution"] == "480P"


# --------------------------------------------------------------------------- /usage


def clear_of_midnight(stack: Stack) -> float:
    """Move the (fast) test clock past a UTC midnight that is near, so 'today' holds for the
    whole test; returns the start of that day."""
    now = stack.clock.now()
    if teams.day_start(now) + DAY_S - now < 3600:
        stack.clock.advance(teams.day_start(now) + DAY_S + 60 - now)
    return teams.day_start(stack.clock.now())


async def test_usage_counts_a_delivered_job_from_the_providers_seconds(wan: Stack) -> None:
    """After alice's 5 s video: the server and alice show it; bob shows only the server's."""
    today = clear_of_midnight(wan)
    await teams.save(wan.running.store, str(wan.fake.guild.id), TeamSettings(
        user_max_concurrent=2, user_daily_seconds=30, team_daily_seconds=100))
    await reply(await wan.fake.slash("kf2v", {"prompt": "a cat"}, attachments=FRAMES))
    job = await wan.wait_state(JobState.DELIVERED)
    assert job.usage is not None and job.usage["video_duration"] == 5

    mine = fields(await private_answer(await wan.fake.slash("usage", user="alice")))
    assert mine["This server today"] == "5 s made\n1 job\n95 s left of 100 s"
    assert mine["You today"] == "5 s made\n1 job\n25 s left of 30 s"
    assert mine["This server, last 30 days"] == mine["You, last 30 days"] == "5 s made\n1 job"
    assert mine["Limits"] == ("Unfinished jobs per person: 2 (you have 0)\n"
                              "Video per person per day: 30 s\n"
                              "Video for the server per day: 100 s")
    reset = int(today + DAY_S)
    assert mine["Daily budgets reset"] == f"<t:{reset}:t> (<t:{reset}:R>)"

    bobs = fields(await private_answer(await wan.fake.slash("usage", user="bob")))
    assert bobs["This server today"] == mine["This server today"]
    assert bobs["You today"] == "0 s made\n0 jobs\n30 s left of 30 s"
