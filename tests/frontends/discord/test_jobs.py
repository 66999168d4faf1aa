"""/jobs, /job and /queue through discord.py against the fake Discord and the simulator."""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import pytest

from bot.engine import AT_PROVIDER, Delivery, Display, JobRequest, JobState, Post
from bot.errors import describe
from tests.discord_stack import Stack, png
from tests.pages_support import add_job, buttons, fields, private_answer

T0 = time.time() - 3600  # an hour ago: these jobs are history
MODEL = "wan2.2-kf2v-flash"
OTHER_SERVER = "999"
LINK = re.compile(r"^`(\w+)`", re.MULTILINE)  # each line of /jobs starts with the job id


def ids(stack: Stack, *names: str) -> list[str]:
    return [str(stack.fake.users[name].id) for name in names]


def listed(data: dict[str, Any]) -> list[str]:
    return LINK.findall(data["embeds"][0]["description"])


# --------------------------------------------------------------------------- /jobs


async def test_jobs_pages_ten_at_a_time_and_next_shows_the_rest(wan: Stack) -> None:
    """12 of alice's jobs: the newest 10, then 2 more behind Next; nobody else's jobs."""
    store, guild = wan.running.store, str(wan.fake.guild.id)
    alice, bob = ids(wan, "alice", "bob")
    mine = [await add_job(store, f"a{n:07d}", team_id=guild, user_id=alice, created_at=T0 + n)
            for n in range(12)]
    await add_job(store, "b0000001", team_id=guild, user_id=bob, created_at=T0 + 99)
    await add_job(store, "c0000001", team_id=OTHER_SERVER, user_id=alice, created_at=T0 + 99)
    newest = [job.id for job in reversed(mine)]

    record = await wan.fake.slash("jobs", user="alice")
    first = await private_answer(record)
    assert listed(first) == newest[:10]
    assert buttons(first)["Previous"]["disabled"] and not buttons(first)["Next"]["disabled"]
    assert first["embeds"][0]["footer"]["text"].startswith("Page 1 of 2")

    assert record.original is not None
    click = await wan.fake.click(buttons(first)["Next"]["custom_id"], record.original.id)
    turned = await click.responded()
    assert turned.accepted and turned.type == 7  # the same message, edited
    assert len(click.attempts) == 1
    assert listed(turned.data) == newest[10:]
    assert not buttons(turned.data)["Previous"]["disabled"] and buttons(turned.data)["Next"][
        "disabled"]
    assert listed(record.original.data) == newest[10:]


async def test_paging_buttons_are_removed_when_they_time_out(
    wan: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Buttons that would no longer answer are taken off the message."""
    monkeypatch.setattr(sys.modules["cogs.jobs"], "PAGES_TIMEOUT_S", 0.2)  # as loaded
    guild, [alice] = str(wan.fake.guild.id), ids(wan, "alice")
    for n in range(11):
        await add_job(wan.running.store, f"a{n:07d}", team_id=guild, user_id=alice,
                      created_at=T0 + n)
    record = await wan.fake.slash("jobs", user="alice")
    assert buttons(await private_answer(record))
    message = record.original
    assert message is not None
    await wan.fake.wait_for(lambda: message if not message.components else None,
                            what="the buttons removed")
    assert listed(message.data)  # the page itself stays


async def test_an_unexpected_error_is_answered_once_with_a_reference(
    wan: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug: a short apology naming the interaction; the traceback goes to the log."""
    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sys.modules["cogs.jobs"], "jobs_page", broken)  # the module as loaded
    record = await wan.fake.slash("jobs")
    data = await private_answer(record)
    assert data["content"].startswith("Sorry, something went wrong on our side.")
    assert f"`{record.id}`" in data["content"]
    assert "RuntimeError: a bug" in caplog.text


async def test_a_job_line_links_to_its_result(wan: Stack) -> None:
    """State, command, model, a Discord timestamp and a link to the posted video."""
    guild = str(wan.fake.guild.id)
    [alice] = ids(wan, "alice")
    await add_job(wan.running.store, "d0000001", team_id=guild, user_id=alice, created_at=T0,
                  delivery=Delivery(channel_id="5", message_id="6", mode="file"))
    data = await private_answer(await wan.fake.slash("jobs", user="alice"))
    assert data["embeds"][0]["description"] == (
        f"`d0000001` · **Done** · /kf2v · {MODEL} · <t:{int(T0)}:R> · "
        f"[open](https://discord.com/channels/{guild}/5/6)")
    assert data.get("components", []) == []  # one page: no buttons


async def test_jobs_without_any_says_how_to_start(wan: Stack) -> None:
    """Someone with no jobs gets a kind pointer to the commands."""
    data = await private_answer(await wan.fake.slash("jobs", user="bob"))
    assert data["embeds"][0]["description"].startswith("You have no jobs here yet.")


# --------------------------------------------------------------------------- /job


async def test_job_shows_everything_about_a_delivered_job(wan: Stack) -> None:
    """Any member sees inputs, options, prompt, task id, timings, attempts, result, usage."""
    guild = str(wan.fake.guild.id)
    [alice] = ids(wan, "alice")
    await add_job(
        wan.running.store, "c0ffee01", team_id=guild, user_id=alice, created_at=T0,
        prompt="a cat turns",
        display=Display(inputs={"first_frame": "a.png", "last_frame": "b.png"}),
        task_id="task-123", submitted_at=T0 + 1, started_at=T0 + 5, finished_at=T0 + 60,
        delivered_at=T0 + 62, attempts=2, usage={"video_duration": 5, "SR": 480},
        delivery=Delivery(channel_id="5", message_id="6", mode="file",
                          gallery=Post(channel_id="9", message_id="10")))
    data = await private_answer(await wan.fake.slash("job", {"id": " C0FFEE01 "}, user="bob"))
    embed, shown = data["embeds"][0], fields(data)
    assert embed["title"] == f"Job c0ffee01 · /kf2v · {MODEL}"
    assert embed["description"] == "> a cat turns"
    assert shown["Status"] == "Done" and shown["Asked by"] == f"<@{alice}>"
    assert shown["Inputs"] == "first_frame: a.png\nlast_frame: b.png"
    assert shown["Options"] == "resolution=480P"
    assert shown["Provider task"] == "`task-123`" and shown["Attempts"] == "2"
    assert shown["Timings"].splitlines() == [
        f"{label}: <t:{int(T0 + offset)}:f>"
        for label, offset in (("Created", 0), ("Sent", 1), ("Started", 5), ("Finished", 60),
                              ("Delivered", 62))]
    assert shown["Result"] == f"https://discord.com/channels/{guild}/5/6"
    assert shown["Gallery"] == f"https://discord.com/channels/{guild}/9/10"
    assert shown["Usage"] == "5 s of video, SR=480"


async def test_job_shows_a_failure_in_words_and_code(wan: Stack) -> None:
    """A failed job's error is the human text with the provider's code."""
    guild = str(wan.fake.guild.id)
    [alice] = ids(wan, "alice")
    message = "Input data may contain inappropriate content."
    await add_job(wan.running.store, "f0000001", team_id=guild, user_id=alice, created_at=T0,
                  state=JobState.FAILED, error_code="DataInspectionFailed",
                  error_message=message, finished_at=T0 + 3)
    shown = fields(await private_answer(await wan.fake.slash("job", {"id": "f0000001"})))
    assert shown["Status"] == "Failed"
    assert shown["Error"] == describe("DataInspectionFailed", message)
    assert "Result" not in shown and "Usage" not in shown


async def test_a_private_job_is_shown_to_its_owner_only(wan: Stack) -> None:
    """bob cannot tell alice's private job exists; alice gets it with a link to her DM."""
    [alice] = ids(wan, "alice")
    await add_job(wan.running.store, "p0000001", team_id=str(wan.fake.guild.id), user_id=alice,
                  created_at=T0, private=True,
                  delivery=Delivery(channel_id="7", message_id="8", mode="file", place="dm"))
    hidden = await private_answer(await wan.fake.slash("job", {"id": "p0000001"}, user="bob"))
    assert hidden["content"].startswith("I can't find a job `p0000001`")
    shown = fields(await private_answer(await wan.fake.slash("job", {"id": "p0000001"})))
    assert shown["Result"] == "https://discord.com/channels/@me/7/8"


@pytest.mark.parametrize("job_id", ["e0000001", "nosuchid"], ids=["other server", "unknown"])
async def test_job_of_another_server_is_as_unknown_as_no_job(wan: Stack, job_id: str) -> None:
    """Another server's job and a made-up id get the same kind answer and no details."""
    [alice] = ids(wan, "alice")
    await add_job(wan.running.store, "e0000001", team_id=OTHER_SERVER, user_id=alice,
                  created_at=T0)
    data = await private_answer(await wan.fake.slash("job", {"id": job_id}, user="alice"))
    assert data["content"] == (f"I can't find a job `{job_id}` in this server. "
                               "/jobs lists yours with their ids.")
    assert not data.get("embeds")


# --------------------------------------------------------------------------- /queue


def request(stack: Stack, user: str, url: str, *, private: bool = False) -> JobRequest:
    return JobRequest(platform="discord", team_id=str(stack.fake.guild.id),
                      channel_id=str(stack.channel_id), user_id=ids(stack, user)[0],
                      command="kf2v", model=MODEL, private=private,
                      media={"first_frame_url": url, "last_frame_url": url}, expected_seconds=5)


async def test_queue_shows_places_on_a_one_slot_model(stack: Stack) -> None:
    """One job holds the model's only slot; the two behind it show as 1st and 2nd (alice's
    private one unnamed to bob)."""
    stack.sim.config.running_s = 3600.0  # the first job keeps the slot for the whole test
    async with stack.start(concurrency={MODEL: 1}) as bot:
        url = stack.media.add("frame.png", png())
        first = (await bot.engine.submit(request(stack, "alice", url))).job
        await stack.wait_job(lambda j: j.id == first.id and j.state in AT_PROVIDER - {
            JobState.SUBMITTING}, what="the first job at the provider")
        await bot.engine.submit(request(stack, "bob", url))
        await bot.engine.submit(request(stack, "alice", url, private=True))
        queued = [u.job for u in (await bot.engine.queue())[MODEL]]
        data = await private_answer(await stack.fake.slash("queue", user="bob"))
    [(name, value)] = fields(data).items()
    assert name == f"{MODEL} · 1/1 running · 2 waiting"
    running, *waiting = value.splitlines()
    state, who = running.split(" · ")[:2]
    assert state in ("Waiting at the provider", "Generating")
    assert who == f"`{first.id}` <@{first.user_id}>"
    assert [line.split(" · ")[:2] for line in waiting] == [
        [place, "a private job" if job.private else f"`{job.id}` <@{job.user_id}>"]
        for place, job in zip(("1st", "2nd"), queued, strict=True)]
    assert sum(job.private for job in queued) == 1


async def test_queue_when_empty_says_a_job_starts_at_once(wan: Stack) -> None:
    """Nothing waiting or running: the answer says so."""
    data = await private_answer(await wan.fake.slash("queue"))
    assert data["embeds"][0]["description"].startswith("Nothing is waiting or running")
