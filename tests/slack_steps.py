"""The steps the Slack front end's tests share: a job queued by links, the message with a given
button, what the bot answered, and a front end that restarts on the same database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from bot.engine import Job
from tests.fakeslack import EnvelopeRecord, FakeMessage, FakeSlack
from tests.slack_stack import SlackStack


def hook_texts(fake: FakeSlack, record: EnvelopeRecord) -> list[str]:
    """What the bot said privately through an envelope's response_url."""
    return [str(post.get("text")) for post in fake.hook_for(record).posts]


async def answer(fake: FakeSlack, record: EnvelopeRecord) -> str:
    """The first private answer through the envelope's response_url."""
    return (await fake.wait_for(lambda: hook_texts(fake, record) or None,
                                what="an answer through response_url"))[0]


async def dm_text(fake: FakeSlack, user: str, contains: str) -> str:
    """A message in the bot's DM with `user` that contains `contains`."""
    return await fake.wait_for(lambda: next(
        (m.text for m in fake.dm_messages(user) if contains in m.text), None),
        what=f"a DM to {user} saying {contains!r}")


async def queue_kf2v(stack: SlackStack, *, user: str = "alice", options: str = "",
                     channel: str = "general") -> Job:
    """/kf2v with two links: the job, once its progress message is posted."""
    first, last = stack.frames()
    record = await stack.fake.slash("/kf2v", f"<{first}> <{last}> {options} a cat looks up",
                                    user=user, channel=channel)
    await record.acked()
    text = await answer(stack.fake, record)
    assert text.startswith("Queued as job"), text
    job_id = text.split("`")[1]
    return await stack.wait_job(lambda j: j.id == job_id and j.progress_ref is not None,
                                what=f"job {job_id} posted")


async def message_with(stack: SlackStack, action_id: str) -> FakeMessage:
    """The bot's message (in any channel or DM) that shows the button `action_id`."""
    def probe() -> FakeMessage | None:
        return next((m for ms in stack.fake.messages.values() for m in ms
                     if not m.deleted and action_id in m.action_ids), None)

    return await stack.fake.wait_for(probe, what=f"a message with {action_id}")


@contextlib.asynccontextmanager
async def restartable(stack: SlackStack) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A running front end; the function it gives stops it (as `async with stack.start()`
    ending does) and starts a new one on the same database."""
    async with contextlib.AsyncExitStack() as running:
        await running.enter_async_context(stack.start())

        async def restart() -> None:
            await running.aclose()
            await running.enter_async_context(stack.start())

        yield restart
