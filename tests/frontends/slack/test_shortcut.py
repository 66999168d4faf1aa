"""The message shortcut "Make a Wan video" (`wan:from_message`) through slack-bolt against the
fake Slack: the command, then the new-job form whose inputs pick the message's files, then a
job made from those files, fetched with the bot token."""

from __future__ import annotations

from bot.engine import JobState
from bot.frontends.slack.listeners.shortcuts import NO_FILES
from tests.discord_stack import png
from tests.fakeslack import FakeMessage
from tests.slack_stack import SlackStack
from tests.slack_steps import answer


def two_images(stack: SlackStack) -> FakeMessage:
    """bob's message in #general with two images."""
    files = [stack.fake.user_file(name, png(size), user="bob")
             for name, size in (("first.png", (640, 480)), ("last.png", (640, 480)))]
    return stack.fake.post_as_user("general", "look", user="bob", files=files)


async def picked_kf2v(stack: SlackStack, message: FakeMessage) -> str:
    """The shortcut on `message`, /kf2v chosen: the new-job form's view id."""
    record = await stack.fake.shortcut(message, "wan:from_message", user="alice")
    assert (await record.acked()).late is False
    [view] = await stack.fake.wait_for(lambda: stack.fake.open_views("wan:from_message")
                                       or None)
    ack = await (await stack.fake.submit_view(view.id, {"command": "kf2v"})).acked()
    assert ack.response_action == "update" and stack.fake.ack_problems == []
    [form] = stack.fake.open_views("wan:new:kf2v")
    return form.id


async def test_the_form_picks_among_the_messages_files(wan: SlackStack) -> None:
    """After the command: the kf2v form, each frame a select of the message's files."""
    message = two_images(wan)
    form = wan.fake.find_view(await picked_kf2v(wan, message))
    for name in ("first_frame", "last_frame"):
        element = form.block(name)["element"]
        assert element["type"] == "static_select"
        assert [o["value"] for o in element["options"]] == [f.id for f in message.files]
        assert [o["text"]["text"] for o in element["options"]] == ["first.png", "last.png"]


async def test_the_chosen_files_make_the_job(wan: SlackStack) -> None:
    """Submitting the form with the files swapped: a job from them, fetched with the token,
    delivered in the channel."""
    message = two_images(wan)
    first, last = message.files
    form = await picked_kf2v(wan, message)
    ack = await (await wan.fake.submit_view(form, {"first_frame": last.id,
                                                   "last_frame": first.id,
                                                   "prompt": "a sunrise"})).acked()
    assert ack.errors == {}
    done = await wan.wait_state(JobState.DELIVERED)
    assert done.display.inputs == {"first_frame": "last.png", "last_frame": "first.png"}
    assert done.prompt == "a sunrise" and done.user_id == wan.fake.user("alice").id
    assert sorted(wan.fake.file_fetches) == sorted([(first.id, True), (last.id, True)])
    assert all(str(url).startswith("oss://") for url in done.media.values())


async def test_a_message_without_files_gets_a_note(wan: SlackStack) -> None:
    """The shortcut on a plain message: a private note, no modal."""
    message = wan.fake.post_as_user("general", "just words", user="bob")
    record = await wan.fake.shortcut(message, "wan:from_message")
    assert (await record.acked()).late is False
    assert await answer(wan.fake, record) == NO_FILES
    assert wan.fake.open_views() == []
