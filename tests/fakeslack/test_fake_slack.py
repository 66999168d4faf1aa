"""The fake Slack drives the real slack_sdk client and a real slack_bolt app end to end."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakeslack import (
    DEFAULT_SCOPES,
    FakeSlack,
    FakeWorkspace,
    FileInputRejected,
    Json,
    Rate,
    connected_app,
    run_fake_slack,
)

pytest_plugins = ("tests.slack_support",)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
MODAL_ID = "wan:new:kf2v"


def kf2v_modal(title: str = "New kf2v video") -> Json:
    """A modal like the front end's: a file_input, a prompt, checkboxes."""
    flags = [{"text": {"type": "plain_text", "text": name}, "value": name}
             for name in ("private", "watermark")]
    return {
        "type": "modal", "callback_id": MODAL_ID, "private_metadata": '{"channel": "C1"}',
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Make it"},
        "blocks": [
            {"type": "input", "block_id": "first_frame", "label": {"type": "plain_text",
             "text": "First frame"}, "element": {"type": "file_input", "action_id":
             "first_frame", "filetypes": ["png", "jpg"], "max_files": 1}},
            {"type": "input", "block_id": "prompt", "label": {"type": "plain_text",
             "text": "Prompt"}, "element": {"type": "plain_text_input", "action_id": "prompt",
                                            "multiline": True}},
            {"type": "input", "block_id": "flags", "optional": True, "label": {
                "type": "plain_text", "text": "Flags"},
             "element": {"type": "checkboxes", "action_id": "flags", "options": flags}},
        ],
    }


def job_blocks(job_id: str) -> list[Json]:
    button = {"type": "button", "action_id": f"wan:cancel:{job_id}", "value": job_id,
              "text": {"type": "plain_text", "text": "Cancel"}}
    return [{"type": "section", "text": {"type": "mrkdwn", "text": f"job {job_id}"}},
            {"type": "actions", "block_id": "buttons", "elements": [button]}]


def build_app(fake: FakeSlack) -> AsyncApp:
    """A small bolt app: the listener kinds the front end uses, 2-5 lines each."""
    app = AsyncApp(client=fake.client())
    add_commands(app, fake)
    add_interactions(app)
    return app


def add_commands(app: AsyncApp, fake: FakeSlack) -> None:
    @app.command("/echo")
    async def echo(ack: AsyncAck, command: Json) -> None:
        await ack(f"got: {command['text']}")

    @app.command("/slow")
    async def slow(ack: AsyncAck) -> None:
        await asyncio.sleep(fake.ack_deadline_s * 3)  # the slowness under test
        await ack()

    @app.command("/kf2v")
    async def open_modal(ack: AsyncAck, command: Json, client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=command["trigger_id"], view=kf2v_modal())

    @app.command("/job")
    async def job(ack: AsyncAck, command: Json, client: AsyncWebClient) -> None:
        await ack()
        await client.chat_postMessage(channel=command["channel_id"], text="job 7",
                                      blocks=job_blocks("7"))


def add_interactions(app: AsyncApp) -> None:
    @app.view(MODAL_ID)
    async def submitted(ack: AsyncAck, view: Json) -> None:
        prompt = view["state"]["values"]["prompt"]["prompt"]["value"]
        if prompt == "bad":
            await ack(response_action="errors", errors={"prompt": "Say what should happen"})
        else:
            await ack()

    @app.action(re.compile(r"^wan:cancel:(\w+)$"))
    async def cancel(ack: AsyncAck, body: Json, respond: AsyncRespond) -> None:
        await ack()
        await respond(replace_original=True, text=f"cancelled by {body['user']['name']}")

    @app.shortcut("wan:from_message")
    async def from_message(ack: AsyncAck, shortcut: Json, client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=shortcut["trigger_id"], view=kf2v_modal())


@pytest.fixture
async def bolt(fake_slack: FakeSlack) -> AsyncIterator[AsyncApp]:
    app = build_app(fake_slack)
    async with connected_app(fake_slack, app):
        yield app


async def upload(fake: FakeSlack, data: bytes, *, title: str, channel: str,
                 thread_ts: str | None = None) -> Json:
    """The three steps, the bytes streamed (chunked) as the front end must send them."""
    client = fake.client()
    ticket = await client.files_getUploadURLExternal(filename="out.mp4", length=len(data))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start:start + 1000]

    async with aiohttp.ClientSession() as http, http.post(ticket["upload_url"],
                                                          data=chunks()) as reply:
        assert reply.status == 200
    done = await client.files_completeUploadExternal(
        files=[{"id": ticket["file_id"], "title": title}], channel_id=channel,
        thread_ts=thread_ts, initial_comment="here it is")
    return dict(done.data)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Socket Mode


async def test_slash_command_reaches_bolt_and_its_ack_returns(
    fake_slack: FakeSlack, bolt: AsyncApp
) -> None:
    """A slash_commands envelope reaches the listener; its ack payload comes back in time."""
    record = await fake_slack.slash("/echo", "a cat", user="bob")
    ack = await record.acked()
    assert ack.payload == {"text": "got: a cat"} and not ack.late
    assert [m.text for m in fake_slack.ephemerals_for("bob")] == ["got: a cat"]


async def test_late_ack_is_recorded_as_a_timeout(fake_slack: FakeSlack, bolt: AsyncApp) -> None:
    """An ack after the deadline is marked late and listed as an operation_timeout."""
    fake_slack.ack_deadline_s = 0.1
    record = await fake_slack.slash("/slow")
    ack = await record.acked()
    assert ack.late and fake_slack.ack_failures() == [record]


async def test_view_submission_errors_come_back_to_the_test(
    fake_slack: FakeSlack, bolt: AsyncApp
) -> None:
    """response_action: errors in the ack reaches the test, and the modal stays open."""
    await (await fake_slack.slash("/kf2v")).acked()
    view = await fake_slack.wait_for(lambda: next(iter(fake_slack.open_views(MODAL_ID)), None))
    image = fake_slack.user_file("a.png", PNG)
    record = await fake_slack.submit_view(MODAL_ID, {"first_frame": [image], "prompt": "bad"})
    ack = await record.acked()
    assert ack.response_action == "errors" and ack.errors == {"prompt": "Say what should happen"}
    assert view.errors == ack.errors and not view.closed


async def test_plain_ack_closes_the_modal(fake_slack: FakeSlack, bolt: AsyncApp) -> None:
    """An empty ack of a view_submission closes the view."""
    await (await fake_slack.slash("/kf2v")).acked()
    view = await fake_slack.wait_for(lambda: next(iter(fake_slack.open_views(MODAL_ID)), None))
    image = fake_slack.user_file("a.png", PNG)
    await (await fake_slack.submit_view(view.id, {"first_frame": image, "prompt": "ok",
                                                 "flags": ["private"]})).acked()
    assert view.closed and fake_slack.open_views() == []


async def test_button_click_and_response_url_replace(fake_slack: FakeSlack, bolt: AsyncApp
                                                     ) -> None:
    """A block_actions click reaches a regex listener; respond() replaces the message."""
    await (await fake_slack.slash("/job")).acked()
    message = await fake_slack.wait_for_message("general")
    await (await fake_slack.click(message, "wan:cancel:7", user="carol")).acked()
    await fake_slack.wait_for(lambda: message.edits or None)
    assert message.text == "cancelled by carol"


async def test_message_shortcut_opens_the_modal(fake_slack: FakeSlack, bolt: AsyncApp) -> None:
    """A message_action on a message with files carries the file objects and a trigger."""
    clip = fake_slack.user_file("clip.mp4", b"\0" * 64, user="bob")
    posted = fake_slack.post_as_user("general", "my clip", user="bob", files=[clip])
    record = await fake_slack.shortcut(posted, "wan:from_message", user="bob")
    await record.acked()
    await fake_slack.wait_for(lambda: fake_slack.open_views(MODAL_ID) or None)
    [given] = record.payload["message"]["files"]
    assert given["url_private_download"] == clip.url_private_download


async def test_reconnect_on_disconnect_request(fake_slack: FakeSlack, bolt: AsyncApp) -> None:
    """On Slack's ``disconnect`` the SDK opens a new connection and envelopes flow on it."""
    await fake_slack.request_reconnect()
    await fake_slack.wait_for(lambda: (len(fake_slack.sockets) == 2 and fake_slack.sockets[0].closed
                                       and fake_slack.sockets[1].live) or None)
    record = await fake_slack.slash("/echo", "again")
    assert (await record.acked()).payload == {"text": "got: again"}
    assert len(fake_slack.calls("apps.connections.open")) == 2


# --------------------------------------------------------------------------- Web API rules


async def test_bad_token_is_invalid_auth(fake_slack: FakeSlack) -> None:
    """A wrong bot token gets invalid_auth; the app token is refused for bot methods."""
    for token, error in (("xoxb-wrong", "invalid_auth"),
                         (fake_slack.app_token, "not_allowed_token_type")):
        with pytest.raises(SlackApiError) as caught:
            await fake_slack.client(token).auth_test()
        assert caught.value.response["error"] == error


async def test_ephemeral_message_cannot_be_updated(fake_slack: FakeSlack) -> None:
    """chat.update on an ephemeral's ts fails with message_not_found, as in Slack."""
    client = fake_slack.client()
    alice = fake_slack.user("alice").id
    general = fake_slack.channel("general").id
    sent = await client.chat_postEphemeral(channel=general, user=alice, text="1%")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_update(channel=general, ts=sent["message_ts"], text="2%")
    assert caught.value.response["error"] == "message_not_found"
    assert fake_slack.ephemeral_edits == [("chat.update", sent["message_ts"])]


async def test_channel_membership_rules(slack_workspace: FakeWorkspace) -> None:
    """Private channel the bot is not in: channel_not_found; public one: only with
    chat:write.public."""
    slack_workspace.scopes = DEFAULT_SCOPES - {"chat:write.public"}
    async with run_fake_slack(slack_workspace) as fake:
        client = fake.client()
        for name, error in (("secret", "channel_not_found"), ("random", "not_in_channel")):
            with pytest.raises(SlackApiError) as caught:
                await client.chat_postMessage(channel=fake.channel(name).id, text="hi")
            assert caught.value.response["error"] == error


async def test_public_scope_posts_to_a_public_channel(fake_slack: FakeSlack) -> None:
    """With chat:write.public (the default scopes) the bot posts to #random unasked."""
    sent = await fake_slack.client().chat_postMessage(channel=fake_slack.channel("random").id,
                                                      text="hi")
    assert [m.ts for m in fake_slack.messages_in("random")] == [sent["ts"]]


async def test_users_info_says_who_is_admin(fake_slack: FakeSlack) -> None:
    """users.info carries is_admin / is_owner / is_primary_owner."""
    client = fake_slack.client()
    flags = {}
    for name in ("alice", "carol", "olive"):
        user = (await client.users_info(user=fake_slack.user(name).id))["user"]
        flags[name] = (user["is_admin"], user["is_owner"], user["is_primary_owner"])
    assert flags == {"alice": (False, False, False), "carol": (True, False, False),
                     "olive": (True, True, True)}


async def test_history_needs_its_scope(fake_slack: FakeSlack) -> None:
    """conversations.replies is refused with missing_scope under the manifest's scopes."""
    with pytest.raises(SlackApiError) as caught:
        await fake_slack.client().conversations_replies(channel=fake_slack.channel("general").id,
                                                        ts="1.0")
    assert caught.value.response["error"] == "missing_scope"
    assert caught.value.response["needed"] == "channels:history"


# --------------------------------------------------------------------------- modals


async def test_modal_title_over_24_chars_is_refused(fake_slack: FakeSlack) -> None:
    """views.open with a 25-character title fails with invalid_arguments."""
    trigger = fake_slack.new_trigger(fake_slack.user("alice"), fake_slack.channel("general"))
    with pytest.raises(SlackApiError) as caught:
        await fake_slack.client().views_open(trigger_id=trigger, view=kf2v_modal("x" * 25))
    assert caught.value.response["error"] == "invalid_arguments"


async def test_trigger_id_is_single_use_and_short_lived(fake_slack: FakeSlack) -> None:
    """A trigger opens one view; a second use or an expired one is refused."""
    client = fake_slack.client()
    alice, general = fake_slack.user("alice"), fake_slack.channel("general")
    used, stale = fake_slack.new_trigger(alice, general), fake_slack.new_trigger(alice, general)
    await client.views_open(trigger_id=used, view=kf2v_modal())
    fake_slack.expire_trigger(stale)
    errors = []
    for trigger in (used, stale):
        with pytest.raises(SlackApiError) as caught:
            await client.views_open(trigger_id=trigger, view=kf2v_modal())
        errors.append(caught.value.response["error"])
    assert errors == ["exchanged_trigger_id", "expired_trigger_id"]


async def test_file_over_10_mb_cannot_go_in_a_file_input(fake_slack: FakeSlack,
                                                         bolt: AsyncApp) -> None:
    """Submitting a file_input with an 11 MB file fails: Slack's client refuses it."""
    await (await fake_slack.slash("/kf2v")).acked()
    await fake_slack.wait_for(lambda: fake_slack.open_views(MODAL_ID) or None)
    big = fake_slack.user_file("big.png", PNG, size=11 * 1024 * 1024)
    with pytest.raises(FileInputRejected):
        await fake_slack.submit_view(MODAL_ID, {"first_frame": big, "prompt": "go"})


# --------------------------------------------------------------------------- files


async def test_private_file_without_token_is_a_sign_in_page(fake_slack: FakeSlack) -> None:
    """url_private_download: no token or a wrong one gets 200 HTML; the bot token the bytes."""
    image = fake_slack.user_file("a.png", PNG)
    answers = []
    async with aiohttp.ClientSession() as http:
        for token in (None, "xoxb-wrong", fake_slack.bot_token):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.get(image.url_private_download, headers=headers) as reply:
                answers.append((reply.status, reply.content_type, await reply.read()))
    assert [a[:2] for a in answers] == [(200, "text/html"), (200, "text/html"),
                                        (200, "image/png")]
    assert answers[2][2] == PNG and b"Sign in" in answers[0][2]


async def test_three_step_upload_lands_in_the_thread(fake_slack: FakeSlack) -> None:
    """getUploadURLExternal, a streamed POST, completeUploadExternal: the file is in the thread."""
    client = fake_slack.client()
    general = fake_slack.channel("general").id
    parent = await client.chat_postMessage(channel=general, text="progress")
    video = bytes(range(256)) * 40
    done = await upload(fake_slack, video, title="wan-42.mp4", channel=general,
                        thread_ts=parent["ts"])
    [reply] = fake_slack.thread("general", parent["ts"])
    assert done["files"][0]["title"] == "wan-42.mp4" and reply.text == "here it is"
    assert [f.data for f in reply.files] == [video]
    assert fake_slack.uploads_titled("wan-42.mp4") == reply.files
    assert fake_slack.uploads[reply.files[0].id].chunked


async def test_earlier_upload_is_found_by_title(fake_slack: FakeSlack) -> None:
    """files.list (files:read) shows the bot's shared uploads with their titles and threads."""
    general = fake_slack.channel("general").id
    parent = await fake_slack.client().chat_postMessage(channel=general, text="progress")
    await upload(fake_slack, b"v" * 10, title="wan-9.mp4", channel=general,
                 thread_ts=parent["ts"])
    listed = await fake_slack.client().files_list(channel=general)
    [found] = [f for f in listed["files"] if f["title"] == "wan-9.mp4"]
    [share] = found["shares"]["public"][general]
    assert share == {"ts": fake_slack.thread("general", parent["ts"])[0].ts,
                     "thread_ts": parent["ts"]}


async def test_uploads_disabled_fails_with_slacks_error(slack_workspace: FakeWorkspace) -> None:
    """A workspace that forbids uploads answers file_uploads_disabled."""
    slack_workspace.file_uploads_disabled = True
    async with run_fake_slack(slack_workspace) as fake:
        with pytest.raises(SlackApiError) as caught:
            await fake.client().files_getUploadURLExternal(filename="a.mp4", length=10)
    assert caught.value.response["error"] == "file_uploads_disabled"


async def test_upload_to_a_channel_the_bot_is_not_in(fake_slack: FakeSlack) -> None:
    """completeUploadExternal needs real membership: chat:write.public does not cover files."""
    with pytest.raises(SlackApiError) as caught:
        await upload(fake_slack, b"x" * 10, title="t", channel=fake_slack.channel("random").id)
    assert caught.value.response["error"] == "not_in_channel"


# --------------------------------------------------------------------------- limits


async def test_rate_tier_answers_429_with_retry_after(fake_slack: FakeSlack) -> None:
    """Over chat.update's tier (opt-in), Slack's 429 ratelimited with Retry-After."""
    fake_slack.rate_limits_enabled = True
    fake_slack.limiter.rates["chat.update"] = Rate(2, 60.0)
    client = fake_slack.client(retry_handlers=[])
    general = fake_slack.channel("general").id
    sent = await client.chat_postMessage(channel=general, text="0%")
    for percent in (1, 2):
        await client.chat_update(channel=general, ts=sent["ts"], text=f"{percent}%")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_update(channel=general, ts=sent["ts"], text="3%")
    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    assert 1 <= int(caught.value.response.headers["Retry-After"]) <= 60


async def test_retry_handler_waits_out_the_429(fake_slack: FakeSlack) -> None:
    """slack_sdk's AsyncRateLimitErrorRetryHandler retries after Retry-After and succeeds."""
    fake_slack.rate_limits_enabled = True
    fake_slack.limiter.rates["chat.update"] = Rate(1, 1.0)
    client = fake_slack.client(retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    general = fake_slack.channel("general").id
    sent = await client.chat_postMessage(channel=general, text="0%")
    for percent in (1, 2):
        await client.chat_update(channel=general, ts=sent["ts"], text=f"{percent}%")
    assert fake_slack.messages_in("general")[0].text == "2%"
    assert [r.status for r in fake_slack.calls("chat.update")] == [200, 429, 200]


async def test_rate_tiers_are_off_by_default(fake_slack: FakeSlack) -> None:
    """Without the knob, many quick edits all succeed (functional tests are not slowed)."""
    client = fake_slack.client()
    general = fake_slack.channel("general").id
    sent = await client.chat_postMessage(channel=general, text="0")
    for n in range(60):
        await client.chat_update(channel=general, ts=sent["ts"], text=str(n))
    assert {r.status for r in fake_slack.calls("chat.update")} == {200}


async def test_response_url_allows_five_uses(fake_slack: FakeSlack, bolt: AsyncApp) -> None:
    """A response_url takes five posts; the sixth is refused, as is any after expiry."""
    record = await fake_slack.slash("/echo", "x")
    await record.acked()
    url = record.payload["response_url"]
    async with aiohttp.ClientSession() as http:
        statuses = []
        for n in range(6):
            async with http.post(url, json={"text": str(n)}) as reply:
                statuses.append(reply.status)
        fake_slack.hook_for(record).expire()
        async with http.post(url, json={"text": "late"}) as reply:
            expired = (reply.status, (await reply.json())["error"])
    assert statuses == [200] * 5 + [404] and expired == (404, "expired_url")


async def test_share_can_arrive_after_the_completion(fake_slack: FakeSlack) -> None:
    """With share_delay_s the file shows in the thread only later, as Slack shares async."""
    fake_slack.share_delay_s = 0.05
    general = fake_slack.channel("general").id
    parent = await fake_slack.client().chat_postMessage(channel=general, text="progress")
    await upload(fake_slack, b"v" * 100, title="wan-1.mp4", channel=general,
                 thread_ts=parent["ts"])
    assert fake_slack.thread("general", parent["ts"]) == []
    reply = await fake_slack.wait_for_message("general", thread_ts=parent["ts"])
    assert [f.title for f in reply.files] == ["wan-1.mp4"]


async def test_dm_opened_with_conversations_open(fake_slack: FakeSlack) -> None:
    """conversations.open gives the bot's DM with a user; posts there are the user's DMs."""
    client = fake_slack.client()
    opened = await client.conversations_open(users=fake_slack.user("bob").id)
    await client.chat_postMessage(channel=opened["channel"]["id"], text="your video")
    assert [m.text for m in fake_slack.dm_messages("bob")] == ["your video"]
    assert fake_slack.dm_messages("alice") == []


async def test_usergroup_members_need_usergroups_read(slack_workspace: FakeWorkspace) -> None:
    """usergroups.users.list lists members only when the app has usergroups:read."""
    slack_workspace.usergroups = {"video-makers": ["alice", "bob"]}
    answers = []
    for scopes in (DEFAULT_SCOPES, DEFAULT_SCOPES | {"usergroups:read"}):
        slack_workspace.scopes = scopes
        async with run_fake_slack(slack_workspace) as fake:
            group = fake.usergroup_id("video-makers")
            try:
                answers.append((await fake.client().usergroups_users_list(usergroup=group))
                               ["users"])
            except SlackApiError as exc:
                answers.append(exc.response["error"])
    ids = [user.id for user in slack_workspace.users[:2]]
    assert answers == ["missing_scope", ids]


async def test_injected_error_is_answered_once(fake_slack: FakeSlack) -> None:
    """fail_next answers the next call with the error, then the method works again."""
    fake_slack.fail_next("chat.postMessage", "internal_error", status=500)
    client = fake_slack.client()
    general = fake_slack.channel("general").id
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel=general, text="a")
    await client.chat_postMessage(channel=general, text="b")
    assert [m.text for m in fake_slack.messages_in("general")] == ["b"]


async def test_retired_files_upload_is_refused(fake_slack: FakeSlack) -> None:
    """files.upload (retired by Slack) answers method_deprecated."""
    with pytest.raises(SlackApiError) as caught:
        await fake_slack.client().api_call("files.upload", data={"channels": "C1"})
    assert caught.value.response["error"] == "method_deprecated"


async def test_private_file_can_redirect_elsewhere(fake_slack: FakeSlack) -> None:
    """A file with redirect_to answers the bot token with a 302 (for origin-check tests)."""
    moved = fake_slack.user_file("a.png", PNG, redirect_to="http://127.0.0.1:9/elsewhere.png")
    headers = {"Authorization": f"Bearer {fake_slack.bot_token}"}
    async with aiohttp.ClientSession() as http, http.get(
            moved.url_private, headers=headers, allow_redirects=False) as reply:
        assert (reply.status, reply.headers["Location"]) == (302, moved.redirect_to)
    assert fake_slack.file_fetches == [(moved.id, True)]
