"""/wan through slack-bolt against the fake Slack: jobs, job <id> (someone else's private job
stays hidden), queue, usage, help, and settings, a modal for workspace admins whose saved
limits and roles apply to the next command."""

from __future__ import annotations

from typing import Any

import pytest

from bot.engine import JobState
from bot.frontends.slack.access import NOT_ALLOWED
from bot.frontends.slack.pages import HELP
from bot.frontends.slack.settings_modal import NOT_ADMIN
from tests.fakeslack import FakeWorkspace
from tests.slack_stack import SlackStack, manifest_scopes
from tests.slack_steps import answer, queue_kf2v


async def wan_says(stack: SlackStack, text: str, user: str = "alice") -> str:
    """What `/wan <text>` answers `user`."""
    record = await stack.fake.slash("/wan", text, user=user)
    assert (await record.acked()).late is False
    return await answer(stack.fake, record)


async def save_settings(stack: SlackStack, values: dict[str, Any], user: str = "carol") -> None:
    """`/wan settings` as an admin, the modal submitted with `values`, the save confirmed."""
    record = await stack.fake.slash("/wan", "settings", user=user)
    await record.acked()
    [view] = await stack.fake.wait_for(lambda: stack.fake.open_views("wan:settings") or None)
    ack = await (await stack.fake.submit_view(view.id, values)).acked()
    assert ack.errors == {}
    await stack.fake.wait_for(lambda: any(
        m.text.startswith("Saved.") for m in stack.fake.ephemerals_for(user)) or None)


async def kf2v_answer(stack: SlackStack, user: str) -> str:
    first, last = stack.frames()
    record = await stack.fake.slash("/kf2v", f"<{first}> <{last}> a cat", user=user)
    await record.acked()
    return await answer(stack.fake, record)


async def test_jobs_lists_ones_own(wan: SlackStack) -> None:
    """/wan jobs: alice sees her job by id; bob has none."""
    job = await queue_kf2v(wan)
    assert f"`{job.id}` /kf2v" in await wan_says(wan, "jobs")
    assert (await wan_says(wan, "jobs", "bob")).startswith("You have no jobs here yet")


async def test_job_shows_one_in_full(wan: SlackStack) -> None:
    """/wan job <id>: the job's facts for anyone in the workspace when it is not private."""
    job = await queue_kf2v(wan)
    text = await wan_says(wan, f"job {job.id}", "bob")
    assert text.startswith(f"*Job `{job.id}`* · /kf2v") and "a cat looks up" in text


async def test_job_hides_someone_elses_private_job(wan: SlackStack) -> None:
    """/wan job <id> on alice's private job: alice sees it, bob is told there is none."""
    job = await queue_kf2v(wan, options="private=yes")
    assert (await wan_says(wan, f"job {job.id}")).startswith(f"*Job `{job.id}`*")
    hidden = await wan_says(wan, f"job {job.id}", "bob")
    assert hidden.startswith("I can't find a job") and "a cat" not in hidden


async def test_queue_shows_what_runs(wan: SlackStack) -> None:
    """/wan queue: a running job counts against its model's slots and waits for nobody."""
    assert (await wan_says(wan, "queue")).startswith("Nothing is waiting or running")
    wan.sim.config.running_s = 1e6
    job = await queue_kf2v(wan)
    await wan.wait_job(lambda j: j.id == job.id and j.state is JobState.RUNNING)
    assert f"*{job.model}* · 1/" in await wan_says(wan, "queue", "bob")


async def test_usage_counts_what_was_made(wan: SlackStack) -> None:
    """/wan usage: alice's delivered job in her seconds today; bob's are none."""
    job = await queue_kf2v(wan)
    await wan.wait_job(lambda j: j.id == job.id and j.state is JobState.DELIVERED)
    text = await wan_says(wan, "usage")
    assert text.startswith("*Video made (seconds)*") and "You today: 5 s in 1 jobs" in text
    assert "You today: 0 s in 0 jobs" in await wan_says(wan, "usage", "bob")


@pytest.mark.parametrize("text", ["help", "", "what"])
async def test_help(wan: SlackStack, text: str) -> None:
    """/wan help, /wan alone or an unknown word: the help."""
    assert await wan_says(wan, text) == HELP


async def test_settings_for_a_member_are_refused(wan: SlackStack) -> None:
    """/wan settings by bob (no admin): refused, no modal."""
    assert await wan_says(wan, "settings", "bob") == NOT_ADMIN
    assert wan.fake.open_views() == []


async def test_a_forged_settings_submission_by_a_member_is_refused(wan: SlackStack) -> None:
    """The settings form opened by carol but submitted as bob: refused in the ack, not saved."""
    await (await wan.fake.slash("/wan", "settings", user="carol")).acked()
    [view] = await wan.fake.wait_for(lambda: wan.fake.open_views("wan:settings") or None)
    ack = await (await wan.fake.submit_view(view.id, {"user_daily_seconds": "3"},
                                            user="bob")).acked()
    assert ack.errors == {"people": NOT_ADMIN}
    assert (await kf2v_answer(wan, "alice")).startswith("Queued as job")


async def test_a_bad_limit_is_refused_on_its_field(wan: SlackStack) -> None:
    """A limit that is not a number: the error on that field, the modal stays open."""
    await (await wan.fake.slash("/wan", "settings", user="carol")).acked()
    [view] = await wan.fake.wait_for(lambda: wan.fake.open_views("wan:settings") or None)
    ack = await (await wan.fake.submit_view(view.id, {"user_jobs": "many"})).acked()
    assert list(ack.errors) == ["user_jobs"] and wan.fake.open_views("wan:settings") == [view]


async def test_settings_saved_limit_applies_to_the_next_command(wan: SlackStack) -> None:
    """carol sets 3 s a day per person: alice's next 5 s job is refused with what is left."""
    await save_settings(wan, {"user_daily_seconds": "3"})
    text = await kf2v_answer(wan, "alice")
    assert "your daily budget has 3 s left of 3 s" in text and "Nothing was submitted" in text
    assert wan.creates() == []


async def test_settings_modal_shows_the_saved_values(wan: SlackStack) -> None:
    """After a save, the modal opens with what was saved."""
    await save_settings(wan, {"user_jobs": "2", "team_daily_seconds": "60"})
    await (await wan.fake.slash("/wan", "settings", user="olive")).acked()
    [view] = await wan.fake.wait_for(lambda: wan.fake.open_views("wan:settings") or None)
    assert view.block("user_jobs")["element"]["initial_value"] == "2"
    assert view.block("team_daily_seconds")["element"]["initial_value"] == "60"


async def test_settings_naming_people_refuse_the_others(wan: SlackStack) -> None:
    """Only alice named: bob's command is refused, alice's is queued."""
    await save_settings(wan, {"people": [wan.fake.user("alice").id]})
    assert await kf2v_answer(wan, "bob") == NOT_ALLOWED
    assert (await kf2v_answer(wan, "alice")).startswith("Queued as job")


class TestUserGroups:
    @pytest.fixture
    def front_workspace(self) -> FakeWorkspace:
        return FakeWorkspace(scopes=manifest_scopes(), usergroups={"makers": ["alice"]})

    async def test_settings_naming_a_group_refuse_the_others(self, wan: SlackStack) -> None:
        """Only the user group `makers` (alice): bob is refused, alice is queued."""
        await save_settings(wan, {"groups": wan.fake.usergroup_id("makers")})
        assert await kf2v_answer(wan, "bob") == NOT_ALLOWED
        assert (await kf2v_answer(wan, "alice")).startswith("Queued as job")
